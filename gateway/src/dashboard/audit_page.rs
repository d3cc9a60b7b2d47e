//! The audit log, newest first, with each entry's place in the hash chain checked. Nothing here
//! edits an entry; the store refuses to.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::auth::Viewer;
use super::config::Role;
use super::page::{Chrome, PageError, filled, fmt_time, render};
use crate::api::AppState;
use crate::store::AuditQuery;

const PAGE: u32 = 100;

struct EntryRow {
    seq: u64,
    at: String,
    actor: String,
    role: String,
    action: String,
    target: String,
    reason: String,
    detail: String,
    /// The entry's hash matches its content, and (when the next older entry is on the page)
    /// its predecessor.
    intact: bool,
    hash: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    rows: Vec<EntryRow>,
    actor: String,
    action: String,
    next: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    before: Option<String>,
}

fn given(v: &Option<String>) -> Option<String> {
    filled(v).map(str::to_owned)
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(f): Query<Filter>,
) -> Result<Response, PageError> {
    viewer.require(Role::Operator)?;
    let before = given(&f.before)
        .map(|b| {
            b.parse::<u64>()
                .map_err(|_| PageError::bad_request("before: 不是序号 not a sequence number"))
        })
        .transpose()?;
    let q = AuditQuery {
        actor: given(&f.actor),
        action: given(&f.action),
        before,
        limit: Some(PAGE),
    };
    let entries = state.store.audit_log(&q).await?;
    let filtered = q.actor.is_some() || q.action.is_some();
    let rows = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            // Unfiltered, the next entry on the page is this one's predecessor.
            let linked = match entries.get(i + 1) {
                Some(older) if !filtered => older.seq + 1 == e.seq && older.hash == e.prev_hash,
                _ => true,
            };
            EntryRow {
                seq: e.seq,
                at: fmt_time(e.at),
                actor: e.actor.clone(),
                role: e.role.clone(),
                action: e.action.clone(),
                target: e.target.clone().unwrap_or_default(),
                reason: e.reason.clone().unwrap_or_default(),
                detail: e.detail.to_string(),
                intact: linked && crate::audit::entry_intact(e),
                hash: e.hash.chars().take(12).collect(),
            }
        })
        .collect();
    let next = (entries.len() as u32 == PAGE)
        .then(|| entries.last())
        .flatten()
        .map(|e| {
            let qs = serde_urlencoded::to_string([
                ("actor", q.actor.clone().unwrap_or_default()),
                ("action", q.action.clone().unwrap_or_default()),
                ("before", e.seq.to_string()),
            ])
            .unwrap_or_default();
            format!("?{qs}")
        });
    render(&AuditPage {
        chrome: Chrome::new(&viewer, "审计日志 Audit log", "audit"),
        rows,
        actor: q.actor.unwrap_or_default(),
        action: q.action.unwrap_or_default(),
        next,
    })
}
