//! Partner ingress, `/partners/{partner}/…`: the adapter decodes and answers in the partner's
//! dialect; intake stores.

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hotline_adapters::{Inbound, InboundRequest, IngressError, WireResponse};

use super::AppState;
use super::error::ApiError;
use crate::store::Nonce;

pub async fn partner_ingress(
    State(state): State<AppState>,
    peer: Option<axum::Extension<crate::serve::PeerIdentity>>,
    Path((partner, rest)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(p) = state.engine.partner(&partner) else {
        return ApiError::not_found(format!("no partner `{partner}`")).into_response();
    };
    let adapter = &p.adapter;
    // A partner bound to a certificate name must present a certificate carrying it.
    if let Some(expected) = &p.tls_identity {
        let identity = peer.map(|axum::Extension(i)| i).unwrap_or_default();
        if !identity.names(expected) {
            let (status, reason) = if identity.0.is_empty() {
                (
                    StatusCode::UNAUTHORIZED,
                    "a client certificate is required for this partner".to_owned(),
                )
            } else {
                (
                    StatusCode::FORBIDDEN,
                    format!(
                        "the client certificate ({}) is not this partner's",
                        identity.0.join(", ")
                    ),
                )
            };
            let err = IngressError {
                status,
                code: "unauthenticated",
                field: None,
                reason,
            };
            return into_response(reject(adapter.as_ref(), &partner, &err));
        }
    }
    if let Err(wait) = p.admit() {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let err = IngressError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            field: None,
            reason: format!("too many requests; try again in {secs} s"),
        };
        let mut resp = into_response(reject(adapter.as_ref(), &partner, &err));
        if let Ok(v) = axum::http::HeaderValue::try_from(secs.to_string()) {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        return resp;
    }
    // Even a body too large to read is refused in the partner's own dialect.
    let body = match body {
        Ok(b) => b,
        Err(r) => {
            let err = IngressError {
                status: r.status(),
                ..IngressError::malformed(None, r.body_text())
            };
            return into_response(reject(adapter.as_ref(), &partner, &err));
        }
    };
    let req = InboundRequest {
        method,
        path: rest,
        headers,
        body,
    };
    into_response(handle(&state, &partner, adapter.as_ref(), &req, true).await)
}

/// One partner message, whatever carried it (HTTP ingress or the partner's bus): checks the
/// signature, refuses a replayed nonce (`guard_replay`), stores it, and answers in the
/// partner's dialect. A bus hands a message out again when it was not acknowledged; that is
/// no replay, and intake takes it as the duplicate it is.
pub async fn handle(
    state: &AppState,
    partner: &str,
    adapter: &dyn hotline_adapters::Adapter,
    req: &InboundRequest,
    guard_replay: bool,
) -> WireResponse {
    let decoded = adapter.decode(req);
    // A correctly signed request whose nonce came before is a replay: remembered here, before
    // the message is handled, unless a new ticket's accept takes it (`nonce_first`).
    let nonce = match &decoded {
        Ok(inbound) if guard_replay => {
            let nonce = adapter
                .replay_guard(req)
                .map(|(value, keep)| Nonce::new(partner, value, chrono::Utc::now(), keep));
            match state.intake.nonce_first(inbound, nonce).await {
                Ok(nonce) => nonce,
                Err(e) => return reject(adapter, partner, &e),
            }
        }
        _ => None,
    };
    match decoded {
        Ok(Inbound::Transfer { offer, .. }) => {
            match state.transfers.offered(partner, *offer).await {
                Ok(reply) => adapter.respond(&reply),
                Err(e) => reject(adapter, partner, &e),
            }
        }
        Ok(Inbound::CaseUpdate(update)) => match state.legal_aid.take(*update).await {
            Ok(reply) => adapter.respond(&reply),
            Err(e) => reject(adapter, partner, &e),
        },
        Ok(inbound) => match state.intake.partner_message(partner, inbound, nonce).await {
            Ok(reply) => adapter.respond(&reply),
            Err(e) => reject(adapter, partner, &e),
        },
        Err(e) => reject(adapter, partner, &e),
    }
}

fn reject(
    adapter: &dyn hotline_adapters::Adapter,
    partner: &str,
    e: &hotline_adapters::IngressError,
) -> WireResponse {
    tracing::info!(partner, error = %e, "partner message refused");
    metrics::counter!("hotline_ingress_rejected_total", "partner" => partner.to_owned(), "code" => e.code)
        .increment(1);
    adapter.reject(e)
}

fn into_response(wire: WireResponse) -> Response {
    let mut resp = Response::new(Body::from(wire.body));
    *resp.status_mut() = wire.status;
    *resp.headers_mut() = wire.headers;
    if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("5"),
        );
    }
    resp
}
