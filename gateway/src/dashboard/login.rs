//! The login form, logging in and out.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use chrono::Utc;
use serde::Deserialize;

use super::auth::{Auth, LoginError, SESSION_COOKIE, Viewer, random_token};
use super::page::{PageError, render};
use crate::api::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    user: String,
    problem: Option<String>,
}

/// A fresh login form, with its CSRF token in a cookie.
fn login_page(
    auth: &Auth,
    jar: CookieJar,
    user: String,
    problem: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let csrf = random_token();
    let jar = jar.add(auth.login_cookie(csrf.clone()));
    let page = render(&LoginPage {
        csrf,
        user,
        problem,
    })?;
    Ok((status, jar, page).into_response())
}

pub async fn form(
    State(state): State<AppState>,
    jar: CookieJar,
    viewer: Option<Viewer>,
) -> Result<Response, PageError> {
    if viewer.is_some() {
        return Ok(Redirect::to("/ui").into_response());
    }
    login_page(
        &state.dashboard.auth,
        jar,
        String::new(),
        None,
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
}

pub async fn submit(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(f): Form<LoginForm>,
) -> Result<Response, PageError> {
    let auth = &state.dashboard.auth;
    if !Auth::login_csrf_ok(&jar, &f.csrf) {
        return login_page(
            auth,
            jar,
            f.user,
            Some("登录表单已过期，请重试 / the login form expired; try again".into()),
            StatusCode::FORBIDDEN,
        );
    }
    match auth.login(f.user.trim(), &f.password, Utc::now()).await {
        Ok((token, viewer)) => {
            tracing::info!(user = %viewer.user, role = viewer.role.as_str(), "dashboard login");
            let jar = jar
                .remove(auth.removal(super::auth::LOGIN_COOKIE))
                .add(auth.session_cookie(token));
            Ok((jar, Redirect::to("/ui")).into_response())
        }
        Err(e) => {
            tracing::warn!(user = %f.user, error = %e, "dashboard login refused");
            let status = match e {
                LoginError::Wrong => StatusCode::UNAUTHORIZED,
                LoginError::Locked(_) => StatusCode::TOO_MANY_REQUESTS,
            };
            login_page(auth, jar, f.user, Some(e.to_string()), status)
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    viewer: Viewer,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&f.csrf)?;
    let auth = &state.dashboard.auth;
    if let Some(c) = jar.get(SESSION_COOKIE) {
        auth.logout(c.value());
    }
    let jar = jar.remove(auth.removal(SESSION_COOKIE));
    Ok((jar, Redirect::to("/ui/login")).into_response())
}
