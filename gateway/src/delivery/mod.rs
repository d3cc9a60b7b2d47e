//! The delivery engine: one worker loop per partner claims due outbox rows under a lease, sends
//! each through the partner's adapter with at most `concurrency` in flight, and records the
//! classified outcome: acknowledged, awaiting an asynchronous ack, retried later, or dead.

mod amqp;
pub mod breaker;
pub mod recent;
pub(crate) mod retry;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use hotline_adapters::{Adapter, OutboundMessage, Outcome};
use tokio::sync::mpsc::{self, OwnedPermit};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use retry::RetryPolicy;

use breaker::{Allowance, Breaker, Change, Verdict};

use crate::config::{BreakerConfig, DeliveryConfig};
use crate::store::{
    AlertKind, AttemptRecord, Claim, ClaimToken, Handoff, NewAlert, Next, Pause, Store, StoreError,
};
use recent::{Recent, Tally};

/// Everything the engine knows about one partner.
pub struct Partner {
    pub adapter: Arc<dyn Adapter>,
    pub retry: RetryPolicy,
    pub concurrency: u32,
    pub breaker: Breaker,
    /// Limits the partner's requests to its ingress, when configured.
    pub inbound: Option<governor::DefaultDirectRateLimiter>,
    /// Paces our deliveries to the partner, when configured.
    pub outbound: Option<governor::DefaultDirectRateLimiter>,
    /// The name its client certificate must carry to use its ingress, if bound to one.
    pub tls_identity: Option<String>,
    /// The last hour of outcomes, for the dashboard.
    pub recent: Recent,
    /// Deliveries claimed ahead of free slots, so that a slot coming free sends the next one
    /// at once instead of waiting for a claim's commit (0: claim only for free slots).
    pub lookahead: u32,
    /// How long a delivery claimed ahead may wait for a slot: past this, it might not finish
    /// within its lease, and it is given back instead.
    pub send_within: Duration,
    /// Set while ops hold deliveries back (maintenance).
    paused: RwLock<Option<Pause>>,
    wake: Notify,
    /// While the partner's worker runs with a lookahead: where new tickets' deliveries are
    /// handed to it, written already claimed ([`DeliveryEngine::reserve_handoff`]).
    handoff: Mutex<Option<mpsc::Sender<Claim>>>,
}

impl Partner {
    pub fn new(
        adapter: Arc<dyn Adapter>,
        retry: RetryPolicy,
        concurrency: u32,
        breaker: BreakerConfig,
    ) -> Self {
        Self {
            adapter,
            retry,
            concurrency,
            breaker: Breaker::new(breaker),
            inbound: None,
            outbound: None,
            tls_identity: None,
            recent: Recent::default(),
            lookahead: 0,
            send_within: Duration::ZERO,
            paused: RwLock::new(None),
            wake: Notify::new(),
            handoff: Mutex::new(None),
        }
    }

    /// Limits the partner's ingress to `per_second` requests, `burst` at once.
    pub fn with_inbound_limit(mut self, per_second: u32, burst: u32) -> Self {
        if let (Some(rate), Some(burst)) = (
            std::num::NonZeroU32::new(per_second),
            std::num::NonZeroU32::new(burst),
        ) {
            self.inbound = Some(governor::RateLimiter::direct(
                governor::Quota::per_second(rate).allow_burst(burst),
            ));
        }
        self
    }

    /// Keeps up to `n` deliveries claimed ahead of the free slots, each sent only within
    /// `send_within` of its claim (the lease less the partner's timeout).
    pub fn with_lookahead(mut self, n: u32, send_within: Duration) -> Self {
        self.lookahead = n;
        self.send_within = send_within;
        self
    }

    /// Sends at most `per_second` deliveries a second to the partner, evenly spaced.
    pub fn with_outbound_pace(mut self, per_second: u32) -> Self {
        self.outbound = std::num::NonZeroU32::new(per_second).map(|rate| {
            governor::RateLimiter::direct(
                governor::Quota::per_second(rate).allow_burst(std::num::NonZeroU32::MIN),
            )
        });
        self
    }

    /// Who paused deliveries to the partner, when and why, if they are paused.
    pub fn paused(&self) -> Option<Pause> {
        self.paused.read().ok().and_then(|p| p.clone())
    }

    fn set_paused(&self, pause: Option<Pause>) {
        if let Ok(mut p) = self.paused.write() {
            *p = pause;
        }
        self.wake.notify_one();
    }

    /// Whether the partner may make another ingress request now; if not, how long to wait.
    pub fn admit(&self) -> Result<(), Duration> {
        let Some(l) = &self.inbound else {
            return Ok(());
        };
        l.check().map_err(|not_until| {
            use governor::clock::Clock;
            not_until.wait_time_from(governor::clock::DefaultClock::default().now())
        })
    }
}

/// What a partner's pause and breaker allow a worker or relay to do now.
enum Gate {
    Paused,
    /// The breaker is open for this long yet.
    Wait(Duration),
    /// Claim; a probe claims one.
    Claim {
        probe: bool,
    },
}

pub struct DeliveryEngine {
    store: Arc<dyn Store>,
    partners: BTreeMap<String, Arc<Partner>>,
    config: DeliveryConfig,
}

impl DeliveryEngine {
    pub fn new(
        store: Arc<dyn Store>,
        partners: BTreeMap<String, Arc<Partner>>,
        config: DeliveryConfig,
    ) -> Self {
        Self {
            store,
            partners,
            config,
        }
    }

    pub fn partner(&self, id: &str) -> Option<&Arc<Partner>> {
        self.partners.get(id)
    }

    pub fn partners(&self) -> &BTreeMap<String, Arc<Partner>> {
        &self.partners
    }

    pub fn partner_ids(&self) -> impl Iterator<Item = &str> {
        self.partners.keys().map(String::as_str)
    }

    /// Reads which partners ops paused, e.g. before a restart.
    pub async fn load_pauses(&self) -> Result<(), StoreError> {
        for pause in self.store.pauses().await? {
            match self.partners.get(&pause.partner) {
                Some(p) => p.set_paused(Some(pause)),
                None => {
                    tracing::info!(partner = %pause.partner, "a paused partner is no longer configured")
                }
            }
        }
        Ok(())
    }

    /// Holds deliveries to a partner back (attempts in flight finish) until [`Self::resume`].
    /// `false` when there is no such partner.
    pub async fn pause(&self, pause: Pause) -> Result<bool, StoreError> {
        let Some(p) = self.partners.get(&pause.partner) else {
            return Ok(false);
        };
        self.store
            .set_pause(&pause.partner, Some(pause.clone()))
            .await?;
        tracing::warn!(partner = %pause.partner, by = %pause.by, reason = %pause.reason, "deliveries paused");
        p.set_paused(Some(pause));
        Ok(true)
    }

    /// Lets deliveries to a paused partner go again. `false` when there is no such partner.
    pub async fn resume(&self, partner: &str) -> Result<bool, StoreError> {
        let Some(p) = self.partners.get(partner) else {
            return Ok(false);
        };
        self.store.set_pause(partner, None).await?;
        tracing::info!(partner = %partner, "deliveries resumed");
        p.set_paused(None);
        Ok(true)
    }

    /// Counts a partner's asynchronous acknowledgement (its latency, or the refusal that
    /// dead-lettered the delivery) and wakes the worker: the ticket's next message may go.
    pub fn late_ack(&self, d: &crate::store::Delivery) {
        let Some(p) = self.partners.get(&d.partner) else {
            return;
        };
        let now = chrono::Utc::now();
        match (d.status, d.acked_at) {
            (crate::store::DeliveryStatus::Acknowledged, Some(at)) => {
                let latency = (at - d.created_at).to_std().unwrap_or_default();
                metrics::histogram!("hotline_delivery_ack_latency_seconds", "partner" => d.partner.clone())
                    .record(latency.as_secs_f64());
                p.recent.ack_latency(now, latency);
            }
            (crate::store::DeliveryStatus::Dead, _) => {
                p.recent
                    .record(now, Tally::Dead, None, d.last_error.as_deref());
            }
            _ => {}
        }
        p.wake.notify_one();
    }

    /// Puts a dead delivery back in the queue with a fresh retry budget and wakes its partner's
    /// worker.
    pub async fn requeue_dead(
        &self,
        id: uuid::Uuid,
    ) -> Result<crate::store::RetryResult, StoreError> {
        let result = self.store.retry(id, Utc::now()).await?;
        if let crate::store::RetryResult::Requeued(d) = &result {
            self.wake(&d.partner);
        }
        Ok(result)
    }

    /// Tells a partner's worker that new deliveries may be due.
    pub fn wake(&self, partner: &str) {
        if let Some(p) = self.partners.get(partner) {
            p.wake.notify_one();
        }
    }

    /// Room with the workers of `targets` for a new ticket's deliveries, to be written already
    /// claimed ([`Handoff`]) and handed to them by [`Reserved::hand_over`] once committed: the
    /// first message goes out without a claim of its own. Only workers running with a
    /// lookahead that has room, for partners neither paused nor behind an open breaker.
    pub fn reserve_handoff(&self, targets: &[String]) -> Option<(Handoff, Reserved)> {
        let permits: Vec<(String, OwnedPermit<Claim>)> = targets
            .iter()
            .filter_map(|t| {
                let p = self.partners.get(t)?;
                if p.paused().is_some() || p.breaker.view().state != breaker::CircuitState::Closed {
                    return None;
                }
                let tx = p.handoff.lock().ok()?.clone()?;
                Some((t.clone(), tx.try_reserve_owned().ok()?))
            })
            .collect();
        if permits.is_empty() {
            return None;
        }
        let handoff = Handoff {
            lease_token: uuid::Uuid::now_v7(),
            lease_until: Utc::now() + crate::time::span(self.config.lease),
            partners: permits.iter().map(|(p, _)| p.clone()).collect(),
        };
        Some((handoff, Reserved(permits)))
    }

    /// Starts one worker per partner (or, with `delivery.queue = "rabbitmq"`, a relay and a
    /// consumer per partner); they stop when `shutdown` is cancelled, after finishing the
    /// attempts in flight.
    pub fn spawn(self: &Arc<Self>, tracker: &TaskTracker, shutdown: CancellationToken) {
        if self.config.queue == crate::config::QueueKind::Rabbitmq {
            self.spawn_amqp(tracker, shutdown);
            return;
        }
        for (id, partner) in &self.partners {
            let engine = Arc::clone(self);
            let partner = Arc::clone(partner);
            let id = id.clone();
            let inner = tracker.clone();
            let stop = shutdown.clone();
            tracker.spawn(async move { engine.worker(id, partner, inner, stop).await });
        }
    }

    /// What the partner's pause and circuit breaker allow now.
    fn gate(&self, partner: &Partner) -> Gate {
        if partner.paused().is_some() {
            return Gate::Paused;
        }
        // An open breaker: nothing is claimed until its cool-down is over, then one probe.
        match partner.breaker.allow(Utc::now()) {
            Allowance::All => Gate::Claim { probe: false },
            Allowance::Probe => Gate::Claim { probe: true },
            Allowance::Wait(until) => Gate::Wait(
                (until - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::from_millis(5))
                    .max(Duration::from_millis(5)),
            ),
        }
    }

    /// Claims up to `wanted` due deliveries to the partner. A probe first makes the earliest
    /// waiting retry due, whatever its schedule said; a probe that finds nothing to send sends
    /// the breaker back to open. A store error is logged and claims nothing.
    async fn claim_for(&self, id: &str, partner: &Partner, wanted: u32, probe: bool) -> Vec<Claim> {
        if probe && let Err(e) = self.store.release_retries(id, Utc::now(), Some(1)).await {
            tracing::warn!(partner = %id, error = %e, "releasing the probe failed");
        }
        let claims = match self
            .store
            .claim(id, Utc::now(), self.config.lease, wanted)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(partner = %id, error = %e, "claiming deliveries failed");
                Vec::new()
            }
        };
        if probe && claims.is_empty() {
            partner.breaker.no_probe(Utc::now());
        }
        claims
    }

    async fn worker(
        self: Arc<Self>,
        id: String,
        partner: Arc<Partner>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) {
        let slots = Arc::new(Semaphore::new(partner.concurrency as usize));
        tracing::debug!(partner = %id, "delivery worker started");
        let mut ahead = Ahead::default();
        let lease = self.config.lease;
        let (tx, mut handed) = mpsc::channel(partner.lookahead.max(1) as usize);
        if partner.lookahead > 0
            && let Ok(mut h) = partner.handoff.lock()
        {
            *h = Some(tx);
        }
        loop {
            // What the intake handed over since counts as claimed ahead.
            ahead.keep(std::iter::from_fn(|| handed.try_recv().ok()), lease);
            let probe = match self.gate(&partner) {
                Gate::Paused => {
                    // Paused or waiting out the breaker: what was claimed ahead is given back
                    // rather than held as `sending` meanwhile.
                    self.give_back(&id, ahead.drain()).await;
                    tokio::select! {
                        () = partner.wake.notified() => {},
                        () = tokio::time::sleep(self.config.poll_interval) => {},
                        () = shutdown.cancelled() => break,
                    }
                    continue;
                }
                Gate::Wait(wait) => {
                    self.give_back(&id, ahead.drain()).await;
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {},
                        () = shutdown.cancelled() => break,
                    }
                    continue;
                }
                Gate::Claim { probe } => probe,
            };
            let limit = if probe { 1 } else { usize::MAX };
            // Once stopping, nothing more is sent, even when a slot is free too.
            let first = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                p = Arc::clone(&slots).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            // The gate may have closed while this waited for a slot (paused, or the breaker
            // opened; a probe already has its turn): then back to the top, which holds back
            // and gives back what is claimed ahead.
            if partner.paused().is_some()
                || (!probe && partner.breaker.view().state != breaker::CircuitState::Closed)
            {
                if probe {
                    // The probe's turn is not taken: the breaker goes back to open, to probe
                    // again after its cool-down, instead of waiting for this one forever.
                    partner.breaker.no_probe(Utc::now());
                }
                continue;
            }
            let mut permits = vec![first];
            while permits.len() < (self.config.claim_batch as usize).min(limit) {
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            // What was claimed ahead goes first; a probe may be one of those.
            let (mut send, stale) = ahead.take(permits.len(), partner.send_within);
            self.give_back(&id, stale).await;
            let lookahead = if probe { 0 } else { partner.lookahead as usize };
            // Claim for the slots still free and, once the deliveries waiting ahead run low,
            // enough to fill the lookahead again, in one claim.
            let short = permits.len() - send.len();
            let refill = if ahead.len() <= lookahead / 2 {
                lookahead - ahead.len()
            } else {
                0
            };
            let wanted = (short + refill).min(self.config.claim_batch as usize);
            let mut got = 0;
            if wanted > 0 {
                let claims = self.claim_for(&id, &partner, wanted as u32, probe).await;
                got = claims.len();
                let mut claims = claims.into_iter();
                send.extend(claims.by_ref().take(short));
                ahead.keep(claims, lease);
            }
            for claim in send {
                let Some(permit) = permits.pop() else { break };
                let engine = Arc::clone(&self);
                let partner = Arc::clone(&partner);
                tracker.spawn(async move {
                    // The slot is free once the partner has answered: recording the outcome
                    // (a commit) need not hold the next delivery back.
                    let wake = Arc::clone(&partner);
                    engine
                        .attempt(&partner, claim, move || {
                            drop(permit);
                            wake.wake.notify_one();
                        })
                        .await;
                });
            }
            drop(permits);
            if got < wanted && ahead.len() == 0 {
                let wait = self.idle_wait(&id).await;
                tokio::select! {
                    () = partner.wake.notified() => {},
                    Some(claim) = handed.recv() => ahead.keep(std::iter::once(claim), lease),
                    () = tokio::time::sleep(wait) => {},
                    () = shutdown.cancelled() => break,
                }
            }
        }
        // No more hand-overs; what came is given back with the rest, including hand-overs
        // reserved before this whose tickets are still being written: the channel ends once
        // their room is used or freed (a write takes a commit; `HANDOFF_DRAIN` bounds the wait,
        // after which a late one's row stays claimed until its lease runs out).
        if let Ok(mut h) = partner.handoff.lock() {
            *h = None;
        }
        handed.close();
        let _ = tokio::time::timeout(HANDOFF_DRAIN, async {
            while let Some(claim) = handed.recv().await {
                ahead.keep(std::iter::once(claim), lease);
            }
        })
        .await;
        // Deliveries claimed ahead and never sent are due again at once, not when their lease
        // runs out (the next start, or another instance, takes them).
        self.give_back(&id, ahead.drain()).await;
    }

    /// Makes deliveries claimed ahead and not sent due again (their claims undone).
    async fn give_back(&self, partner: &str, tokens: Vec<ClaimToken>) {
        if tokens.is_empty() {
            return;
        }
        match self.store.release_claims(&tokens, Utc::now()).await {
            Ok(n) => tracing::debug!(%partner, released = n, "claims given back"),
            Err(e) => tracing::warn!(%partner, error = %e,
                "could not give back claims; they are sent again once their lease runs out"),
        }
    }

    /// How long an idle worker sleeps: until the next row falls due, at most one poll interval.
    async fn idle_wait(&self, partner: &str) -> Duration {
        let poll = self.config.poll_interval;
        match self.store.next_due(partner).await {
            Ok(Some(at)) => (at - Utc::now())
                .to_std()
                .unwrap_or(poll)
                .clamp(Duration::from_millis(5), poll),
            _ => poll,
        }
    }

    /// Sends one claimed delivery and records the outcome; `true` when it ended dead. `answered`
    /// is called once the partner has answered (or failed to), before the outcome is recorded;
    /// until the record lands, the delivery's lease keeps it from being claimed again.
    async fn attempt(&self, partner: &Partner, claim: Claim, answered: impl FnOnce()) -> bool {
        let d = &claim.delivery;
        let started_at = Utc::now();
        let msg = OutboundMessage {
            message_id: d.message_id,
            ticket: claim.ticket.clone(),
            event: claim.event.clone(),
        };
        if let Some(pace) = &partner.outbound {
            pace.until_ready().await;
        }
        let attempt = hotline_adapters::deliver(partner.adapter.as_ref(), &msg).await;
        answered();
        let now = Utc::now();
        let in_round = d.attempts_this_round;
        let next = match &attempt.outcome {
            Outcome::Acknowledged { partner_ref } => Next::Acknowledged {
                partner_ref: partner_ref.clone(),
            },
            Outcome::AwaitingAck { within } => Next::AwaitingAck {
                until: now + crate::time::span(*within),
            },
            Outcome::Retryable {
                reason,
                retry_after,
            } => match partner.retry.delay_after(in_round, *retry_after) {
                Some(delay) => Next::Retry {
                    at: now + crate::time::span(delay),
                    error: reason.clone(),
                },
                None => Next::Dead {
                    error: format!("gave up after {in_round} attempts; last: {reason}"),
                },
            },
            Outcome::Permanent { reason } => Next::Dead {
                error: reason.clone(),
            },
            Outcome::Unsupported { reason } => Next::Skipped {
                reason: reason.clone(),
            },
        };
        let partner_id = d.partner.clone();
        self.judge(partner, &partner_id, &attempt.outcome).await;
        metrics::counter!(
            "hotline_delivery_attempts_total",
            "partner" => partner_id.clone(),
            "outcome" => attempt.outcome.label(),
        )
        .increment(1);
        metrics::histogram!(
            "hotline_delivery_attempt_duration_seconds",
            "partner" => partner_id.clone(),
        )
        .record(attempt.duration.as_secs_f64());
        match &next {
            Next::Acknowledged { .. } => {
                let latency = (now - d.created_at).to_std().unwrap_or_default();
                metrics::histogram!("hotline_delivery_ack_latency_seconds", "partner" => partner_id.clone())
                    .record(latency.as_secs_f64());
                partner
                    .recent
                    .record(now, Tally::Delivered, Some(latency), None);
            }
            Next::AwaitingAck { .. } => partner.recent.record(now, Tally::Delivered, None, None),
            Next::Retry { error, at } => {
                partner.recent.record(now, Tally::Failed, None, Some(error));
                tracing::debug!(partner = %partner_id, delivery = %d.id, attempt = d.attempts,
                    retry_at = %at, error = %crate::mask::digits_in(error), "delivery attempt failed");
            }
            Next::Skipped { .. } => {}
            Next::Dead { error } => {
                partner.recent.record(now, Tally::Dead, None, Some(error));
                metrics::counter!("hotline_dead_letters_total", "partner" => partner_id.clone())
                    .increment(1);
                tracing::warn!(partner = %partner_id, delivery = %d.id, ticket = %d.ticket_id,
                    error = %crate::mask::digits_in(error), "delivery dead-lettered");
            }
        }
        let record = AttemptRecord {
            delivery_id: d.id,
            number: d.attempts,
            started_at,
            duration_ms: attempt.duration.as_millis() as u64,
            outcome: attempt.outcome.label().to_owned(),
            http_status: attempt.http_status,
            partner_code: attempt.partner_code.clone(),
            error: attempt.outcome.error_text().map(str::to_owned),
            partner_ref: match &attempt.outcome {
                Outcome::Acknowledged { partner_ref } => partner_ref.clone(),
                _ => None,
            },
        };
        let dead = matches!(next, Next::Dead { .. });
        self.record(&claim, record, next).await;
        dead
    }

    /// Tells the partner's breaker how the attempt went; a breaker that closes releases the
    /// partner's waiting retries at once.
    async fn judge(&self, partner: &Partner, id: &str, outcome: &Outcome) {
        let verdict = match outcome {
            Outcome::Acknowledged { .. }
            | Outcome::AwaitingAck { .. }
            | Outcome::Permanent { .. } => Verdict::Up,
            Outcome::Retryable { .. } => Verdict::Down,
            Outcome::Unsupported { .. } => return,
        };
        let now = Utc::now();
        match partner.breaker.record(verdict, now) {
            Change::None => {}
            Change::Opened => {
                let v = partner.breaker.view();
                tracing::warn!(partner = %id, failures = v.failures, until = ?v.open_until, "circuit breaker opened: deliveries paused");
                metrics::counter!("hotline_circuit_opened_total", "partner" => id.to_owned())
                    .increment(1);
                metrics::gauge!("hotline_circuit_open", "partner" => id.to_owned()).set(1.0);
                let alert = NewAlert {
                    key: format!("partner_down:{id}:{}", now.timestamp_millis()),
                    kind: AlertKind::PartnerDown,
                    ticket_id: None,
                    party: Some(id.to_owned()),
                    message: format!(
                        "合作方 {id} 连续 {} 次投递失败，已暂停投递并探测 / {id} failed {} times in a row: deliveries paused, probing",
                        v.failures, v.failures
                    ),
                    detail: serde_json::json!({ "failures": v.failures, "open_until": v.open_until }),
                };
                if let Err(e) = self.store.raise_alert(alert).await {
                    tracing::warn!(partner = %id, error = %e, "could not raise the partner-down alert");
                }
            }
            Change::Closed => {
                metrics::gauge!("hotline_circuit_open", "partner" => id.to_owned()).set(0.0);
                match self.store.release_retries(id, now, None).await {
                    Ok(n) => {
                        tracing::info!(partner = %id, released = n, "circuit breaker closed: waiting retries released");
                    }
                    Err(e) => tracing::warn!(partner = %id, error = %e, "releasing retries failed"),
                }
                partner.wake.notify_one();
            }
        }
    }

    /// Records the outcome, retrying briefly if the store hiccups. If it still fails, the lease
    /// runs out and the delivery is sent again: the partner deduplicates on the message id.
    async fn record(&self, claim: &Claim, record: AttemptRecord, next: Next) {
        use backon::{ExponentialBuilder, Retryable};
        let result = (|| {
            self.store
                .finish_attempt(&claim.token, record.clone(), next.clone())
        })
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(50))
                .with_max_times(5)
                .with_jitter(),
        )
        .await;
        match result {
            Ok(true) => {}
            Ok(false) => tracing::info!(
                delivery = %claim.delivery.id,
                "lease lost before the outcome was recorded (re-claimed or acknowledged meanwhile)"
            ),
            Err(e) => tracing::error!(
                delivery = %claim.delivery.id, error = %e,
                "could not record a delivery outcome; it will be sent again when its lease expires"
            ),
        }
    }
}

/// How long a stopping worker waits for hand-overs reserved before it stopped.
const HANDOFF_DRAIN: Duration = Duration::from_secs(5);

/// Room reserved with partners' workers for a new ticket's deliveries
/// ([`DeliveryEngine::reserve_handoff`]).
pub struct Reserved(Vec<(String, OwnedPermit<Claim>)>);

impl Reserved {
    /// Hands each committed claim to its partner's worker. Room not used (a duplicate ticket,
    /// or a failed write) is freed when this is dropped.
    pub fn hand_over(self, claims: Vec<Claim>) {
        let mut permits = self.0;
        for claim in claims {
            if let Some(i) = permits
                .iter()
                .position(|(p, _)| *p == claim.delivery.partner)
            {
                permits.swap_remove(i).1.send(claim);
            }
        }
    }
}

/// Deliveries a worker claimed ahead of its free slots, oldest first, with when each was
/// claimed (when its lease began: a hand-off's began before its write committed).
#[derive(Default)]
struct Ahead(std::collections::VecDeque<(std::time::Instant, Claim)>);

impl Ahead {
    fn len(&self) -> usize {
        self.0.len()
    }

    /// Keeps claims under leases of `lease`, each running to its delivery's due time.
    fn keep(&mut self, claims: impl Iterator<Item = Claim>, lease: Duration) {
        let (now, wall) = (std::time::Instant::now(), Utc::now());
        self.0.extend(claims.map(|c| {
            let left = (c.delivery.due_at - wall)
                .to_std()
                .unwrap_or_default()
                .min(lease);
            (now.checked_sub(lease - left).unwrap_or(now), c)
        }));
    }

    /// Up to `n` claims still young enough to be sent (claimed within `within`: sent later,
    /// one might not finish within its lease), and the tokens of older ones met on the way, to
    /// be given back.
    fn take(&mut self, n: usize, within: Duration) -> (Vec<Claim>, Vec<ClaimToken>) {
        let (mut fresh, mut stale) = (Vec::with_capacity(n.min(self.0.len())), Vec::new());
        while fresh.len() < n {
            let Some((at, claim)) = self.0.pop_front() else {
                break;
            };
            if at.elapsed() <= within {
                fresh.push(claim);
            } else {
                stale.push(claim.token);
            }
        }
        (fresh, stale)
    }

    fn drain(&mut self) -> Vec<ClaimToken> {
        self.0.drain(..).map(|(_, c)| c.token).collect()
    }
}

#[cfg(test)]
mod tests {
    use hotline_model::{Event, EventBody, Ticket};

    use super::*;

    fn claim_due(due_at: chrono::DateTime<Utc>) -> Claim {
        let ticket = Ticket::new("12348", None, contract_tests::samples::random_draft());
        let event = Event::new(
            ticket.id,
            "12348",
            EventBody::Dispatch {
                units: vec![],
                note: None,
            },
        );
        let h = Handoff {
            lease_token: uuid::Uuid::now_v7(),
            lease_until: due_at,
            partners: vec!["p".into()],
        };
        let ids = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        h.claim(ticket, event, "p", ids, Utc::now())
    }

    /// A claim's age is its lease's: one kept when half its lease is gone (a hand-off whose
    /// write took long) is given back as soon as the rest would not cover a request.
    #[test]
    fn claims_kept_ahead_age_from_when_their_lease_began() {
        let lease = Duration::from_secs(60);
        let now = Utc::now();
        let (fresh, half_gone) = (
            claim_due(now + crate::time::span(lease)),
            claim_due(now + crate::time::span(lease / 2)),
        );
        let mut ahead = Ahead::default();
        ahead.keep([half_gone.clone(), fresh.clone()].into_iter(), lease);
        let (send, back) = ahead.take(2, lease / 4);
        assert_eq!(send, [fresh]);
        assert_eq!(back, [half_gone.token]);
        assert_eq!(ahead.len(), 0);
    }
}
