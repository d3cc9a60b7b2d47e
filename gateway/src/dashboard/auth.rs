//! Logins, sessions, roles and CSRF protection for the dashboard.
//!
//! Sessions live in memory (a restart logs everyone out) behind a random 256-bit token in an
//! `HttpOnly`, `SameSite=Strict` cookie scoped to `/ui`. Every state-changing request carries the
//! session's CSRF token in a form field, compared in constant time. A user who fails to log in
//! `max_failures` times in a row is locked out for `lockout`.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::PasswordVerifier;
use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use subtle::ConstantTimeEq;

use super::config::{DashboardConfig, Role};
use super::page::PageError;
use crate::api::AppState;

pub const SESSION_COOKIE: &str = "hg_session";
pub const LOGIN_COOKIE: &str = "hg_login";

/// A logged-in dashboard user, as every page sees them.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: String,
    pub role: Role,
    pub csrf: String,
}

impl Viewer {
    /// Refuses (403) unless the viewer's role is at least `role`.
    pub fn require(&self, role: Role) -> Result<(), PageError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(PageError::forbidden(format!(
                "需要{}权限 / this needs the {} role; you are {}",
                role.label(),
                role.as_str(),
                self.role.as_str()
            )))
        }
    }

    /// Refuses (403) a form without this session's CSRF token.
    pub fn check_csrf(&self, token: &str) -> Result<(), PageError> {
        if same(token, &self.csrf) {
            Ok(())
        } else {
            Err(PageError::forbidden(
                "表单已过期，请刷新页面后重试 / the form's CSRF token is missing or stale; reload the page",
            ))
        }
    }

    /// Both checks of a state-changing request.
    pub fn may(&self, role: Role, csrf: &str) -> Result<(), PageError> {
        self.check_csrf(csrf)?;
        self.require(role)
    }

    pub fn can_operate(&self) -> bool {
        self.role >= Role::Operator
    }

    pub fn is_admin(&self) -> bool {
        self.role >= Role::Admin
    }
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Debug, Clone)]
struct Session {
    viewer: Viewer,
    expires: DateTime<Utc>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<DateTime<Utc>>,
}

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("用户名或密码错误 / wrong user name or password")]
    Wrong,
    #[error("登录失败次数过多，请于 {0} 后再试 / too many failed logins; try again after {0}")]
    Locked(String),
}

/// Users, sessions and lock-outs.
pub struct Auth {
    config: DashboardConfig,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, Failures>>,
    /// Verified against when the user name is unknown, so both cases take as long; made at the
    /// first such login, not at start-up.
    decoy: std::sync::Arc<std::sync::OnceLock<String>>,
}

impl Auth {
    pub fn new(config: DashboardConfig) -> Self {
        Self {
            config,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            decoy: std::sync::Arc::default(),
        }
    }

    pub fn config(&self) -> &DashboardConfig {
        &self.config
    }

    /// Checks a password and opens a session; returns its cookie token.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, Viewer), LoginError> {
        let known = self.config.users.get(user);
        if let Some(until) = self.locked_until(user, now) {
            return Err(LoginError::Locked(super::page::fmt_time(until)));
        }
        let known_hash = known.map(|u| u.password_hash.clone());
        let decoy = std::sync::Arc::clone(&self.decoy);
        let password = password.to_owned();
        // Argon2 is deliberately slow: keep it (and making the decoy) off the async workers.
        let ok = tokio::task::spawn_blocking(move || {
            let hash = known_hash.unwrap_or_else(|| {
                decoy
                    .get_or_init(|| {
                        super::config::hash_password(&random_token()).unwrap_or_default()
                    })
                    .clone()
            });
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
        .unwrap_or(false);
        let Some(u) = known.filter(|_| ok) else {
            if known.is_some() {
                self.fail(user, now);
            }
            return Err(LoginError::Wrong);
        };
        if let Ok(mut f) = self.failures.lock() {
            f.remove(user);
        }
        let viewer = Viewer {
            user: user.to_owned(),
            role: u.role,
            csrf: random_token(),
        };
        let token = random_token();
        let expires = later(now, self.config.session_ttl);
        if let Ok(mut s) = self.sessions.lock() {
            s.retain(|_, s| s.expires > now);
            s.insert(
                token.clone(),
                Session {
                    viewer: viewer.clone(),
                    expires,
                },
            );
        }
        Ok((token, viewer))
    }

    fn locked_until(&self, user: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let f = self.failures.lock().ok()?;
        f.get(user)?.locked_until.filter(|&t| t > now)
    }

    fn fail(&self, user: &str, now: DateTime<Utc>) {
        let Ok(mut all) = self.failures.lock() else {
            return;
        };
        let f = all.entry(user.to_owned()).or_default();
        if f.locked_until.is_some_and(|t| t <= now) {
            *f = Failures::default();
        }
        f.count += 1;
        if f.count >= self.config.max_failures {
            f.locked_until = Some(later(now, self.config.lockout));
            tracing::warn!(user, failures = f.count, "dashboard user locked out");
        }
    }

    pub fn logout(&self, token: &str) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(token);
        }
    }

    fn viewer(&self, token: &str, now: DateTime<Utc>) -> Option<Viewer> {
        let s = self.sessions.lock().ok()?;
        s.get(token)
            .filter(|s| s.expires > now)
            .map(|s| s.viewer.clone())
    }

    /// The session cookie for a new session.
    pub fn session_cookie(&self, token: String) -> Cookie<'static> {
        self.cookie(SESSION_COOKIE, token)
    }

    /// A short-lived cookie holding the login form's CSRF token.
    pub fn login_cookie(&self, token: String) -> Cookie<'static> {
        self.cookie(LOGIN_COOKIE, token)
    }

    /// A browser-session cookie: the server ends the session after `session_ttl` regardless.
    fn cookie(&self, name: &'static str, value: String) -> Cookie<'static> {
        Cookie::build((name, value))
            .path("/ui")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.config.secure_cookies)
            .build()
    }

    /// A cookie that removes `name`.
    pub fn removal(&self, name: &'static str) -> Cookie<'static> {
        Cookie::build((name, "")).path("/ui").build()
    }

    /// Whether the login form's token matches its cookie.
    pub fn login_csrf_ok(jar: &CookieJar, form_token: &str) -> bool {
        jar.get(LOGIN_COOKIE)
            .is_some_and(|c| !form_token.is_empty() && same(c.value(), form_token))
    }
}

fn later(now: DateTime<Utc>, by: std::time::Duration) -> DateTime<Utc> {
    now.checked_add_signed(crate::time::span(by))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Not logged in: a page request goes to the login page, anything else gets 401.
pub struct LoginRequired {
    to_login: bool,
}

impl IntoResponse for LoginRequired {
    fn into_response(self) -> Response {
        if self.to_login {
            Redirect::to("/ui/login").into_response()
        } else {
            PageError::unauthorized().into_response()
        }
    }
}

impl<S> FromRequestParts<S> for Viewer
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = LoginRequired;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let found = <Viewer as OptionalFromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .ok()
            .flatten();
        found.ok_or(LoginRequired {
            to_login: parts.method == axum::http::Method::GET,
        })
    }
}

impl<S> OptionalFromRequestParts<S> for Viewer
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let state = AppState::from_ref(state);
        let jar = CookieJar::from_headers(&parts.headers);
        Ok(jar
            .get(SESSION_COOKIE)
            .and_then(|c| state.dashboard.auth.viewer(c.value(), Utc::now())))
    }
}
