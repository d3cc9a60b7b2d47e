//! A partner defined by a mapping folder, over real HTTP: 12345, 12315, 12333 ... or any
//! province's variant. It loads the same `mapping.toml` and `partner.toml` the gateway does,
//! checks our signature, decodes every delivery strictly (required fields, codes, times,
//! encoding), answers in the partner's dialect, and plays the partner's side towards the gateway.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hotline_adapters::mapped::load_folder;
use hotline_adapters::mapped::profile::{AckStyle, HttpStatusPolicy, Profile};
use hotline_adapters::mapping::spec::Format;
use hotline_adapters::mapping::{
    Doc, Mapping, TranslateError, answer_document, read_text, write_text, xml,
};
use hotline_adapters::signature::Signer;
use hotline_model::TransferAnswer;
use serde_json::Value;

pub use crate::behaviour::{Behaviour, CtiBehaviour, Hit, Received, Seat};

pub struct MappedSimOptions<'a> {
    /// The partner folder, e.g. `mappings/12345`.
    pub dir: &'a Path,
    /// The gateway's app id, secret (what deliveries are signed with) and the partner's own.
    pub app_id: String,
    pub gateway_secret: String,
    pub partner_secret: String,
}

struct Inner {
    partner: String,
    mapping: Mapping,
    profile: Profile,
    signer: Signer,
    behaviour: Mutex<Behaviour>,
    hits: Mutex<Vec<Hit>>,
    received: Mutex<Vec<Received>>,
    raw: Mutex<Vec<Vec<u8>>>,
    numbers: Mutex<HashMap<String, String>>,
    gateway: Mutex<Option<String>>,
    client: reqwest::Client,
    /// Polled partners: messages waiting for the gateway to take them.
    outbox: Mutex<Vec<Value>>,
    acked: Mutex<Vec<String>>,
    refused: Mutex<Vec<(String, String)>>,
    /// Sign for (签收) and reply to (办结) each ticket taken, this long apart.
    auto_reply: Mutex<Option<Duration>>,
    /// The CTI side: how transfer offers are answered, and the offers received.
    cti: Mutex<CtiBehaviour>,
    offers: Mutex<Vec<Received>>,
    offer_raw: Mutex<Vec<Vec<u8>>>,
    /// Message ids taken, for deduplication.
    seen: Mutex<HashSet<String>>,
    /// When each message was first taken: (the ticket's origin number, or the message id; Unix ms).
    arrivals: Mutex<Vec<(String, i64)>>,
    /// Keep only ids and arrival times, not every message (benchmarks).
    lean: AtomicBool,
}

#[derive(Clone)]
pub struct MappedSim {
    pub addr: SocketAddr,
    /// Served over TLS (at `https://localhost:<port>`).
    tls: bool,
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MappedSim {
    pub async fn start(opts: MappedSimOptions<'_>) -> anyhow::Result<Self> {
        Self::start_on(opts, 0).await
    }

    /// Starts on a given loopback port (0: any free one).
    pub async fn start_on(opts: MappedSimOptions<'_>, port: u16) -> anyhow::Result<Self> {
        Self::start_with(opts, port, None).await
    }

    /// Starts over TLS with this server configuration (its certificate names `localhost`; a
    /// client certificate verifier in it makes the partner demand mutual TLS).
    pub async fn start_tls(
        opts: MappedSimOptions<'_>,
        tls: Arc<rustls::ServerConfig>,
    ) -> anyhow::Result<Self> {
        Self::start_with(opts, 0, Some(tls)).await
    }

    async fn start_with(
        opts: MappedSimOptions<'_>,
        port: u16,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> anyhow::Result<Self> {
        let (mapping, profile) = load_folder(opts.dir)?;
        let inner = Arc::new(Inner {
            partner: mapping.partner.clone(),
            signer: Signer {
                spec: profile.signature.clone(),
                app_id: opts.app_id,
                our_secret: opts.gateway_secret,
                their_secret: opts.partner_secret,
            },
            mapping,
            profile,
            behaviour: Mutex::new(Behaviour::Ack),
            hits: Mutex::default(),
            received: Mutex::default(),
            raw: Mutex::default(),
            numbers: Mutex::default(),
            gateway: Mutex::default(),
            client: reqwest::Client::new(),
            outbox: Mutex::default(),
            acked: Mutex::default(),
            refused: Mutex::default(),
            auto_reply: Mutex::default(),
            cti: Mutex::new(CtiBehaviour::Grant),
            offers: Mutex::default(),
            offer_raw: Mutex::default(),
            seen: Mutex::default(),
            arrivals: Mutex::default(),
            lean: AtomicBool::new(false),
        });
        let app = Router::new()
            .route("/inbox", post(inbox))
            .route("/outbox", axum::routing::get(outbox))
            .route("/outbox/ack", post(outbox_ack))
            .route("/cti", post(cti))
            .route("/stats", axum::routing::get(stats))
            .route("/admin/behaviour", post(set_behaviour))
            .with_state(Arc::clone(&inner));
        let is_tls = tls.is_some();
        let addr = match tls {
            Some(tls) => crate::serve_tls(port, app, "mapped simulator", tls).await?,
            None => crate::serve(port, app, "mapped simulator").await?,
        };
        Ok(Self {
            addr,
            tls: is_tls,
            inner,
        })
    }

    fn base(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    pub fn url(&self) -> String {
        format!("{}/inbox", self.base())
    }

    /// The partner CTI's endpoint for transfer offers.
    pub fn cti_url(&self) -> String {
        format!("{}/cti", self.base())
    }

    /// Keeps only message ids and arrival times (for long benchmark runs).
    pub fn set_lean(&self, lean: bool) {
        self.inner.lean.store(lean, Ordering::Relaxed);
    }

    pub fn set_cti(&self, b: CtiBehaviour) {
        *lock(&self.inner.cti) = b;
    }

    /// Transfer offers received, decoded to canonical documents.
    pub fn offers(&self) -> Vec<Received> {
        lock(&self.inner.offers).clone()
    }

    /// The exact bytes of every transfer offer received.
    pub fn offer_bytes(&self) -> Vec<Vec<u8>> {
        lock(&self.inner.offer_raw).clone()
    }

    /// Offers a caller to 12348 (an inbound transfer), signed as the partner. Returns the HTTP
    /// status, and the gateway's answer decoded (strictly, as what we send) when it is one.
    pub async fn offer_transfer(
        &self,
        canonical: &Value,
    ) -> anyhow::Result<(u16, Result<(String, TransferAnswer), String>)> {
        let (body, _) = self
            .inner
            .mapping
            .encode("transfer_request", canonical, false)?;
        let (status, bytes) = self.inner.post_signed(body).await?;
        let answer = self
            .inner
            .mapping
            .decode_sent(&bytes)
            .and_then(|t| self.inner.mapping.into_answer(t))
            .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&bytes)));
        Ok((status, answer))
    }

    pub fn outbox_url(&self) -> String {
        format!("{}/outbox", self.base())
    }

    pub fn outbox_ack_url(&self) -> String {
        format!("{}/outbox/ack", self.base())
    }

    /// Puts a message in the outbox for the gateway to poll (JSON partners).
    pub fn queue(&self, message_type: &str, canonical: &Value) -> anyhow::Result<()> {
        let (bytes, _) = self.inner.mapping.encode(message_type, canonical, false)?;
        self.queue_raw(serde_json::from_slice(&bytes)?);
        Ok(())
    }

    /// Puts an item in the outbox as it is, e.g. a broken one.
    pub fn queue_raw(&self, item: Value) {
        lock(&self.inner.outbox).push(item);
    }

    /// Makes the partner sign for and then reply to every ticket it takes, `delay` apart (sent, or
    /// queued in the outbox of a polled partner).
    pub fn set_auto_reply(&self, delay: Option<Duration>) {
        *lock(&self.inner.auto_reply) = delay;
    }

    /// Outbox items the gateway acknowledged as taken.
    pub fn acked(&self) -> Vec<String> {
        lock(&self.inner.acked).clone()
    }

    /// Outbox items the gateway refused, with its reason.
    pub fn refused(&self) -> Vec<(String, String)> {
        lock(&self.inner.refused).clone()
    }

    pub fn partner(&self) -> &str {
        &self.inner.partner
    }

    pub fn set_gateway(&self, base: &str) {
        *lock(&self.inner.gateway) = Some(base.trim_end_matches('/').to_owned());
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        *lock(&self.inner.behaviour) = b;
    }

    pub fn hits(&self) -> Vec<Hit> {
        lock(&self.inner.hits).clone()
    }

    /// Messages taken (first time each), decoded to canonical documents.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.inner.received).clone()
    }

    /// The exact bytes of every delivery that passed the checks.
    pub fn raw(&self) -> Vec<Vec<u8>> {
        lock(&self.inner.raw).clone()
    }

    /// Sends a message in the partner's dialect, signed as the partner; returns the HTTP status
    /// and the gateway's answer read in the partner's format.
    pub async fn send(
        &self,
        message_type: &str,
        canonical: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        self.inner.send(message_type, canonical).await
    }

    /// Sends bytes as they are, signed as the partner.
    pub async fn send_raw(&self, body: Vec<u8>) -> anyhow::Result<(u16, Value)> {
        self.inner.send_raw(body).await
    }

    /// Headers signing `body` as the partner, once: what an eavesdropper would capture.
    pub fn signed_headers(&self, body: &[u8]) -> anyhow::Result<HeaderMap> {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", self.inner.profile.content_type.parse()?);
        self.inner.signer.sign_as_partner(&mut headers, body)?;
        Ok(headers)
    }

    /// Sends `body` with exactly these headers (a captured request, replayed).
    pub async fn send_with_headers(
        &self,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, Value)> {
        let base = lock(&self.inner.gateway)
            .clone()
            .ok_or_else(|| anyhow::anyhow!("simulator has no gateway URL"))?;
        let resp = self
            .inner
            .client
            .post(format!("{base}/partners/{}/messages", self.inner.partner))
            .headers(headers)
            .body(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        Ok((
            status,
            self.inner.read_answer(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// The text at a path of an answer, e.g. the result code.
    pub fn answer_code(&self, answer: &Value) -> Option<String> {
        read_text(&Doc::from(answer.clone()), &self.inner.profile.reply.code)
    }
}

impl Inner {
    async fn send(&self, message_type: &str, canonical: &Value) -> anyhow::Result<(u16, Value)> {
        let (body, _) = self.mapping.encode(message_type, canonical, false)?;
        self.send_raw(body).await
    }

    async fn send_raw(&self, body: Vec<u8>) -> anyhow::Result<(u16, Value)> {
        let (status, bytes) = self.post_signed(body).await?;
        Ok((status, self.read_answer(&bytes).unwrap_or(Value::Null)))
    }

    async fn post_signed(&self, body: Vec<u8>) -> anyhow::Result<(u16, Bytes)> {
        let base = lock(&self.gateway)
            .clone()
            .ok_or_else(|| anyhow::anyhow!("simulator has no gateway URL"))?;
        let mut headers = HeaderMap::new();
        headers.insert("content-type", self.profile.content_type.parse()?);
        self.signer.sign_as_partner(&mut headers, &body)?;
        let resp = self
            .client
            .post(format!("{base}/partners/{}/messages", self.partner))
            .headers(headers)
            .body(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.bytes().await?))
    }

    fn read_answer(&self, bytes: &[u8]) -> Result<Value, String> {
        self.mapping.read_doc(bytes).map(Value::from)
    }

    /// An answer to a delivery in the partner's dialect.
    fn answer(
        &self,
        http: StatusCode,
        code: &str,
        message: &str,
        number: Option<&str>,
    ) -> Response {
        let a = &self.profile.ack;
        let mut doc = Doc::map();
        write_text(&mut doc, &a.code, code.to_owned());
        if let Some(m) = &a.message {
            write_text(&mut doc, m, message.to_owned());
        }
        if let (Some(path), Some(n)) = (&a.number, number) {
            write_text(&mut doc, path, n.to_owned());
        }
        let text = match self.mapping.format {
            Format::Json => serde_json::to_string(&doc).unwrap_or_default(),
            Format::Xml => xml::write(
                self.profile.reply.root.as_deref().unwrap_or("Response"),
                &doc,
                self.mapping.encoding.label(),
            )
            .unwrap_or_default(),
        };
        let bytes = self.mapping.encoding.encode(&text).unwrap_or_default();
        let status = match self.profile.reply.http_status {
            HttpStatusPolicy::Mirror => http,
            HttpStatusPolicy::Always200 => StatusCode::OK,
        };
        (
            status,
            [("content-type", self.profile.content_type.clone())],
            bytes,
        )
            .into_response()
    }
}

async fn inbox(State(sim): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let chaos = match *lock(&sim.behaviour) {
        Behaviour::Chaos { slow } => Some(slow),
        _ => None,
    };
    if let Some(slow) = chaos {
        match rand::random_range(0..5u8) {
            0 => return (StatusCode::INTERNAL_SERVER_ERROR, "simulated fault").into_response(),
            1 => {
                tokio::time::sleep(slow).await;
                return (StatusCode::SERVICE_UNAVAILABLE, "too late").into_response();
            }
            2 => {
                // Drops the connection without an answer, like a reset.
                tokio::time::sleep(Duration::from_millis(5)).await;
                std::panic::resume_unwind(Box::new("simulated connection reset"));
            }
            3 => return (StatusCode::OK, "<html>bad gateway</html>").into_response(),
            _ => {}
        }
    }
    let (resp, message_id) = handle(&sim, &headers, &body);
    lock(&sim.hits).push(Hit {
        at: Instant::now(),
        message_id,
        status: resp.status().as_u16(),
    });
    resp
}

#[derive(serde::Deserialize)]
struct PollQuery {
    cursor: Option<usize>,
    limit: Option<usize>,
}

async fn outbox(
    State(sim): State<Arc<Inner>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<PollQuery>,
) -> Response {
    if let Err(e) = sim.signer.verify_ours(&headers, b"") {
        return (StatusCode::UNAUTHORIZED, e.0).into_response();
    }
    let Some(spec) = &sim.profile.poll else {
        return (StatusCode::NOT_FOUND, "not a polled partner").into_response();
    };
    let items = lock(&sim.outbox);
    let from = q.cursor.unwrap_or(0).min(items.len());
    let to = (from + q.limit.unwrap_or(50)).min(items.len());
    let mut doc = Doc::map();
    hotline_adapters::mapping::write_path(
        &mut doc,
        &spec.items,
        Doc::List(items[from..to].iter().cloned().map(Doc::from).collect()),
    );
    write_text(&mut doc, &spec.next_cursor, to.to_string());
    axum::Json(doc).into_response()
}

async fn outbox_ack(State(sim): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = sim.signer.verify_ours(&headers, &body) {
        return (StatusCode::UNAUTHORIZED, e.0).into_response();
    }
    let (Some(spec), Ok(doc)) = (&sim.profile.poll, serde_json::from_slice::<Doc>(&body)) else {
        return (StatusCode::BAD_REQUEST, "bad acknowledgement").into_response();
    };
    let read = |path: &str| match hotline_adapters::mapping::read_path(&doc, path) {
        Some(Doc::List(items)) => items.clone(),
        _ => Vec::new(),
    };
    for id in read(&spec.ack_ids) {
        lock(&sim.acked).extend(id.scalar().map(|s| s.into_owned()));
    }
    for r in read(&spec.ack_refused) {
        let field = |k: &str| {
            r.get(k)
                .and_then(Doc::scalar)
                .unwrap_or_default()
                .into_owned()
        };
        lock(&sim.refused).push((field("id"), field("reason")));
    }
    StatusCode::NO_CONTENT.into_response()
}

fn handle(sim: &Arc<Inner>, headers: &HeaderMap, body: &[u8]) -> (Response, String) {
    let codes = &sim.profile.reply.error_codes;
    if let Err(e) = sim.signer.verify_ours(headers, body) {
        return (
            sim.answer(StatusCode::UNAUTHORIZED, &codes.bad_signature, &e.0, None),
            String::new(),
        );
    }
    let translation = match sim.mapping.decode_sent(body) {
        Ok(t) => t,
        Err(e) => {
            let (status, code) = match &e {
                TranslateError::Malformed(_) => (StatusCode::BAD_REQUEST, &codes.malformed),
                _ => (StatusCode::UNPROCESSABLE_ENTITY, &codes.invalid),
            };
            return (
                sim.answer(status, code, &e.to_string(), None),
                String::new(),
            );
        }
    };
    let doc = Value::from(translation.doc);
    let message_id = doc["message"]["id"].as_str().unwrap_or_default().to_owned();
    let success = sim.profile.ack.success.first().cloned().unwrap_or_default();
    let behaviour = Behaviour::take(&mut lock(&sim.behaviour));
    match behaviour {
        Behaviour::Fail { status } | Behaviour::FailTimes { status, .. } => {
            let s = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return ((s, "simulated failure").into_response(), message_id);
        }
        Behaviour::Code { code, .. } => {
            return (
                sim.answer(StatusCode::OK, &code, "simulated refusal", None),
                message_id,
            );
        }
        Behaviour::Malformed => {
            return (
                (StatusCode::OK, "<html>oops</html>").into_response(),
                message_id,
            );
        }
        Behaviour::Flaky { percent } if rand::random_ratio(percent.min(100), 100) => {
            return (
                (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
                message_id,
            );
        }
        _ => {}
    }
    let ticket_key = doc["ticket"]["id"]
        .as_str()
        .unwrap_or(&message_id)
        .to_owned();
    let number = {
        let mut numbers = lock(&sim.numbers);
        let next = numbers.len() + 1;
        numbers
            .entry(ticket_key)
            .or_insert_with(|| format!("{}-SIM-{next:06}", sim.partner))
            .clone()
    };
    let first_dispatch =
        translation.message_type == "dispatch" && !lock(&sim.seen).contains(&message_id);
    if let (true, Some(delay)) = (first_dispatch, *lock(&sim.auto_reply)) {
        let (sim, number) = (Arc::clone(sim), number.clone());
        let ticket = doc["ticket"]["id"].clone();
        tokio::spawn(async move {
            for (kind, event) in [
                ("receipt", serde_json::json!({"unit": "模拟承办单位"})),
                (
                    "reply",
                    serde_json::json!({"content": "已按规定办理并答复来电人", "unit": "模拟承办单位"}),
                ),
            ] {
                tokio::time::sleep(delay).await;
                if !sim.mapping.supports(kind) {
                    continue;
                }
                let msg = serde_json::json!({
                    "message": {"id": format!("{}-{kind}-{number}", sim.partner)},
                    "ticket": {"id": ticket, "partner_number": number},
                    "event": event,
                });
                let sent = if sim.profile.poll.is_some() {
                    sim.mapping
                        .encode(kind, &msg, false)
                        .map_err(anyhow::Error::from)
                        .and_then(|(b, _)| Ok(serde_json::from_slice::<Value>(&b)?))
                        .map(|item| lock(&sim.outbox).push(item))
                } else {
                    sim.send(kind, &msg).await.map(|_| ())
                };
                if let Err(e) = sent {
                    tracing::warn!(error = format!("{e:#}"), "simulated {kind} failed");
                }
            }
        });
    }
    if lock(&sim.seen).insert(message_id.clone()) {
        let key = doc["ticket"]["external_id"]
            .as_str()
            .unwrap_or(&message_id)
            .to_owned();
        lock(&sim.arrivals).push((key, chrono::Utc::now().timestamp_millis()));
        if !sim.lean.load(Ordering::Relaxed) {
            lock(&sim.received).push(Received {
                message_id: message_id.clone(),
                message_type: translation.message_type.clone(),
                envelope: doc,
                partner_number: number.clone(),
            });
            lock(&sim.raw).push(body.to_vec());
        }
    }
    if sim.profile.ack.style == AckStyle::TwoStep {
        // The answer only says "received"; the acknowledgement follows as its own message.
        let delay = match behaviour {
            Behaviour::Async { delay } => delay,
            _ => Duration::from_millis(100),
        };
        let (late, reference, number) = (Arc::clone(sim), message_id.clone(), number.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let ack = serde_json::json!({
                "message": {"id": format!("ACK-{reference}"), "ref": reference, "accepted": true},
                "ticket": {"partner_number": number},
            });
            if let Err(e) = late.send("ack", &ack).await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "simulated late acknowledgement failed"
                );
            }
        });
        return (
            sim.answer(StatusCode::OK, &success, "已接收 received", None),
            message_id,
        );
    }
    (
        sim.answer(StatusCode::OK, &success, "成功", Some(&number)),
        message_id,
    )
}

/// `POST /admin/behaviour` with `{"mode": "ack" | "chaos", "slow_ms": …}`: switches how
/// deliveries are answered (for benchmarks running the simulator as its own process).
async fn set_behaviour(
    State(sim): State<Arc<Inner>>,
    axum::Json(v): axum::Json<Value>,
) -> Response {
    let b = match v["mode"].as_str() {
        Some("ack") => Behaviour::Ack,
        Some("chaos") => Behaviour::Chaos {
            slow: Duration::from_millis(v["slow_ms"].as_u64().unwrap_or(3000)),
        },
        _ => return (StatusCode::UNPROCESSABLE_ENTITY, "mode: ack or chaos").into_response(),
    };
    *lock(&sim.behaviour) = b;
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /stats`: how many messages were taken, and when each arrived.
/// `GET /stats?arrivals=false`: the counts alone, for a caller that polls while a load runs
/// (the arrivals of a long run are megabytes of JSON).
#[derive(Debug, serde::Deserialize)]
struct StatsQuery {
    arrivals: Option<bool>,
}

async fn stats(
    State(sim): State<Arc<Inner>>,
    axum::extract::Query(q): axum::extract::Query<StatsQuery>,
) -> Response {
    let hits = lock(&sim.hits).len();
    let body = if q.arrivals.unwrap_or(true) {
        let arrivals = lock(&sim.arrivals).clone();
        serde_json::json!({"taken": arrivals.len(), "hits": hits, "arrivals": arrivals})
    } else {
        serde_json::json!({"taken": lock(&sim.arrivals).len(), "hits": hits})
    };
    axum::Json(body).into_response()
}

/// The partner CTI: checks the offer as strictly as a delivery, then answers it as told.
async fn cti(State(sim): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let codes = &sim.profile.reply.error_codes;
    if let Err(e) = sim.signer.verify_ours(&headers, &body) {
        return sim.answer(StatusCode::UNAUTHORIZED, &codes.bad_signature, &e.0, None);
    }
    let t = match sim.mapping.decode_sent(&body) {
        Ok(t) if t.message_type == "transfer_request" => t,
        Ok(t) => {
            let reason = format!("`{}` is not a transfer offer", t.message_type);
            return sim.answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                &codes.invalid,
                &reason,
                None,
            );
        }
        Err(e) => {
            return sim.answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                &codes.invalid,
                &e.to_string(),
                None,
            );
        }
    };
    let doc = Value::from(t.doc);
    let offer_id = doc["transfer"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let n = {
        let mut offers = lock(&sim.offers);
        offers.push(Received {
            message_id: doc["message"]["id"].as_str().unwrap_or_default().to_owned(),
            message_type: t.message_type.clone(),
            envelope: doc,
            partner_number: String::new(),
        });
        lock(&sim.offer_raw).push(body.to_vec());
        offers.len()
    };
    let behaviour = lock(&sim.cti).clone();
    let seat = Seat {
        dial_target: format!("sip:zj{n:04}@cti.{}.sim", sim.partner),
        token: format!("TK{n:06}"),
        partner_ref: Some(format!("{}-ZJ-{n:06}", sim.partner)),
    };
    let Some(answer) = behaviour.answer(seat).await else {
        return sim.answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            &codes.unavailable,
            "模拟系统故障 simulated CTI fault",
            None,
        );
    };
    let doc = answer_document(&offer_id, &answer, &format!("{}-A-{n}", sim.partner));
    match sim.mapping.encode("transfer_answer", &doc, false) {
        Ok((bytes, _)) => (
            StatusCode::OK,
            [("content-type", sim.profile.content_type.clone())],
            bytes,
        )
            .into_response(),
        Err(e) => sim.answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            &codes.unavailable,
            &e.to_string(),
            None,
        ),
    }
}

pub use crate::wait::eventually;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stats_give_the_counts_alone_when_asked() {
        let sim = MappedSim::start(MappedSimOptions {
            dir: &crate::golden::mappings_dir().join("12315"),
            app_id: "hotline-12348".into(),
            gateway_secret: "gateway-secret-for-the-stats-test".into(),
            partner_secret: "partner-secret-for-the-stats-test".into(),
        })
        .await
        .expect("simulator");
        let get = |query: &'static str| {
            let url = format!("{}/stats{query}", sim.base());
            async move {
                reqwest::get(url)
                    .await
                    .expect("stats")
                    .json::<Value>()
                    .await
                    .expect("JSON")
            }
        };
        let all = get("").await;
        assert_eq!(all["taken"], 0);
        assert_eq!(all["arrivals"], serde_json::json!([]));
        let counts = get("?arrivals=false").await;
        assert_eq!(counts["taken"], 0);
        assert_eq!(counts["hits"], 0);
        assert!(counts.get("arrivals").is_none(), "{counts}");
        assert!(get("?arrivals=true").await.get("arrivals").is_some());
    }
}
