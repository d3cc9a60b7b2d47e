//! `/api/v1/legal-aid/…`: filing legal-aid applications for tickets, the cases they became, and
//! reconciliation with the case system.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hotline_model::HOME;
use hotline_model::legal_aid::Application;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::actions::{ActionDone, done};
use super::error::{ApiError, ErrorBody, ValidJson, ValidPath, ValidQuery};
use super::{AppState, LEGAL_AID};
use crate::intake::Route;
use crate::legal_aid::Report;
use crate::store::{CaseQuery, LegalAidCase};

/// A legal-aid application for a ticket.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct FileApplication {
    /// The hotline (or 12345) ticket the applicant called about.
    pub ticket_id: Uuid,
    pub application: Application,
}

/// File a legal-aid application (法律援助申请) for a ticket with the case system.
///
/// Everything the case system would refuse (ID number and its check digit, phone, required
/// fields, sex against the ID number) is named at once, so the caller is asked for all of it in
/// one go (一次性告知). The application is then delivered like any message: retried, dead-lettered
/// when it cannot be delivered, visible on the ticket. A repeated `Idempotency-Key` changes
/// nothing.
#[utoipa::path(post, path = "/api/v1/legal-aid/applications", tag = LEGAL_AID,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat harmless")),
    request_body = FileApplication,
    responses(
        (status = 202, description = "Filed and queued for the case system", body = ActionDone),
        (status = 404, description = "No such ticket", body = ErrorBody),
        (status = 409, description = "The ticket was withdrawn or merged", body = ErrorBody),
        (status = 422, description = "Every field at fault, with the reason", body = ErrorBody),
        (status = 503, description = "No legal-aid case system is configured", body = ErrorBody),
    ))]
pub async fn file_application(
    State(state): State<AppState>,
    headers: HeaderMap,
    ValidJson(req): ValidJson<FileApplication>,
) -> Result<(StatusCode, Json<ActionDone>), ApiError> {
    if !state.legal_aid.configured() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "no legal-aid case system is configured (partner `legal-aid`)",
        ));
    }
    let problems = req.application.problems();
    if !problems.is_empty() {
        return Err(ApiError::invalid(
            problems
                .into_iter()
                .map(|p| {
                    hotline_model::FieldError::new(format!("application.{}", p.field), p.reason)
                })
                .collect(),
        ));
    }
    let keys = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| vec![format!("legal-aid:{k}")])
        .unwrap_or_default();
    let applied = state
        .intake
        .apply(
            req.ticket_id,
            HOME,
            hotline_model::EventBody::LegalAid {
                application: Box::new(req.application),
            },
            keys,
            Vec::new(),
            Route::To(vec![hotline_adapters::legal_aid::PARTNER.to_owned()]),
        )
        .await;
    done(req.ticket_id, applied)
}

/// Legal-aid cases, e.g. those of one ticket (`?ticket_id=`) or those still open (`?open=true`).
#[utoipa::path(get, path = "/api/v1/legal-aid/cases", tag = LEGAL_AID, params(CaseQuery),
    responses((status = 200, body = Vec<LegalAidCase>), (status = 400, body = ErrorBody)))]
pub async fn list_cases(
    State(state): State<AppState>,
    ValidQuery(q): ValidQuery<CaseQuery>,
) -> Result<Json<Vec<LegalAidCase>>, ApiError> {
    Ok(Json(state.store.legal_aid_cases(&q).await?))
}

/// One legal-aid case: its status, the last version applied and its statutory clocks.
#[utoipa::path(get, path = "/api/v1/legal-aid/cases/{case_no}", tag = LEGAL_AID,
    params(("case_no" = String, Path, description = "The case system's case number")),
    responses((status = 200, body = LegalAidCase), (status = 404, body = ErrorBody)))]
pub async fn get_case(
    State(state): State<AppState>,
    ValidPath(case_no): ValidPath<String>,
) -> Result<Json<LegalAidCase>, ApiError> {
    state
        .store
        .legal_aid_case(&case_no)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no legal-aid case {case_no}")))
}

/// Compare every open case with the case system's list now and repair what differs.
#[utoipa::path(post, path = "/api/v1/legal-aid/reconcile", tag = LEGAL_AID,
    responses(
        (status = 200, description = "What was found and repaired", body = Report),
        (status = 502, description = "The case system could not be asked", body = ErrorBody),
    ))]
pub async fn reconcile(State(state): State<AppState>) -> Result<Json<Report>, ApiError> {
    state
        .legal_aid
        .reconcile(|_, _| {})
        .await
        .map(Json)
        .map_err(|e| match e {
            crate::legal_aid::LegalAidError::Store(e) => e.into(),
            other => ApiError::new(StatusCode::BAD_GATEWAY, "case_system", other.to_string()),
        })
}
