//! API errors: a status that fits and a JSON body naming the field and the reason.

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hotline_model::FieldError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::intake::IntakeError;
use crate::store::StoreError;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code: malformed_json, invalid, not_found, payload_too_large ...
    pub error: &'static str,
    /// Human-readable summary.
    pub message: String,
    /// The first field at fault, as a dotted path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every field at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error,
                message: message.into(),
                field: None,
                errors: Vec::new(),
            },
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: ErrorBody {
                error: "invalid",
                message,
                field: errors.first().map(|e| e.field.clone()),
                errors,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failed");
        match e {
            // Trying again will not help: say what is wrong (never the data itself).
            StoreError::Corrupt(why) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "stored_data_unreadable",
                format!("stored data cannot be read: {why}"),
            ),
            _ => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store is temporarily unavailable; nothing was changed, try again",
            ),
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Invalid(errors) => Self::invalid(errors),
            IntakeError::Store(e) => e.into(),
        }
    }
}

/// A JSON body, refused with 400 (not JSON), 415 (not `application/json`), 413 (too large) or
/// 422 (wrong shape), each naming the field where there is one.
pub struct ValidJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json") || v.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as `Content-Type: application/json`",
            ));
        }
        let bytes = bytes::Bytes::from_request(req, state).await.map_err(|r| {
            let status = r.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "payload_too_large"
            } else {
                "bad_body"
            };
            ApiError::new(status, code, r.body_text())
        })?;
        hotline_adapters::json::parse(&bytes)
            .map(ValidJson)
            .map_err(|e| {
                let (status, code) = if e.syntax {
                    (StatusCode::BAD_REQUEST, "malformed_json")
                } else {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
                };
                let mut err = ApiError::new(status, code, e.to_string());
                if let Some(field) = &e.field {
                    err.body
                        .errors
                        .push(FieldError::new(field.clone(), e.reason.clone()));
                }
                err.body.field = e.field;
                err
            })
    }
}

/// Declares an extractor wrapping one of axum's request-parts extractors so that its rejection
/// is a 400 with the JSON error body.
macro_rules! json_rejecting {
    ($(#[$doc:meta])* $name:ident wraps $inner:ident as $code:literal) => {
        $(#[$doc])*
        pub struct $name<T>(pub T);

        impl<S: Send + Sync, T> axum::extract::FromRequestParts<S> for $name<T>
        where
            T: DeserializeOwned + Send,
        {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                state: &S,
            ) -> Result<Self, Self::Rejection> {
                axum::extract::$inner::<T>::from_request_parts(parts, state)
                    .await
                    .map(|v| $name(v.0))
                    .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, $code, r.body_text()))
            }
        }
    };
}

json_rejecting!(
    /// A path parameter; a value that does not parse is a 400 with a JSON body.
    ValidPath wraps Path as "invalid_path"
);
json_rejecting!(
    /// Query parameters; a value that does not parse is a 400 with a JSON body.
    ValidQuery wraps Query as "invalid_query"
);
