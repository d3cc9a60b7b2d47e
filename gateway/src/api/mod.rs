//! The HTTP API (canonical JSON for the 12348 home systems), partner ingress, and ops endpoints.

mod actions;
pub mod auth;
mod deliveries;
pub mod error;
pub(crate) mod ingress;
mod legal_aid;
mod ops;
mod partners;
mod sla;
mod tickets;
pub(crate) mod transfers;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::delivery::DeliveryEngine;
use crate::intake::Intake;
use crate::store::Store;

pub use tickets::{Timeline, TimelineEntry};

pub const TICKETS: &str = "tickets";
pub const DELIVERIES: &str = "deliveries";
pub const OPS: &str = "ops";
pub const TRANSFERS: &str = "transfers";
pub const LEGAL_AID: &str = "legal-aid";

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub engine: Arc<DeliveryEngine>,
    pub intake: Arc<Intake>,
    pub sla: Arc<crate::sla::Sla>,
    pub transfers: Arc<crate::transfer::Transfers>,
    pub legal_aid: Arc<crate::legal_aid::LegalAid>,
    pub dashboard: Arc<crate::dashboard::Dashboard>,
    /// Who may call `/api/v1`.
    pub api: Arc<auth::ApiConfig>,
    /// The TLS configuration, when the server speaks TLS (reloadable).
    pub tls: Option<Arc<crate::serve::TlsReloader>>,
    pub metrics: PrometheusHandle,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "hotline-gateway API",
    description = "Canonical JSON API of the 12348 inter-hotline gateway for the 12348 home \
                   systems. Partner ingress lives under /partners/{partner}/ in each partner's \
                   own dialect."
))]
struct ApiDoc;

/// The OpenAPI document, generated from the handlers themselves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(tickets::create_ticket, tickets::list_tickets))
        .routes(routes!(tickets::get_ticket))
        .routes(routes!(tickets::ticket_events))
        .routes(routes!(actions::act))
        .routes(routes!(sla::clocks))
        .routes(routes!(sla::alerts))
        .routes(routes!(sla::alert_summary))
        .routes(routes!(sla::unit_stats))
        .routes(routes!(sla::ack_alert))
        .routes(routes!(sla::reload_calendar))
        .routes(routes!(ops::reload_tls))
        .routes(routes!(sla::stats))
        .routes(routes!(
            transfers::start_transfer,
            transfers::list_transfers
        ))
        .routes(routes!(transfers::get_transfer))
        .routes(routes!(transfers::report_event))
        .routes(routes!(transfers::transfer_stats))
        .routes(routes!(legal_aid::file_application))
        .routes(routes!(legal_aid::list_cases))
        .routes(routes!(legal_aid::get_case))
        .routes(routes!(legal_aid::reconcile))
        .routes(routes!(deliveries::list_deliveries))
        .routes(routes!(deliveries::get_delivery))
        .routes(routes!(deliveries::retry_delivery))
        .routes(routes!(partners::list_partners))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
}

pub fn router(state: AppState, max_body_bytes: usize, request_timeout: Duration) -> Router {
    let (router, doc) = api_router().split_for_parts();
    let doc = Arc::new(doc);
    let router = router.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::authorize,
    ));
    router
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = Arc::clone(&doc);
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .route("/partners/{partner}/{*rest}", any(ingress::partner_ingress))
        .merge(crate::dashboard::router())
        .route("/", get(|| async { axum::response::Redirect::to("/ui") }))
        .fallback(|| async { error::ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .with_state(state)
}
