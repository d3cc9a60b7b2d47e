//! SLA clocks, alerts, the calendar and statistics.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use hotline_model::{EventBody, EventKind, Satisfaction};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::{ApiError, ErrorBody, ValidJson, ValidPath, ValidQuery};
use super::{AppState, OPS, TICKETS};
use crate::sla::ClockKind;
use crate::store::{Alert, AlertCount, AlertQuery, Clock, ClockState};

/// A ticket's SLA clocks: who must do what by when, and whether they did.
#[utoipa::path(get, path = "/api/v1/tickets/{id}/clocks", tag = TICKETS,
    params(("id" = Uuid, Path, description = "The gateway's ticket id")),
    responses((status = 200, body = Vec<Clock>), (status = 404, body = ErrorBody)))]
pub async fn clocks(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<Vec<Clock>>, ApiError> {
    if state.store.ticket(id).await?.is_none() {
        return Err(ApiError::not_found(format!("no ticket {id}")));
    }
    Ok(Json(state.store.clocks(id).await?))
}

/// Alerts for ops: due soon, overdue, repeat callers, missing calendars. Newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = OPS, params(AlertQuery),
    responses((status = 200, body = Vec<Alert>), (status = 400, body = ErrorBody)))]
pub async fn alerts(
    State(state): State<AppState>,
    ValidQuery(q): ValidQuery<AlertQuery>,
) -> Result<Json<Vec<Alert>>, ApiError> {
    Ok(Json(state.store.alerts(&q).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Acknowledge {
    /// Who acknowledges it.
    #[serde(default)]
    pub by: Option<String>,
}

/// Open alerts counted by kind, by the party that must act and by unit (涉及单位).
#[utoipa::path(get, path = "/api/v1/alerts/summary", tag = OPS,
    responses((status = 200, body = Vec<AlertCount>)))]
pub async fn alert_summary(
    State(state): State<AppState>,
) -> Result<Json<Vec<AlertCount>>, ApiError> {
    Ok(Json(state.store.open_alert_counts().await?))
}

/// Acknowledge an alert.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/ack", tag = OPS,
    params(("id" = Uuid, Path, description = "Alert id")), request_body = Acknowledge,
    responses((status = 200, body = Alert), (status = 404, body = ErrorBody)))]
pub async fn ack_alert(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(req): ValidJson<Acknowledge>,
) -> Result<Json<Alert>, ApiError> {
    let by = req.by.unwrap_or_else(|| "api".into());
    state
        .store
        .ack_alert(id, &by)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no alert {id}")))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarReloaded {
    /// The years now loaded.
    pub years: Vec<i32>,
    /// Provisional deadlines computed again.
    pub recomputed: usize,
}

/// Read the working-day calendar files again (e.g. after adding next year's notice) and
/// recompute every provisional deadline.
#[utoipa::path(post, path = "/api/v1/admin/calendar/reload", tag = OPS,
    responses((status = 200, body = CalendarReloaded), (status = 422, body = ErrorBody)))]
pub async fn reload_calendar(
    State(state): State<AppState>,
) -> Result<Json<CalendarReloaded>, ApiError> {
    let recomputed = state
        .sla
        .reload(state.store.as_ref())
        .await
        .map_err(|e| match e {
            crate::sla::ReloadError::Calendar(p) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_calendar",
                p.to_string(),
            ),
            crate::sla::ReloadError::Store(e) => e.into(),
        })?;
    Ok(Json(CalendarReloaded {
        years: state.sla.calendar().years().collect(),
        recomputed,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Start of the period (RFC 3339); default 30 days ago.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<DateTime<Utc>>,
    /// End of the period (RFC 3339, exclusive); default now.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<DateTime<Utc>>,
    /// Only this party (a partner id, or `12348`).
    pub partner: Option<String>,
    /// `csv` for a spreadsheet; JSON otherwise.
    pub format: Option<String>,
}

/// Figures for one party (a partner or 12348) over the period.
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct PartyStats {
    pub party: String,
    /// Tickets handed to the party.
    pub assigned: u64,
    /// Of those, replied (办结).
    pub replied: u64,
    /// 办结率: replied / assigned.
    pub completion_rate: Option<f64>,
    /// Replies in time / all replies.
    pub on_time_rate: Option<f64>,
    pub avg_hours_to_receipt: Option<f64>,
    pub avg_hours_to_reply: Option<f64>,
    /// Clocks of the party that went overdue.
    pub overdue: u64,
    /// Callbacks by satisfaction level.
    pub satisfaction: BTreeMap<String, u64>,
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| (a as f64 / b as f64 * 1000.0).round() / 1000.0)
}

fn hours(c: &Clock) -> Option<f64> {
    c.stopped_at
        .map(|s| (s - c.started_at).num_seconds() as f64 / 3600.0)
}

fn avg(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| (v.iter().sum::<f64>() / v.len() as f64 * 100.0).round() / 100.0)
}

fn satisfaction_name(s: Satisfaction) -> &'static str {
    match s {
        Satisfaction::VerySatisfied => "very_satisfied",
        Satisfaction::Satisfied => "satisfied",
        Satisfaction::BasicallySatisfied => "basically_satisfied",
        Satisfaction::Unsatisfied => "unsatisfied",
        Satisfaction::VeryUnsatisfied => "very_unsatisfied",
    }
}

/// Per-partner and per-unit figures for the weekly and monthly reports: 办结率, on-time rate,
/// time to receipt and to reply, satisfaction, overdue. `?format=csv` for a spreadsheet.
#[utoipa::path(get, path = "/api/v1/stats", tag = OPS, params(StatsQuery),
    responses((status = 200, body = Vec<PartyStats>), (status = 400, body = ErrorBody)))]
pub async fn stats(
    State(state): State<AppState>,
    ValidQuery(q): ValidQuery<StatsQuery>,
) -> Result<Response, ApiError> {
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(to - chrono::Duration::days(30));
    if from >= to {
        return Err(ApiError::invalid(vec![hotline_model::FieldError::new(
            "from",
            "must be before `to`",
        )]));
    }
    let clocks = state.store.clocks_started(from, to).await?;
    let mut by: BTreeMap<String, PartyStats> = BTreeMap::new();
    let mut receipts: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut replies: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut on_time: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for c in &clocks {
        let s = by.entry(c.party.clone()).or_insert_with(|| PartyStats {
            party: c.party.clone(),
            ..Default::default()
        });
        if c.overdue_at.is_some() || c.state == ClockState::Missed {
            s.overdue += 1;
        }
        let done = matches!(c.state, ClockState::Met | ClockState::Missed);
        match c.kind {
            ClockKind::Reply => {
                s.assigned += 1;
                if done {
                    s.replied += 1;
                    replies.entry(c.party.clone()).or_default().extend(hours(c));
                    let t = on_time.entry(c.party.clone()).or_default();
                    t.0 += u64::from(c.state == ClockState::Met);
                    t.1 += 1;
                }
            }
            ClockKind::Receipt if done => receipts
                .entry(c.party.clone())
                .or_default()
                .extend(hours(c)),
            _ => {}
        }
    }
    for event in state
        .store
        .events_between(EventKind::Callback, from, to)
        .await?
    {
        let EventBody::Callback { satisfaction, .. } = event.body else {
            continue;
        };
        let handler = state
            .store
            .clocks(event.ticket_id)
            .await?
            .into_iter()
            .rev()
            .find(|c| c.kind == ClockKind::Reply)
            .map(|c| c.party);
        if let Some(party) = handler {
            let s = by.entry(party.clone()).or_insert_with(|| PartyStats {
                party,
                ..Default::default()
            });
            *s.satisfaction
                .entry(satisfaction_name(satisfaction).to_owned())
                .or_default() += 1;
        }
    }
    let mut rows: Vec<PartyStats> = by
        .into_values()
        .filter(|s| q.partner.as_deref().is_none_or(|p| p == s.party))
        .map(|mut s| {
            s.completion_rate = ratio(s.replied, s.assigned);
            s.on_time_rate = on_time.get(&s.party).and_then(|(a, b)| ratio(*a, *b));
            s.avg_hours_to_receipt = receipts.get(&s.party).and_then(|v| avg(v));
            s.avg_hours_to_reply = replies.get(&s.party).and_then(|v| avg(v));
            s
        })
        .collect();
    rows.sort_by(|a, b| a.party.cmp(&b.party));
    if q.format.as_deref() == Some("csv") {
        let levels = [
            "very_satisfied",
            "satisfied",
            "basically_satisfied",
            "unsatisfied",
            "very_unsatisfied",
        ];
        let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        let mut csv = String::from(
            "party,assigned,replied,completion_rate,on_time_rate,avg_hours_to_receipt,avg_hours_to_reply,overdue,",
        );
        csv.push_str(&levels.join(","));
        csv.push('\n');
        for r in &rows {
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{}",
                r.party,
                r.assigned,
                r.replied,
                opt(r.completion_rate),
                opt(r.on_time_rate),
                opt(r.avg_hours_to_receipt),
                opt(r.avg_hours_to_reply),
                r.overdue
            ));
            for l in levels {
                csv.push_str(&format!(",{}", r.satisfaction.get(l).copied().unwrap_or(0)));
            }
            csv.push('\n');
        }
        let name = format!(
            "attachment; filename=\"hotline-stats-{}-{}.csv\"",
            from.format("%Y%m%d"),
            to.format("%Y%m%d")
        );
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, name),
            ],
            csv,
        )
            .into_response());
    }
    Ok(Json(rows).into_response())
}

/// Figures for one handling unit (承办单位), as named in replies.
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct UnitStats {
    pub unit: String,
    /// The system the unit answered through.
    pub partner: String,
    pub replied: u64,
    /// Callbacks on its replies, by satisfaction level.
    pub satisfaction: BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<DateTime<Utc>>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<DateTime<Utc>>,
}

/// Per handling unit: replies and satisfaction over the period (default the last 30 days).
#[utoipa::path(get, path = "/api/v1/stats/units", tag = OPS, params(PeriodQuery),
    responses((status = 200, body = Vec<UnitStats>), (status = 400, body = ErrorBody)))]
pub async fn unit_stats(
    State(state): State<AppState>,
    ValidQuery(q): ValidQuery<PeriodQuery>,
) -> Result<Json<Vec<UnitStats>>, ApiError> {
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(to - chrono::Duration::days(30));
    let mut units: BTreeMap<(String, String), UnitStats> = BTreeMap::new();
    let mut unit_of = BTreeMap::new();
    for e in state
        .store
        .events_between(EventKind::Reply, from, to)
        .await?
    {
        let EventBody::Reply {
            unit: Some(unit), ..
        } = &e.body
        else {
            continue;
        };
        let key = (unit.clone(), e.source.clone());
        units
            .entry(key.clone())
            .or_insert_with(|| UnitStats {
                unit: unit.clone(),
                partner: e.source.clone(),
                ..Default::default()
            })
            .replied += 1;
        unit_of.insert(e.ticket_id, key);
    }
    for e in state
        .store
        .events_between(EventKind::Callback, from, to)
        .await?
    {
        let EventBody::Callback { satisfaction, .. } = e.body else {
            continue;
        };
        if let Some(s) = unit_of.get(&e.ticket_id).and_then(|k| units.get_mut(k)) {
            *s.satisfaction
                .entry(satisfaction_name(satisfaction).to_owned())
                .or_default() += 1;
        }
    }
    Ok(Json(units.into_values().collect()))
}
