//! `POST /api/v1/tickets/{id}/actions/{action}`: the home systems act on a ticket; the message is
//! checked against the lifecycle and delivered to the other side in its dialect.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hotline_model::{EventBody, FieldError, HOME, Satisfaction, TicketStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{ApiError, ErrorBody, ValidJson, ValidPath};
use super::{AppState, TICKETS};
use crate::intake::{ApplyError, Route};
use crate::store::Accepted;

/// What an action says. Which fields are required depends on the action.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ActionRequest {
    /// `dispatch` (改派): the partner to dispatch to.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub units: Vec<String>,
    /// `return`, `extend`, `reopen`, `withdraw`, and a refused extension.
    #[serde(default)]
    pub reason: Option<String>,
    /// `extend`, `approve-extension`: working days.
    #[serde(default)]
    pub working_days: Option<u32>,
    /// `approve-extension`: approved or refused.
    #[serde(default)]
    pub approved: Option<bool>,
    /// `progress` (required), `urge`, `supervise`, `callback`, `dispatch`.
    #[serde(default)]
    pub note: Option<String>,
    /// `reply`: the result given to the caller.
    #[serde(default)]
    pub content: Option<String>,
    /// `receipt`, `reply`: the handling unit.
    #[serde(default)]
    pub unit: Option<String>,
    /// `callback`: the caller's satisfaction.
    #[serde(default)]
    pub satisfaction: Option<Satisfaction>,
    /// `merge` (并单): the open ticket this one repeats.
    #[serde(default)]
    pub into: Option<Uuid>,
}

/// The actions, as they appear in the path.
pub const ACTIONS: &[&str] = &[
    "dispatch",
    "receipt",
    "return",
    "extend",
    "approve-extension",
    "progress",
    "reply",
    "urge",
    "supervise",
    "callback",
    "reopen",
    "withdraw",
    "merge",
];

fn need<T: Clone>(v: &Option<T>, field: &str, action: &str) -> Result<T, FieldError> {
    v.clone()
        .ok_or_else(|| FieldError::new(field, format!("is required for `{action}`")))
}

fn text(v: &Option<String>, field: &str, action: &str) -> Result<String, FieldError> {
    let t = need(v, field, action)?;
    if t.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    Ok(t)
}

/// The message an action stands for.
pub fn body_of(action: &str, r: &ActionRequest) -> Result<Option<EventBody>, FieldError> {
    Ok(Some(match action {
        "dispatch" => EventBody::Dispatch {
            units: r.units.clone(),
            note: r.note.clone(),
        },
        "receipt" => EventBody::Receipt {
            partner_number: None,
            unit: r.unit.clone(),
        },
        "return" => EventBody::Return {
            reason: text(&r.reason, "reason", action)?,
        },
        "extend" => {
            let days = need(&r.working_days, "working_days", action)?;
            if !(1..=15).contains(&days) {
                return Err(FieldError::new(
                    "working_days",
                    "must be 1-15 (an extension never goes beyond 15 working days in total)",
                ));
            }
            EventBody::ExtensionRequest {
                working_days: days,
                reason: text(&r.reason, "reason", action)?,
            }
        }
        "approve-extension" => EventBody::ExtensionDecision {
            approved: need(&r.approved, "approved", action)?,
            working_days: r.working_days.unwrap_or(0),
            reason: r.reason.clone(),
        },
        "progress" => EventBody::Progress {
            note: text(&r.note, "note", action)?,
        },
        "reply" => EventBody::Reply {
            content: text(&r.content, "content", action)?,
            unit: r.unit.clone(),
        },
        "urge" => EventBody::Urge {
            note: r.note.clone(),
        },
        "supervise" => EventBody::Supervise {
            note: r.note.clone(),
        },
        "callback" => EventBody::Callback {
            satisfaction: need(&r.satisfaction, "satisfaction", action)?,
            note: r.note.clone(),
        },
        "reopen" => EventBody::Reopen {
            reason: text(&r.reason, "reason", action)?,
        },
        "withdraw" => EventBody::Withdraw {
            reason: r.reason.clone(),
        },
        "merge" => EventBody::Merge {
            into: need(&r.into, "into", action)?,
        },
        _ => return Ok(None),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionDone {
    pub ticket_id: Uuid,
    pub event_id: Uuid,
    /// The ticket's status after the action.
    pub status: TicketStatus,
    /// Deliveries queued to the other side (empty for a repeat).
    pub deliveries: Vec<Uuid>,
    /// `true` when this `Idempotency-Key` was used before: nothing new happened.
    pub duplicate: bool,
}

/// Act on a ticket: dispatch (改派), receipt (签收), return (退回), extend (延期申请),
/// approve-extension (延期审批), progress, reply (办结), urge (催办), supervise (督办),
/// callback (回访), reopen (退回重办), withdraw (撤单), merge (并单, into another open ticket).
///
/// The message goes to the other side of the ticket (the partner it came from, or the partners it
/// was dispatched to; `dispatch` goes to `target`). A repeated `Idempotency-Key` changes nothing.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/actions/{action}", tag = TICKETS,
    params(
        ("id" = Uuid, Path, description = "The gateway's ticket id"),
        ("action" = String, Path, description = "One of the actions above"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat harmless"),
    ),
    request_body = ActionRequest,
    responses(
        (status = 202, description = "Applied and queued for delivery", body = ActionDone),
        (status = 404, description = "No such ticket or action", body = ErrorBody),
        (status = 409, description = "Not allowed in the ticket's state", body = ErrorBody),
        (status = 422, description = "A field is missing or wrong", body = ErrorBody),
    ))]
pub async fn act(
    State(state): State<AppState>,
    ValidPath((id, action)): ValidPath<(Uuid, String)>,
    headers: HeaderMap,
    ValidJson(req): ValidJson<ActionRequest>,
) -> Result<(StatusCode, Json<ActionDone>), ApiError> {
    let body = body_of(&action, &req)
        .map_err(|e| ApiError::invalid(vec![e]))?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no action `{action}`; actions are {}",
                ACTIONS.join(", ")
            ))
        })?;
    if let EventBody::Merge { into } = &body {
        let open = state
            .store
            .ticket(*into)
            .await?
            .is_some_and(|t| crate::lifecycle::is_open(t.status));
        if *into == id || !open {
            return Err(ApiError::invalid(vec![FieldError::new(
                "into",
                "must be another ticket that is still open",
            )]));
        }
    }
    let route = if action == "dispatch" {
        let target = req.target.clone().unwrap_or_default();
        if state.engine.partner(&target).is_none() {
            return Err(ApiError::invalid(vec![FieldError::new(
                "target",
                format!("`{target}` is not a configured partner"),
            )]));
        }
        Route::To(vec![target])
    } else {
        Route::Counterparts
    };
    let keys = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| vec![format!("action:{k}")])
        .unwrap_or_default();
    let applied = state
        .intake
        .apply(id, HOME, body, keys, Vec::new(), route)
        .await;
    done(id, applied)
}

/// The answer to a message applied to ticket `id` by the home systems.
pub(super) fn done(
    id: Uuid,
    applied: Result<crate::intake::Applied, ApplyError>,
) -> Result<(StatusCode, Json<ActionDone>), ApiError> {
    let applied = applied.map_err(|e| match e {
        ApplyError::Illegal(i) => {
            ApiError::new(StatusCode::CONFLICT, "illegal_transition", i.to_string())
        }
        ApplyError::UnknownTicket => ApiError::not_found(format!("no ticket {id}")),
        ApplyError::Invalid(f) => ApiError::invalid(vec![f]),
        ApplyError::Store(e) => e.into(),
    })?;
    let (event_id, deliveries, duplicate) = match applied.accepted {
        Accepted::Created {
            event_id,
            deliveries,
            ..
        } => (event_id, deliveries, false),
        Accepted::Duplicate { event_id, .. } => (event_id, Vec::new(), true),
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(ActionDone {
            ticket_id: id,
            event_id,
            status: applied.status,
            deliveries,
            duplicate,
        }),
    ))
}
