use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::Utc;

use super::{AppState, OPS};
use crate::store::DeliveryStatus;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = OPS, responses((status = 200, body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = OPS,
    responses((status = 200, body = String), (status = 503, body = String)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready".to_owned()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")),
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = OPS, responses((status = 200, body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.delivery_counts().await {
        Ok(counts) => {
            let now = Utc::now();
            for partner in state.engine.partner_ids() {
                for status in DeliveryStatus::ALL {
                    let n = counts
                        .iter()
                        .find(|c| c.partner == partner && c.status == status)
                        .map_or(0, |c| c.count);
                    metrics::gauge!("hotline_deliveries", "partner" => partner.to_owned(), "status" => status.as_str())
                        .set(n as f64);
                }
                let oldest = counts
                    .iter()
                    .filter(|c| {
                        c.partner == partner
                            && matches!(
                                c.status,
                                DeliveryStatus::Pending | DeliveryStatus::Retrying
                            )
                    })
                    .filter_map(|c| c.oldest)
                    .min();
                let age = oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1e3);
                metrics::gauge!("hotline_oldest_pending_age_seconds", "partner" => partner.to_owned())
                    .set(age);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read queue depths for /metrics"),
    }
    for partner in state.engine.partner_ids() {
        let paused = state
            .engine
            .partner(partner)
            .is_some_and(|p| p.paused().is_some());
        metrics::gauge!("hotline_partner_paused", "partner" => partner.to_owned()).set(if paused {
            1.0
        } else {
            0.0
        });
    }
    match state.store.open_alert_counts().await {
        Ok(counts) => {
            for kind in crate::store::AlertKind::ALL {
                let n: u64 = counts
                    .iter()
                    .filter(|c| c.kind == kind)
                    .map(|c| c.open)
                    .sum();
                metrics::gauge!("hotline_alerts_open", "kind" => kind.as_str()).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not count open alerts for /metrics"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Read the TLS files again: the server's certificate, key and client CA, and each partner's
/// outbound CA and client certificate (certificate rotation without a restart; `kill -HUP` does
/// the same). New connections use them; open ones keep theirs. A part that cannot be read keeps
/// its current configuration and is named in the 422 answer.
#[utoipa::path(post, path = "/api/v1/admin/tls/reload", tag = OPS,
    responses((status = 204), (status = 409, body = super::error::ErrorBody),
              (status = 422, body = super::error::ErrorBody)))]
pub async fn reload_tls(
    State(state): State<AppState>,
) -> Result<StatusCode, super::error::ApiError> {
    let done = crate::app::reload_tls(state.tls.as_deref(), &state.engine);
    if !done.failed.is_empty() {
        return Err(super::error::ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_tls",
            format!(
                "{}; the current configuration stays for these",
                done.failed.join("; ")
            ),
        ));
    }
    if done.reloaded.is_empty() {
        return Err(super::error::ApiError::new(
            StatusCode::CONFLICT,
            "no_tls",
            "neither the server nor any partner has TLS settings; there is nothing to reload",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}
