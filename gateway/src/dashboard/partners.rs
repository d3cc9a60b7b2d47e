//! Partners: pause and resume deliveries (maintenance), configuration and mapping version,
//! recent errors, rate limits and the circuit breaker.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

use super::auth::Viewer;
use super::config::Role;
use super::page::{Chrome, PageError, fmt_opt_time, fmt_time, render};
use crate::api::AppState;
use crate::delivery::breaker::CircuitState;
use crate::store::Pause;

struct Setting {
    label: &'static str,
    value: String,
}

struct PartnerCard {
    id: String,
    paused: Option<(String, String, String)>,
    circuit: &'static str,
    failures: u32,
    open_until: String,
    opened: u64,
    settings: Vec<Setting>,
    errors: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "partners.html")]
struct PartnersPage {
    chrome: Chrome,
    partners: Vec<PartnerCard>,
}

fn rate(v: Option<u32>) -> String {
    v.map_or_else(|| "不限 unlimited".into(), |n| format!("{n}/s"))
}

pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let now = Utc::now();
    let mut partners = Vec::new();
    for id in state.engine.partner_ids() {
        let Some(p) = state.engine.partner(id) else {
            continue;
        };
        let circuit = p.breaker.view();
        let mut settings = vec![
            Setting {
                label: "映射 Mapping",
                value: p.adapter.mapping_version().map_or_else(
                    || "webhook (canonical JSON)".into(),
                    |(m, v)| format!("{m} · version {v}"),
                ),
            },
            Setting {
                label: "轮询 Polled",
                value: if p.adapter.polled() {
                    "是 yes"
                } else {
                    "否 no (push)"
                }
                .into(),
            },
            Setting {
                label: "三方通话 Transfers",
                value: if p.adapter.transfers() {
                    "是 yes"
                } else {
                    "否 no"
                }
                .into(),
            },
            Setting {
                label: "并发 Concurrency",
                value: p.concurrency.to_string(),
            },
            Setting {
                label: "最多尝试 Max attempts",
                value: p.retry.max_attempts().to_string(),
            },
            Setting {
                label: "入站限流 Inbound limit",
                value: p
                    .inbound
                    .as_ref()
                    .map_or_else(|| "不限 unlimited".into(), |_| "已启用 on".into()),
            },
        ];
        if let Some(c) = state.dashboard.partners.get(id) {
            settings.extend([
                Setting {
                    label: "地址 URL",
                    value: c.url.clone(),
                },
                Setting {
                    label: "超时 Timeout",
                    value: humantime::format_duration(c.timeout).to_string(),
                },
                Setting {
                    label: "重试间隔 Retry delay",
                    value: format!(
                        "{} → {} ×{}",
                        humantime::format_duration(c.retry.min_delay),
                        humantime::format_duration(c.retry.max_delay),
                        c.retry.factor
                    ),
                },
                Setting {
                    label: "熔断 Breaker",
                    value: format!(
                        "{} 次失败 failures, 冷却 cool-down {} – {}",
                        c.breaker.failures,
                        humantime::format_duration(c.breaker.cooldown),
                        humantime::format_duration(c.breaker.max_cooldown)
                    ),
                },
                Setting {
                    label: "入站速率 Inbound rate",
                    value: format!(
                        "{} (突发 burst {})",
                        rate(c.inbound_rate),
                        c.inbound_burst
                            .map_or_else(|| "–".into(), |b| b.to_string())
                    ),
                },
                Setting {
                    label: "出站速率 Outbound rate",
                    value: rate(c.outbound_rate),
                },
            ]);
        }
        partners.push(PartnerCard {
            id: id.to_owned(),
            paused: p.paused().map(|x| (fmt_time(x.since), x.by, x.reason)),
            circuit: match circuit.state {
                CircuitState::Closed => "闭合 closed",
                CircuitState::Open => "断开 open",
                CircuitState::HalfOpen => "探测 half-open",
            },
            failures: circuit.failures,
            open_until: fmt_opt_time(circuit.open_until),
            opened: circuit.opened,
            settings,
            errors: p
                .recent
                .view(now)
                .errors
                .into_iter()
                .map(|e| (fmt_time(e.at), e.text))
                .collect(),
        });
    }
    render(&PartnersPage {
        chrome: Chrome::new(&viewer, "合作方 Partners", "partners"),
        partners,
    })
}

#[derive(Deserialize)]
pub struct PauseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: Option<String>,
}

fn known(state: &AppState, id: &str) -> Result<(), PageError> {
    match state.engine.partner(id) {
        Some(_) => Ok(()),
        None => Err(PageError::not_found(format!(
            "没有合作方 no partner `{id}`"
        ))),
    }
}

pub async fn pause(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<PauseForm>,
) -> Result<Response, PageError> {
    viewer.may(Role::Operator, &f.csrf)?;
    known(&state, &id)?;
    let reason = super::required_reason(f.reason.as_deref())?;
    state
        .engine
        .pause(Pause {
            partner: id.clone(),
            since: Utc::now(),
            by: viewer.user.clone(),
            reason: reason.clone(),
        })
        .await?;
    super::record(
        &state,
        &viewer,
        "partner.pause",
        Some(id),
        Some(reason),
        serde_json::json!({}),
    )
    .await?;
    Ok(Redirect::to("/ui/partners").into_response())
}

pub async fn resume(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<PauseForm>,
) -> Result<Response, PageError> {
    viewer.may(Role::Operator, &f.csrf)?;
    known(&state, &id)?;
    let reason = super::optional_reason(&f.reason);
    state.engine.resume(&id).await?;
    super::record(
        &state,
        &viewer,
        "partner.resume",
        Some(id),
        reason,
        serde_json::json!({}),
    )
    .await?;
    Ok(Redirect::to("/ui/partners").into_response())
}
