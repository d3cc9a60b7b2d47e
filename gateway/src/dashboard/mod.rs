//! The ops dashboard: server-rendered pages under `/ui`, live updates over SSE, everything
//! (styles, script, charts) served from the binary.
//!
//! One module per page; `auth` holds logins, sessions, roles and CSRF; `page` the shared frame.
//! Every operator action and every unmasked view of personal data is written to the audit log
//! ([`record`]) before the page answers.

mod audit_page;
pub mod auth;
pub mod config;
mod deliveries;
mod legal_aid;
mod login;
mod overview;
mod page;
mod partners;
mod replay;
mod sla;
mod ticket;
mod transfers;

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::api::AppState;
use crate::config::PartnerConfig;
use crate::store::NewAudit;

pub use auth::{Auth, Viewer};
pub use config::{DashboardConfig, Role, hash_password};
pub use page::PageError;

/// What the dashboard keeps besides the gateway's own state.
pub struct Dashboard {
    pub auth: Auth,
    pub jobs: replay::Jobs,
    /// The partners' configuration as ops may see it (secrets are never shown).
    pub partners: std::collections::BTreeMap<String, PartnerConfig>,
}

impl Dashboard {
    pub fn new(
        config: DashboardConfig,
        partners: std::collections::BTreeMap<String, PartnerConfig>,
    ) -> Self {
        if config.users.is_empty() {
            tracing::warn!(
                "no [dashboard.users] configured: nobody can log in to the dashboard at /ui"
            );
        }
        Self {
            auth: Auth::new(config),
            jobs: replay::Jobs::default(),
            partners,
        }
    }
}

/// Writes an audit entry for what `viewer` did.
pub async fn record(
    state: &AppState,
    viewer: &Viewer,
    action: &str,
    target: Option<String>,
    reason: Option<String>,
    detail: serde_json::Value,
) -> Result<(), PageError> {
    state
        .store
        .record_audit(NewAudit {
            actor: viewer.user.clone(),
            role: viewer.role.as_str().to_owned(),
            action: action.to_owned(),
            target,
            reason,
            detail,
        })
        .await?;
    Ok(())
}

/// A reason an operator may give: trimmed, bounded, `None` when blank.
pub fn optional_reason(reason: &Option<String>) -> Option<String> {
    page::filled(reason).map(|r| r.chars().take(500).collect())
}

/// A reason an operator must give, trimmed and bounded.
pub fn required_reason(reason: Option<&str>) -> Result<String, PageError> {
    let reason = reason.map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        return Err(PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "请填写原因 / reason: required for this action",
        ));
    }
    if reason.chars().count() > 500 {
        return Err(PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "原因过长 / reason: at most 500 characters",
        ));
    }
    Ok(reason.to_owned())
}

const CSS: &str = include_str!("../../assets/dashboard.css");
const JS: &str = include_str!("../../assets/dashboard.js");

async fn asset(Path(file): Path<String>) -> impl IntoResponse {
    let (kind, body) = match file.as_str() {
        "dashboard.css" => ("text/css; charset=utf-8", CSS),
        "dashboard.js" => ("text/javascript; charset=utf-8", JS),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Security headers on every dashboard response: nothing from elsewhere, no framing.
async fn headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    resp
}

/// The dashboard's routes, all under `/ui`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(overview::page))
        .route("/ui/live", get(overview::live))
        .route("/ui/login", get(login::form).post(login::submit))
        .route("/ui/logout", post(login::logout))
        .route("/ui/deliveries", get(deliveries::list))
        .route("/ui/deliveries/{id}/retry", post(deliveries::retry))
        .route("/ui/dead", get(deliveries::dead))
        .route("/ui/dead/replay", get(replay::confirm).post(replay::start))
        .route("/ui/jobs/{id}", get(replay::job_page))
        .route("/ui/jobs/{id}/progress", get(replay::progress))
        .route("/ui/tickets/{id}", get(ticket::page))
        .route("/ui/tickets/{id}/unmask", post(ticket::unmask))
        .route("/ui/partners", get(partners::page))
        .route("/ui/partners/{id}/pause", post(partners::pause))
        .route("/ui/partners/{id}/resume", post(partners::resume))
        .route("/ui/sla", get(sla::page))
        .route("/ui/alerts/{id}/ack", post(sla::ack))
        .route("/ui/transfers", get(transfers::page))
        .route("/ui/legal-aid", get(legal_aid::page))
        .route("/ui/audit", get(audit_page::page))
        .route("/ui/assets/{file}", get(asset))
        .layer(axum::middleware::from_fn(headers))
}
