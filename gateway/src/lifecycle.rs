//! The canonical lifecycle of a ticket exchanged between systems, in both directions:
//!
//! ```text
//! received ─dispatch→ dispatched ─receipt→ receipted ─progress→ in_progress ─reply→ replied
//!    │                  │  ▲ 改派 (dispatch)    │                     │               │
//!    │                  ▼  │                    ├─extension_request→ extension_requested
//!    │               returned ◄──return─────────┘        └─extension_decision→ in_progress
//!    │                                                        replied ─callback(satisfied)→ closed
//!    │                                                        replied ─callback(unsatisfied)→ called_back
//!    └─reply (answered at once)→ replied              called_back / replied ─reopen→ reopened
//! any open state ─withdraw→ withdrawn, ─merge→ merged (并单);  urge / supervise keep the state
//! ```
//! `closed`, `withdrawn` and `merged` are final. Whatever system causes a message, the same
//! machine applies; an illegal message is refused with the reason and recorded.

use hotline_model::{EventBody, EventKind, Satisfaction, TicketStatus};

use TicketStatus as S;

/// Why a message cannot apply to a ticket in its current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a `{kind}` is not allowed on a ticket that is `{}`: {why}", from.as_str())]
pub struct IllegalTransition {
    pub from: TicketStatus,
    pub kind: EventKind,
    pub why: &'static str,
}

fn satisfied(s: Satisfaction) -> bool {
    matches!(
        s,
        Satisfaction::VerySatisfied | Satisfaction::Satisfied | Satisfaction::BasicallySatisfied
    )
}

/// Whether a ticket in `status` is still being worked on.
pub fn is_open(status: TicketStatus) -> bool {
    !matches!(status, S::Closed | S::Withdrawn | S::Merged)
}

/// The status after `body` happens to a ticket in `from`.
pub fn next(from: TicketStatus, body: &EventBody) -> Result<TicketStatus, IllegalTransition> {
    let kind = body.kind();
    let refuse = |why| Err(IllegalTransition { from, kind, why });
    // Legal aid goes its own way: filed for a consultation already answered, and its case
    // news reported long after; the ticket's own status does not change.
    if matches!(
        body,
        EventBody::LegalAid { .. } | EventBody::CaseStatus { .. }
    ) {
        return match from {
            S::Withdrawn | S::Merged => refuse("the ticket was withdrawn or merged"),
            _ => Ok(from),
        };
    }
    if !is_open(from) {
        return refuse("the ticket is finished");
    }
    let handling = matches!(
        from,
        S::Dispatched | S::Receipted | S::InProgress | S::ExtensionRequested | S::Reopened
    );
    match body {
        EventBody::Dispatch { .. } => match from {
            S::Received | S::Returned | S::Reopened | S::Dispatched => Ok(S::Dispatched),
            _ => refuse("only a new, returned or reopened ticket can be dispatched (改派)"),
        },
        EventBody::Receipt { .. } => match from {
            S::Dispatched | S::Reopened => Ok(S::Receipted),
            S::Receipted => refuse("it was already signed for"),
            _ => refuse("only a dispatched ticket can be signed for"),
        },
        EventBody::Return { .. } => match from {
            S::Dispatched | S::Receipted | S::InProgress | S::Reopened => Ok(S::Returned),
            _ => refuse("only a ticket being handled can be returned"),
        },
        EventBody::ExtensionRequest { .. } => match from {
            S::Dispatched | S::Receipted | S::InProgress | S::Reopened => Ok(S::ExtensionRequested),
            S::ExtensionRequested => refuse("an extension request is already pending"),
            _ => refuse("only a ticket being handled can ask for an extension"),
        },
        EventBody::ExtensionDecision { .. } => match from {
            S::ExtensionRequested => Ok(S::InProgress),
            _ => refuse("no extension request is pending"),
        },
        EventBody::Progress { .. } => match from {
            _ if handling => Ok(S::InProgress),
            _ => refuse("only a ticket being handled can report progress"),
        },
        EventBody::Reply { .. } => match from {
            S::Received => Ok(S::Replied), // answered at once, never forwarded
            _ if handling => Ok(S::Replied),
            S::Replied | S::CalledBack => refuse("it was already replied; reopen it first"),
            _ => refuse("a returned ticket must be dispatched again first"),
        },
        EventBody::Urge { .. } | EventBody::Supervise { .. } => match from {
            _ if handling => Ok(from),
            _ => refuse("only a ticket being handled can be urged or supervised"),
        },
        EventBody::Callback { satisfaction, .. } => match from {
            S::Replied | S::CalledBack if satisfied(*satisfaction) => Ok(S::Closed),
            S::Replied | S::CalledBack => Ok(S::CalledBack),
            _ => refuse("only a replied ticket can be called back"),
        },
        EventBody::Reopen { .. } => match from {
            S::Replied | S::CalledBack => Ok(S::Reopened),
            _ => refuse("only a replied ticket can be reopened"),
        },
        EventBody::Withdraw { .. } => Ok(S::Withdrawn),
        EventBody::Merge { .. } => Ok(S::Merged),
        EventBody::LegalAid { .. } | EventBody::CaseStatus { .. } => Ok(from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(kind: EventKind, satisfaction: Satisfaction) -> EventBody {
        match kind {
            EventKind::Dispatch => EventBody::Dispatch {
                units: vec![],
                note: None,
            },
            EventKind::Receipt => EventBody::Receipt {
                partner_number: None,
                unit: None,
            },
            EventKind::Return => EventBody::Return { reason: "r".into() },
            EventKind::ExtensionRequest => EventBody::ExtensionRequest {
                working_days: 5,
                reason: "r".into(),
            },
            EventKind::ExtensionDecision => EventBody::ExtensionDecision {
                approved: true,
                working_days: 5,
                reason: None,
            },
            EventKind::Progress => EventBody::Progress { note: "n".into() },
            EventKind::Reply => EventBody::Reply {
                content: "c".into(),
                unit: None,
            },
            EventKind::Urge => EventBody::Urge { note: None },
            EventKind::Supervise => EventBody::Supervise { note: None },
            EventKind::Callback => EventBody::Callback {
                satisfaction,
                note: None,
            },
            EventKind::Reopen => EventBody::Reopen { reason: "r".into() },
            EventKind::Withdraw => EventBody::Withdraw { reason: None },
            EventKind::Merge => EventBody::Merge {
                into: uuid::Uuid::nil(),
            },
            EventKind::LegalAid => EventBody::LegalAid {
                application: Box::new(hotline_model::legal_aid::Application::example()),
            },
            EventKind::CaseStatus => EventBody::CaseStatus {
                case_no: "FY-1".into(),
                status: "granted".into(),
                note: "已决定给予法律援助".into(),
            },
        }
    }

    const ALL: [TicketStatus; 12] = [
        S::Received,
        S::Dispatched,
        S::Receipted,
        S::InProgress,
        S::Returned,
        S::ExtensionRequested,
        S::Replied,
        S::CalledBack,
        S::Reopened,
        S::Withdrawn,
        S::Merged,
        S::Closed,
    ];

    /// The whole table: every state × every message, legal ones with their result.
    #[test]
    fn every_transition_legal_and_illegal() {
        use EventKind as K;
        let legal: &[(TicketStatus, EventKind, TicketStatus)] = &[
            (S::Received, K::Dispatch, S::Dispatched),
            (S::Received, K::Reply, S::Replied),
            (S::Received, K::Withdraw, S::Withdrawn),
            (S::Received, K::Merge, S::Merged),
            (S::Dispatched, K::Dispatch, S::Dispatched),
            (S::Dispatched, K::Receipt, S::Receipted),
            (S::Dispatched, K::Return, S::Returned),
            (S::Dispatched, K::ExtensionRequest, S::ExtensionRequested),
            (S::Dispatched, K::Progress, S::InProgress),
            (S::Dispatched, K::Reply, S::Replied),
            (S::Dispatched, K::Urge, S::Dispatched),
            (S::Dispatched, K::Supervise, S::Dispatched),
            (S::Dispatched, K::Withdraw, S::Withdrawn),
            (S::Dispatched, K::Merge, S::Merged),
            (S::Receipted, K::Return, S::Returned),
            (S::Receipted, K::ExtensionRequest, S::ExtensionRequested),
            (S::Receipted, K::Progress, S::InProgress),
            (S::Receipted, K::Reply, S::Replied),
            (S::Receipted, K::Urge, S::Receipted),
            (S::Receipted, K::Supervise, S::Receipted),
            (S::Receipted, K::Withdraw, S::Withdrawn),
            (S::Receipted, K::Merge, S::Merged),
            (S::InProgress, K::Return, S::Returned),
            (S::InProgress, K::ExtensionRequest, S::ExtensionRequested),
            (S::InProgress, K::Progress, S::InProgress),
            (S::InProgress, K::Reply, S::Replied),
            (S::InProgress, K::Urge, S::InProgress),
            (S::InProgress, K::Supervise, S::InProgress),
            (S::InProgress, K::Withdraw, S::Withdrawn),
            (S::InProgress, K::Merge, S::Merged),
            (S::Returned, K::Dispatch, S::Dispatched),
            (S::Returned, K::Withdraw, S::Withdrawn),
            (S::Returned, K::Merge, S::Merged),
            (S::ExtensionRequested, K::ExtensionDecision, S::InProgress),
            (S::ExtensionRequested, K::Progress, S::InProgress),
            (S::ExtensionRequested, K::Reply, S::Replied),
            (S::ExtensionRequested, K::Urge, S::ExtensionRequested),
            (S::ExtensionRequested, K::Supervise, S::ExtensionRequested),
            (S::ExtensionRequested, K::Withdraw, S::Withdrawn),
            (S::ExtensionRequested, K::Merge, S::Merged),
            (S::Replied, K::Callback, S::Closed), // satisfied
            (S::Replied, K::Reopen, S::Reopened),
            (S::Replied, K::Withdraw, S::Withdrawn),
            (S::Replied, K::Merge, S::Merged),
            (S::CalledBack, K::Callback, S::Closed),
            (S::CalledBack, K::Reopen, S::Reopened),
            (S::CalledBack, K::Withdraw, S::Withdrawn),
            (S::CalledBack, K::Merge, S::Merged),
            (S::Reopened, K::Dispatch, S::Dispatched),
            (S::Reopened, K::Receipt, S::Receipted),
            (S::Reopened, K::Return, S::Returned),
            (S::Reopened, K::ExtensionRequest, S::ExtensionRequested),
            (S::Reopened, K::Progress, S::InProgress),
            (S::Reopened, K::Reply, S::Replied),
            (S::Reopened, K::Urge, S::Reopened),
            (S::Reopened, K::Supervise, S::Reopened),
            (S::Reopened, K::Withdraw, S::Withdrawn),
            (S::Reopened, K::Merge, S::Merged),
        ];
        // Legal aid, on every ticket not withdrawn or merged, finished ones included.
        let legal_aid: Vec<_> = ALL
            .into_iter()
            .filter(|s| !matches!(s, S::Withdrawn | S::Merged))
            .flat_map(|s| [(s, K::LegalAid, s), (s, K::CaseStatus, s)])
            .collect();
        let legal = &[legal, legal_aid.as_slice()].concat();
        let mut legal_count = 0;
        for from in ALL {
            for kind in EventKind::ALL {
                let got = next(from, &body(kind, Satisfaction::Satisfied));
                match legal.iter().find(|(f, k, _)| *f == from && *k == kind) {
                    Some((_, _, to)) => {
                        assert_eq!(got, Ok(*to), "{from:?} + {kind}");
                        legal_count += 1;
                    }
                    None => {
                        let err = got.expect_err(&format!("{from:?} + {kind} must be refused"));
                        assert_eq!((err.from, err.kind), (from, kind));
                        assert!(err.to_string().contains(from.as_str()), "{err}");
                    }
                }
            }
        }
        assert_eq!(legal_count, legal.len());
    }

    #[test]
    fn an_unsatisfied_callback_waits_for_a_reopen() {
        let unhappy = body(EventKind::Callback, Satisfaction::Unsatisfied);
        assert_eq!(next(S::Replied, &unhappy), Ok(S::CalledBack));
        assert_eq!(next(S::CalledBack, &unhappy), Ok(S::CalledBack));
        let happy = body(EventKind::Callback, Satisfaction::BasicallySatisfied);
        assert_eq!(next(S::CalledBack, &happy), Ok(S::Closed));
    }

    #[test]
    fn refusals_say_why() {
        let e = next(S::Closed, &body(EventKind::Reply, Satisfaction::Satisfied)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a `reply` is not allowed on a ticket that is `closed`: the ticket is finished"
        );
        let e = next(
            S::Receipted,
            &body(EventKind::Receipt, Satisfaction::Satisfied),
        )
        .unwrap_err();
        assert!(e.to_string().ends_with("it was already signed for"));
    }
}
