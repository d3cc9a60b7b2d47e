//! A partner on an AMQP bus (12348 法网 on the provincial data-exchange RabbitMQ), speaking its
//! mapping folder's dialect. It consumes what the gateway publishes to the partner's exchange
//! (checking the signature and decoding strictly, as the real platform would), acknowledges each
//! message with the partner's `ack` message when its style is two-step, publishes the partner's
//! own messages to the gateway's exchange with a `reply_to` queue, and records the gateway's
//! answers. It reconnects by itself after a broker restart.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use hotline_adapters::bus::{header_map, properties};
use hotline_adapters::mapped::load_folder;
use hotline_adapters::mapped::profile::{AckStyle, Profile};
use hotline_adapters::mapping::Mapping;
use hotline_adapters::signature::Signer;
use http::HeaderMap;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub use crate::behaviour::Received;

/// The broker returned a message: no queue is bound for it (yet).
#[derive(Debug, thiserror::Error)]
#[error("no queue takes the message yet")]
struct Unrouted;

pub struct BusSimOptions<'a> {
    /// The partner folder, e.g. `mappings/fawang`.
    pub dir: &'a Path,
    pub amqp_url: String,
    /// Where the gateway publishes for the partner (the sim consumes it).
    pub outbound_exchange: String,
    /// Where the partner publishes for the gateway.
    pub inbound_exchange: String,
    /// The sim's own queues: `<name>.inbox` and `<name>.answers`.
    pub name: String,
    pub app_id: String,
    pub gateway_secret: String,
    pub partner_secret: String,
}

/// The gateway's answer to one of the partner's messages.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The `message_id` of the message answered.
    pub correlation_id: String,
    pub status: u16,
    pub body: Value,
}

struct Inner {
    mapping: Mapping,
    profile: Profile,
    signer: Signer,
    amqp_url: String,
    outbound_exchange: String,
    inbound_exchange: String,
    inbox: String,
    answers_queue: String,
    received: Mutex<Vec<Received>>,
    raw: Mutex<Vec<Vec<u8>>>,
    answers: Mutex<Vec<Answer>>,
    refused: Mutex<Vec<String>>,
    seen: Mutex<HashSet<String>>,
    publisher: tokio::sync::Mutex<Option<(Connection, Channel)>>,
}

pub struct BusSim {
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl Drop for BusSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BusSim {
    /// Connects, declares the topology and starts consuming (and keeps reconnecting).
    pub async fn start(opts: BusSimOptions<'_>) -> anyhow::Result<Self> {
        let (mapping, profile) = load_folder(opts.dir)?;
        let inner = Arc::new(Inner {
            signer: Signer {
                spec: profile.signature.clone(),
                app_id: opts.app_id,
                our_secret: opts.gateway_secret,
                their_secret: opts.partner_secret,
            },
            mapping,
            profile,
            amqp_url: opts.amqp_url,
            outbound_exchange: opts.outbound_exchange,
            inbound_exchange: opts.inbound_exchange,
            inbox: format!("{}.inbox", opts.name),
            answers_queue: format!("{}.answers", opts.name),
            received: Mutex::default(),
            raw: Mutex::default(),
            answers: Mutex::default(),
            refused: Mutex::default(),
            seen: Mutex::default(),
            publisher: tokio::sync::Mutex::new(None),
        });
        // The first session must come up, so that nothing the gateway publishes is unroutable.
        let conn = inner.connect().await?;
        let ch = conn.create_channel().await?;
        inner.declare(&ch).await?;
        let first = Some(conn);
        let run = Arc::clone(&inner);
        let task = tokio::spawn(async move { run.sessions(first).await });
        Ok(Self { inner, task })
    }

    pub fn partner(&self) -> &str {
        &self.inner.mapping.partner
    }

    /// Publishes a message in the partner's dialect (from its canonical form), signed as the
    /// partner, asking for an answer; returns its message id.
    pub async fn publish(&self, message_type: &str, canonical: &Value) -> anyhow::Result<String> {
        let (body, _) = self.inner.mapping.encode(message_type, canonical, false)?;
        let id = canonical["message"]["id"]
            .as_str()
            .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
        self.inner
            .publish(message_type, &body, Some(&id), true)
            .await?;
        Ok(id)
    }

    /// Publishes bytes as they are, signed as the partner (a malformed or forged message).
    pub async fn publish_raw(
        &self,
        routing_key: &str,
        body: &[u8],
        message_id: &str,
    ) -> anyhow::Result<()> {
        self.inner
            .publish(routing_key, body, Some(message_id), true)
            .await
    }

    /// Publishes bytes with a signature that does not match.
    pub async fn publish_forged(&self, body: &[u8], message_id: &str) -> anyhow::Result<()> {
        let mut headers = HeaderMap::new();
        self.inner.signer.sign_as_partner(&mut headers, b"other")?;
        self.inner
            .publish_with(
                "forged",
                body,
                headers,
                Some(message_id),
                Some(&self.inner.answers_queue),
            )
            .await
    }

    /// What the gateway published for the partner, decoded.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.inner.received).clone()
    }

    /// The raw bytes of each message taken, in order.
    pub fn raw(&self) -> Vec<Vec<u8>> {
        lock(&self.inner.raw).clone()
    }

    /// The gateway's answers to the partner's messages.
    pub fn answers(&self) -> Vec<Answer> {
        lock(&self.inner.answers).clone()
    }

    /// The answer to message `id`, if it came.
    pub fn answer_to(&self, id: &str) -> Option<Answer> {
        self.answers().into_iter().find(|a| a.correlation_id == id)
    }

    /// Messages from the gateway the sim could not take (bad signature, undecodable).
    pub fn refused(&self) -> Vec<String> {
        lock(&self.inner.refused).clone()
    }

    /// The result code of an answer in the partner's dialect.
    pub fn answer_code(&self, answer: &Answer) -> Option<String> {
        let doc = hotline_adapters::mapping::Doc::from(answer.body.clone());
        hotline_adapters::mapping::read_text(&doc, &self.inner.profile.reply.code)
    }
}

impl Inner {
    async fn connect(&self) -> Result<Connection, lapin::Error> {
        Connection::connect(
            &self.amqp_url,
            ConnectionProperties::default()
                .with_connection_name(format!("{} simulator", self.mapping.partner).into()),
        )
        .await
    }

    async fn declare(&self, ch: &Channel) -> Result<(), lapin::Error> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        for ex in [&self.outbound_exchange, &self.inbound_exchange] {
            ch.exchange_declare(
                ex.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        }
        for q in [&self.inbox, &self.answers_queue] {
            ch.queue_declare(q.as_str().into(), durable, FieldTable::default())
                .await?;
        }
        ch.queue_bind(
            self.inbox.as_str().into(),
            self.outbound_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        Ok(())
    }

    async fn sessions(self: Arc<Self>, mut first: Option<Connection>) {
        loop {
            let conn = match first.take() {
                Some(c) => Ok(c),
                None => self.connect().await,
            };
            if let Ok(conn) = conn
                && let Err(e) = self.session(&conn).await
            {
                tracing::info!(error = %e, "bus simulator session ended; reconnecting");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn session(self: &Arc<Self>, conn: &Connection) -> Result<(), lapin::Error> {
        let ch = conn.create_channel().await?;
        self.declare(&ch).await?;
        let mut inbox = ch
            .basic_consume(
                self.inbox.as_str().into(),
                "sim-inbox".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut answers = ch
            .basic_consume(
                self.answers_queue.as_str().into(),
                "sim-answers".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        loop {
            tokio::select! {
                d = inbox.next() => {
                    let Some(d) = d else { return Ok(()) };
                    let d = d?;
                    self.take(&d.properties, &d.data).await;
                    d.ack(BasicAckOptions::default()).await?;
                }
                d = answers.next() => {
                    let Some(d) = d else { return Ok(()) };
                    let d = d?;
                    let headers = header_map(&d.properties);
                    let status = headers
                        .get("x-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let correlation_id = d
                        .properties
                        .correlation_id()
                        .as_ref()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default();
                    let body = serde_json::from_slice(&d.data).unwrap_or(Value::Null);
                    lock(&self.answers).push(Answer { correlation_id, status, body });
                    d.ack(BasicAckOptions::default()).await?;
                }
            }
        }
    }

    /// One message from the gateway: checked, decoded, recorded and, for a two-step partner,
    /// acknowledged with the partner's `ack` message.
    async fn take(&self, props: &lapin::BasicProperties, data: &[u8]) {
        let headers = header_map(props);
        if let Err(e) = self.signer.verify_ours(&headers, data) {
            lock(&self.refused).push(format!("bad signature: {}", e.0));
            return;
        }
        let t = match self.mapping.decode_sent(data) {
            Ok(t) => t,
            Err(e) => {
                lock(&self.refused).push(e.to_string());
                return;
            }
        };
        let doc = Value::from(t.doc);
        let message_id = doc["message"]["id"].as_str().unwrap_or_default().to_owned();
        let number = doc["ticket"]["partner_number"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let first = lock(&self.seen).insert(message_id.clone());
        if first {
            lock(&self.raw).push(data.to_vec());
            lock(&self.received).push(Received {
                message_id: message_id.clone(),
                message_type: t.message_type.clone(),
                envelope: doc.clone(),
                partner_number: number.clone(),
            });
        }
        if self.profile.ack.style == AckStyle::TwoStep && self.mapping.supports("ack") {
            let ack = json!({
                "message": {
                    "id": format!("ack-{message_id}"),
                    "ref": message_id,
                    "accepted": true,
                },
                "ticket": { "partner_number": number },
            });
            match self.mapping.encode("ack", &ack, false) {
                Ok((body, _)) => {
                    let id = format!("ack-{message_id}");
                    if let Err(e) = self.publish("ack", &body, Some(&id), false).await {
                        tracing::warn!(error = %e, "simulator cannot publish its ack");
                    }
                }
                Err(e) => lock(&self.refused).push(format!("cannot write the ack: {e}")),
            }
        }
    }

    async fn publish(
        &self,
        routing_key: &str,
        body: &[u8],
        message_id: Option<&str>,
        want_answer: bool,
    ) -> anyhow::Result<()> {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", self.profile.content_type.parse()?);
        self.signer.sign_as_partner(&mut headers, body)?;
        let reply_to = want_answer.then_some(self.answers_queue.as_str());
        self.publish_with(routing_key, body, headers, message_id, reply_to)
            .await
    }

    /// Publishes with a fresh channel when the last one died; tries for a while (a broker
    /// restart in a test).
    async fn publish_with(
        &self,
        routing_key: &str,
        body: &[u8],
        headers: HeaderMap,
        message_id: Option<&str>,
        reply_to: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut props = properties(&headers);
        if let Some(id) = message_id {
            props = props.with_message_id(id.into());
        }
        if let Some(r) = reply_to {
            props = props.with_reply_to(r.into());
        }
        let mut last = None;
        for _ in 0..50 {
            match self.try_publish(routing_key, body, props.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if e.downcast_ref::<Unrouted>().is_none() {
                        *self.publisher.lock().await = None;
                    }
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("publish failed")))
    }

    async fn try_publish(
        &self,
        routing_key: &str,
        body: &[u8],
        props: lapin::BasicProperties,
    ) -> anyhow::Result<()> {
        let ch = {
            let mut slot = self.publisher.lock().await;
            match slot.as_ref() {
                Some((c, ch)) if c.status().connected() && ch.status().connected() => ch.clone(),
                _ => {
                    let conn = self.connect().await?;
                    let ch = conn.create_channel().await?;
                    ch.confirm_select(ConfirmSelectOptions::default()).await?;
                    self.declare(&ch).await?;
                    *slot = Some((conn, ch.clone()));
                    ch
                }
            }
        };
        let confirm = ch
            .basic_publish(
                self.inbound_exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                props,
            )
            .await?
            .await?;
        // Unroutable (the gateway's queue is not there yet) or refused: try again.
        if confirm.is_nack() || confirm.take_message().is_some() {
            return Err(Unrouted.into());
        }
        Ok(())
    }
}
