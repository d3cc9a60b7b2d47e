//! The 12348 call centre's CTI, simulated over real HTTP: answers partners' transfer offers as
//! told and records what the gateway tells it about transfers that ended.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use crate::behaviour::{CtiBehaviour, Seat};

#[derive(Default)]
struct Inner {
    behaviour: Mutex<Option<CtiBehaviour>>,
    /// When set, every request must carry `Authorization: Bearer <token>`.
    token: Option<String>,
    asks: Mutex<Vec<Value>>,
    notices: Mutex<Vec<Value>>,
    /// Answer notices with 503 while set (a CTI that is down).
    down: Mutex<bool>,
}

#[derive(Clone)]
pub struct HomeCtiSim {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HomeCtiSim {
    pub async fn start(token: Option<String>) -> anyhow::Result<Self> {
        let inner = Arc::new(Inner {
            behaviour: Mutex::new(Some(CtiBehaviour::Grant)),
            token,
            ..Inner::default()
        });
        let app = Router::new()
            .route("/cti/transfers", post(ask))
            .route("/cti/transfer-events", post(notice))
            .with_state(Arc::clone(&inner));
        let addr = crate::serve(0, app, "home CTI simulator").await?;
        Ok(Self { addr, inner })
    }

    /// What to configure as `transfers.home_cti_url`.
    pub fn url(&self) -> String {
        format!("http://{}/cti", self.addr)
    }

    pub fn set_behaviour(&self, b: CtiBehaviour) {
        *lock(&self.inner.behaviour) = Some(b);
    }

    pub fn set_down(&self, down: bool) {
        *lock(&self.inner.down) = down;
    }

    /// The partners' offers the gateway passed on: `{transfer_id, partner, offer}`.
    pub fn asks(&self) -> Vec<Value> {
        lock(&self.inner.asks).clone()
    }

    /// What the gateway said about transfers that ended.
    pub fn notices(&self) -> Vec<Value> {
        lock(&self.inner.notices).clone()
    }
}

fn authorised(inner: &Inner, headers: &HeaderMap) -> bool {
    let Some(token) = &inner.token else {
        return true;
    };
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {token}"))
}

async fn ask(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorised(&inner, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let n = {
        let mut asks = lock(&inner.asks);
        asks.push(body);
        asks.len()
    };
    let behaviour = lock(&inner.behaviour)
        .clone()
        .unwrap_or(CtiBehaviour::Grant);
    let seat = Seat {
        dial_target: format!("sip:12348-queue-{n}@cti.12348.sim"),
        token: format!("H{n:06}"),
        partner_ref: None,
    };
    let Some(answer) = behaviour.answer(seat).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "fault").into_response();
    };
    Json(answer).into_response()
}

async fn notice(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorised(&inner, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if *lock(&inner.down) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    lock(&inner.notices).push(body);
    StatusCode::NO_CONTENT.into_response()
}
