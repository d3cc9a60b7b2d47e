//! A partner defined by data: `mappings/<partner>/mapping.toml` (fields, codes, times) and
//! `mappings/<partner>/partner.toml` (content type, signature, acknowledgement and reply styles),
//! over HTTP push. Adding a province's variant needs these files, not Rust code.

pub mod profile;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hotline_model::{EventKind, RefusalReason, TransferAnswer, TransferOffer};
use http::{HeaderValue, Method, StatusCode};

use crate::bus::{BusLink, BusSettings, Subscription};
use crate::http::{HttpTransport, body_snippet, classify_status};
use crate::mapping::spec::Format;
use crate::mapping::{
    Doc, Mapping, MappingProblem, MappingProblems, TRANSFER_TYPES, TranslateError, answer_document,
    offer_document, outbound_document, xml,
};
use crate::signature::Signer;
use crate::{
    Adapter, EncodeError, Inbound, InboundRequest, IngressError, IngressReply, OutboundMessage,
    Outcome, PollBatch, PolledItem, TransportError, WireRequest, WireResponse,
};
use profile::{AckStyle, HttpStatusPolicy, Profile};

/// What the gateway's configuration says about one mapped partner.
#[derive(Debug, Clone)]
pub struct MappedSettings {
    pub partner: String,
    /// The partner's folder: `mapping.toml` and `partner.toml`.
    pub dir: PathBuf,
    pub url: String,
    /// Our app id at the partner (signed schemes).
    pub app_id: String,
    /// Our secret: signs what we send.
    pub signing_secret: String,
    /// The partner's secret: checks what it sends.
    pub verify_secret: String,
    pub timeout: Duration,
    pub ack_timeout: Duration,
    /// Polled partners: their outbox, and where to acknowledge what was taken.
    pub poll_url: Option<String>,
    pub poll_ack_url: Option<String>,
    /// The partner CTI's endpoint for transfer offers.
    pub transfer_url: Option<String>,
    /// A partner on a message bus instead of HTTP: where it is.
    pub bus: Option<BusSettings>,
    /// Client certificate and trust roots for the partner's HTTPS endpoints.
    pub tls: Option<crate::http::OutboundTls>,
}

pub struct MappedAdapter {
    partner: String,
    url: String,
    mapping: Arc<Mapping>,
    profile: Profile,
    signer: Signer,
    /// Deliveries, polling, acknowledgements and transfer offers over HTTP.
    http: HttpTransport,
    /// A partner on a bus: deliveries are published to its exchange (routing key = message
    /// type) and its messages taken from our queue, instead of HTTP.
    bus: Option<Box<BusLink>>,
    ack_timeout: Duration,
    poll_url: Option<String>,
    poll_ack_url: Option<String>,
    transfer_url: Option<String>,
}

/// Loads a partner folder: the compiled mapping and the profile.
pub fn load_folder(dir: &Path) -> Result<(Mapping, Profile), MappingProblems> {
    let mapping = Mapping::load(dir);
    let file = dir.join("partner.toml");
    let profile = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read: {e}"))
        .and_then(|text| {
            toml::from_str::<Profile>(&text).map_err(|e| {
                let line = e
                    .span()
                    .map(|s| crate::toml_locate::Locator::new(&text).line_of(s.start));
                format!(
                    "{}{}",
                    line.map(|l| format!("line {l}: ")).unwrap_or_default(),
                    e.message()
                )
            })
        })
        .map_err(|message| MappingProblem {
            file: file.clone(),
            line: None,
            key: String::new(),
            message,
        });
    match (mapping, profile) {
        (Ok(m), Ok(p)) => Ok((m, p)),
        (m, p) => {
            let mut all = m.err().map(|e| e.0).unwrap_or_default();
            all.extend(p.err());
            Err(MappingProblems(all))
        }
    }
}

impl MappedAdapter {
    pub fn load(s: MappedSettings) -> Result<Self, MappedError> {
        let (mapping, profile) = load_folder(&s.dir)?;
        if mapping.partner != s.partner {
            return Err(MappedError::Partner {
                expected: s.partner,
                found: mapping.partner,
            });
        }
        Ok(Self::new(s, Arc::new(mapping), profile)?)
    }

    pub fn new(
        s: MappedSettings,
        mapping: Arc<Mapping>,
        profile: Profile,
    ) -> Result<Self, TransportError> {
        Ok(Self {
            signer: Signer {
                spec: profile.signature.clone(),
                app_id: s.app_id,
                our_secret: s.signing_secret,
                their_secret: s.verify_secret,
            },
            http: HttpTransport::new(s.timeout, s.tls)?,
            bus: s.bus.map(BusLink::new).transpose()?.map(Box::new),
            partner: s.partner,
            url: s.url,
            mapping,
            profile,
            ack_timeout: s.ack_timeout,
            poll_url: s.poll_url,
            poll_ack_url: s.poll_ack_url,
            transfer_url: s.transfer_url,
        })
    }

    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    fn read(doc: &Doc, path: &str) -> Option<String> {
        crate::mapping::read_text(doc, path)
    }

    fn write_answer(&self, code: &str, message: &str, number: Option<String>) -> Vec<u8> {
        let r = &self.profile.reply;
        let mut doc = Doc::map();
        let mut put = |path: &str, v: String| crate::mapping::write_text(&mut doc, path, v);
        put(&r.code, code.to_owned());
        put(&r.message, message.to_owned());
        if let (Some(path), Some(n)) = (&r.number, number) {
            put(path, n);
        }
        let text = match self.mapping.format {
            Format::Json => serde_json::to_string(&doc).unwrap_or_default(),
            Format::Xml => xml::write(
                r.root.as_deref().unwrap_or("Response"),
                &doc,
                self.mapping.encoding.label(),
            )
            .unwrap_or_default(),
        };
        self.mapping
            .encoding
            .encode(&text)
            .unwrap_or_else(|_| text.into_bytes())
    }

    fn answer(&self, status: StatusCode, body: Vec<u8>) -> WireResponse {
        let status = match self.profile.reply.http_status {
            HttpStatusPolicy::Mirror => status,
            HttpStatusPolicy::Always200 => StatusCode::OK,
        };
        let mut resp = WireResponse::new(status, "application/octet-stream", body);
        if let Ok(v) = HeaderValue::try_from(self.profile.content_type.as_str()) {
            resp.headers.insert(http::header::CONTENT_TYPE, v);
        }
        resp
    }
}

impl MappedAdapter {
    async fn signed_json(
        &self,
        method: Method,
        url: String,
        body: Vec<u8>,
    ) -> Result<Doc, TransportError> {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.signer
            .sign(&mut headers, &body)
            .map_err(|e| TransportError::Request(e.0))?;
        let resp = self
            .http
            .send(WireRequest {
                method,
                url,
                headers,
                body: body.into(),
            })
            .await?;
        if !resp.status.is_success() {
            return Err(TransportError::Other(format!(
                "HTTP {}: {}",
                resp.status,
                body_snippet(&resp.body)
            )));
        }
        if resp.body.is_empty() {
            return Ok(Doc::Null);
        }
        serde_json::from_slice(&resp.body)
            .map_err(|e| TransportError::Other(format!("malformed answer: {e}")))
    }
}

impl MappedAdapter {
    /// A POST of `body` in the partner's content type, signed by its scheme.
    fn signed_post(&self, url: &str, body: Vec<u8>) -> Result<WireRequest, String> {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::try_from(self.profile.content_type.as_str()).map_err(|e| e.to_string())?,
        );
        self.signer.sign(&mut headers, &body).map_err(|e| e.0)?;
        Ok(WireRequest {
            method: Method::POST,
            url: url.to_owned(),
            headers,
            body: body.into(),
        })
    }

    /// Reads the partner CTI's answer to an offer: a `transfer_answer` in its dialect, or one of
    /// its error answers.
    fn read_transfer_answer(&self, offer: &TransferOffer, resp: &WireResponse) -> TransferAnswer {
        let decoded = self
            .mapping
            .decode(&resp.body)
            .and_then(|t| self.mapping.into_answer(t));
        match decoded {
            Ok((id, answer)) if id == offer.id => answer,
            Ok((id, _)) => TransferAnswer::refused(
                RefusalReason::PartnerError,
                format!("the answer names transfer `{id}`, not `{}`", offer.id),
            ),
            Err(e) => {
                let status = resp.status;
                let coded = self.mapping.read_doc(&resp.body).ok().and_then(|doc| {
                    let a = &self.profile.ack;
                    let code = Self::read(&doc, &a.code)?;
                    let text = a.message.as_deref().and_then(|p| Self::read(&doc, p));
                    Some(format!("partner code {code}: {}", text.unwrap_or_default()))
                });
                let detail = match coded {
                    Some(c) => format!("HTTP {status}, {c}"),
                    None => format!("HTTP {status}, {e}: {}", body_snippet(&resp.body)),
                };
                let reason = if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
                {
                    RefusalReason::Unreachable
                } else {
                    RefusalReason::PartnerError
                };
                TransferAnswer::refused(reason, detail)
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MappedError {
    #[error(transparent)]
    Problems(#[from] MappingProblems),
    #[error("the mapping is for partner `{found}`, configured as `{expected}`")]
    Partner { expected: String, found: String },
    #[error(transparent)]
    Transport(#[from] TransportError),
}

fn ingress_error(e: TranslateError) -> IngressError {
    match e {
        TranslateError::Malformed(m) => IngressError::malformed(None, m),
        TranslateError::Field { field, reason } => IngressError::invalid(field, reason),
        TranslateError::Unsupported(t) => {
            IngressError::invalid("type", format!("message type `{t}` is not taken"))
        }
    }
}

#[async_trait]
impl Adapter for MappedAdapter {
    fn reload_tls(&self) -> Result<bool, TransportError> {
        // A partner on a bus may still be reached over HTTPS (its transfer or poll URLs).
        let bus = match &self.bus {
            Some(bus) => bus.reload_tls()?,
            None => false,
        };
        Ok(self.http.reload()? || bus)
    }

    fn partner(&self) -> &str {
        &self.partner
    }

    fn supports(&self, kind: EventKind) -> bool {
        self.mapping.supports(kind.as_str())
    }

    fn encode(&self, msg: &OutboundMessage) -> Result<WireRequest, EncodeError> {
        let doc = outbound_document(msg, &self.partner);
        let (body, warnings) = self
            .mapping
            .encode(
                msg.event.kind().as_str(),
                &doc,
                msg.ticket.draft.confidential,
            )
            .map_err(|e| match e {
                TranslateError::Unsupported(_) => EncodeError::Unsupported(msg.event.kind()),
                TranslateError::Field { field, reason } => EncodeError::Field { field, reason },
                TranslateError::Malformed(m) => EncodeError::Field {
                    field: "message".into(),
                    reason: m,
                },
            })?;
        for w in warnings {
            tracing::warn!(partner = %self.partner, message = %msg.message_id, "{w}");
        }
        // On a bus, the routing key names the message type.
        let target = match &self.bus {
            None => self.url.as_str(),
            Some(_) => msg.event.kind().as_str(),
        };
        self.signed_post(target, body).map_err(EncodeError::Signing)
    }

    async fn send(&self, req: WireRequest) -> Result<WireResponse, TransportError> {
        match &self.bus {
            None => self.http.send(req).await,
            Some(b) => b.send(req).await,
        }
    }

    fn classify(&self, resp: &WireResponse) -> Outcome {
        if let Some(failure) = classify_status(resp) {
            return failure;
        }
        let a = &self.profile.ack;
        // A bus answers only with the broker's confirm: the message is in the partner's
        // durable queue. Its own acknowledgement, if it gives one, comes as a message.
        if self.bus.is_some() {
            return match a.style {
                AckStyle::Sync => Outcome::Acknowledged { partner_ref: None },
                AckStyle::TwoStep => Outcome::AwaitingAck {
                    within: self.ack_timeout,
                },
            };
        }
        let doc = match self.mapping.read_doc(&resp.body) {
            Ok(d) => d,
            Err(e) => {
                return Outcome::Retryable {
                    reason: format!(
                        "malformed acknowledgement ({e}): {}",
                        body_snippet(&resp.body)
                    ),
                    retry_after: None,
                };
            }
        };
        let Some(code) = Self::read(&doc, &a.code) else {
            return Outcome::Retryable {
                reason: format!(
                    "acknowledgement without `{}`: {}",
                    a.code,
                    body_snippet(&resp.body)
                ),
                retry_after: None,
            };
        };
        let text = a
            .message
            .as_deref()
            .and_then(|p| Self::read(&doc, p))
            .unwrap_or_default();
        if a.success.contains(&code) {
            match a.style {
                AckStyle::Sync => Outcome::Acknowledged {
                    partner_ref: a.number.as_deref().and_then(|p| Self::read(&doc, p)),
                },
                AckStyle::TwoStep => Outcome::AwaitingAck {
                    within: self.ack_timeout,
                },
            }
        } else if a.retryable.contains(&code) {
            Outcome::Retryable {
                reason: format!("partner code {code}: {text}"),
                retry_after: None,
            }
        } else {
            Outcome::Permanent {
                reason: format!("partner code {code}: {text}"),
            }
        }
    }

    fn partner_code(&self, resp: &WireResponse) -> Option<String> {
        let doc = self.mapping.read_doc(&resp.body).ok()?;
        Self::read(&doc, &self.profile.ack.code)
    }

    fn decode(&self, req: &InboundRequest) -> Result<Inbound, IngressError> {
        if req.method != Method::POST || req.path != "messages" {
            return Err(IngressError::not_found(format!(
                "no such endpoint: {} {}; messages are POSTed to `messages`",
                req.method, req.path
            )));
        }
        self.signer
            .verify(&req.headers, &req.body)
            .map_err(|e| IngressError::unauthorized(e.0))?;
        let t = self.mapping.decode(&req.body).map_err(ingress_error)?;
        self.mapping.into_inbound(t).map_err(ingress_error)
    }

    fn respond(&self, reply: &IngressReply) -> WireResponse {
        let r = &self.profile.reply;
        let (code, message, number) = match reply {
            IngressReply::TicketAccepted {
                ticket_id,
                duplicate,
            }
            | IngressReply::EventRecorded {
                ticket_id,
                duplicate,
            } => (
                r.success_code.clone(),
                if *duplicate {
                    "重复消息，已处理 duplicate, already taken"
                } else {
                    "成功 ok"
                },
                Some(ticket_id.to_string()),
            ),
            IngressReply::AckApplied { known: true } | IngressReply::CaseUpdate { .. } => {
                (r.success_code.clone(), "成功 ok", None)
            }
            IngressReply::AckApplied { known: false } => {
                return self.reject(&IngressError::not_found(
                    "no message with that id was sent to you",
                ));
            }
            IngressReply::Transfer { offer_id, answer } => {
                let doc = answer_document(offer_id, answer, &uuid::Uuid::now_v7().to_string());
                return match self.mapping.encode("transfer_answer", &doc, false) {
                    Ok((body, _)) => self.answer(StatusCode::OK, body),
                    Err(e) => self.reject(&IngressError::unavailable(format!(
                        "cannot answer the transfer in partner {}'s format: {e}",
                        self.partner
                    ))),
                };
            }
        };
        self.answer(StatusCode::OK, self.write_answer(&code, message, number))
    }

    fn reject(&self, err: &IngressError) -> WireResponse {
        let c = &self.profile.reply.error_codes;
        let code = match err.code {
            "malformed" => &c.malformed,
            "invalid" => &c.invalid,
            "bad_signature" => &c.bad_signature,
            "not_found" => &c.not_found,
            _ => &c.unavailable,
        };
        let text = match &err.field {
            Some(f) => format!("{f}: {}", err.reason),
            None => err.reason.clone(),
        };
        self.answer(err.status, self.write_answer(code, &text, None))
    }

    fn replay_guard(&self, req: &InboundRequest) -> Option<(String, Duration)> {
        self.signer.nonce(&req.headers).map(|n| {
            (
                n.to_owned(),
                crate::signature::WINDOW * 2 + Duration::from_secs(60),
            )
        })
    }

    fn mapping_version(&self) -> Option<(&str, &str)> {
        Some((&self.mapping.partner, &self.mapping.version))
    }

    fn transfers(&self) -> bool {
        self.transfer_url.is_some() && TRANSFER_TYPES.iter().all(|t| self.mapping.supports(t))
    }

    async fn offer_transfer(&self, offer: &TransferOffer) -> TransferAnswer {
        let Some(url) = self.transfer_url.as_ref().filter(|_| self.transfers()) else {
            return TransferAnswer::refused(
                RefusalReason::PartnerError,
                format!("partner {} takes no transfers", self.partner),
            );
        };
        let doc = offer_document(offer, &uuid::Uuid::now_v7().to_string());
        let body = match self
            .mapping
            .encode("transfer_request", &doc, offer.ticket.confidential)
        {
            Ok((body, _)) => body,
            Err(e) => {
                return TransferAnswer::refused(
                    RefusalReason::PartnerError,
                    format!(
                        "cannot write the offer in partner {}'s format: {e}",
                        self.partner
                    ),
                );
            }
        };
        let req = match self.signed_post(url, body) {
            Ok(req) => req,
            Err(e) => return TransferAnswer::refused(RefusalReason::PartnerError, e),
        };
        match self.http.send(req).await {
            Ok(resp) => self.read_transfer_answer(offer, &resp),
            Err(e) => TransferAnswer::refused(RefusalReason::Unreachable, e.to_string()),
        }
    }

    fn polled(&self) -> bool {
        self.poll_url.is_some() && self.profile.poll.is_some()
    }

    fn bus(&self) -> Option<&BusLink> {
        self.bus.as_deref()
    }

    async fn subscribe(&self) -> Option<Result<Subscription, TransportError>> {
        match &self.bus {
            Some(b) => Some(b.subscribe().await),
            None => None,
        }
    }

    async fn poll(&self, cursor: Option<&str>) -> Result<PollBatch, TransportError> {
        let (Some(url), Some(spec)) = (&self.poll_url, &self.profile.poll) else {
            return Err(TransportError::Request(format!(
                "partner {} is not polled",
                self.partner
            )));
        };
        let mut url =
            reqwest::Url::parse(url).map_err(|e| TransportError::Request(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("limit", &spec.batch.to_string());
        if let Some(c) = cursor {
            url.query_pairs_mut().append_pair("cursor", c);
        }
        let answer = self
            .signed_json(Method::GET, url.to_string(), Vec::new())
            .await?;
        let items = match crate::mapping::read_path(&answer, &spec.items) {
            Some(Doc::List(items)) => items.clone(),
            Some(_) | None => {
                return Err(TransportError::Other(format!(
                    "answer has no `{}` list",
                    spec.items
                )));
            }
        };
        let items = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let id = Self::read(item, &spec.item_id).unwrap_or_else(|| format!("#{i}"));
                let message = self
                    .mapping
                    .decode_tree(None, item, true)
                    .and_then(|t| self.mapping.into_inbound(t))
                    .map_err(ingress_error);
                PolledItem { id, message }
            })
            .collect();
        Ok(PollBatch {
            items,
            next_cursor: Self::read(&answer, &spec.next_cursor),
        })
    }

    async fn ack_polled(
        &self,
        taken: &[String],
        refused: &[(String, String)],
    ) -> Result<(), TransportError> {
        let (Some(url), Some(spec)) = (&self.poll_ack_url, &self.profile.poll) else {
            return Ok(());
        };
        let mut doc = Doc::map();
        let ids = Doc::List(taken.iter().cloned().map(Doc::Text).collect());
        let refused = Doc::List(
            refused
                .iter()
                .map(|(id, reason)| {
                    Doc::Map(vec![
                        ("id".into(), Doc::Text(id.clone())),
                        ("reason".into(), Doc::Text(reason.clone())),
                    ])
                })
                .collect(),
        );
        crate::mapping::write_path(&mut doc, &spec.ack_ids, ids);
        crate::mapping::write_path(&mut doc, &spec.ack_refused, refused);
        let body = serde_json::to_vec(&doc).map_err(|e| TransportError::Request(e.to_string()))?;
        self.signed_json(Method::POST, url.clone(), body)
            .await
            .map(|_| ())
    }
}
