//! One ticket: the canonical ticket (personal data masked unless an admin asks, with a reason),
//! its lifecycle and SLA clocks, every event, every delivery attempt and the wire payload.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use hotline_adapters::OutboundMessage;
use hotline_model::{Event, Ticket};
use serde::Deserialize;
use uuid::Uuid;

use super::auth::Viewer;
use super::config::Role;
use super::page::{Chrome, PageError, fmt_opt_time, fmt_time, render};
use crate::api::AppState;
use crate::store::Delivery;

struct Field {
    label: &'static str,
    value: String,
}

struct EventRow {
    at: String,
    kind: &'static str,
    source: String,
    body: String,
}

struct AttemptRow {
    number: u32,
    at: String,
    duration_ms: u64,
    outcome: String,
    http_status: String,
    partner_code: String,
    error: String,
    partner_ref: String,
}

struct DeliveryBlock {
    id: String,
    partner: String,
    message_type: &'static str,
    status: &'static str,
    message_id: String,
    attempts: Vec<AttemptRow>,
    payload: String,
    dead: bool,
}

struct ClockRow {
    kind: &'static str,
    party: String,
    started: String,
    due: String,
    urge: String,
    state: &'static str,
    urged: String,
    overdue: String,
}

#[derive(Template)]
#[template(path = "ticket.html")]
struct TicketPage {
    chrome: Chrome,
    id: String,
    unmasked: bool,
    confidential: bool,
    fields: Vec<Field>,
    personal: Vec<Field>,
    clocks: Vec<ClockRow>,
    events: Vec<EventRow>,
    deliveries: Vec<DeliveryBlock>,
    refusals: Vec<Field>,
    back: String,
}

/// The body the partner's adapter makes of this message today, decoded for reading.
fn payload(state: &AppState, d: &Delivery, ticket: &Ticket, event: Option<&Event>) -> String {
    let (Some(partner), Some(event)) = (state.engine.partner(&d.partner), event) else {
        return "（无法重建 cannot be rebuilt: partner or event gone）".into();
    };
    let msg = OutboundMessage {
        message_id: d.message_id,
        ticket: ticket.clone(),
        event: event.clone(),
    };
    match partner.adapter.encode(&msg) {
        Ok(req) => {
            let charset = req
                .headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split("charset=").nth(1))
                .unwrap_or("utf-8")
                .trim()
                .to_ascii_lowercase();
            let text = match encoding_rs::Encoding::for_label(charset.as_bytes()) {
                Some(enc) => enc.decode(&req.body).0.into_owned(),
                None => String::from_utf8_lossy(&req.body).into_owned(),
            };
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(v) => serde_json::to_string_pretty(&v).unwrap_or(text),
                Err(_) => text,
            }
        }
        Err(e) => format!("（不发送 not sent: {e}）"),
    }
}

async fn show(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    unmasked: bool,
) -> Result<Response, PageError> {
    let id: Uuid = id
        .parse()
        .map_err(|_| PageError::bad_request("id: 不是有效的工单编号 not a ticket id"))?;
    let stored = state
        .store
        .ticket(id)
        .await?
        .ok_or_else(|| PageError::not_found(format!("没有工单 no ticket {id}")))?;
    let ticket = if unmasked {
        stored
    } else {
        crate::mask::ticket(&stored)
    };
    let events = state.store.events(id).await?;
    let attempts = state.store.attempts_for_ticket(id).await?;
    let deliveries = state.store.ticket_deliveries(id).await?;
    let clocks = state.store.clocks(id).await?;
    let refusals = state.store.refusals(id).await?;
    let d = &ticket.draft;
    let mut fields = vec![
        Field {
            label: "网关编号 Gateway id",
            value: ticket.id.to_string(),
        },
        Field {
            label: "来源 Origin",
            value: ticket.origin.clone(),
        },
        Field {
            label: "来源编号 Origin number",
            value: ticket.external_id.clone().unwrap_or_default(),
        },
        Field {
            label: "状态 Status",
            value: ticket.status.as_str().to_owned(),
        },
        Field {
            label: "类型 Kind",
            value: crate::store::enum_str(&d.kind),
        },
        Field {
            label: "紧急程度 Urgency",
            value: crate::store::enum_str(&d.urgency),
        },
        Field {
            label: "行政区划 Region",
            value: d.region_code.clone(),
        },
        Field {
            label: "问题分类 Classification",
            value: d.classification_code.clone().unwrap_or_default(),
        },
        Field {
            label: "标题 Title",
            value: d.title.clone(),
        },
        Field {
            label: "内容 Content",
            value: d.content.clone(),
        },
        Field {
            label: "涉及单位 Units",
            value: d.units.join("、"),
        },
        Field {
            label: "来电时间 Received",
            value: d.received_at.to_rfc3339(),
        },
        Field {
            label: "创建 Created",
            value: fmt_time(ticket.created_at),
        },
        Field {
            label: "更新 Updated",
            value: fmt_time(ticket.updated_at),
        },
    ];
    for (partner, number) in &ticket.partner_numbers {
        fields.push(Field {
            label: "合作方编号 Partner number",
            value: format!("{partner}: {number}"),
        });
    }
    let personal = vec![
        Field {
            label: "姓名 Name",
            value: d.caller.name.clone(),
        },
        Field {
            label: "电话 Phone",
            value: d.caller.phone.clone(),
        },
        Field {
            label: "身份证号 ID number",
            value: d.caller.id_number.clone().unwrap_or_default(),
        },
        Field {
            label: "地址 Address",
            value: d.address.clone().unwrap_or_default(),
        },
    ];
    let blocks = deliveries
        .iter()
        .map(|dl| DeliveryBlock {
            id: dl.id.to_string(),
            partner: dl.partner.clone(),
            message_type: dl.message_type.as_str(),
            status: dl.status.as_str(),
            message_id: dl.message_id.to_string(),
            attempts: attempts
                .iter()
                .filter(|a| a.delivery_id == dl.id)
                .map(|a| AttemptRow {
                    number: a.number,
                    at: fmt_time(a.started_at),
                    duration_ms: a.duration_ms,
                    outcome: a.outcome.clone(),
                    http_status: a.http_status.map(|s| s.to_string()).unwrap_or_default(),
                    partner_code: a.partner_code.clone().unwrap_or_default(),
                    error: a.error.clone().unwrap_or_default(),
                    partner_ref: a.partner_ref.clone().unwrap_or_default(),
                })
                .collect(),
            payload: payload(
                state,
                dl,
                &ticket,
                events.iter().find(|e| e.id == dl.event_id),
            ),
            dead: dl.status == crate::store::DeliveryStatus::Dead,
        })
        .collect();
    let page = TicketPage {
        chrome: Chrome::new(
            viewer,
            format!(
                "工单 Ticket {}",
                ticket.external_id.as_deref().unwrap_or("")
            ),
            "deliveries",
        ),
        id: id.to_string(),
        unmasked,
        confidential: d.confidential,
        fields,
        personal,
        clocks: clocks
            .iter()
            .map(|c| ClockRow {
                kind: c.kind.as_str(),
                party: c.party.clone(),
                started: fmt_time(c.started_at),
                due: fmt_time(c.due_at),
                urge: fmt_time(c.urge_at),
                state: c.state.as_str(),
                urged: fmt_opt_time(c.urged_at),
                overdue: fmt_opt_time(c.overdue_at),
            })
            .collect(),
        events: events
            .iter()
            .map(|e| EventRow {
                at: fmt_time(e.at),
                kind: e.kind().as_str(),
                source: e.source.clone(),
                body: serde_json::to_string(&e.body)
                    .unwrap_or_default()
                    .chars()
                    .take(400)
                    .collect(),
            })
            .collect(),
        deliveries: blocks,
        refusals: refusals
            .iter()
            .map(|r| Field {
                label: r.kind.as_str(),
                value: format!("{} · {} · {}", fmt_time(r.at), r.source, r.reason),
            })
            .collect(),
        back: format!("/ui/tickets/{id}"),
    };
    render(&page)
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    show(&state, &viewer, &id, false).await
}

#[derive(Deserialize)]
pub struct UnmaskForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: Option<String>,
}

/// Shows the ticket with personal data, to an admin who gave a reason; audited first.
pub async fn unmask(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<UnmaskForm>,
) -> Result<Response, PageError> {
    viewer.may(Role::Admin, &f.csrf)?;
    let reason = super::required_reason(f.reason.as_deref())?;
    if id.parse::<Uuid>().is_err() {
        return Err(PageError::bad_request(
            "id: 不是有效的工单编号 not a ticket id",
        ));
    }
    super::record(
        &state,
        &viewer,
        "ticket.unmask",
        Some(id.clone()),
        Some(reason),
        serde_json::json!({ "fields": ["caller.name", "caller.phone", "caller.id_number", "address"] }),
    )
    .await?;
    show(&state, &viewer, &id, true).await
}
