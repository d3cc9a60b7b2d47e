//! Who may call the home API (`/api/v1/…`): clients with a bearer token (stored as its SHA-256,
//! compared in constant time) and scopes. Health, readiness, metrics and the OpenAPI document
//! stay open; partners use their own ingress, authenticated by their signatures.

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// What a client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Tickets, their actions, clocks and statistics.
    Tickets,
    /// Three-way call transfers.
    Transfers,
    /// Legal-aid applications and cases.
    LegalAid,
    /// Everything, with deliveries, dead letters, partners, alerts and the calendar.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tickets => "tickets",
            Self::Transfers => "transfers",
            Self::LegalAid => "legal-aid",
            Self::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiClient {
    /// Hex SHA-256 of the client's token (`hotline-gateway api-token` makes both).
    pub token_sha256: String,
    pub scopes: Vec<Scope>,
}

/// `[api]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Clients by name.
    #[serde(default)]
    pub clients: BTreeMap<String, ApiClient>,
    /// Lets requests without a token through with every scope. For local development and
    /// tests only; refused in nothing, warned at start-up.
    #[serde(default)]
    pub allow_anonymous: bool,
}

impl ApiConfig {
    pub fn check(&self, bad: &mut impl FnMut(String, String)) {
        for (name, c) in &self.clients {
            let ok = c.token_sha256.len() == 64
                && c.token_sha256.chars().all(|ch| ch.is_ascii_hexdigit());
            if !ok {
                bad(
                    format!("api.clients.{name}.token_sha256"),
                    "must be the 64-hex-digit SHA-256 of the token (`hotline-gateway api-token`)"
                        .into(),
                );
            }
            if c.scopes.is_empty() {
                bad(
                    format!("api.clients.{name}.scopes"),
                    "give at least one of tickets, transfers, legal-aid, admin".into(),
                );
            }
        }
    }
}

/// A new random token and its SHA-256 for the configuration.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("hgw_{}", hex::encode(bytes));
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The scope a path needs; `None` for what stays open.
pub fn required_scope(path: &str) -> Option<Scope> {
    let p = path.strip_prefix("/api/v1")?;
    if p == "/openapi.json" {
        return None;
    }
    Some(
        if p.starts_with("/transfers") || p.starts_with("/stats/transfers") {
            Scope::Transfers
        } else if p.starts_with("/tickets") || p == "/stats" || p.starts_with("/stats/") {
            Scope::Tickets
        } else if p.starts_with("/legal-aid") {
            Scope::LegalAid
        } else {
            Scope::Admin
        },
    )
}

fn refuse(status: StatusCode, error: &'static str, message: String) -> Response {
    let mut resp = ApiError::new(status, error, message).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"hotline-gateway\""),
        );
    }
    resp
}

/// Lets a request through when its bearer token names a client with the scope its path needs.
pub async fn authorize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(scope) = required_scope(req.uri().path()) else {
        return next.run(req).await;
    };
    let config = &state.api;
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        if config.allow_anonymous {
            return next.run(req).await;
        }
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authorization: Bearer <token> is required for /api/v1".into(),
        );
    };
    let hash = token_hash(token);
    let client = config
        .clients
        .iter()
        .find(|(_, c)| bool::from(c.token_sha256.as_bytes().ct_eq(hash.as_bytes())));
    let Some((name, client)) = client else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is not valid".into(),
        );
    };
    if !client
        .scopes
        .iter()
        .any(|s| *s == scope || *s == Scope::Admin)
    {
        tracing::info!(client = %name, needed = scope.as_str(), path = %req.uri().path(), "API request outside the client's scopes");
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "client `{name}` lacks the `{}` scope this endpoint needs",
                scope.as_str()
            ),
        );
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_need_the_scope_of_what_they_touch() {
        assert_eq!(required_scope("/api/v1/tickets"), Some(Scope::Tickets));
        assert_eq!(
            required_scope("/api/v1/tickets/x/actions/urge"),
            Some(Scope::Tickets)
        );
        assert_eq!(required_scope("/api/v1/stats/units"), Some(Scope::Tickets));
        assert_eq!(
            required_scope("/api/v1/transfers/x/events"),
            Some(Scope::Transfers)
        );
        assert_eq!(
            required_scope("/api/v1/stats/transfers"),
            Some(Scope::Transfers)
        );
        assert_eq!(
            required_scope("/api/v1/deliveries/x/retry"),
            Some(Scope::Admin)
        );
        assert_eq!(
            required_scope("/api/v1/admin/calendar/reload"),
            Some(Scope::Admin)
        );
        assert_eq!(required_scope("/api/v1/openapi.json"), None);
        assert_eq!(required_scope("/healthz"), None);
        let (token, hash) = new_token();
        assert!(token.starts_with("hgw_") && token.len() == 68);
        assert_eq!(token_hash(&token), hash);
    }
}
