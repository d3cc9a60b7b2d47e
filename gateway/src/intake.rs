//! Intake: turns what the home systems and the partners send into store commands, with their
//! idempotency keys, and wakes the delivery workers for whatever it queued.

use std::sync::Arc;

use hotline_adapters::{Inbound, IngressError, IngressReply, TicketRef};
use hotline_model::{
    Event, EventBody, EventKind, FieldError, HOME, Ticket, TicketDraft, TicketStatus,
};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::RouteConfig;
use crate::delivery::DeliveryEngine;
use crate::lifecycle;
use crate::sla::{Change, ClockKind, Sla};
use crate::store::{
    Accepted, AlertKind, Clock, ClockState, LateAck, NewAlert, NewEvent, NewTicket, Nonce,
    RefusedEvent, Store, StoreError,
};

/// A ticket from a 12348 home system, to be dispatched to `target`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreateTicket {
    /// The home system's own ticket number. A repeat returns the first ticket.
    pub external_id: String,
    /// Partner id to dispatch the ticket to; with `assisting`, the lead unit (主办).
    pub target: String,
    /// 联办: partners that assist the lead (协办). They get the ticket too; the lead gives the
    /// one reply, and an assisting partner's answer is recorded as progress.
    #[serde(default)]
    pub assisting: Vec<String>,
    pub ticket: TicketDraft,
    /// Units the partner should hand the ticket to.
    #[serde(default)]
    pub units: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Intake {
    store: Arc<dyn Store>,
    engine: Arc<DeliveryEngine>,
    routes: Vec<RouteConfig>,
    sla: Arc<Sla>,
    callers: CallerMatch,
}

/// How repeat callers are recognised: a keyed hash of the phone number, never the number.
#[derive(Clone)]
pub struct CallerMatch {
    pub key: String,
    pub count: u32,
    pub days: u32,
}

impl CallerMatch {
    /// HMAC-SHA256 of the phone number's digits (without a +86 prefix), hex.
    pub fn hash(&self, phone: &str) -> String {
        use hmac::{Hmac, Mac};
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        let digits = digits
            .strip_prefix("86")
            .filter(|d| d.len() == 11)
            .unwrap_or(&digits);
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.key.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(digits.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The partner a ticket from `origin` goes on to, by the first matching route.
pub fn route(routes: &[RouteConfig], origin: &str, draft: &TicketDraft) -> Option<String> {
    routes
        .iter()
        .find(|r| {
            r.to != origin
                && r.from.as_deref().is_none_or(|f| f == origin)
                && (r.kinds.is_empty() || r.kinds.contains(&draft.kind))
                && r.classification_prefix.as_deref().is_none_or(|p| {
                    draft
                        .classification_code
                        .as_deref()
                        .is_some_and(|c| c.starts_with(p))
                })
                && r.region_prefix
                    .as_deref()
                    .is_none_or(|p| draft.region_code.starts_with(p))
        })
        .map(|r| r.to.clone())
}

impl Intake {
    pub fn new(
        store: Arc<dyn Store>,
        engine: Arc<DeliveryEngine>,
        routes: Vec<RouteConfig>,
        sla: Arc<Sla>,
        callers: CallerMatch,
    ) -> Self {
        Self {
            store,
            engine,
            routes,
            sla,
            callers,
        }
    }

    /// 重复来电预警: the same caller with `count` or more tickets within `days`, across all
    /// partners, raises one alert linking them.
    /// `accepted` reports the caller's tickets since [`Self::repeat_since`], read with the
    /// accept.
    async fn check_repeat_caller(&self, accepted: &Accepted) -> Result<(), StoreError> {
        let Accepted::Created {
            ticket_id,
            caller_tickets: tickets,
            ..
        } = accepted
        else {
            return Ok(());
        };
        let ticket_id = *ticket_id;
        if tickets.len() >= self.callers.count as usize {
            let raised = self
                .store
                .raise_alert(NewAlert {
                    key: format!("repeat_caller:{ticket_id}"),
                    kind: AlertKind::RepeatCaller,
                    ticket_id: Some(ticket_id),
                    party: None,
                    message: format!(
                        "重复来电预警 repeat caller: {} tickets within {} days",
                        tickets.len(),
                        self.callers.days
                    ),
                    detail: serde_json::json!({ "tickets": tickets }),
                })
                .await?;
            if raised {
                metrics::counter!("hotline_repeat_caller_alerts_total").increment(1);
            }
        }
        Ok(())
    }

    /// Writes a new ticket and gets its deliveries going: those whose workers have room are
    /// written already claimed and handed to them once committed (`cmd.handoff` is set here);
    /// the other targets' workers are woken to claim theirs.
    async fn accept(&self, mut cmd: NewTicket) -> Result<Accepted, StoreError> {
        let reserved = self
            .engine
            .reserve_handoff(&cmd.targets)
            .map(|(handoff, reserved)| {
                cmd.handoff = Some(handoff);
                reserved
            });
        let targets = cmd.targets.clone();
        let mut accepted = self.store.accept_ticket(cmd).await?;
        if let Accepted::Created { claims, .. } = &mut accepted {
            let claims = std::mem::take(claims);
            for t in &targets {
                if !claims.iter().any(|c| c.delivery.partner == *t) {
                    self.engine.wake(t);
                }
            }
            if let Some(reserved) = reserved {
                reserved.hand_over(claims);
            }
        }
        Ok(accepted)
    }

    /// Since when a caller's earlier tickets count towards a repeat-caller alert.
    fn repeat_since(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() - chrono::Duration::days(i64::from(self.callers.days))
    }

    /// Stores a home system's ticket and queues its dispatch; returns after the commit.
    pub async fn create_ticket(&self, req: CreateTicket) -> Result<Accepted, IntakeError> {
        let mut problems = Vec::new();
        let external_id = req.external_id.trim().to_owned();
        if external_id.is_empty() || external_id.len() > 64 {
            problems.push(FieldError::new("external_id", "must be 1-64 characters"));
        }
        if self.engine.partner(&req.target).is_none() {
            let known: Vec<_> = self.engine.partner_ids().collect();
            problems.push(FieldError::new(
                "target",
                format!(
                    "unknown partner `{}`; configured: {}",
                    req.target,
                    known.join(", ")
                ),
            ));
        }
        for (i, a) in req.assisting.iter().enumerate() {
            if self.engine.partner(a).is_none()
                || *a == req.target
                || req.assisting[..i].contains(a)
            {
                problems.push(FieldError::new(
                    format!("assisting[{i}]"),
                    format!("`{a}` must be a configured partner other than the target, named once"),
                ));
            }
        }
        problems.extend(req.ticket.problems_at("ticket"));
        if !problems.is_empty() {
            return Err(IntakeError::Invalid(problems));
        }
        let mut ticket = Ticket::new(HOME, Some(external_id.clone()), req.ticket);
        ticket.status = TicketStatus::Dispatched;
        let event = Event::new(
            ticket.id,
            HOME,
            EventBody::Dispatch {
                units: req.units,
                note: req.note,
            },
        );
        let hash = self.callers.hash(&ticket.draft.caller.phone);
        let now = chrono::Utc::now();
        let mut clocks = self.sla.on_dispatch(&ticket, &req.target, now);
        for a in &req.assisting {
            clocks.push(self.sla.start(&ticket, ClockKind::Receipt, a, now));
        }
        let mut targets = vec![req.target.clone()];
        targets.extend(req.assisting.iter().cloned());
        let accepted = self
            .accept(NewTicket {
                keys: vec![format!("external_id:{external_id}")],
                numbers: vec![(HOME.to_owned(), external_id)],
                targets: targets.clone(),
                caller_hash: Some(hash),
                repeat_since: Some(self.repeat_since()),
                clocks,
                ticket,
                event,
                handoff: None,
                nonce: None,
            })
            .await?;
        if !accepted.is_duplicate() {
            metrics::counter!("hotline_tickets_accepted_total", "origin" => HOME).increment(1);
            self.check_repeat_caller(&accepted).await?;
        }
        Ok(accepted)
    }

    /// Remembers a request's nonce now, unless `inbound` is a new ticket, whose accept takes
    /// it in its own write (both or neither survive a crash); refuses the request when the
    /// nonce was remembered before. The nonce still to be taken, if any.
    pub async fn nonce_first(
        &self,
        inbound: &Inbound,
        nonce: Option<Nonce>,
    ) -> Result<Option<Nonce>, IngressError> {
        match nonce {
            Some(n) if !matches!(inbound, Inbound::Ticket { .. }) => {
                match self.store.remember_nonce(&n).await {
                    Ok(true) => Ok(None),
                    Ok(false) => Err(IngressError::replayed(&n.value)),
                    Err(e) => Err(unavailable(e)),
                }
            }
            n => Ok(n),
        }
    }

    /// Stores what a partner sent; the adapter has already checked its signature and shape.
    /// `nonce`: the request's one-time nonce, when its signature covers one; the message is
    /// refused when it came before ([`Self::nonce_first`]).
    pub async fn partner_message(
        &self,
        partner: &str,
        inbound: Inbound,
        nonce: Option<Nonce>,
    ) -> Result<IngressReply, IngressError> {
        let nonce = self.nonce_first(&inbound, nonce).await?;
        match inbound {
            Inbound::Transfer { .. } => Err(IngressError::invalid(
                "type",
                "a transfer offer needs an answer at once: send it to the ingress, not the outbox",
            )),
            Inbound::CaseUpdate(_) => Err(IngressError::invalid(
                "type",
                "case updates come from the legal-aid case system's ingress only",
            )),
            Inbound::Ticket {
                message_id,
                partner_number,
                draft,
            } => {
                // The partner dispatched it (to 12348, or through us to another partner).
                let mut ticket = Ticket::new(partner, Some(partner_number.clone()), *draft);
                ticket.status = TicketStatus::Dispatched;
                let targets: Vec<String> = route(&self.routes, partner, &ticket.draft)
                    .into_iter()
                    .collect();
                let event = Event::new(
                    ticket.id,
                    partner,
                    EventBody::Dispatch {
                        units: Vec::new(),
                        note: None,
                    },
                );
                let mut keys = vec![format!("dispatch:{partner_number}")];
                keys.extend(message_id.map(|m| format!("msg:{m}")));
                let hash = self.callers.hash(&ticket.draft.caller.phone);
                let party = targets.first().map(String::as_str).unwrap_or(HOME);
                let clocks = self.sla.on_dispatch(&ticket, party, chrono::Utc::now());
                let accepted = self
                    .accept(NewTicket {
                        ticket,
                        event,
                        targets: targets.clone(),
                        keys,
                        numbers: vec![(partner.to_owned(), partner_number)],
                        caller_hash: Some(hash),
                        repeat_since: Some(self.repeat_since()),
                        clocks,
                        handoff: None,
                        nonce,
                    })
                    .await
                    .map_err(unavailable)?;
                if !accepted.is_duplicate() {
                    metrics::counter!("hotline_tickets_accepted_total", "origin" => partner.to_owned())
                        .increment(1);
                    for t in &targets {
                        tracing::info!(from = partner, to = %t, ticket = %accepted.ticket_id(), "ticket routed on");
                    }
                    self.check_repeat_caller(&accepted)
                        .await
                        .map_err(unavailable)?;
                }
                Ok(IngressReply::TicketAccepted {
                    ticket_id: accepted.ticket_id(),
                    duplicate: accepted.is_duplicate(),
                })
            }
            Inbound::Event {
                message_id,
                ticket,
                body,
            } => {
                let ticket_id = self.resolve(partner, &ticket).await?;
                let keys: Vec<String> = message_id.iter().map(|m| format!("msg:{m}")).collect();
                let numbers = match &body {
                    EventBody::Receipt {
                        partner_number: Some(n),
                        ..
                    } => vec![(partner.to_owned(), n.clone())],
                    _ => Vec::new(),
                };
                let applied = self
                    .apply(
                        ticket_id,
                        partner,
                        body,
                        keys,
                        numbers,
                        Route::ToOriginPartner,
                    )
                    .await
                    .map_err(|e| match e {
                        ApplyError::Illegal(i) => IngressError {
                            status: http::StatusCode::CONFLICT,
                            ..IngressError::invalid("type", i.to_string())
                        },
                        ApplyError::UnknownTicket => {
                            IngressError::not_found(format!("no ticket {ticket_id}"))
                        }
                        ApplyError::Invalid(p) => IngressError::invalid(p.field, p.reason),
                        ApplyError::Store(e) => unavailable(e),
                    })?;
                Ok(IngressReply::EventRecorded {
                    ticket_id,
                    duplicate: applied.accepted.is_duplicate(),
                })
            }
            Inbound::Ack {
                message_id,
                partner_ref,
                accepted,
                reason,
            } => {
                let delivery = self
                    .store
                    .acknowledge(
                        partner,
                        message_id,
                        LateAck {
                            partner_ref,
                            accepted,
                            reason,
                        },
                    )
                    .await
                    .map_err(unavailable)?;
                if let Some(d) = &delivery {
                    self.engine.late_ack(d);
                }
                Ok(IngressReply::AckApplied {
                    known: delivery.is_some(),
                })
            }
        }
    }

    /// Applies a message to a ticket through the lifecycle: a repeat is recognised first, an
    /// illegal message is refused and recorded, a legal one is stored with its deliveries.
    pub async fn apply(
        &self,
        ticket_id: Uuid,
        source: &str,
        body: EventBody,
        mut keys: Vec<String>,
        numbers: Vec<(String, String)>,
        route: Route,
    ) -> Result<Applied, ApplyError> {
        if once_only(body.kind()) {
            keys.push(format!("{}:{ticket_id}", body.kind()));
        }
        if let Some((t, event_id)) = self.store.seen(source, &keys).await? {
            let status = self
                .store
                .ticket(t)
                .await?
                .map(|t| t.status)
                .unwrap_or_default();
            return Ok(Applied {
                accepted: Accepted::Duplicate {
                    ticket_id: t,
                    event_id,
                },
                status,
            });
        }
        for _ in 0..5 {
            let ticket = self
                .store
                .ticket(ticket_id)
                .await?
                .ok_or(ApplyError::UnknownTicket)?;
            let clocks = self.store.clocks(ticket_id).await?;
            let body = assisting_answer(&clocks, source, body.clone());
            let status = match lifecycle::next(ticket.status, &body) {
                Ok(s) => s,
                Err(illegal) => {
                    tracing::info!(ticket = %ticket_id, source, error = %illegal, "message refused");
                    metrics::counter!("hotline_lifecycle_refused_total", "source" => source.to_owned())
                        .increment(1);
                    self.store
                        .record_refusal(RefusedEvent {
                            ticket_id,
                            source: source.to_owned(),
                            kind: body.kind(),
                            status: ticket.status,
                            reason: illegal.to_string(),
                            at: chrono::Utc::now(),
                        })
                        .await?;
                    return Err(ApplyError::Illegal(illegal));
                }
            };
            let targets = self.targets(&ticket, source, &route).await?;
            let to = match &route {
                Route::To(t) => t.clone(),
                _ => Vec::new(),
            };
            let now = chrono::Utc::now();
            let ops = self.sla.ops_for(
                &Change {
                    ticket: &ticket,
                    source,
                    body: &body,
                    status_after: status,
                    to: &to,
                    now,
                },
                &clocks,
            );
            let result = self
                .store
                .record_event(NewEvent {
                    event: Event::new(ticket_id, source, body.clone()),
                    status: Some(status),
                    expected_status: Some(ticket.status),
                    targets: targets.clone(),
                    keys: keys.clone(),
                    numbers: numbers.clone(),
                    clocks: ops,
                })
                .await;
            match result {
                Ok(accepted) => {
                    for t in &targets {
                        self.engine.wake(t);
                    }
                    return Ok(Applied { accepted, status });
                }
                Err(StoreError::StatusChanged) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApplyError::Store(StoreError::Conflict(format!(
            "ticket {ticket_id} keeps changing; try again"
        ))))
    }

    /// Where a message about `ticket` goes.
    async fn targets(
        &self,
        ticket: &Ticket,
        source: &str,
        route: &Route,
    ) -> Result<Vec<String>, StoreError> {
        Ok(match route {
            Route::To(t) => t.clone(),
            // A partner's message about a ticket another partner sent us goes on to that one.
            Route::ToOriginPartner => [ticket.origin.clone()]
                .into_iter()
                .filter(|o| o != HOME && o != source && self.engine.partner(o).is_some())
                .collect(),
            // The home systems' message goes to whoever is on the other side of the ticket.
            Route::Counterparts => {
                if ticket.origin != HOME {
                    vec![ticket.origin.clone()]
                } else {
                    let deliveries = self.store.ticket_deliveries(ticket.id).await?;
                    let mut partners: Vec<String> = deliveries
                        .into_iter()
                        .filter(|d| d.message_type == EventKind::Dispatch)
                        .map(|d| d.partner)
                        .collect();
                    partners.sort();
                    partners.dedup();
                    partners
                }
            }
        })
    }

    async fn resolve(&self, partner: &str, r: &TicketRef) -> Result<Uuid, IngressError> {
        let found = match r {
            TicketRef::Gateway(id) => self
                .store
                .ticket(*id)
                .await
                .map_err(unavailable)?
                .map(|t| t.id),
            TicketRef::Partner(n) => self
                .store
                .resolve_number(partner, n)
                .await
                .map_err(unavailable)?,
        };
        found.ok_or_else(|| IngressError::not_found(format!("no ticket known as {r:?}")))
    }
}

/// A store failure as the partner is told it: a replay is refused, anything else is to be sent
/// again.
fn unavailable(e: StoreError) -> IngressError {
    if let StoreError::Replayed(nonce) = &e {
        return IngressError::replayed(nonce);
    }
    tracing::error!(error = %e, "store failed on partner ingress");
    IngressError::unavailable("temporarily unable to store the message; send it again")
}

/// 联办: a reply from a partner while another party (the lead, 主办) owns the reply clock is an
/// assisting unit's answer (协办), recorded as progress; only the lead's reply completes the ticket.
fn assisting_answer(clocks: &[Clock], source: &str, body: EventBody) -> EventBody {
    let lead_elsewhere = clocks
        .iter()
        .any(|c| c.kind == ClockKind::Reply && c.state == ClockState::Running && c.party != source);
    let leads = clocks
        .iter()
        .any(|c| c.kind == ClockKind::Reply && c.party == source);
    let assists = clocks
        .iter()
        .any(|c| c.kind == ClockKind::Receipt && c.party == source);
    match body {
        EventBody::Reply { content, unit } if lead_elsewhere && assists && !leads => {
            EventBody::Progress {
                note: format!(
                    "协办单位答复 assisting unit's answer{}: {content}",
                    unit.map(|u| format!(" ({u})")).unwrap_or_default()
                ),
            }
        }
        other => other,
    }
}

/// Where a message's deliveries go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To these partners.
    To(Vec<String>),
    /// To the partner the ticket came from, if another partner sent the message.
    ToOriginPartner,
    /// To the other side of the ticket: its origin partner, or the partners it was dispatched to.
    Counterparts,
}

/// A message applied to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub accepted: Accepted,
    /// The ticket's status after it.
    pub status: TicketStatus,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Illegal(#[from] lifecycle::IllegalTransition),
    #[error("no such ticket")]
    UnknownTicket,
    #[error("{}: {}", .0.field, .0.reason)]
    Invalid(FieldError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Messages that happen at most once per ticket and sender, so a repeat without a message id is
/// still recognised.
fn once_only(kind: EventKind) -> bool {
    matches!(kind, EventKind::Receipt | EventKind::Withdraw)
}

#[cfg(test)]
mod tests {
    use hotline_model::{Caller, TicketKind, Urgency};

    use super::*;

    fn draft(kind: TicketKind, class: Option<&str>, region: &str) -> TicketDraft {
        TicketDraft {
            kind,
            urgency: Urgency::Normal,
            caller: Caller {
                name: "张三".into(),
                phone: "13800138000".into(),
                id_number: None,
            },
            confidential: false,
            region_code: region.into(),
            address: None,
            classification_code: class.map(Into::into),
            title: "t".into(),
            content: "c".into(),
            remarks: None,
            received_at: "2026-11-23T09:00:00+08:00".parse().unwrap(),
            units: vec![],
            channel: None,
            transcript: Vec::new(),
        }
    }

    #[test]
    fn routes_match_by_origin_kind_classification_and_region_first_match_wins() {
        let routes = vec![
            RouteConfig {
                from: Some("12345".into()),
                kinds: vec![TicketKind::Complaint],
                to: "12315".into(),
                ..Default::default()
            },
            RouteConfig {
                classification_prefix: Some("9.".into()),
                region_prefix: Some("3701".into()),
                to: "12333".into(),
                ..Default::default()
            },
        ];
        let r = |origin, d: &TicketDraft| route(&routes, origin, d);
        assert_eq!(
            r(
                "12345",
                &draft(TicketKind::Complaint, Some("9.1"), "370102")
            )
            .as_deref(),
            Some("12315")
        );
        assert_eq!(
            r(
                "12338",
                &draft(TicketKind::Complaint, Some("3.2"), "370102")
            ),
            None,
            "from 12345 only"
        );
        assert_eq!(
            r("12338", &draft(TicketKind::Help, Some("9.3"), "370102")).as_deref(),
            Some("12333")
        );
        assert_eq!(
            r("12338", &draft(TicketKind::Help, Some("9.3"), "420102")),
            None,
            "another province"
        );
        assert_eq!(
            r("12338", &draft(TicketKind::Help, None, "370102")),
            None,
            "no classification"
        );
        assert_eq!(
            r("12333", &draft(TicketKind::Help, Some("9.3"), "370102")),
            None,
            "never back to its origin"
        );
    }

    #[test]
    fn caller_hashes_ignore_formatting_and_depend_on_the_key() {
        let m = CallerMatch {
            key: "k".repeat(20),
            count: 3,
            days: 30,
        };
        let h = m.hash("13912345678");
        assert_eq!(h, m.hash("+86 139-1234-5678"));
        assert_eq!(h.len(), 64);
        assert!(!h.contains("13912345678"));
        assert_ne!(h, m.hash("13912345679"));
        let other = CallerMatch {
            key: "x".repeat(20),
            ..m.clone()
        };
        assert_ne!(h, other.hash("13912345678"));
    }
}
