//! Delivery work through RabbitMQ (`delivery.queue = "rabbitmq"`).
//!
//! The store stays the source of truth; the queue carries claims. Per partner:
//! - a **relay** claims due deliveries from the store (under a lease, as a worker would) and
//!   publishes one persistent message per claim, `{delivery_id, lease_token}`, to the durable
//!   queue `<prefix>.deliver.<partner>` on a channel in confirm mode, a claimed batch at a time,
//!   then awaits the batch's confirms. A claim whose publish is not confirmed is simply not
//!   sent: its lease runs out and it is claimed and published again.
//! - a **consumer** (prefetch = the partner's concurrency) takes messages, reads the claim back
//!   from the store ([`crate::store::Store::claimed`]: a claim that no longer holds, because it
//!   was finished or its lease ran out and it was claimed again, is acknowledged and dropped),
//!   sends it through the partner's adapter, records the outcome, and only then acknowledges the
//!   message. A final failure is rejected without requeueing, so it lands in the dead-letter
//!   exchange `<prefix>.dlx` (queue `<prefix>.dead-letters`) besides being a dead letter in the
//!   store; so does a message that cannot be read.
//! - retries wait in the store's schedule, not in the queue: a consumer is never blocked.
//!
//! Any instance's consumer may send any instance's claim. When the connection drops (broker
//! restart, network cut) both tasks stop and the partner's session reconnects with backoff,
//! declaring the topology again; unacknowledged messages are redelivered by the broker and
//! partners deduplicate on the message id.

use std::sync::Arc;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, ConnectionProperties, ExchangeKind};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::{DeliveryEngine, Gate, Partner};
use crate::store::ClaimToken;

/// What a queue message carries: a claim on one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Job {
    delivery_id: Uuid,
    lease_token: Uuid,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error(transparent)]
    Tls(#[from] hotline_adapters::TransportError),
    #[error("the broker did not confirm a publish")]
    Nacked,
}

/// Names of the partner's queue and the shared dead-letter exchange and queue.
struct Topology {
    queue: String,
    dlx: String,
    dead: String,
}

impl Topology {
    fn new(prefix: &str, partner: &str) -> Self {
        Self {
            queue: format!("{prefix}.deliver.{partner}"),
            dlx: format!("{prefix}.dlx"),
            dead: format!("{prefix}.dead-letters"),
        }
    }

    async fn declare(&self, ch: &Channel) -> Result<(), lapin::Error> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        ch.exchange_declare(
            self.dlx.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
        ch.queue_declare(self.dead.as_str().into(), durable, FieldTable::default())
            .await?;
        ch.queue_bind(
            self.dead.as_str().into(),
            self.dlx.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let mut args = FieldTable::default();
        args.insert(
            ShortString::from("x-dead-letter-exchange"),
            AMQPValue::LongString(self.dlx.as_str().into()),
        );
        ch.queue_declare(self.queue.as_str().into(), durable, args)
            .await?;
        Ok(())
    }
}

impl DeliveryEngine {
    /// Starts, per partner, a session that relays claims to RabbitMQ and consumes them, and
    /// reconnects when the connection is lost.
    pub fn spawn_amqp(self: &Arc<Self>, tracker: &TaskTracker, shutdown: CancellationToken) {
        let Some(url) = self.config.amqp_url.clone() else {
            tracing::error!(
                "delivery.queue = \"rabbitmq\" without delivery.amqp_url: nothing is delivered"
            );
            return;
        };
        for (id, partner) in &self.partners {
            let engine = Arc::clone(self);
            let partner = Arc::clone(partner);
            let id = id.clone();
            let url = url.clone();
            let inner = tracker.clone();
            let stop = shutdown.clone();
            tracker.spawn(async move { engine.amqp_sessions(url, id, partner, inner, stop).await });
        }
    }

    async fn amqp_sessions(
        self: Arc<Self>,
        url: String,
        id: String,
        partner: Arc<Partner>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) {
        let topology = Topology::new(&self.config.amqp_prefix, &id);
        let mut delays = super::retry::reconnect_delays();
        loop {
            let session = self.amqp_session(&url, &id, &partner, &topology, &tracker, &shutdown);
            let result = tokio::select! {
                r = session => r,
                () = shutdown.cancelled() => return,
            };
            let wait = delays.next().unwrap_or(super::retry::RECONNECT_MAX);
            match result {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(partner = %id, error = %e, retry_in = ?wait, "RabbitMQ session ended; reconnecting");
                    metrics::counter!("hotline_amqp_reconnects_total", "partner" => id.clone())
                        .increment(1);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {},
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// One connection's life: topology, relay and consumer until one of them fails.
    async fn amqp_session(
        self: &Arc<Self>,
        url: &str,
        id: &str,
        partner: &Arc<Partner>,
        topology: &Topology,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let tls = self
            .config
            .amqp_tls
            .as_ref()
            .map(|t| t.amqp_as("delivery.amqp_tls"))
            .transpose()?;
        let conn = hotline_adapters::bus::connect_broker(
            url,
            ConnectionProperties::default()
                .with_connection_name(format!("hotline-gateway {id}").into()),
            tls,
        )
        .await?;
        let publish = conn.create_channel().await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        topology.declare(&publish).await?;
        let consume = conn.create_channel().await?;
        let prefetch = u16::try_from(partner.concurrency)
            .unwrap_or(u16::MAX)
            .max(1);
        consume
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        tracing::info!(partner = %id, queue = %topology.queue, prefetch, "RabbitMQ session up");
        let relay = self.relay(id, partner, &publish, &topology.queue, shutdown);
        let consumer = self.consume(id, partner, &consume, &topology.queue, tracker, shutdown);
        let result = tokio::select! {
            r = relay => r,
            r = consumer => r,
        };
        let _ = conn.close(200, "session over".into()).await;
        result
    }

    /// Claims due deliveries and publishes them, each confirmed by the broker.
    async fn relay(
        &self,
        id: &str,
        partner: &Partner,
        ch: &Channel,
        queue: &str,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let (limit, claims) = match self.gate(partner) {
                Gate::Paused | Gate::Wait(_) => (0, Vec::new()),
                Gate::Claim { probe } => {
                    let limit = if probe { 1 } else { self.config.claim_batch };
                    (limit, self.claim_for(id, partner, limit, probe).await)
                }
            };
            let got = claims.len() as u32;
            // The whole batch is published before any confirm is awaited: the broker confirms
            // persistent messages after writing them, and one write serves them all.
            let mut confirms = Vec::with_capacity(claims.len());
            for claim in claims {
                let job = Job {
                    delivery_id: claim.token.delivery_id,
                    lease_token: claim.token.lease_token,
                };
                let body = serde_json::to_vec(&job).unwrap_or_default();
                let confirm = ch
                    .basic_publish(
                        "".into(),
                        queue.into(),
                        BasicPublishOptions::default(),
                        &body,
                        BasicProperties::default()
                            .with_delivery_mode(2)
                            .with_content_type("application/json".into())
                            .with_message_id(claim.delivery.message_id.to_string().into()),
                    )
                    .await?;
                confirms.push(confirm);
            }
            for confirm in futures::future::try_join_all(confirms).await? {
                if !confirm.is_ack() {
                    return Err(SessionError::Nacked);
                }
            }
            metrics::counter!("hotline_amqp_published_total", "partner" => id.to_owned())
                .increment(u64::from(got));
            if got < limit.max(1) {
                let wait = if limit == 0 {
                    self.config.poll_interval
                } else {
                    self.idle_wait(id).await
                };
                tokio::select! {
                    () = partner.wake.notified() => {},
                    () = tokio::time::sleep(wait) => {},
                    () = shutdown.cancelled() => return Ok(()),
                }
            }
        }
    }

    /// Sends what the queue brings, acknowledging each message after its outcome is stored.
    async fn consume(
        self: &Arc<Self>,
        id: &str,
        partner: &Arc<Partner>,
        ch: &Channel,
        queue: &str,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let tag = format!("hotline-{}-{}", std::process::id(), Uuid::now_v7().simple());
        let mut consumer = ch
            .basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let slots = Arc::new(Semaphore::new(partner.concurrency.max(1) as usize));
        loop {
            let next = tokio::select! {
                n = consumer.next() => n,
                () = shutdown.cancelled() => return Ok(()),
            };
            let delivery = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => return Err(e.into()),
                None => {
                    return Err(SessionError::Broker(lapin::Error::from(
                        lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed),
                    )));
                }
            };
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return Ok(());
            };
            let engine = Arc::clone(self);
            let partner = Arc::clone(partner);
            let id = id.to_owned();
            tracker.spawn(async move {
                let Ok(job) = serde_json::from_slice::<Job>(&delivery.data) else {
                    tracing::warn!(partner = %id, "unreadable queue message: to the dead-letter exchange");
                    let _ = delivery
                        .reject(BasicRejectOptions { requeue: false })
                        .await;
                    return;
                };
                let token = ClaimToken {
                    delivery_id: job.delivery_id,
                    lease_token: job.lease_token,
                };
                let claim = match engine.store.claimed(&token).await {
                    Ok(Some(c)) => c,
                    Ok(None) => {
                        // Finished meanwhile, or claimed again under a new lease: not ours.
                        metrics::counter!("hotline_amqp_stale_total", "partner" => id.clone())
                            .increment(1);
                        let _ = delivery.ack(BasicAckOptions::default()).await;
                        return;
                    }
                    Err(e) => {
                        // Leave it unacknowledged: the broker gives it to a consumer again
                        // when this channel closes; the lease still guards it.
                        tracing::warn!(partner = %id, error = %e, "reading a queued claim failed");
                        let _ = delivery
                            .nack(lapin::options::BasicNackOptions {
                                requeue: true,
                                ..Default::default()
                            })
                            .await;
                        return;
                    }
                };
                let dead = engine.attempt(&partner, claim, || {}).await;
                let done = if dead {
                    delivery
                        .reject(BasicRejectOptions { requeue: false })
                        .await
                } else {
                    delivery.ack(BasicAckOptions::default()).await
                };
                if let Err(e) = done {
                    tracing::info!(partner = %id, error = %e, "acknowledging a queue message failed; the broker will hand it out again");
                }
                drop(permit);
                partner.wake.notify_one();
            });
        }
    }
}
