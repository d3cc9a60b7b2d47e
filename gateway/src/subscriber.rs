//! Takes the messages of partners on a bus (法网 over RabbitMQ): each message goes through the
//! same path as an HTTP ingress request (signature, decode, intake) and is settled by the
//! answer: acknowledged once stored, dead-lettered when it can never be taken, handed back to
//! the broker when it could not be stored now. A lost connection is reopened with backoff; the
//! broker keeps what was not acknowledged, so nothing is lost across a broker restart. After a
//! message is handed back the subscriber pauses (200 ms, doubling, at most 10 s, until a message
//! is taken again): the broker hands the message out again at once, and while the store is down
//! that would otherwise be a loop as fast as the broker can go.

use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::AppState;
use crate::delivery::Partner;
use crate::delivery::retry::{RECONNECT_MAX, reconnect_delays};

/// Starts one subscriber per partner on a bus.
pub fn spawn(state: &AppState, tracker: &TaskTracker, shutdown: &CancellationToken) {
    for (id, partner) in state.engine.partners() {
        if partner.adapter.bus().is_none() {
            continue;
        }
        let state = state.clone();
        let id = id.clone();
        let partner = Arc::clone(partner);
        let stop = shutdown.clone();
        tracker.spawn(async move { run(state, id, partner, stop).await });
    }
}

async fn run(state: AppState, id: String, partner: Arc<Partner>, shutdown: CancellationToken) {
    let mut delays = reconnect_delays();
    loop {
        let opened = tokio::select! {
            s = partner.adapter.subscribe() => s,
            () = shutdown.cancelled() => return,
        };
        let failed = match opened {
            None => return,
            Some(Ok(mut sub)) => {
                tracing::info!(partner = %id, "subscribed to the partner's bus");
                delays = reconnect_delays();
                let mut pauses = reconnect_delays();
                loop {
                    let next = tokio::select! {
                        n = sub.next() => n,
                        () = shutdown.cancelled() => return,
                    };
                    let received = match next {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::warn!(partner = %id, error = %e, "the bus subscription ended");
                            break;
                        }
                    };
                    let req = received.request();
                    let answer = crate::api::ingress::handle(
                        &state,
                        &id,
                        partner.adapter.as_ref(),
                        &req,
                        false,
                    )
                    .await;
                    metrics::counter!("hotline_bus_messages_total", "partner" => id.clone(), "status" => answer.status.as_u16().to_string())
                        .increment(1);
                    let Some(bus) = partner.adapter.bus() else {
                        return;
                    };
                    if let Err(e) = received.settle(bus, &answer).await {
                        // Not acknowledged: the broker hands it out again, intake deduplicates.
                        tracing::warn!(partner = %id, error = %e, "settling a bus message failed");
                        break;
                    }
                    if !hotline_adapters::bus::hands_back(answer.status) {
                        pauses = reconnect_delays();
                        continue;
                    }
                    let wait = pauses.next().unwrap_or(RECONNECT_MAX);
                    tracing::warn!(partner = %id, status = answer.status.as_u16(), retry_in = ?wait,
                        "a bus message could not be taken now; handed back to the broker, pausing");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {},
                        () = shutdown.cancelled() => return,
                    }
                }
                None
            }
            Some(Err(e)) => Some(e),
        };
        let wait = delays.next().unwrap_or(RECONNECT_MAX);
        if let Some(e) = failed {
            tracing::warn!(partner = %id, error = %e, retry_in = ?wait, "cannot reach the partner's bus");
        }
        metrics::counter!("hotline_bus_reconnects_total", "partner" => id.clone()).increment(1);
        tokio::select! {
            () = tokio::time::sleep(wait) => {},
            () = shutdown.cancelled() => return,
        }
    }
}
