//! A partner that speaks the generic Standard Webhooks JSON dialect, over real HTTP.
//!
//! It verifies every delivery's signature with the official `standardwebhooks` library, answers
//! with its own ticket number, deduplicates on the message id, and can be told to fail in each
//! realistic way. It also plays the partner's side towards the gateway: sending tickets, business
//! events and late acknowledgements, signed with its own secret.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hotline_model::{EventBody, TicketDraft};
use serde_json::{Value, json};
use standardwebhooks::Webhook;
use uuid::Uuid;

pub use crate::behaviour::{Behaviour, Hit, Received};

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub partner: String,
    /// The gateway's signing secret for this partner: what deliveries are verified with.
    pub verify_secret: String,
    /// The partner's own secret: what it signs its messages to the gateway with.
    pub signing_secret: String,
    /// Base URL of the gateway (`http://127.0.0.1:8348`), for messages to it.
    pub gateway: Option<String>,
    /// Send a 签收 receipt to the gateway this long after taking a dispatch.
    pub auto_receipt: Option<Duration>,
}

struct Inner {
    opts: Mutex<SimOptions>,
    verifier: Webhook,
    signer: Webhook,
    behaviour: Mutex<Behaviour>,
    hits: Mutex<Vec<Hit>>,
    received: Mutex<Vec<Received>>,
    numbers: Mutex<HashMap<String, String>>,
    client: reqwest::Client,
}

#[derive(Clone)]
pub struct WebhookSim {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WebhookSim {
    /// Starts the simulator on `127.0.0.1:port` (0 for any free port).
    pub async fn start(opts: SimOptions, port: u16) -> anyhow::Result<Self> {
        let inner = Arc::new(Inner {
            verifier: Webhook::new(&opts.verify_secret)?,
            signer: Webhook::new(&opts.signing_secret)?,
            opts: Mutex::new(opts),
            behaviour: Mutex::new(Behaviour::Ack),
            hits: Mutex::default(),
            received: Mutex::default(),
            numbers: Mutex::default(),
            client: reqwest::Client::new(),
        });
        let app = Router::new()
            .route("/inbox", post(inbox))
            .with_state(Arc::clone(&inner));
        let addr = crate::serve(port, app, "webhook simulator").await?;
        Ok(Self { addr, inner })
    }

    pub fn url(&self) -> String {
        format!("http://{}/inbox", self.addr)
    }

    pub fn partner(&self) -> String {
        lock(&self.inner.opts).partner.clone()
    }

    pub fn set_gateway(&self, base: &str) {
        lock(&self.inner.opts).gateway = Some(base.trim_end_matches('/').to_owned());
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        *lock(&self.inner.behaviour) = b;
    }

    pub fn hits(&self) -> Vec<Hit> {
        lock(&self.inner.hits).clone()
    }

    /// Messages taken, each once however often it was delivered.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.inner.received).clone()
    }

    /// Sends a ticket to the gateway as this partner; returns the status and the JSON answer.
    pub async fn send_ticket(
        &self,
        partner_number: &str,
        draft: &TicketDraft,
    ) -> anyhow::Result<(u16, Value)> {
        let body = json!({
            "type": "ticket",
            "message_id": format!("{}-{partner_number}", self.partner()),
            "partner_number": partner_number,
            "ticket": draft,
        });
        self.inner.post_to_gateway(&body).await
    }

    /// Sends a business event about a gateway ticket.
    pub async fn send_event(
        &self,
        ticket_id: Uuid,
        message_id: &str,
        event: &EventBody,
    ) -> anyhow::Result<(u16, Value)> {
        let body = json!({
            "type": "event", "message_id": message_id, "ticket_id": ticket_id, "event": event,
        });
        self.inner.post_to_gateway(&body).await
    }
}

impl Inner {
    fn sign(&self, body: &[u8]) -> anyhow::Result<HeaderMap> {
        let id = format!("msg_{}", Uuid::now_v7().simple());
        let ts = chrono::Utc::now().timestamp();
        let sig = self.signer.sign(&id, ts, body)?;
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/json".parse()?);
        h.insert("webhook-id", id.parse()?);
        h.insert("webhook-timestamp", ts.to_string().parse()?);
        h.insert("webhook-signature", sig.parse()?);
        Ok(h)
    }

    async fn post_to_gateway(&self, body: &Value) -> anyhow::Result<(u16, Value)> {
        let (base, partner) = {
            let o = lock(&self.opts);
            (o.gateway.clone(), o.partner.clone())
        };
        let base = base.ok_or_else(|| anyhow::anyhow!("simulator has no gateway URL"))?;
        let bytes = serde_json::to_vec(body)?;
        let resp = self
            .client
            .post(format!("{base}/partners/{partner}/messages"))
            .headers(self.sign(&bytes)?)
            .body(bytes)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let json = resp.json().await.unwrap_or(Value::Null);
        Ok((status, json))
    }
}

async fn inbox(State(sim): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let message_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let slow = match &*lock(&sim.behaviour) {
        Behaviour::Slow { delay } => Some(*delay),
        _ => None,
    };
    if let Some(delay) = slow {
        tokio::time::sleep(delay).await;
    }
    let (status, resp) = answer(&sim, &headers, &body, &message_id);
    lock(&sim.hits).push(Hit {
        at: Instant::now(),
        message_id,
        status: status.as_u16(),
    });
    resp
}

fn answer(
    sim: &Arc<Inner>,
    headers: &HeaderMap,
    body: &[u8],
    message_id: &str,
) -> (StatusCode, Response) {
    let reply =
        |status: StatusCode, body: Value| (status, (status, axum::Json(body)).into_response());
    if let Err(e) = sim.verifier.verify(body, headers) {
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": format!("signature: {e}")}),
        );
    }
    let envelope: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return reply(StatusCode::BAD_REQUEST, json!({"error": e.to_string()})),
    };
    // Check what a real partner would insist on.
    for field in ["type", "message_id", "ticket", "event"] {
        if envelope.get(field).is_none() {
            return reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": format!("missing {field}")}),
            );
        }
    }
    if envelope["message_id"].as_str() != Some(message_id) {
        return reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "message_id differs from webhook-id"}),
        );
    }
    let behaviour = Behaviour::take(&mut lock(&sim.behaviour));
    let fail = |status: u16| {
        let s = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (s, (s, "simulated failure").into_response())
    };
    match behaviour {
        Behaviour::Fail { status } | Behaviour::FailTimes { status, .. } => return fail(status),
        Behaviour::Code { .. } => return fail(500),
        Behaviour::RetryAfter { secs, .. } => {
            let resp = (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.to_string())],
                "slow down",
            )
                .into_response();
            return (StatusCode::TOO_MANY_REQUESTS, resp);
        }
        Behaviour::Flaky { percent } if rand::random_ratio(percent.min(100), 100) => {
            return fail(503);
        }
        Behaviour::Redirect { to } => {
            let resp =
                (StatusCode::TEMPORARY_REDIRECT, [("location", to)], "moved").into_response();
            return (StatusCode::TEMPORARY_REDIRECT, resp);
        }
        Behaviour::Malformed => {
            return (
                StatusCode::OK,
                (StatusCode::OK, "<html>oops</html>").into_response(),
            );
        }
        _ => {}
    }
    let number = take(sim, message_id, &envelope);
    if let Behaviour::Async { delay } = behaviour {
        let sim = Arc::clone(sim);
        let id = message_id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let ack = json!({"type": "ack", "message_id": id, "partner_number": number, "accepted": true});
            if let Err(e) = sim.post_to_gateway(&ack).await {
                tracing::warn!(error = %e, "simulated late ack failed");
            }
        });
        return reply(StatusCode::ACCEPTED, json!({"received": true}));
    }
    reply(StatusCode::OK, json!({"partner_ticket_number": number}))
}

/// Records a message the first time it arrives and gives it a number; a repeat gets the same one.
fn take(sim: &Arc<Inner>, message_id: &str, envelope: &Value) -> String {
    let ticket_id = envelope["ticket"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut numbers = lock(&sim.numbers);
    let mut received = lock(&sim.received);
    if let Some(r) = received.iter().find(|r| r.message_id == message_id) {
        return r.partner_number.clone();
    }
    let partner = lock(&sim.opts).partner.to_uppercase();
    let next = numbers.len() + 1;
    let number = numbers
        .entry(ticket_id.clone())
        .or_insert_with(|| format!("{partner}-{next:06}"))
        .clone();
    let message_type = envelope["type"].as_str().unwrap_or_default().to_owned();
    received.push(Received {
        message_id: message_id.to_owned(),
        message_type: message_type.clone(),
        envelope: envelope.clone(),
        partner_number: number.clone(),
    });
    let auto = lock(&sim.opts).auto_receipt;
    if let (Some(delay), "dispatch", Ok(ticket)) =
        (auto, message_type.as_str(), ticket_id.parse::<Uuid>())
    {
        let sim = Arc::clone(sim);
        let n = number.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let body = json!({
                "type": "event", "message_id": format!("receipt-{n}"), "ticket_id": ticket,
                "event": {"kind": "receipt", "partner_number": n},
            });
            if let Err(e) = sim.post_to_gateway(&body).await {
                tracing::warn!(error = %e, "simulated receipt failed");
            }
        });
    }
    number
}
