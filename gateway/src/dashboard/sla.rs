//! The SLA board (due today, overdue, urged, supervised) and the alerts, which operators
//! acknowledge.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use super::auth::Viewer;
use super::config::Role;
use super::page::{Chrome, PageError, beijing, fmt_age, fmt_opt_time, fmt_time, render, safe_back};
use crate::api::AppState;
use crate::store::{AlertKind, AlertQuery, Clock};

struct ClockRow {
    ticket_id: String,
    kind: &'static str,
    party: String,
    due: String,
    left: String,
    urged: String,
    overdue: String,
}

struct AlertRow {
    id: String,
    kind: &'static str,
    party: String,
    ticket_id: String,
    message: String,
    at: String,
    acked: String,
}

#[derive(Template)]
#[template(path = "sla.html")]
struct SlaPage {
    chrome: Chrome,
    overdue: Vec<ClockRow>,
    supervised: Vec<ClockRow>,
    due_today: Vec<ClockRow>,
    urged: Vec<ClockRow>,
    alerts: Vec<AlertRow>,
    kinds: Vec<(&'static str, u64)>,
    kind: String,
    show_acked: bool,
}

#[derive(Deserialize, Default)]
pub struct SlaQuery {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    acked: Option<String>,
}

const KINDS: [AlertKind; 7] = AlertKind::ALL;

fn row(c: &Clock, now: chrono::DateTime<Utc>) -> ClockRow {
    let left = (c.due_at - now).num_seconds() as f64;
    ClockRow {
        ticket_id: c.ticket_id.to_string(),
        kind: c.kind.as_str(),
        party: c.party.clone(),
        due: fmt_time(c.due_at),
        left: if left >= 0.0 {
            format!("剩 {} left", fmt_age(left))
        } else {
            format!("超 {} over", fmt_age(-left))
        },
        urged: fmt_opt_time(c.urged_at),
        overdue: fmt_opt_time(c.overdue_at),
    }
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<SlaQuery>,
) -> Result<Response, PageError> {
    let now = Utc::now();
    let today = now.with_timezone(&beijing()).date_naive();
    let clocks = state.store.running_clocks(1000).await?;
    let (mut overdue, mut supervised, mut due_today, mut urged) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for c in &clocks {
        if c.due_at < now {
            if c.overdue_at.is_some() {
                supervised.push(row(c, now));
            }
            overdue.push(row(c, now));
        } else {
            if c.due_at.with_timezone(&beijing()).date_naive() == today {
                due_today.push(row(c, now));
            }
            if c.urged_at.is_some() {
                urged.push(row(c, now));
            }
        }
    }
    let kind = q
        .kind
        .as_deref()
        .filter(|k| !k.is_empty())
        .map(|k| {
            KINDS.into_iter().find(|x| x.as_str() == k).ok_or_else(|| {
                PageError::bad_request(format!("kind: 未知预警类型 unknown alert kind `{k}`"))
            })
        })
        .transpose()?;
    let show_acked = q.acked.as_deref() == Some("1");
    let alerts = state
        .store
        .alerts(&AlertQuery {
            open: (!show_acked).then_some(true),
            kind,
            ticket_id: None,
            limit: Some(200),
        })
        .await?;
    let counts = state.store.open_alert_counts().await?;
    render(&SlaPage {
        chrome: Chrome::new(&viewer, "时限与预警 SLA & alerts", "sla"),
        overdue,
        supervised,
        due_today,
        urged,
        alerts: alerts
            .iter()
            .map(|a| AlertRow {
                id: a.id.to_string(),
                kind: a.kind.as_str(),
                party: a.party.clone().unwrap_or_default(),
                ticket_id: a.ticket_id.map(|t| t.to_string()).unwrap_or_default(),
                message: a.message.clone(),
                at: fmt_time(a.created_at),
                acked: a
                    .acknowledged_at
                    .map(|t| {
                        format!(
                            "{} {}",
                            fmt_time(t),
                            a.acknowledged_by.as_deref().unwrap_or("")
                        )
                    })
                    .unwrap_or_default(),
            })
            .collect(),
        kinds: KINDS
            .iter()
            .map(|k| {
                (
                    k.as_str(),
                    counts.iter().filter(|c| c.kind == *k).map(|c| c.open).sum(),
                )
            })
            .collect(),
        kind: kind.map(|k| k.as_str().to_owned()).unwrap_or_default(),
        show_acked,
    })
}

#[derive(Deserialize)]
pub struct AckForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    back: Option<String>,
}

pub async fn ack(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<AckForm>,
) -> Result<Response, PageError> {
    viewer.may(Role::Operator, &f.csrf)?;
    let id: Uuid = id
        .parse()
        .map_err(|_| PageError::bad_request("id: 不是有效的预警编号 not an alert id"))?;
    let alert = state
        .store
        .ack_alert(id, &viewer.user)
        .await?
        .ok_or_else(|| PageError::not_found(format!("没有预警 no alert {id}")))?;
    super::record(
        &state,
        &viewer,
        "alert.ack",
        Some(id.to_string()),
        None,
        serde_json::json!({ "kind": alert.kind.as_str(), "party": alert.party }),
    )
    .await?;
    Ok(Redirect::to(&safe_back(f.back.as_deref(), "/ui/sla")).into_response())
}
