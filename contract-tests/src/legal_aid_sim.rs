//! The legal-aid case system (法律援助办案系统) over real HTTP: it checks our SM2 signature and the
//! application as the real system would (ID number, phone, required fields), files cases, lists
//! open cases and their updates, and reports case updates to the gateway signed with its own
//! SM2 key. Tests drive its cases: in order, out of order, twice, or without telling the gateway
//! (a diverged case for reconciliation).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, FixedOffset, Utc};
use hotline_adapters::legal_aid::{
    CaseSummary, WireApplication, WireCaseUpdate, public_key_hex, signature_spec,
};
use hotline_adapters::signature::Signer;
use hotline_model::legal_aid::{CaseStatus, CaseUpdate};
use serde_json::{Value, json};

/// The simulator's SM2 private key (fixed, for tests and the demo only).
pub const CASE_SYSTEM_KEY: &str =
    "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8";
/// The gateway's SM2 private key in tests and the demo.
pub const GATEWAY_KEY: &str = "128b2fa8bd433c6c068c8d803dff79792a519a55171b1b650c23661d15897263";

/// One filed case, as the case system keeps it.
#[derive(Debug, Clone)]
pub struct SimCase {
    pub case_no: String,
    pub application: WireApplication,
    pub received_at: DateTime<FixedOffset>,
    /// Every update so far; `updates[i].version == i + 1`.
    pub updates: Vec<CaseUpdate>,
}

struct Inner {
    /// Signs as the case system, checks the gateway.
    signer: Signer,
    cases: Mutex<BTreeMap<String, SimCase>>,
    /// The run's part of every case number.
    series: String,
    refused: Mutex<Vec<Value>>,
    gateway: Mutex<Option<String>>,
    client: reqwest::Client,
}

#[derive(Clone)]
pub struct LegalAidSim {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn beijing_now() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&FixedOffset::east_opt(8 * 3600).expect("valid offset"))
}

/// This simulator run's part of its case numbers: its start time (Beijing) and its place among
/// the runs started in this process, so that a restarted simulator never hands out a number an
/// earlier run gave another ticket (a demo's data outlives its simulators).
fn run_series() -> String {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}{run:02}", beijing_now().format("%Y%m%d%H%M%S"))
}

/// The `n`th case of a run.
fn case_number(series: &str, n: usize) -> String {
    format!("FY-370102-{series}-{n:04}")
}

impl LegalAidSim {
    /// Starts on a loopback `port` (0: any free one); the gateway signs with `GATEWAY_KEY`.
    pub async fn start(port: u16) -> anyhow::Result<Self> {
        let inner = Arc::new(Inner {
            signer: Signer {
                spec: signature_spec(),
                app_id: "hotline-12348".into(),
                our_secret: CASE_SYSTEM_KEY.into(),
                their_secret: public_key_hex(GATEWAY_KEY).map_err(anyhow::Error::msg)?,
            },
            series: run_series(),
            cases: Mutex::default(),
            refused: Mutex::default(),
            gateway: Mutex::default(),
            client: reqwest::Client::new(),
        });
        let app = Router::new()
            .route("/applications", post(file))
            .route("/cases", get(list))
            .route("/cases/{case_no}/updates", get(updates))
            .with_state(Arc::clone(&inner));
        let addr = crate::serve(port, app, "legal-aid case system simulator").await?;
        Ok(Self { addr, inner })
    }

    /// The API base the gateway is configured with.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The case system's public key, for the gateway's `verify_secret`.
    pub fn public_key() -> String {
        public_key_hex(CASE_SYSTEM_KEY).unwrap_or_default()
    }

    pub fn set_gateway(&self, base: &str) {
        *lock(&self.inner.gateway) = Some(base.trim_end_matches('/').to_owned());
    }

    pub fn cases(&self) -> Vec<SimCase> {
        lock(&self.inner.cases).values().cloned().collect()
    }

    pub fn case(&self, case_no: &str) -> Option<SimCase> {
        lock(&self.inner.cases).get(case_no).cloned()
    }

    /// Applications refused, with the case system's answer.
    pub fn refused(&self) -> Vec<Value> {
        lock(&self.inner.refused).clone()
    }

    /// Records the case's next status without telling the gateway; the new update.
    pub fn advance_quietly(&self, case_no: &str, status: CaseStatus) -> Option<CaseUpdate> {
        let mut cases = lock(&self.inner.cases);
        let case = cases.get_mut(case_no)?;
        let update = CaseUpdate {
            case_no: case_no.to_owned(),
            version: case.updates.len() as u64 + 1,
            ticket_id: case.application.gateway_ref,
            received_at: case.received_at,
            at: beijing_now(),
            status,
        };
        case.updates.push(update.clone());
        Some(update)
    }

    /// Records the case's next status and reports it to the gateway; the gateway's answer.
    pub async fn advance(&self, case_no: &str, status: CaseStatus) -> anyhow::Result<(u16, Value)> {
        let u = self
            .advance_quietly(case_no, status)
            .ok_or_else(|| anyhow::anyhow!("no case {case_no}"))?;
        self.push(case_no, u.version).await
    }

    /// Reports version `version` of a case to the gateway (again, or out of order).
    pub async fn push(&self, case_no: &str, version: u64) -> anyhow::Result<(u16, Value)> {
        let update = self
            .case(case_no)
            .and_then(|c| c.updates.get(version as usize - 1).cloned())
            .ok_or_else(|| anyhow::anyhow!("no version {version} of {case_no}"))?;
        let body = serde_json::to_vec(&WireCaseUpdate::from_update(&update))?;
        self.send_signed(body).await
    }

    /// POSTs a case update body to the gateway, signed by the case system.
    pub async fn send_signed(&self, body: Vec<u8>) -> anyhow::Result<(u16, Value)> {
        let base = lock(&self.inner.gateway)
            .clone()
            .ok_or_else(|| anyhow::anyhow!("simulator has no gateway URL"))?;
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse()?);
        self.inner.signer.sign(&mut headers, &body)?;
        let resp = self
            .inner
            .client
            .post(format!("{base}/partners/legal-aid/cases/updates"))
            .headers(headers)
            .body(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let answer = resp.json().await.unwrap_or(Value::Null);
        Ok((status, answer))
    }
}

impl Inner {
    /// Checks the gateway's SM2 signature; the 401 answer when it does not hold.
    fn refusal(&self, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
        let e = self.signer.verify(headers, body).err()?;
        Some(
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"code": "bad_signature", "reason": e.0})),
            )
                .into_response(),
        )
    }
}

async fn file(State(sim): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = sim.refusal(&headers, &body) {
        return refused;
    }
    let app: WireApplication = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"code": "malformed", "reason": e.to_string()})),
            )
                .into_response();
        }
    };
    let problems = match app.application() {
        Ok(a) => a
            .problems()
            .into_iter()
            .map(|p| json!({"field": p.field, "reason": p.reason}))
            .collect(),
        Err(e) => vec![json!({"field": "application", "reason": e})],
    };
    if !problems.is_empty() {
        let answer = json!({"code": "invalid", "errors": problems});
        lock(&sim.refused).push(answer.clone());
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(answer)).into_response();
    }
    let mut cases = lock(&sim.cases);
    if let Some(c) = cases
        .values()
        .find(|c| c.application.application_id == app.application_id)
    {
        return (StatusCode::OK, axum::Json(json!({"caseNo": c.case_no}))).into_response();
    }
    let case_no = case_number(&sim.series, cases.len() + 1);
    cases.insert(
        case_no.clone(),
        SimCase {
            case_no: case_no.clone(),
            application: app,
            received_at: beijing_now(),
            updates: Vec::new(),
        },
    );
    (StatusCode::CREATED, axum::Json(json!({"caseNo": case_no}))).into_response()
}

#[derive(serde::Deserialize)]
struct ListQuery {
    status: Option<String>,
}

async fn list(
    State(sim): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Some(refused) = sim.refusal(&headers, b"") {
        return refused;
    }
    let open_only = q.status.as_deref() == Some("open");
    let cases: Vec<CaseSummary> = lock(&sim.cases)
        .values()
        .filter_map(|c| {
            let last = c.updates.last()?;
            (!open_only || !last.status.is_final()).then(|| CaseSummary {
                case_no: c.case_no.clone(),
                version: last.version,
                status: last.status.name().to_owned(),
            })
        })
        .collect();
    axum::Json(json!({ "cases": cases })).into_response()
}

#[derive(serde::Deserialize)]
struct After {
    after: Option<u64>,
}

async fn updates(
    State(sim): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(case_no): Path<String>,
    Query(q): Query<After>,
) -> Response {
    if let Some(refused) = sim.refusal(&headers, b"") {
        return refused;
    }
    let Some(case) = lock(&sim.cases).get(&case_no).cloned() else {
        return (StatusCode::NOT_FOUND, "no such case").into_response();
    };
    let after = q.after.unwrap_or(0);
    let list: Vec<WireCaseUpdate> = case
        .updates
        .iter()
        .filter(|u| u.version > after)
        .map(WireCaseUpdate::from_update)
        .collect();
    axum::Json(json!({ "updates": list })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_run_never_repeats_an_earlier_runs_case_numbers() {
        let (first, second) = (run_series(), run_series());
        assert_ne!(case_number(&first, 1), case_number(&second, 1));
        assert_ne!(case_number(&first, 1), case_number(&first, 2));
    }
}
