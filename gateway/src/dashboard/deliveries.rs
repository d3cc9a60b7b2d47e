//! Deliveries and dead letters: filter, page through, retry one.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use hotline_model::EventKind;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::Viewer;
use super::config::Role;
use super::page::{Chrome, PageError, beijing, filled, fmt_time, render, safe_back};
use crate::api::AppState;
use crate::store::{Delivery, DeliveryQuery, DeliveryStatus, RetryResult};

/// Rows per page.
const PAGE: u32 = 50;

/// The filter form, as the query string carries it: empty fields mean "any".
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Filter {
    #[serde(default, skip_serializing_if = "is_blank")]
    pub partner: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    pub status: Option<String>,
    /// Any system's ticket number, or the gateway's ticket id.
    #[serde(default, skip_serializing_if = "is_blank")]
    pub number: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "is_blank")]
    pub message_type: Option<String>,
    /// `datetime-local` values, Beijing time.
    #[serde(default, skip_serializing_if = "is_blank")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    pub until: Option<String>,
    #[serde(default, skip_serializing)]
    pub after: Option<String>,
}

fn is_blank(v: &Option<String>) -> bool {
    filled(v).is_none()
}

fn local_time(field: &str, v: &str) -> Result<DateTime<Utc>, PageError> {
    NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S"))
        .ok()
        .and_then(|t| beijing().from_local_datetime(&t).single())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            PageError::bad_request(format!(
                "{field}: `{v}` 不是有效时间 is not a time like 2026-11-24T09:30"
            ))
        })
}

impl Filter {
    /// The store query, or a 400 naming the field that does not parse.
    pub fn query(&self, state: &AppState) -> Result<DeliveryQuery, PageError> {
        let partner = filled(&self.partner).map(str::to_owned);
        if let Some(p) = &partner
            && state.engine.partner(p).is_none()
        {
            return Err(PageError::bad_request(format!(
                "partner: 没有合作方 no partner `{p}`"
            )));
        }
        let status = filled(&self.status)
            .map(|s| {
                DeliveryStatus::parse(s).ok_or_else(|| {
                    PageError::bad_request(format!("status: 未知状态 unknown status `{s}`"))
                })
            })
            .transpose()?;
        let message_type = filled(&self.message_type)
            .map(|s| {
                s.parse::<EventKind>()
                    .map_err(|e| PageError::bad_request(format!("type: {e}")))
            })
            .transpose()?;
        let after = filled(&self.after)
            .map(|s| {
                s.parse::<Uuid>()
                    .map_err(|_| PageError::bad_request("after: 不是有效编号 not a delivery id"))
            })
            .transpose()?;
        Ok(DeliveryQuery {
            status,
            partner,
            ticket_id: None,
            number: filled(&self.number).map(str::to_owned),
            message_type,
            since: filled(&self.since)
                .map(|v| local_time("since", v))
                .transpose()?,
            until: filled(&self.until)
                .map(|v| local_time("until", v))
                .transpose()?,
            after,
            limit: Some(PAGE),
        })
    }

    /// The filter as a query string (without the page position).
    pub fn query_string(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }

    fn value(v: &Option<String>) -> String {
        filled(v).unwrap_or_default().to_owned()
    }
}

/// What the filter form shows.
pub struct FilterView {
    pub partner: String,
    pub status: String,
    pub number: String,
    pub message_type: String,
    pub since: String,
    pub until: String,
    pub partners: Vec<String>,
    pub statuses: Vec<&'static str>,
    pub types: Vec<&'static str>,
    pub show_status: bool,
}

impl FilterView {
    pub fn new(f: &Filter, state: &AppState, show_status: bool) -> Self {
        Self {
            partner: Filter::value(&f.partner),
            status: Filter::value(&f.status),
            number: Filter::value(&f.number),
            message_type: Filter::value(&f.message_type),
            since: Filter::value(&f.since),
            until: Filter::value(&f.until),
            partners: state.engine.partner_ids().map(str::to_owned).collect(),
            statuses: DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect(),
            types: EventKind::ALL.iter().map(|k| k.as_str()).collect(),
            show_status,
        }
    }
}

/// A delivery as a table row.
pub struct Row {
    pub id: String,
    pub ticket_id: String,
    pub partner: String,
    pub message_type: &'static str,
    pub status: &'static str,
    pub attempts: u32,
    pub created: String,
    pub updated: String,
    pub partner_ref: String,
    pub last_error: String,
}

impl From<&Delivery> for Row {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id.to_string(),
            ticket_id: d.ticket_id.to_string(),
            partner: d.partner.clone(),
            message_type: d.message_type.as_str(),
            status: d.status.as_str(),
            attempts: d.attempts,
            created: fmt_time(d.created_at),
            updated: fmt_time(d.updated_at),
            partner_ref: d.partner_ref.clone().unwrap_or_default(),
            last_error: d.last_error.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "deliveries.html")]
struct DeliveriesPage {
    chrome: Chrome,
    filter: FilterView,
    rows: Vec<Row>,
    total: u64,
    next: Option<String>,
    /// Where retry forms come back to.
    back: String,
    dead_page: bool,
    replay_link: String,
}

async fn listing(
    state: &AppState,
    viewer: &Viewer,
    mut filter: Filter,
    dead_page: bool,
    uri: &axum::http::Uri,
) -> Result<Response, PageError> {
    if dead_page {
        filter.status = Some("dead".into());
    }
    let q = filter.query(state)?;
    let deliveries = state.store.deliveries(&q).await?;
    let total = state.store.count_deliveries(&q).await?;
    let next = (deliveries.len() as u32 == PAGE)
        .then(|| deliveries.last())
        .flatten()
        .map(|d| {
            let qs = filter.query_string();
            format!(
                "?{qs}{}after={}",
                if qs.is_empty() { "" } else { "&" },
                d.id
            )
        });
    let (title, active) = if dead_page {
        ("死信 Dead letters", "dead")
    } else {
        ("投递 Deliveries", "deliveries")
    };
    let mut replay = filter.clone();
    replay.status = None;
    render(&DeliveriesPage {
        chrome: Chrome::new(viewer, title, active),
        filter: FilterView::new(&filter, state, !dead_page),
        rows: deliveries.iter().map(Row::from).collect(),
        total,
        next,
        back: uri
            .path_and_query()
            .map_or_else(|| "/ui/dead".into(), |p| p.as_str().to_owned()),
        dead_page,
        replay_link: format!("/ui/dead/replay?{}", replay.query_string()),
    })
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: axum::http::Uri,
    Query(filter): Query<Filter>,
) -> Result<Response, PageError> {
    listing(&state, &viewer, filter, false, &uri).await
}

pub async fn dead(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: axum::http::Uri,
    Query(filter): Query<Filter>,
) -> Result<Response, PageError> {
    listing(&state, &viewer, filter, true, &uri).await
}

#[derive(Deserialize)]
pub struct RetryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    back: Option<String>,
}

pub async fn retry(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<RetryForm>,
) -> Result<Response, PageError> {
    viewer.may(Role::Operator, &f.csrf)?;
    let id: Uuid = id
        .parse()
        .map_err(|_| PageError::bad_request("id: 不是有效的投递编号 not a delivery id"))?;
    let reason = super::optional_reason(&f.reason);
    match state.engine.requeue_dead(id).await? {
        RetryResult::Requeued(d) => {
            tracing::info!(delivery = %id, partner = %d.partner, by = %viewer.user, "dead letter queued again from the dashboard");
            super::record(
                &state,
                &viewer,
                "delivery.retry",
                Some(id.to_string()),
                reason,
                serde_json::json!({ "partner": d.partner, "ticket_id": d.ticket_id }),
            )
            .await?;
            Ok(Redirect::to(&safe_back(f.back.as_deref(), "/ui/dead")).into_response())
        }
        RetryResult::NotDead(status) => Err(PageError::new(
            axum::http::StatusCode::CONFLICT,
            format!(
                "投递 {id} 当前为 {}，只有死信可以重投 / delivery {id} is {}; only dead letters can be retried",
                status.as_str(),
                status.as_str()
            ),
        )),
        RetryResult::NotFound => Err(PageError::not_found(format!("没有投递 no delivery {id}"))),
    }
}
