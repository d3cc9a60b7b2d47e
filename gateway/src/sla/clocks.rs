//! Which clocks a message starts, closes, stops or moves.

use chrono::{DateTime, Utc};
use hotline_model::{EventBody, Satisfaction, Ticket, TicketStatus, Urgency};
use uuid::Uuid;

use super::{Sla, beijing, urge_at};
use crate::sla::ClockKind;
use crate::store::{Clock, ClockOp, ClockState};

/// A message about to be applied to a ticket.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub ticket: &'a Ticket,
    /// The system that sent it.
    pub source: &'a str,
    pub body: &'a EventBody,
    pub status_after: TicketStatus,
    /// Where a dispatch goes.
    pub to: &'a [String],
    pub now: DateTime<Utc>,
}

impl Sla {
    /// A new clock for `party`, started `now`.
    pub fn start(
        &self,
        ticket: &Ticket,
        kind: ClockKind,
        party: &str,
        now: DateTime<Utc>,
    ) -> ClockOp {
        let cal = self.calendar();
        let urgent = ticket.draft.urgency == Urgency::Urgent;
        let from = now.with_timezone(&beijing());
        let due = self
            .policy(party, Some(ticket.draft.kind))
            .due(&cal, kind, from, urgent);
        ClockOp::Start(Clock {
            id: Uuid::now_v7(),
            ticket_id: ticket.id,
            kind,
            party: party.to_owned(),
            urgent,
            started_at: now,
            due_at: due.at.with_timezone(&Utc),
            urge_at: urge_at(&cal, from, due.at).with_timezone(&Utc),
            provisional: due.provisional,
            extended_days: 0,
            state: ClockState::Running,
            stopped_at: None,
            urged_at: None,
            overdue_at: None,
        })
    }

    /// The clocks of a ticket handed to `party`: take it on, and reply.
    pub fn on_dispatch(&self, ticket: &Ticket, party: &str, now: DateTime<Utc>) -> Vec<ClockOp> {
        vec![
            self.start(ticket, ClockKind::Receipt, party, now),
            self.start(ticket, ClockKind::Reply, party, now),
        ]
    }

    /// The clock changes a message causes, given the ticket's clocks.
    pub fn ops_for(&self, change: &Change<'_>, clocks: &[Clock]) -> Vec<ClockOp> {
        let Change {
            ticket,
            source,
            body,
            status_after,
            to,
            now,
        } = *change;
        let running = |kind: ClockKind| {
            clocks
                .iter()
                .filter(move |c| c.kind == kind && c.state == ClockState::Running)
        };
        let handler = || {
            clocks
                .iter()
                .rev()
                .find(|c| c.kind == ClockKind::Reply)
                .map(|c| c.party.clone())
                .unwrap_or_else(|| source.to_owned())
        };
        let stop_all = |ops: &mut Vec<ClockOp>| {
            for kind in ClockKind::ALL {
                if running(kind).next().is_some() {
                    ops.push(ClockOp::Stop {
                        kind,
                        party: None,
                        at: now,
                    });
                }
            }
        };
        let close = |kind, party: Option<String>| ClockOp::Close {
            kind,
            party,
            at: now,
        };
        let mut ops = Vec::new();
        match body {
            EventBody::Dispatch { .. } => {
                // 改派: the old handler's clocks stop; the new one's start.
                for kind in [ClockKind::Receipt, ClockKind::Reply] {
                    if running(kind).next().is_some() {
                        ops.push(ClockOp::Stop {
                            kind,
                            party: None,
                            at: now,
                        });
                    }
                }
                let party = to
                    .first()
                    .map(String::as_str)
                    .unwrap_or(hotline_model::HOME);
                ops.extend(self.on_dispatch(ticket, party, now));
            }
            EventBody::Receipt { .. } => {
                ops.push(close(ClockKind::Receipt, Some(source.to_owned())))
            }
            EventBody::Return { .. } => {
                // The returning side's clocks stop (a return stops the partner's clock).
                ops.push(ClockOp::Stop {
                    kind: ClockKind::Receipt,
                    party: Some(source.to_owned()),
                    at: now,
                });
                ops.push(ClockOp::Stop {
                    kind: ClockKind::Reply,
                    party: Some(source.to_owned()),
                    at: now,
                });
            }
            EventBody::ExtensionDecision {
                approved: true,
                working_days,
                ..
            } => {
                for c in running(ClockKind::Reply) {
                    let policy = self.policy(&c.party, Some(ticket.draft.kind));
                    let room = policy
                        .extension_cap_days
                        .saturating_sub(policy.reply_days + c.extended_days);
                    let days = (*working_days).min(room);
                    if days == 0 {
                        continue;
                    }
                    let cal = self.calendar();
                    let due = cal.add_working_days(c.due_at.with_timezone(&beijing()), days);
                    ops.push(ClockOp::Reschedule {
                        id: c.id,
                        due_at: due.at.with_timezone(&Utc),
                        urge_at: urge_at(&cal, c.started_at.with_timezone(&beijing()), due.at)
                            .with_timezone(&Utc),
                        provisional: due.provisional || c.provisional,
                        extended_days: c.extended_days + days,
                    });
                }
            }
            EventBody::Reply { .. } => {
                ops.push(close(ClockKind::Reply, None));
                ops.push(close(ClockKind::Receipt, None));
                if ticket.draft.urgency == Urgency::Urgent {
                    // Urgent matters are called back by the side that handed the ticket on.
                    ops.push(self.start(ticket, ClockKind::Callback, &ticket.origin, now));
                }
            }
            EventBody::Callback { satisfaction, .. } => {
                ops.push(close(ClockKind::Callback, None));
                if matches!(
                    satisfaction,
                    Satisfaction::Unsatisfied | Satisfaction::VeryUnsatisfied
                ) {
                    ops.push(self.start(ticket, ClockKind::UnsatisfiedReport, &handler(), now));
                }
            }
            EventBody::Reopen { .. } => {
                ops.push(close(ClockKind::UnsatisfiedReport, None));
                ops.push(self.start(ticket, ClockKind::Reply, &handler(), now));
            }
            EventBody::Withdraw { .. } => stop_all(&mut ops),
            _ => {}
        }
        if status_after == TicketStatus::Merged {
            stop_all(&mut ops); // the ticket it joined carries the clocks
        }
        if status_after == TicketStatus::Closed {
            // Whatever still runs does not apply any more.
            for kind in ClockKind::ALL {
                if kind != ClockKind::Callback && running(kind).next().is_some() {
                    ops.push(ClockOp::Stop {
                        kind,
                        party: None,
                        at: now,
                    });
                }
            }
        }
        ops
    }
}
