//! Three-way call transfers for the 12348 CTI and agent desktop.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::{ApiError, ErrorBody, ValidJson, ValidPath, ValidQuery};
use super::{AppState, TRANSFERS};
use crate::transfer::machine::TransferState;
use crate::transfer::record::{Direction, Transfer, TransferEntry, TransferQuery};
use crate::transfer::{EventResult, ReportEvent, StartTransfer, TransferError};

impl From<TransferError> for ApiError {
    fn from(e: TransferError) -> Self {
        match e {
            TransferError::Invalid(errors) => Self::invalid(errors),
            TransferError::NotFound(id) => Self::not_found(format!("no transfer {id}")),
            TransferError::Rejected { reason, transfer } => Self::new(
                StatusCode::CONFLICT,
                "transfer_state",
                format!("transfer {} is {}: {reason}", transfer.id, transfer.state),
            ),
            TransferError::Store(e) => e.into(),
        }
    }
}

/// Bring a partner onto the call (三方通话).
///
/// Offers the caller to the partner's CTI with the summary, and answers as soon as the partner
/// does (at most `transfers.answer_timeout`): `granted` with where to dial and the one-time
/// token, or `refused` with the reason and the ticket filed instead (`fallback_ticket_id`).
/// Outside the partner's business hours the call is not tried and the ticket is filed at once.
#[utoipa::path(post, path = "/api/v1/transfers", tag = TRANSFERS, request_body = StartTransfer,
    responses(
        (status = 201, description = "Answered: granted, or refused with a fallback ticket", body = Transfer),
        (status = 400, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "A field is missing or wrong", body = ErrorBody),
    ))]
pub async fn start_transfer(
    State(state): State<AppState>,
    ValidJson(req): ValidJson<StartTransfer>,
) -> Result<(StatusCode, Json<Transfer>), ApiError> {
    Ok((StatusCode::CREATED, Json(state.transfers.start(req).await?)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub partner: Option<String>,
    #[param(value_type = Option<String>)]
    pub state: Option<TransferState>,
    #[param(value_type = Option<String>)]
    pub direction: Option<Direction>,
    /// Only transfers requested since (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<DateTime<Utc>>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// Transfers, newest first.
#[utoipa::path(get, path = "/api/v1/transfers", tag = TRANSFERS, params(ListQuery),
    responses((status = 200, body = Vec<Transfer>), (status = 400, body = ErrorBody)))]
pub async fn list_transfers(
    State(state): State<AppState>,
    ValidQuery(q): ValidQuery<ListQuery>,
) -> Result<Json<Vec<Transfer>>, ApiError> {
    Ok(Json(
        state
            .store
            .transfers(&TransferQuery {
                partner: q.partner,
                state: q.state,
                direction: q.direction,
                since: q.since,
                limit: q.limit,
            })
            .await?,
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransferDetail {
    pub transfer: Transfer,
    /// Everything that happened to it, oldest first, with late and rejected events.
    pub log: Vec<TransferEntry>,
}

/// One transfer with its log.
#[utoipa::path(get, path = "/api/v1/transfers/{id}", tag = TRANSFERS,
    params(("id" = Uuid, Path, description = "The gateway's transfer id")),
    responses((status = 200, body = TransferDetail), (status = 404, body = ErrorBody)))]
pub async fn get_transfer(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<TransferDetail>, ApiError> {
    let transfer = state
        .store
        .transfer(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no transfer {id}")))?;
    let log = state.store.transfer_entries(id).await?;
    Ok(Json(TransferDetail { transfer, log }))
}

/// Report how the call goes: ringing, connected, originator_left, completed, failed.
///
/// Events may arrive out of order: one the transfer is already past (ringing after connected)
/// is recorded as `late` and changes nothing. An impossible one (completed after failed) is
/// recorded and answered 409. A repeated `event_id` is answered as before. `failed` files the
/// ticket at once; its id is in the answer.
#[utoipa::path(post, path = "/api/v1/transfers/{id}/events", tag = TRANSFERS,
    params(("id" = Uuid, Path, description = "The gateway's transfer id")),
    request_body = ReportEvent,
    responses(
        (status = 200, body = EventResult),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Impossible in the transfer's state; recorded", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn report_event(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(ev): ValidJson<ReportEvent>,
) -> Result<Json<EventResult>, ApiError> {
    Ok(Json(state.transfers.report(id, ev).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// The last this many hours (default 24, at most 720).
    pub hours: Option<u32>,
}

/// Figures for one partner and direction.
#[derive(Debug, Default, Clone, PartialEq, Serialize, ToSchema)]
pub struct TransferStats {
    pub partner: String,
    #[schema(value_type = String)]
    pub direction: String,
    pub requested: u64,
    pub granted: u64,
    pub refused: u64,
    pub connected: u64,
    pub completed: u64,
    pub failed: u64,
    pub expired: u64,
    /// Still under way.
    pub live: u64,
    /// Tickets filed because the transfer did not happen.
    pub fallbacks: u64,
    /// Completed of those that ended.
    pub success_rate: Option<f64>,
    /// Median time from the request to the grant.
    pub grant_ms_p50: Option<i64>,
    /// Median time from the grant to the three-way connection.
    pub connect_ms_p50: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransferStatsReport {
    #[schema(value_type = String, format = DateTime)]
    pub since: DateTime<Utc>,
    pub partners: Vec<TransferStats>,
    /// Transfers looked at (at most 1000, the newest).
    pub counted: usize,
}

fn median(mut v: Vec<i64>) -> Option<i64> {
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// Counts transfers by partner and direction.
pub fn tally(transfers: &[Transfer]) -> Vec<TransferStats> {
    let mut groups: BTreeMap<(String, Direction), Vec<&Transfer>> = BTreeMap::new();
    for t in transfers {
        groups
            .entry((t.partner.clone(), t.direction))
            .or_default()
            .push(t);
    }
    groups
        .into_iter()
        .map(|((partner, direction), ts)| {
            let count = |f: &dyn Fn(&Transfer) -> bool| ts.iter().filter(|t| f(t)).count() as u64;
            let completed = count(&|t| t.state == TransferState::Completed);
            let ended = count(&|t| t.state.is_terminal());
            TransferStats {
                partner,
                direction: direction.as_str().to_owned(),
                requested: ts.len() as u64,
                granted: count(&|t| t.grant.is_some()),
                refused: count(&|t| t.state == TransferState::Refused),
                connected: count(&|t| t.connected_at.is_some()),
                completed,
                failed: count(&|t| t.state == TransferState::Failed),
                expired: count(&|t| t.state == TransferState::Expired),
                live: ts.len() as u64 - ended,
                fallbacks: count(&|t| t.fallback_ticket_id.is_some()),
                success_rate: (ended > 0).then(|| completed as f64 / ended as f64),
                grant_ms_p50: median(
                    ts.iter()
                        .filter(|t| t.grant.is_some())
                        .filter_map(|t| {
                            t.answered_at
                                .map(|a| (a - t.requested_at).num_milliseconds())
                        })
                        .collect(),
                ),
                connect_ms_p50: median(
                    ts.iter()
                        .filter_map(|t| Some((t.connected_at? - t.answered_at?).num_milliseconds()))
                        .collect(),
                ),
            }
        })
        .collect()
}

/// Transfers per partner and direction: success rate, time to grant and to connect, fallbacks.
#[utoipa::path(get, path = "/api/v1/stats/transfers", tag = TRANSFERS, params(StatsQuery),
    responses((status = 200, body = TransferStatsReport), (status = 400, body = ErrorBody)))]
pub async fn transfer_stats(
    State(state): State<AppState>,
    ValidQuery(q): ValidQuery<StatsQuery>,
) -> Result<Json<TransferStatsReport>, ApiError> {
    let hours = q.hours.unwrap_or(24).clamp(1, 720);
    let since = Utc::now() - Duration::hours(i64::from(hours));
    let transfers = state
        .store
        .transfers(&TransferQuery {
            since: Some(since),
            limit: Some(1000),
            ..TransferQuery::default()
        })
        .await?;
    Ok(Json(TransferStatsReport {
        since,
        partners: tally(&transfers),
        counted: transfers.len(),
    }))
}
