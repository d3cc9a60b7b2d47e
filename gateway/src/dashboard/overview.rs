//! The overview: one tile per partner (health, pause, circuit, throughput, queue, latency, last
//! error) and the last hour's charts, pushed to the browser over SSE.

use std::convert::Infallible;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::Serialize;

use super::auth::Viewer;
use super::page::{Chrome, PageError, fmt_age, fmt_ms, fmt_time, render};
use crate::api::AppState;
use crate::delivery::breaker::CircuitState;
use crate::store::{DeliveryStatus, StatusCount};

/// A partner's tile, with its figures ready to show.
#[derive(Debug, Clone, Serialize)]
pub struct Tile {
    pub id: String,
    /// `up`, `degraded`, `down` or `paused`: the tile's colour.
    pub health: &'static str,
    pub health_label: &'static str,
    pub paused: bool,
    pub circuit: &'static str,
    pub delivered_5m: u64,
    pub delivered_1h: u64,
    pub failed_5m: u64,
    pub pending: u64,
    pub awaiting_ack: u64,
    pub retrying: u64,
    pub dead: u64,
    pub oldest_pending: String,
    pub ack_p50: String,
    pub ack_p95: String,
    pub last_error: String,
    pub last_error_at: String,
}

/// One partner's line on the charts.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub id: String,
    pub delivered: Vec<u32>,
    pub p95_ms: Vec<Option<f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub at: String,
    pub tiles: Vec<Tile>,
    /// Start of each minute on the charts, Unix milliseconds.
    pub minutes: Vec<i64>,
    pub series: Vec<Series>,
    pub alerts_open: u64,
}

/// Oldest waiting delivery this old or older makes a partner `degraded`.
const STALE_SECS: f64 = 300.0;

fn count(counts: &[StatusCount], partner: &str, status: DeliveryStatus) -> u64 {
    counts
        .iter()
        .filter(|c| c.partner == partner && c.status == status)
        .map(|c| c.count)
        .sum()
}

/// The figures as of `now`.
pub async fn snapshot(state: &AppState, now: DateTime<Utc>) -> Result<Snapshot, PageError> {
    let counts = state.store.delivery_counts().await?;
    let alerts_open = state
        .store
        .open_alert_counts()
        .await?
        .iter()
        .map(|c| c.open)
        .sum();
    let mut tiles = Vec::new();
    let mut series = Vec::new();
    let mut minutes = Vec::new();
    for id in state.engine.partner_ids() {
        let Some(p) = state.engine.partner(id) else {
            continue;
        };
        let recent = p.recent.view(now);
        let circuit = p.breaker.view().state;
        let paused = p.paused().is_some();
        let oldest = counts
            .iter()
            .filter(|c| {
                c.partner == id
                    && matches!(
                        c.status,
                        DeliveryStatus::Pending
                            | DeliveryStatus::Sending
                            | DeliveryStatus::Retrying
                    )
            })
            .filter_map(|c| c.oldest)
            .min()
            .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1e3);
        let (health, health_label) = if paused {
            ("paused", "已暂停 paused")
        } else if circuit == CircuitState::Open {
            ("down", "故障 down")
        } else if circuit == CircuitState::HalfOpen
            || recent.last_5m.failed + recent.last_5m.dead > 0
            || oldest.is_some_and(|s| s >= STALE_SECS)
        {
            ("degraded", "降级 degraded")
        } else {
            ("up", "正常 up")
        };
        let last_error = recent.errors.first();
        tiles.push(Tile {
            id: id.to_owned(),
            health,
            health_label,
            paused,
            circuit: match circuit {
                CircuitState::Closed => "闭合 closed",
                CircuitState::Open => "断开 open",
                CircuitState::HalfOpen => "探测 half-open",
            },
            delivered_5m: recent.last_5m.delivered,
            delivered_1h: recent.last_hour.delivered,
            failed_5m: recent.last_5m.failed + recent.last_5m.dead,
            pending: count(&counts, id, DeliveryStatus::Pending)
                + count(&counts, id, DeliveryStatus::Sending),
            awaiting_ack: count(&counts, id, DeliveryStatus::AwaitingAck),
            retrying: count(&counts, id, DeliveryStatus::Retrying),
            dead: count(&counts, id, DeliveryStatus::Dead),
            oldest_pending: oldest.map_or_else(|| "–".into(), fmt_age),
            ack_p50: fmt_ms(recent.ack_p50_ms),
            ack_p95: fmt_ms(recent.ack_p95_ms),
            last_error: last_error.map(|e| e.text.clone()).unwrap_or_default(),
            last_error_at: last_error.map(|e| fmt_time(e.at)).unwrap_or_default(),
        });
        if minutes.is_empty() {
            minutes = recent.series.iter().map(|m| m.at_ms).collect();
        }
        series.push(Series {
            id: id.to_owned(),
            delivered: recent.series.iter().map(|m| m.delivered).collect(),
            p95_ms: recent.series.iter().map(|m| m.p95_ms).collect(),
        });
    }
    Ok(Snapshot {
        at: fmt_time(now),
        tiles,
        minutes,
        series,
        alerts_open,
    })
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    snap: Snapshot,
}

pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let snap = snapshot(&state, Utc::now()).await?;
    render(&OverviewPage {
        chrome: Chrome::new(&viewer, "总览 Overview", "overview"),
        snap,
    })
}

/// The overview's figures every `live_interval`, as `overview` events.
pub async fn live(
    State(state): State<AppState>,
    _viewer: Viewer,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let every = state.dashboard.auth.config().live_interval;
    let ticks = tokio::time::interval(every);
    let stream = futures::stream::unfold((state, ticks), |(state, mut ticks)| async move {
        ticks.tick().await;
        let event = match snapshot(&state, Utc::now()).await {
            Ok(snap) => Event::default()
                .event("overview")
                .json_data(&snap)
                .unwrap_or_else(|e| Event::default().event("problem").data(e.to_string())),
            Err(e) => Event::default().event("problem").data(e.message),
        };
        Some((Ok(event), (state, ticks)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
