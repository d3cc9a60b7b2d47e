use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use uuid::Uuid;

use super::error::{ApiError, ErrorBody, ValidPath, ValidQuery};
use super::{AppState, DELIVERIES};
use crate::store::{Delivery, DeliveryQuery, RetryResult};

/// List deliveries, e.g. the dead letters: `?status=dead`.
#[utoipa::path(get, path = "/api/v1/deliveries", tag = DELIVERIES, params(DeliveryQuery),
    responses((status = 200, body = Vec<Delivery>), (status = 400, body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    ValidQuery(q): ValidQuery<DeliveryQuery>,
) -> Result<Json<Vec<Delivery>>, ApiError> {
    Ok(Json(state.store.deliveries(&q).await?))
}

/// One delivery.
#[utoipa::path(get, path = "/api/v1/deliveries/{id}", tag = DELIVERIES,
    params(("id" = Uuid, Path, description = "Delivery id")),
    responses((status = 200, body = Delivery), (status = 404, body = ErrorBody)))]
pub async fn get_delivery(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<Delivery>, ApiError> {
    state
        .store
        .delivery(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no delivery {id}")))
}

/// Put a dead delivery back in the queue with a fresh retry budget.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/retry", tag = DELIVERIES,
    params(("id" = Uuid, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "Queued again", body = Delivery),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not dead", body = ErrorBody),
    ))]
pub async fn retry_delivery(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    match state.engine.requeue_dead(id).await? {
        RetryResult::Requeued(d) => {
            tracing::info!(delivery = %id, partner = %d.partner, "dead letter queued again");
            Ok((StatusCode::ACCEPTED, Json(d)))
        }
        RetryResult::NotDead(status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_dead",
            format!(
                "delivery {id} is {}; only dead deliveries can be retried",
                status.as_str()
            ),
        )),
        RetryResult::NotFound => Err(ApiError::not_found(format!("no delivery {id}"))),
    }
}
