//! Three-way call transfers (三方通话) between call centres, with a ticket when they fail.
//!
//! The gateway carries no audio. For an outbound transfer the 12348 agent desktop asks
//! (`POST /api/v1/transfers`); the gateway offers the caller to the partner's CTI in its dialect
//! and answers with where to dial, or with the refusal and the ticket it filed instead. The home
//! CTI then reports how the call goes (ringing, connected, completed, failed). Inbound, a partner
//! offers a caller at its ingress; the gateway asks the home CTI and answers in the partner's
//! dialect. Timers (no answer, no connection) survive restarts: they are rows in the store.

pub mod home_cti;
pub mod hours;
pub mod machine;
pub mod record;
mod timers;

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use hotline_adapters::{Inbound, IngressError, IngressReply};
use hotline_model::{FieldError, RefusalReason, TicketDraft, TransferAnswer, TransferOffer};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::TransfersConfig;
use crate::delivery::DeliveryEngine;
use crate::intake::{CreateTicket, Intake, IntakeError};
use crate::sla::Sla;
use crate::store::{AlertKind, NewAlert, Store, StoreError};
use crate::time::span;
use home_cti::HomeCti;
use machine::{CallEvent, Step, TransferState};
use record::{Direction, EntryOutcome, Transfer, TransferEntry, TransferInsert};

pub use timers::Timers;

/// A 12348 agent's request to bring a partner onto the call.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartTransfer {
    /// The home CTI's id of the call.
    pub call_id: String,
    /// The partner to transfer to (`12333` ...).
    pub target: String,
    /// The agent on the call.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The 12348 ticket number of the matter, when there is one.
    #[serde(default)]
    pub ticket_number: Option<String>,
    /// The summary as a draft ticket: caller (name, number), category (`kind`,
    /// `classification_code`), urgency, title and content. The partner's agent sees it when the
    /// call arrives, and it becomes the ticket if the transfer does not happen.
    pub ticket: TicketDraft,
}

/// What the CTI reports about a transfer's call.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportEvent {
    pub event: CallEvent,
    /// When it happened (default: when it is received).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub at: Option<DateTime<FixedOffset>>,
    /// The CTI's id of the event: a repeat is answered as before and changes nothing.
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

/// The answer to a reported event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventResult {
    pub transfer: Transfer,
    /// `applied`, or `late` when the transfer was already further along.
    pub outcome: EntryOutcome,
    /// The same `event_id` was reported before.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("no transfer {0}")]
    NotFound(Uuid),
    /// The event cannot happen in the transfer's state; it was recorded as rejected.
    #[error("{reason}")]
    Rejected {
        reason: String,
        transfer: Box<Transfer>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many times a change is retried when another one got in first.
const CAS_ATTEMPTS: usize = 8;

pub struct Transfers {
    store: Arc<dyn Store>,
    engine: Arc<DeliveryEngine>,
    intake: Arc<Intake>,
    sla: Arc<Sla>,
    home: HomeCti,
    config: TransfersConfig,
}

impl Transfers {
    pub fn new(
        store: Arc<dyn Store>,
        engine: Arc<DeliveryEngine>,
        intake: Arc<Intake>,
        sla: Arc<Sla>,
        config: TransfersConfig,
    ) -> Self {
        let home = HomeCti::new(
            config.home_cti_url.clone(),
            config.home_cti_token.clone(),
            config.answer_timeout,
        );
        Self {
            store,
            engine,
            intake,
            sla,
            home,
            config,
        }
    }

    /// Whether `partner`'s call centre is open now (no hours configured: always).
    pub fn is_open(&self, partner: &str, now: DateTime<Utc>) -> bool {
        self.config
            .hours
            .get(partner)
            .is_none_or(|h| h.is_open(now, &self.sla.calendar()))
    }

    fn new_transfer(&self, direction: Direction, partner: &str, offer: TransferOffer) -> Transfer {
        let now = Utc::now();
        let grace = chrono::Duration::seconds(5);
        Transfer {
            id: Uuid::now_v7(),
            direction,
            partner: partner.to_owned(),
            call_id: offer.call_id.clone(),
            state: TransferState::Requested,
            partner_ref: (direction == Direction::Inbound).then(|| offer.id.clone()),
            offer,
            grant: None,
            reason: None,
            detail: None,
            requested_at: now,
            answered_at: None,
            ringing_at: None,
            connected_at: None,
            originator_left_at: None,
            ended_at: None,
            // Only reached when the gateway stopped while waiting for the answer.
            deadline_at: Some(now + span(self.config.answer_timeout) + grace),
            fallback_ticket_id: None,
            fallback_error: None,
            notify_pending: false,
            version: 1,
            updated_at: now,
        }
    }

    /// An outbound transfer: offers the caller to the partner and answers with the grant, or
    /// with the refusal and the ticket filed instead.
    pub async fn start(&self, req: StartTransfer) -> Result<Transfer, TransferError> {
        let mut problems = Vec::new();
        let call_id = req.call_id.trim().to_owned();
        if call_id.is_empty() || call_id.chars().count() > 64 {
            problems.push(FieldError::new("call_id", "must be 1-64 characters"));
        }
        let adapter = match self.engine.partner(&req.target) {
            None => {
                problems.push(FieldError::new(
                    "target",
                    format!(
                        "unknown partner `{}`; configured: {}",
                        req.target,
                        self.engine.partner_ids().collect::<Vec<_>>().join(", ")
                    ),
                ));
                None
            }
            Some(p) if !p.adapter.transfers() => {
                problems.push(FieldError::new(
                    "target",
                    format!(
                        "partner `{}` takes no transfers (no transfer_url, or its mapping has \
                         no transfer messages)",
                        req.target
                    ),
                ));
                None
            }
            Some(p) => Some(Arc::clone(&p.adapter)),
        };
        for (name, v) in [
            ("agent_id", &req.agent_id),
            ("ticket_number", &req.ticket_number),
        ] {
            if v.as_ref()
                .is_some_and(|v| v.is_empty() || v.chars().count() > 64)
            {
                problems.push(FieldError::new(name, "must be 1-64 characters"));
            }
        }
        problems.extend(req.ticket.problems_at("ticket"));
        let (Some(adapter), true) = (adapter, problems.is_empty()) else {
            return Err(TransferError::Invalid(problems));
        };
        let mut t = self.new_transfer(
            Direction::Outbound,
            &req.target,
            TransferOffer {
                id: String::new(),
                call_id,
                agent_id: req.agent_id,
                ticket_number: req.ticket_number,
                ticket: req.ticket,
            },
        );
        t.offer.id = t.id.to_string();
        self.store
            .insert_transfer(
                &t,
                TransferEntry::new(t.id, "requested", "cti", EntryOutcome::Applied),
            )
            .await?;
        metrics::counter!("hotline_transfers_total", "partner" => t.partner.clone(), "direction" => "outbound")
            .increment(1);

        let answer = if self.is_open(&t.partner, Utc::now()) {
            bounded(self.config.answer_timeout, adapter.offer_transfer(&t.offer)).await
        } else {
            TransferAnswer::refused(
                RefusalReason::Closed,
                "outside the partner's business hours; not tried",
            )
        };
        let t = self.answered(t, answer, "partner").await?;
        Ok(self.fallback(t).await)
    }

    /// An inbound transfer: a partner offers a caller; the home CTI decides.
    pub async fn offered(
        &self,
        partner: &str,
        offer: TransferOffer,
    ) -> Result<IngressReply, IngressError> {
        if let Some(p) = offer.ticket.problems_at("ticket").into_iter().next() {
            return Err(IngressError::invalid(p.field, p.reason));
        }
        let offer_id = offer.id.clone();
        let t = self.new_transfer(Direction::Inbound, partner, offer);
        let entry = TransferEntry::new(t.id, "requested", "partner", EntryOutcome::Applied);
        let inserted = self
            .store
            .insert_transfer(&t, entry)
            .await
            .map_err(unavailable)?;
        if let TransferInsert::Duplicate(id) = inserted {
            let known = self
                .store
                .transfer(id)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| IngressError::unavailable("the transfer vanished"))?;
            return match answer_of(&known) {
                Some(answer) => Ok(IngressReply::Transfer { offer_id, answer }),
                None => Err(IngressError::unavailable(
                    "this offer is still being answered; ask again in a moment",
                )),
            };
        }
        metrics::counter!("hotline_transfers_total", "partner" => partner.to_owned(), "direction" => "inbound")
            .increment(1);
        let answer = bounded(
            self.config.answer_timeout,
            self.home.ask(t.id, partner, &t.offer),
        )
        .await;
        let t = self.answered(t, answer, "cti").await.map_err(|e| match e {
            TransferError::Store(e) => unavailable(e),
            other => IngressError::unavailable(other.to_string()),
        })?;
        let t = self.fallback(t).await;
        let answer = answer_of(&t).unwrap_or_else(|| {
            TransferAnswer::refused(RefusalReason::Unreachable, "no answer was recorded")
        });
        Ok(IngressReply::Transfer { offer_id, answer })
    }

    /// Records the answer to an offer.
    async fn answered(
        &self,
        mut t: Transfer,
        answer: TransferAnswer,
        source: &str,
    ) -> Result<Transfer, TransferError> {
        let now = Utc::now();
        t.answered_at = Some(now);
        let entry = match answer {
            TransferAnswer::Granted(g) => {
                t.state = TransferState::Granted;
                t.deadline_at = Some(now + span(self.config.connect_timeout));
                if t.direction == Direction::Outbound {
                    t.partner_ref = g.partner_ref.clone();
                }
                let e = TransferEntry::new(t.id, "granted", source, EntryOutcome::Applied)
                    .detail(g.dial_target.clone());
                t.grant = Some(g);
                e
            }
            TransferAnswer::Refused { reason, detail, .. } => {
                t.state = TransferState::Refused;
                t.deadline_at = None;
                t.ended_at = Some(now);
                t.reason = Some(reason);
                t.detail = detail.clone();
                let e = TransferEntry::new(t.id, "refused", source, EntryOutcome::Applied);
                e.detail(match detail {
                    Some(d) => format!("{reason}: {d}"),
                    None => reason.to_string(),
                })
            }
        };
        metrics::counter!("hotline_transfer_answers_total", "partner" => t.partner.clone(), "state" => t.state.as_str())
            .increment(1);
        self.save(&mut t, vec![entry]).await?;
        Ok(t)
    }

    /// Stores `t` as the next version.
    async fn save(&self, t: &mut Transfer, entries: Vec<TransferEntry>) -> Result<(), StoreError> {
        t.version += 1;
        t.updated_at = Utc::now();
        let r = self.store.update_transfer(t, entries).await;
        if r.is_err() {
            t.version -= 1;
        }
        r
    }

    /// Files the ticket for a transfer that did not happen, once. On failure the timer task
    /// tries again; the ticket's key makes a second try find the first ticket.
    async fn fallback(&self, t: Transfer) -> Transfer {
        if !t.fallback_due() {
            return t;
        }
        match self.file_fallback(t.clone()).await {
            Ok(t) => t,
            Err(TransferError::Invalid(problems)) => self.unfiled(t, problems).await,
            Err(e) => {
                tracing::warn!(transfer = %t.id, error = %e, "fallback ticket not filed yet; will retry");
                t
            }
        }
    }

    /// The fallback ticket cannot be filed as things stand (its partner is no longer configured,
    /// say): recorded, raised as an alert for ops, and not tried again.
    async fn unfiled(&self, mut t: Transfer, problems: Vec<FieldError>) -> Transfer {
        let reason = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        tracing::error!(transfer = %t.id, %reason, "fallback ticket cannot be filed");
        let alert = NewAlert {
            key: format!("transfer-unfiled:{}", t.id),
            kind: AlertKind::TransferUnfiled,
            ticket_id: None,
            party: Some(t.partner.clone()),
            message: format!(
                "三方通话转接未成功且未能生成工单，请人工处理 / transfer {} to {} did not happen and \
                 no ticket could be filed: {reason}",
                t.id, t.partner
            ),
            detail: serde_json::json!({"transfer_id": t.id, "call_id": t.call_id, "reason": reason}),
        };
        if let Err(e) = self.store.raise_alert(alert).await {
            tracing::warn!(transfer = %t.id, error = %e, "alert not raised; will retry");
            return t;
        }
        t.fallback_error = Some(reason.clone());
        let entry =
            TransferEntry::new(t.id, "fallback", "gateway", EntryOutcome::Rejected).detail(reason);
        match self.save(&mut t, vec![entry]).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(transfer = %t.id, error = %e, "will retry"),
        }
        t
    }

    async fn file_fallback(&self, mut t: Transfer) -> Result<Transfer, TransferError> {
        let why = t.why_zh();
        let note = format!(
            "三方通话转接未成功（{why}），转为工单办理。Transfer {} ended as {}{}; filed as a ticket.",
            t.id,
            t.state,
            t.reason.map(|r| format!(" ({r})")).unwrap_or_default()
        );
        let ticket_id = match t.direction {
            Direction::Outbound => {
                let accepted = self
                    .intake
                    .create_ticket(CreateTicket {
                        external_id: format!("ZJ-{}", t.id),
                        target: t.partner.clone(),
                        assisting: Vec::new(),
                        ticket: t.offer.ticket.clone(),
                        units: Vec::new(),
                        note: Some(note.clone()),
                    })
                    .await
                    .map_err(|e| match e {
                        IntakeError::Invalid(v) => TransferError::Invalid(v),
                        IntakeError::Store(s) => TransferError::Store(s),
                    })?;
                accepted.ticket_id()
            }
            Direction::Inbound => {
                let reply = self
                    .intake
                    .partner_message(
                        &t.partner,
                        Inbound::Ticket {
                            message_id: Some(format!("transfer:{}", t.id)),
                            partner_number: t
                                .offer
                                .ticket_number
                                .clone()
                                .unwrap_or_else(|| t.offer.id.clone()),
                            draft: Box::new(t.offer.ticket.clone()),
                        },
                        None,
                    )
                    .await
                    .map_err(|e| {
                        if e.status.is_client_error() {
                            TransferError::Invalid(vec![FieldError::new(
                                e.field.unwrap_or_else(|| "ticket".into()),
                                e.reason,
                            )])
                        } else {
                            StoreError::Database(e.to_string()).into()
                        }
                    })?;
                match reply {
                    IngressReply::TicketAccepted { ticket_id, .. }
                    | IngressReply::EventRecorded { ticket_id, .. } => ticket_id,
                    other => {
                        return Err(StoreError::Database(format!("unexpected {other:?}")).into());
                    }
                }
            }
        };
        for _ in 0..CAS_ATTEMPTS {
            t.fallback_ticket_id = Some(ticket_id);
            let entry = TransferEntry::new(t.id, "fallback", "gateway", EntryOutcome::Applied)
                .detail(format!("ticket {ticket_id}"));
            match self.save(&mut t, vec![entry]).await {
                Ok(()) => {
                    metrics::counter!("hotline_transfer_fallbacks_total", "partner" => t.partner.clone())
                        .increment(1);
                    tracing::info!(transfer = %t.id, ticket = %ticket_id, state = %t.state, "transfer fell back to a ticket");
                    return Ok(t);
                }
                Err(StoreError::StatusChanged) => {
                    t = self
                        .store
                        .transfer(t.id)
                        .await?
                        .ok_or(TransferError::NotFound(t.id))?;
                    if !t.fallback_due() {
                        return Ok(t);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::StatusChanged.into())
    }

    /// Applies what the CTI reports about the call.
    pub async fn report(&self, id: Uuid, ev: ReportEvent) -> Result<EventResult, TransferError> {
        let at = ev.at.map_or_else(Utc::now, |t| t.with_timezone(&Utc));
        let key = ev.event_id.filter(|k| !k.trim().is_empty());
        if key.as_ref().is_some_and(|k| k.chars().count() > 128) {
            return Err(TransferError::Invalid(vec![FieldError::new(
                "event_id",
                "must be at most 128 characters",
            )]));
        }
        for _ in 0..CAS_ATTEMPTS {
            let mut t = self
                .store
                .transfer(id)
                .await?
                .ok_or(TransferError::NotFound(id))?;
            if let Some(k) = &key {
                let entries = self.store.transfer_entries(id).await?;
                if let Some(seen) = entries.iter().find(|e| e.key.as_deref() == Some(k)) {
                    if seen.outcome == EntryOutcome::Rejected {
                        return Err(TransferError::Rejected {
                            reason: seen.detail.clone().unwrap_or_default(),
                            transfer: Box::new(t),
                        });
                    }
                    return Ok(EventResult {
                        transfer: t,
                        outcome: seen.outcome,
                        duplicate: true,
                    });
                }
            }
            let mut entry = TransferEntry::new(id, ev.event.as_str(), "cti", EntryOutcome::Applied);
            entry.at = at;
            entry.key = key.clone();
            entry.detail = ev.detail.clone();
            match machine::step(t.state, ev.event, t.originator_left_at.is_some()) {
                Step::Move(to) => {
                    apply_move(&mut t, ev.event, to, at, ev.detail.clone());
                    match self.save(&mut t, vec![entry]).await {
                        Ok(()) => {
                            return Ok(EventResult {
                                transfer: self.fallback(t).await,
                                outcome: EntryOutcome::Applied,
                                duplicate: false,
                            });
                        }
                        Err(StoreError::StatusChanged) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Step::Late => {
                    entry.outcome = EntryOutcome::Late;
                    self.store.record_transfer_entry(entry).await?;
                    return Ok(EventResult {
                        transfer: t,
                        outcome: EntryOutcome::Late,
                        duplicate: false,
                    });
                }
                Step::Reject(reason) => {
                    entry.outcome = EntryOutcome::Rejected;
                    entry.detail = Some(reason.clone());
                    self.store.record_transfer_entry(entry).await?;
                    tracing::info!(transfer = %id, event = ev.event.as_str(), state = %t.state, %reason, "transfer event rejected");
                    return Err(TransferError::Rejected {
                        reason,
                        transfer: Box::new(t),
                    });
                }
            }
        }
        Err(StoreError::StatusChanged.into())
    }

    /// One round of timer work: runs out due timers, files pending fallbacks, tells the home
    /// CTI. Returns how many transfers it handled.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let due = self.store.transfers_due(now, 100).await?;
        let n = due.len();
        for mut t in due {
            if t.deadline_at.is_some_and(|d| d <= now) {
                let entry = match t.state {
                    TransferState::Requested => {
                        t.state = TransferState::Refused;
                        t.reason = Some(RefusalReason::Unreachable);
                        t.detail = Some("no answer was recorded before the gateway stopped".into());
                        TransferEntry::new(t.id, "refused", "gateway", EntryOutcome::Applied)
                    }
                    TransferState::Granted | TransferState::Ringing => {
                        t.state = TransferState::Expired;
                        t.detail = Some(format!(
                            "not connected within {}",
                            humantime::format_duration(self.config.connect_timeout)
                        ));
                        TransferEntry::new(t.id, "expired", "gateway", EntryOutcome::Applied)
                    }
                    _ => TransferEntry::new(t.id, "timer", "gateway", EntryOutcome::Late),
                };
                let entry = match &t.detail {
                    Some(d) => entry.detail(d.clone()),
                    None => entry,
                };
                t.deadline_at = None;
                t.ended_at.get_or_insert(now);
                t.notify_pending = t.state.needs_fallback();
                match self.save(&mut t, vec![entry]).await {
                    Ok(()) => {
                        tracing::info!(transfer = %t.id, state = %t.state, "transfer timer ran out");
                    }
                    // The CTI reported something meanwhile; the next round sees the new state.
                    Err(StoreError::StatusChanged) => continue,
                    Err(e) => return Err(e),
                }
            }
            let mut t = self.fallback(t).await;
            if t.notify_pending && !t.fallback_due() {
                match self.home.notify(&home_cti::Notice::of(&t)).await {
                    Ok(told) => {
                        t.notify_pending = false;
                        let entry = TransferEntry::new(
                            t.id,
                            "notified",
                            "gateway",
                            if told {
                                EntryOutcome::Applied
                            } else {
                                EntryOutcome::Late
                            },
                        )
                        .detail(if told {
                            "home CTI told"
                        } else {
                            "no home CTI configured"
                        });
                        match self.save(&mut t, vec![entry]).await {
                            Ok(()) | Err(StoreError::StatusChanged) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(transfer = %t.id, error = %e, "home CTI not told yet; will retry");
                    }
                }
            }
        }
        Ok(n)
    }
}

/// Moves a transfer on for a reported event.
fn apply_move(
    t: &mut Transfer,
    event: CallEvent,
    to: TransferState,
    at: DateTime<Utc>,
    detail: Option<String>,
) {
    match event {
        CallEvent::Ringing => {
            t.ringing_at.get_or_insert(at);
        }
        CallEvent::Connected => {
            t.connected_at.get_or_insert(at);
        }
        CallEvent::OriginatorLeft => {
            t.connected_at.get_or_insert(at);
            t.originator_left_at.get_or_insert(at);
        }
        CallEvent::Completed => {
            // Completed without a reported connection: it connected at the latest then.
            t.connected_at.get_or_insert(at);
            t.ended_at = Some(at);
        }
        CallEvent::Failed => {
            t.ended_at = Some(at);
            t.detail = detail;
        }
    }
    t.state = to;
    if matches!(to, TransferState::Connected) || to.is_terminal() {
        t.deadline_at = None;
    }
}

/// The answer a transfer stands for, once it has one.
fn answer_of(t: &Transfer) -> Option<TransferAnswer> {
    match (t.state, &t.grant) {
        (TransferState::Requested, _) => None,
        (TransferState::Refused, _) | (_, None) => Some(TransferAnswer::Refused {
            reason: t.reason.unwrap_or(RefusalReason::PartnerError),
            detail: t.detail.clone(),
            ticket_number: t.fallback_ticket_id.map(|id| id.to_string()),
        }),
        (_, Some(g)) => Some(TransferAnswer::Granted(g.clone())),
    }
}

/// Waits at most `limit` for an answer; past it, the offer counts as unanswered.
async fn bounded(
    limit: std::time::Duration,
    answer: impl Future<Output = TransferAnswer>,
) -> TransferAnswer {
    tokio::time::timeout(limit, answer)
        .await
        .unwrap_or_else(|_| {
            TransferAnswer::refused(
                RefusalReason::Unreachable,
                format!("no answer within {}", humantime::format_duration(limit)),
            )
        })
}

fn unavailable(e: StoreError) -> IngressError {
    tracing::error!(error = %e, "store failed");
    IngressError::unavailable("the store is temporarily unavailable; try again")
}
