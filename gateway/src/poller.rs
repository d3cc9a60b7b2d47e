//! Polls the partners that are polled (12338): takes new messages from the partner's outbox after
//! the stored cursor, stores each through intake, acknowledges what was taken (and reports what
//! was refused, with the reason), then moves the cursor. A store failure stops the round without
//! acknowledging, so the partner offers the items again.

use std::sync::Arc;
use std::time::Duration;

use hotline_adapters::Adapter;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::intake::Intake;
use crate::store::Store;

pub struct Poller {
    pub partner: String,
    pub adapter: Arc<dyn Adapter>,
    pub every: Duration,
}

impl Poller {
    pub fn spawn(
        self,
        store: Arc<dyn Store>,
        intake: Arc<Intake>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
        leases: crate::cluster::Leases,
    ) {
        tracker.spawn(async move {
            let job = format!("poll:{}", self.partner);
            loop {
                if !leases.hold(&job, self.every).await {
                    tokio::select! {
                        () = tokio::time::sleep(self.every) => continue,
                        () = shutdown.cancelled() => return,
                    }
                }
                match self.round(store.as_ref(), &intake).await {
                    Ok(n) if n > 0 => continue, // more may be waiting
                    Ok(_) => {}
                    Err(e) => tracing::warn!(partner = %self.partner, error = %e, "polling failed"),
                }
                tokio::select! {
                    () = tokio::time::sleep(self.every) => {},
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }

    /// One poll; returns how many items it took.
    pub async fn round(&self, store: &dyn Store, intake: &Intake) -> anyhow::Result<usize> {
        let cursor = store.cursor(&self.partner).await?;
        let batch = self.adapter.poll(cursor.as_deref()).await?;
        let (mut taken, mut refused) = (Vec::new(), Vec::new());
        for item in batch.items {
            let outcome = match item.message {
                Ok(inbound) => intake.partner_message(&self.partner, inbound, None).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(_) => taken.push(item.id),
                Err(e) if e.status.is_server_error() => {
                    // Not stored: leave it (and the rest) for the next round.
                    anyhow::bail!("store unavailable at item {}: {e}", item.id);
                }
                Err(e) => {
                    tracing::info!(partner = %self.partner, item = %item.id, error = %e, "polled item refused");
                    metrics::counter!("hotline_ingress_rejected_total", "partner" => self.partner.clone(), "code" => e.code)
                        .increment(1);
                    refused.push((item.id, e.to_string()));
                }
            }
        }
        let n = taken.len() + refused.len();
        if n > 0 {
            self.adapter.ack_polled(&taken, &refused).await?;
        }
        if let Some(next) = batch.next_cursor
            && Some(&next) != cursor.as_ref()
        {
            store.set_cursor(&self.partner, &next).await?;
        }
        Ok(n)
    }
}
