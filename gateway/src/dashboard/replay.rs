//! Replaying many dead letters at once: a confirmation that says how many, a reason, and a job
//! whose progress the browser follows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::Form;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::Viewer;
use super::config::Role;
use super::deliveries::Filter;
use super::page::{Chrome, PageError, fmt_time, render};
use crate::api::AppState;
use crate::store::{DeliveryQuery, RetryResult};

/// A replay in progress or done.
pub struct Job {
    pub id: Uuid,
    pub by: String,
    pub reason: String,
    pub filter: String,
    pub started: String,
    pub total: u64,
    requeued: AtomicU64,
    /// No longer dead when their turn came (replayed meanwhile, or gone).
    skipped: AtomicU64,
    failed: AtomicU64,
    finished: AtomicBool,
}

#[derive(Debug, Serialize)]
pub struct Progress {
    pub total: u64,
    pub done: u64,
    pub requeued: u64,
    pub skipped: u64,
    pub failed: u64,
    pub finished: bool,
}

impl Job {
    pub fn progress(&self) -> Progress {
        let requeued = self.requeued.load(Ordering::Relaxed);
        let skipped = self.skipped.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        Progress {
            total: self.total,
            done: requeued + skipped + failed,
            requeued,
            skipped,
            failed,
            finished: self.finished.load(Ordering::Relaxed),
        }
    }
}

/// The replays this process ran, newest kept (at most 100).
#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<HashMap<Uuid, Arc<Job>>>,
}

impl Jobs {
    fn add(&self, job: Arc<Job>) {
        if let Ok(mut jobs) = self.jobs.lock() {
            if jobs.len() >= 100 {
                let finished: Vec<Uuid> = jobs
                    .values()
                    .filter(|j| j.finished.load(Ordering::Relaxed))
                    .map(|j| j.id)
                    .collect();
                for id in finished.into_iter().take(jobs.len() - 99) {
                    jobs.remove(&id);
                }
            }
            jobs.insert(job.id, job);
        }
    }

    fn get(&self, id: Uuid) -> Option<Arc<Job>> {
        self.jobs.lock().ok()?.get(&id).cloned()
    }
}

fn dead_query(filter: &Filter, state: &AppState) -> Result<DeliveryQuery, PageError> {
    let mut filter = filter.clone();
    filter.status = Some("dead".into());
    filter.after = None;
    filter.query(state)
}

#[derive(Template)]
#[template(path = "replay_confirm.html")]
struct ConfirmPage {
    chrome: Chrome,
    count: u64,
    filter_text: String,
    query: String,
}

fn describe(filter: &Filter) -> String {
    let mut parts = Vec::new();
    for (label, v) in [
        ("合作方 partner", &filter.partner),
        ("类型 type", &filter.message_type),
        ("编号 number", &filter.number),
        ("起 from", &filter.since),
        ("止 to", &filter.until),
    ] {
        if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            parts.push(format!("{label} = {v}"));
        }
    }
    if parts.is_empty() {
        "全部死信 every dead letter".into()
    } else {
        parts.join(", ")
    }
}

pub async fn confirm(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(filter): Query<Filter>,
) -> Result<Response, PageError> {
    viewer.require(Role::Operator)?;
    let q = dead_query(&filter, &state)?;
    let count = state.store.count_deliveries(&q).await?;
    let mut plain = filter.clone();
    plain.status = None;
    render(&ConfirmPage {
        chrome: Chrome::new(&viewer, "确认重放 Confirm replay", "dead"),
        count,
        filter_text: describe(&filter),
        query: plain.query_string(),
    })
}

#[derive(Deserialize)]
pub struct StartForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: Option<String>,
    /// The count the operator confirmed; the replay refuses if it changed a lot meanwhile.
    #[serde(default)]
    expected: Option<u64>,
}

pub async fn start(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(filter): Query<Filter>,
    Form(f): Form<StartForm>,
) -> Result<Response, PageError> {
    viewer.may(Role::Operator, &f.csrf)?;
    let reason = super::required_reason(f.reason.as_deref())?;
    let mut q = dead_query(&filter, &state)?;
    // Collect the ids now: what the operator confirmed is what gets replayed, not rows that die
    // while the job runs.
    q.limit = Some(1000);
    let mut ids = Vec::new();
    loop {
        let page = state.store.deliveries(&q).await?;
        let Some(last) = page.last() else { break };
        q.after = Some(last.id);
        ids.extend(page.iter().map(|d| d.id));
    }
    if let Some(expected) = f.expected
        && ids.len() as u64 > expected.saturating_mul(2).max(expected + 100)
    {
        return Err(PageError::new(
            axum::http::StatusCode::CONFLICT,
            format!(
                "确认时为 {expected} 条，现在为 {} 条，请重新确认 / {expected} were confirmed but {} match now; confirm again",
                ids.len(),
                ids.len()
            ),
        ));
    }
    let job = Arc::new(Job {
        id: Uuid::now_v7(),
        by: viewer.user.clone(),
        reason: reason.clone(),
        filter: describe(&filter),
        started: fmt_time(Utc::now()),
        total: ids.len() as u64,
        requeued: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        finished: AtomicBool::new(false),
    });
    super::record(
        &state,
        &viewer,
        "deliveries.replay",
        Some(job.filter.clone()),
        Some(reason),
        serde_json::json!({ "job": job.id, "count": job.total, "filter": filter.query_string() }),
    )
    .await?;
    tracing::info!(job = %job.id, count = job.total, by = %viewer.user, "replaying dead letters");
    state.dashboard.jobs.add(Arc::clone(&job));
    let runner = Arc::clone(&job);
    let st = state.clone();
    tokio::spawn(async move {
        for id in ids {
            match st.engine.requeue_dead(id).await {
                Ok(RetryResult::Requeued(_)) => {
                    runner.requeued.fetch_add(1, Ordering::Relaxed);
                }
                Ok(RetryResult::NotDead(_) | RetryResult::NotFound) => {
                    runner.skipped.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(delivery = %id, error = %e, "replay: could not queue a dead letter again");
                    runner.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        runner.finished.store(true, Ordering::Relaxed);
        let p = runner.progress();
        tracing::info!(job = %runner.id, requeued = p.requeued, skipped = p.skipped, failed = p.failed, "replay finished");
    });
    Ok(Redirect::to(&format!("/ui/jobs/{}", job.id)).into_response())
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    chrome: Chrome,
    job: Arc<Job>,
    p: Progress,
}

fn find(state: &AppState, id: &str) -> Result<Arc<Job>, PageError> {
    id.parse::<Uuid>()
        .ok()
        .and_then(|id| state.dashboard.jobs.get(id))
        .ok_or_else(|| PageError::not_found(format!("没有重放任务 no replay job {id}")))
}

pub async fn job_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let job = find(&state, &id)?;
    let p = job.progress();
    render(&JobPage {
        chrome: Chrome::new(&viewer, "重放进度 Replay progress", "dead"),
        job,
        p,
    })
}

pub async fn progress(
    State(state): State<AppState>,
    _viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Json<Progress>, PageError> {
    Ok(Json(find(&state, &id)?.progress()))
}
