//! The transfers board: the last day's figures per partner and the latest transfers.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use chrono::{Duration, Utc};

use super::auth::Viewer;
use super::page::{Chrome, PageError, fmt_opt_time, fmt_time, render};
use crate::api::AppState;
use crate::api::transfers::{TransferStats, tally};
use crate::store::TransferQuery;

struct TransferRow {
    requested: String,
    direction: &'static str,
    partner: String,
    state: &'static str,
    call_id: String,
    reason: String,
    connected: String,
    ended: String,
    fallback: String,
}

#[derive(Template)]
#[template(path = "transfers.html")]
struct TransfersPage {
    chrome: Chrome,
    stats: Vec<TransferStats>,
    rows: Vec<TransferRow>,
}

pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let day = state
        .store
        .transfers(&TransferQuery {
            since: Some(Utc::now() - Duration::hours(24)),
            limit: Some(1000),
            ..TransferQuery::default()
        })
        .await?;
    let rows = day
        .iter()
        .take(100)
        .map(|t| TransferRow {
            requested: fmt_time(t.requested_at),
            direction: t.direction.as_str(),
            partner: t.partner.clone(),
            state: t.state.as_str(),
            call_id: t.call_id.clone(),
            reason: t
                .reason
                .map(|r| r.as_str().to_owned())
                .into_iter()
                .chain(t.detail.clone())
                .collect::<Vec<_>>()
                .join(" · "),
            connected: fmt_opt_time(t.connected_at),
            ended: fmt_opt_time(t.ended_at),
            fallback: t
                .fallback_ticket_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
        })
        .collect();
    render(&TransfersPage {
        chrome: Chrome::new(&viewer, "三方通话 Transfers", "transfers"),
        stats: tally(&day),
        rows,
    })
}
