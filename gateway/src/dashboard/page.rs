//! What every dashboard page shares: the frame (who is logged in, the navigation), error pages,
//! and how times, ages and figures are shown.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, FixedOffset, Utc};

use super::auth::Viewer;
use crate::store::StoreError;

/// Beijing time: what every time on the dashboard is shown in.
pub fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&beijing())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

pub fn fmt_opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(fmt_time).unwrap_or_default()
}

/// A duration in words: `3 天 2 时`, `5 分 12 秒`, `800 毫秒`.
pub fn fmt_age(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 1.0 {
        return format!("{} 毫秒", (s * 1000.0).round());
    }
    let s = s.round() as u64;
    let (d, h, m, sec) = (s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec} 秒"),
        (0, 0, _) => format!("{m} 分 {sec} 秒"),
        (0, _, _) => format!("{h} 时 {m} 分"),
        _ => format!("{d} 天 {h} 时"),
    }
}

pub fn fmt_ms(ms: Option<f64>) -> String {
    match ms {
        None => "–".into(),
        Some(v) if v < 1000.0 => format!("≤{v:.0} ms"),
        Some(v) => format!("≤{:.1} s", v / 1000.0),
    }
}

/// The navigation entries: (path, label, active key).
/// The navigation: link, Chinese label, English label, page key.
pub const NAV: &[(&str, &str, &str, &str)] = &[
    ("/ui", "总览", "Overview", "overview"),
    ("/ui/deliveries", "投递", "Deliveries", "deliveries"),
    ("/ui/dead", "死信", "Dead letters", "dead"),
    ("/ui/partners", "合作方", "Partners", "partners"),
    ("/ui/sla", "时限与预警", "SLA & alerts", "sla"),
    ("/ui/transfers", "三方通话", "Transfers", "transfers"),
    ("/ui/legal-aid", "法律援助", "Legal aid", "legal_aid"),
    ("/ui/audit", "审计", "Audit", "audit"),
];

/// The frame around every page.
pub struct Chrome {
    pub title: String,
    pub active: &'static str,
    pub user: String,
    pub role: String,
    pub csrf: String,
    pub can_operate: bool,
    pub is_admin: bool,
    pub nav: Vec<NavItem>,
}

/// A navigation link: its Chinese label, with the English beside it on a wide screen and as
/// its tooltip always (eight entries in both languages do not fit one line at 1366 px).
pub struct NavItem {
    pub href: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
    pub active: bool,
}

impl Chrome {
    pub fn new(viewer: &Viewer, title: impl Into<String>, active: &'static str) -> Self {
        Self {
            title: title.into(),
            active,
            user: viewer.user.clone(),
            role: viewer.role.label().to_owned(),
            csrf: viewer.csrf.clone(),
            can_operate: viewer.can_operate(),
            is_admin: viewer.is_admin(),
            nav: NAV
                .iter()
                .filter(|(_, _, _, key)| *key != "audit" || viewer.can_operate())
                .map(|&(href, zh, en, key)| NavItem {
                    href,
                    zh,
                    en,
                    active: key == active,
                })
                .collect(),
        }
    }
}

/// Renders a template as a page.
pub fn render(t: &impl Template) -> Result<Response, PageError> {
    t.render()
        .map(|body| Html(body).into_response())
        .map_err(|e| PageError::internal(format!("rendering failed: {e}")))
}

/// A page that could not be shown, as an HTML page with the reason.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    message: &'a str,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "请先登录 / log in first: /ui/login",
        )
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "dashboard: store error");
        Self::internal(format!("存储出错 / store error: {e}"))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or(""),
            message: &self.message,
        };
        let body = page
            .render()
            .unwrap_or_else(|_| format!("{} {}", self.status, self.message));
        (self.status, Html(body)).into_response()
    }
}

/// A form or query field's value, trimmed; `None` when absent or blank.
pub fn filled(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A `back` form field, when it points inside the dashboard.
pub fn safe_back(back: Option<&str>, fallback: &str) -> String {
    match back {
        Some(b) if b.starts_with("/ui") && !b.starts_with("//") && !b.contains("://") => b.into(),
        _ => fallback.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_latencies_read_naturally() {
        assert_eq!(fmt_age(0.25), "250 毫秒");
        assert_eq!(fmt_age(42.0), "42 秒");
        assert_eq!(fmt_age(312.0), "5 分 12 秒");
        assert_eq!(fmt_age(7322.0), "2 时 2 分");
        assert_eq!(fmt_age(3.0 * 86400.0 + 7200.0), "3 天 2 时");
        assert_eq!(fmt_ms(None), "–");
        assert_eq!(fmt_ms(Some(24.4)), "≤24 ms");
        assert_eq!(fmt_ms(Some(2500.0)), "≤2.5 s");
    }

    #[test]
    fn times_are_beijing_time() {
        let t = DateTime::parse_from_rfc3339("2026-11-24T01:02:03Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(fmt_time(t), "2026-11-24 09:02:03");
    }

    #[test]
    fn back_links_stay_in_the_dashboard() {
        assert_eq!(
            safe_back(Some("/ui/dead?partner=12345"), "/ui"),
            "/ui/dead?partner=12345"
        );
        assert_eq!(safe_back(Some("https://evil.example/ui"), "/ui"), "/ui");
        assert_eq!(safe_back(Some("//evil.example"), "/ui"), "/ui");
        assert_eq!(safe_back(None, "/ui/dead"), "/ui/dead");
    }
}
