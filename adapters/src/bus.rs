//! A partner reached over AMQP 0-9-1 (RabbitMQ): the provincial data-exchange bus.
//!
//! Topology, declared by whichever side connects first (all durable):
//! - `<outbound exchange>` (topic): what we publish for the partner, routing key = the message
//!   type; the partner binds its own queue to it.
//! - `<inbound exchange>` (topic): what the partner publishes for us; our queue `<queue>` is
//!   bound to it with `#` and dead-letters to `<queue>.dlx` → `<queue>.dead-letters`.
//!
//! We publish persistent messages on a channel in confirm mode and count a message as handed
//! over only when the broker confirms it (an unroutable message comes back and is a failure).
//! We consume with manual acknowledgements: the gateway acknowledges a message after it is
//! stored, rejects a poison message into the dead-letter exchange, and leaves a message it could
//! not store to be delivered again. A lost connection is reopened on the next use.
//!
//! An `amqps://` bus is reached over TLS with the partner's `outbound_tls` files, read at each
//! new connection: `ca`, trusted for the broker's certificate in addition to the system's roots
//! (lapin's TLS stack adds it), and `cert`/`key`, the client certificate we present (mutual
//! TLS). A reload checks the files and has the next publish open a new connection with them.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, DefaultConnectionBuilder,
    ExchangeKind,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::Mutex;

use crate::http::OutboundTls;
use crate::{InboundRequest, TransportError, WireRequest, WireResponse};

/// Whether a message answered with `status` goes back to the broker to be taken again later
/// (it could not be taken now: a server error, too many requests) rather than acknowledged or
/// dead-lettered.
pub fn hands_back(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// Where the partner's bus is and what its exchanges and our queue are called.
#[derive(Debug, Clone)]
pub struct BusSettings {
    pub partner: String,
    /// `amqp://user:pass@host:5672/vhost`.
    pub url: String,
    /// The partner's exchange: we publish here.
    pub outbound_exchange: String,
    /// Our exchange at the partner's side: it publishes here.
    pub inbound_exchange: String,
    /// Our durable queue, bound to `inbound_exchange`.
    pub queue: String,
    /// Messages taken at a time before acknowledging.
    pub prefetch: u16,
    /// How long a publish may wait for its confirm.
    pub timeout: Duration,
    /// For an `amqps://` URL: the CA and client certificate files.
    pub tls: Option<OutboundTls>,
}

/// One partner's bus link: a lazily opened publishing channel, and subscriptions on demand.
pub struct BusLink {
    settings: BusSettings,
    publisher: Mutex<Option<(Connection, Channel)>>,
    /// Set by a reload: the next publish opens a new connection, with the files as they are.
    renew: AtomicBool,
}

impl OutboundTls {
    /// The files as lapin takes them for an `amqps://` connection; errors name the setting
    /// (`outbound_tls.<field>`) and the file. See [`OutboundTls::amqp_as`].
    pub fn amqp(&self) -> Result<OwnedTLSConfig, TransportError> {
        self.amqp_as("outbound_tls")
    }

    /// The files as lapin takes them for an `amqps://` connection, errors naming them as
    /// `<setting>.<field>`. Each file is parsed here, so that a bad one is reported as such
    /// rather than as a failed handshake.
    pub fn amqp_as(&self, setting: &str) -> Result<OwnedTLSConfig, TransportError> {
        use rustls_pki_types::pem::Error as Pem;
        let fail = |field: &str, path: &Path, why: String| {
            TransportError::Tls(format!("{setting}.{field}: {}: {why}", path.display()))
        };
        let read = |field: &str, path: &Path| {
            std::fs::read(path).map_err(|e| fail(field, path, e.to_string()))
        };
        let certificates = |field: &str, path: &Path| {
            let pem = read(field, path)?;
            match CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() {
                Ok(certs) if !certs.is_empty() => Ok(pem),
                Ok(_) | Err(Pem::NoItemsFound) => {
                    Err(fail(field, path, "holds no PEM certificate".into()))
                }
                Err(e) => Err(fail(field, path, e.to_string())),
            }
        };
        let private_key = |path: &Path| {
            let pem = read("key", path)?;
            match PrivateKeyDer::from_pem_slice(&pem) {
                Ok(_) => Ok(pem),
                Err(Pem::NoItemsFound) => Err(fail("key", path, "holds no PEM private key".into())),
                Err(e) => Err(fail("key", path, e.to_string())),
            }
        };
        let cert_chain = match &self.ca {
            Some(ca) => Some(String::from_utf8_lossy(&certificates("ca", ca)?).into_owned()),
            None => None,
        };
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
                pem: certificates("cert", cert)?,
                key: private_key(key)?,
            }),
            (None, None) => None,
            _ => {
                return Err(TransportError::Tls(format!(
                    "{setting}: `cert` and `key` go together"
                )));
            }
        };
        Ok(OwnedTLSConfig {
            identity,
            cert_chain,
        })
    }
}

/// Opens a connection to a broker: as the URL says, plain (`amqp://`) or over TLS (`amqps://`),
/// then with `tls` (the system's roots alone when `None`).
pub async fn connect_broker(
    url: &str,
    props: ConnectionProperties,
    tls: Option<OwnedTLSConfig>,
) -> Result<Connection, lapin::Error> {
    match tls.filter(|_| url.starts_with("amqps://")) {
        None => Connection::connect(url, props).await,
        Some(tls) => {
            DefaultConnectionBuilder::new()?
                .with_uri_str(url.to_owned())
                .with_properties(props)
                .with_tls_config(tls)
                .connect()
                .await
        }
    }
}

fn broker(e: lapin::Error) -> TransportError {
    TransportError::Connect(format!("broker: {e}"))
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

impl BusLink {
    /// The link, once its TLS files (for an `amqps://` URL) are found readable and well formed.
    pub fn new(settings: BusSettings) -> Result<Self, TransportError> {
        let link = Self {
            settings,
            publisher: Mutex::new(None),
            renew: AtomicBool::new(false),
        };
        link.tls_config()?;
        Ok(link)
    }

    /// The TLS settings of a new connection: none for `amqp://`, the `outbound_tls` files as
    /// they are now for `amqps://`.
    fn tls_config(&self) -> Result<Option<OwnedTLSConfig>, TransportError> {
        match &self.settings.tls {
            Some(tls) if self.settings.url.starts_with("amqps://") => tls.amqp().map(Some),
            _ => Ok(None),
        }
    }

    /// Checks the TLS files again (an error names the setting and the file); the next publish
    /// then opens a new connection with them. `false` when the bus uses no TLS files.
    pub fn reload_tls(&self) -> Result<bool, TransportError> {
        let Some(_) = self.tls_config()? else {
            return Ok(false);
        };
        self.renew.store(true, Ordering::Relaxed);
        Ok(true)
    }

    pub fn settings(&self) -> &BusSettings {
        &self.settings
    }

    async fn connect(&self, role: &str) -> Result<Connection, TransportError> {
        let props = ConnectionProperties::default().with_connection_name(
            format!("hotline-gateway {} {role}", self.settings.partner).into(),
        );
        connect_broker(&self.settings.url, props, self.tls_config()?)
            .await
            .map_err(broker)
    }

    /// Declares both exchanges, our queue and its dead-letter pair.
    pub async fn declare(&self, ch: &Channel) -> Result<(), TransportError> {
        let s = &self.settings;
        for exchange in [&s.outbound_exchange, &s.inbound_exchange] {
            ch.exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                durable_exchange(),
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        }
        let dlx = format!("{}.dlx", s.queue);
        let dead = format!("{}.dead-letters", s.queue);
        ch.exchange_declare(
            dlx.as_str().into(),
            ExchangeKind::Fanout,
            durable_exchange(),
            FieldTable::default(),
        )
        .await
        .map_err(broker)?;
        ch.queue_declare(dead.as_str().into(), durable_queue(), FieldTable::default())
            .await
            .map_err(broker)?;
        ch.queue_bind(
            dead.as_str().into(),
            dlx.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(broker)?;
        let mut args = FieldTable::default();
        args.insert(
            ShortString::from("x-dead-letter-exchange"),
            AMQPValue::LongString(dlx.as_str().into()),
        );
        ch.queue_declare(s.queue.as_str().into(), durable_queue(), args)
            .await
            .map_err(broker)?;
        ch.queue_bind(
            s.queue.as_str().into(),
            s.inbound_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(broker)?;
        Ok(())
    }

    async fn publishing_channel(&self) -> Result<Channel, TransportError> {
        let mut slot = self.publisher.lock().await;
        if self.renew.swap(false, Ordering::Relaxed) {
            *slot = None;
        }
        if let Some((conn, ch)) = slot.as_ref()
            && conn.status().connected()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        let conn = self.connect("publisher").await?;
        let ch = conn.create_channel().await.map_err(broker)?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(broker)?;
        self.declare(&ch).await?;
        *slot = Some((conn, ch.clone()));
        Ok(ch)
    }

    /// Publishes `req.body` to the partner's exchange with routing key `req.url`, its headers
    /// as message headers, persistent and mandatory; answers once the broker confirms.
    pub async fn send(&self, req: WireRequest) -> Result<WireResponse, TransportError> {
        let exchange = self.settings.outbound_exchange.clone();
        let props = properties(&req.headers);
        let publish = async {
            let ch = self.publishing_channel().await?;
            ch.basic_publish(
                exchange.as_str().into(),
                req.url.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &req.body,
                props,
            )
            .await
            .map_err(broker)?
            .await
            .map_err(broker)
        };
        let published = tokio::time::timeout(self.settings.timeout, publish)
            .await
            .unwrap_or(Err(TransportError::Timeout(self.settings.timeout)));
        let confirm = match published {
            Ok(c) => c,
            Err(e) => {
                // The channel may be broken: the next publish opens a fresh one.
                *self.publisher.lock().await = None;
                return Err(e);
            }
        };
        if confirm.is_nack() {
            return Err(TransportError::Other(
                "the broker refused the message".into(),
            ));
        }
        if confirm.take_message().is_some() {
            return Err(TransportError::Other(format!(
                "no queue is bound to exchange `{exchange}` for `{}`: the partner is not listening",
                req.url
            )));
        }
        Ok(WireResponse::new(
            StatusCode::ACCEPTED,
            "application/octet-stream",
            Bytes::new(),
        ))
    }

    /// Publishes an answer to a message that asked for one (`reply_to`).
    async fn answer(
        &self,
        reply_to: &str,
        correlation_id: Option<&str>,
        resp: &WireResponse,
    ) -> Result<(), TransportError> {
        let ch = self.publishing_channel().await?;
        let mut props = properties(&resp.headers);
        if let Some(c) = correlation_id {
            props = props.with_correlation_id(c.into());
        }
        let status = i32::from(resp.status.as_u16());
        let mut headers = props.headers().clone().unwrap_or_default();
        headers.insert("x-status".into(), AMQPValue::LongInt(status));
        props = props.with_headers(headers);
        ch.basic_publish(
            "".into(),
            reply_to.into(),
            BasicPublishOptions::default(),
            &resp.body,
            props,
        )
        .await
        .map_err(broker)?
        .await
        .map_err(broker)?;
        Ok(())
    }

    /// Opens a subscription to our queue on its own connection.
    pub async fn subscribe(&self) -> Result<Subscription, TransportError> {
        let conn = self.connect("consumer").await?;
        let ch = conn.create_channel().await.map_err(broker)?;
        self.declare(&ch).await?;
        ch.basic_qos(self.settings.prefetch.max(1), BasicQosOptions::default())
            .await
            .map_err(broker)?;
        let tag = format!(
            "hotline-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        );
        let consumer = ch
            .basic_consume(
                self.settings.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        Ok(Subscription {
            _conn: conn,
            consumer,
        })
    }
}

/// Message properties from HTTP-style headers: content type, and the rest as AMQP headers.
pub fn properties(headers: &HeaderMap) -> BasicProperties {
    let mut table = FieldTable::default();
    let mut props = BasicProperties::default().with_delivery_mode(2);
    for (name, value) in headers {
        let Ok(text) = value.to_str() else { continue };
        if name == http::header::CONTENT_TYPE {
            props = props.with_content_type(text.into());
        } else {
            table.insert(
                name.as_str().into(),
                AMQPValue::LongString(text.to_owned().into()),
            );
        }
    }
    props.with_headers(table)
}

/// A message's AMQP headers (strings and integers) as HTTP-style headers.
pub fn header_map(props: &BasicProperties) -> HeaderMap {
    let mut map = HeaderMap::new();
    if let Some(ct) = props.content_type()
        && let Ok(v) = HeaderValue::from_str(ct.as_str())
    {
        map.insert(http::header::CONTENT_TYPE, v);
    }
    let Some(table) = props.headers() else {
        return map;
    };
    for (key, value) in table.inner() {
        let text = match value {
            AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            AMQPValue::ShortString(s) => s.as_str().to_owned(),
            AMQPValue::LongInt(n) => n.to_string(),
            AMQPValue::LongLongInt(n) => n.to_string(),
            AMQPValue::ShortInt(n) => n.to_string(),
            _ => continue,
        };
        if let (Ok(name), Ok(v)) = (
            HeaderName::from_bytes(key.as_str().as_bytes()),
            HeaderValue::from_str(&text),
        ) {
            map.append(name, v);
        }
    }
    map
}

/// Our side of a subscription; dropping it closes the connection, and the broker hands every
/// message not yet acknowledged to the next consumer.
pub struct Subscription {
    _conn: Connection,
    consumer: lapin::Consumer,
}

impl Subscription {
    /// The next message; `Err` when the connection is lost (subscribe again).
    pub async fn next(&mut self) -> Result<Received, TransportError> {
        match self.consumer.next().await {
            Some(Ok(delivery)) => Ok(Received { delivery }),
            Some(Err(e)) => Err(broker(e)),
            None => Err(TransportError::Connect("the consumer was cancelled".into())),
        }
    }
}

/// One message from the partner, to settle once the gateway has dealt with it.
pub struct Received {
    delivery: Delivery,
}

impl Received {
    /// The message as an ingress request (`POST messages`): its headers and body.
    pub fn request(&self) -> InboundRequest {
        InboundRequest {
            method: Method::POST,
            path: "messages".into(),
            headers: header_map(&self.delivery.properties),
            body: Bytes::copy_from_slice(&self.delivery.data),
        }
    }

    /// Whether the broker delivered this message before (to a consumer that did not settle it).
    pub fn redelivered(&self) -> bool {
        self.delivery.redelivered
    }

    /// Settles the message by what the gateway answered: taken (2xx) → acknowledged; refused
    /// for good (4xx) → rejected into the dead-letter exchange; not stored now (5xx, 429) →
    /// handed back to the broker for another try. The answer goes to the message's `reply_to`.
    pub async fn settle(self, link: &BusLink, resp: &WireResponse) -> Result<(), TransportError> {
        let props = &self.delivery.properties;
        if let Some(reply_to) = props.reply_to() {
            let correlation = props
                .correlation_id()
                .as_ref()
                .or(props.message_id().as_ref())
                .map(|s| s.as_str().to_owned());
            if let Err(e) = link
                .answer(reply_to.as_str(), correlation.as_deref(), resp)
                .await
            {
                tracing::warn!(partner = %link.settings.partner, error = %e, "cannot publish the answer");
            }
        }
        let status = resp.status;
        let done = if status.is_success() {
            self.delivery.ack(BasicAckOptions::default()).await
        } else if hands_back(status) {
            self.delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
        } else {
            self.delivery
                .reject(BasicRejectOptions { requeue: false })
                .await
        };
        done.map(|_| ()).map_err(broker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and its key, as PEM.
    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        (cert.pem(), key.serialize_pem())
    }

    fn settings(url: &str, tls: Option<OutboundTls>) -> BusSettings {
        BusSettings {
            partner: "fawang".into(),
            url: url.into(),
            outbound_exchange: "out".into(),
            inbound_exchange: "in".into(),
            queue: "q".into(),
            prefetch: 1,
            timeout: Duration::from_secs(1),
            tls,
        }
    }

    fn files(dir: &Path) -> OutboundTls {
        let (ca, _) = pair();
        let (cert, key) = pair();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).expect("write");
            p
        };
        OutboundTls {
            ca: Some(write("ca.pem", &ca)),
            cert: Some(write("client.pem", &cert)),
            key: Some(write("client.key", &key)),
        }
    }

    fn refusal(r: Result<impl std::fmt::Debug, TransportError>) -> String {
        match r {
            Err(TransportError::Tls(m)) => m,
            other => panic!("expected a TLS settings error, got {other:?}"),
        }
    }

    #[test]
    fn an_amqps_link_takes_the_ca_and_the_client_certificate() {
        let dir = tempfile::tempdir().expect("dir");
        let tls = files(dir.path());
        let config = tls.amqp().expect("well-formed files");
        assert!(
            config
                .cert_chain
                .is_some_and(|c| c.contains("BEGIN CERTIFICATE"))
        );
        assert!(matches!(config.identity, Some(OwnedIdentity::PKCS8 { .. })));
        let link = BusLink::new(settings("amqps://mq.example:5671/%2f", Some(tls))).expect("link");
        assert!(
            link.reload_tls().expect("files still good"),
            "a reload renews"
        );
        assert!(link.renew.load(Ordering::Relaxed));
    }

    #[test]
    fn bad_tls_files_are_refused_naming_the_setting() {
        let dir = tempfile::tempdir().expect("dir");
        let tls = files(dir.path());
        let url = "amqps://mq.example:5671/%2f";
        let link = BusLink::new(settings(url, Some(tls.clone()))).expect("link");
        let key = tls.key.clone().expect("key");
        std::fs::write(&key, "not a key").expect("write");
        let m = refusal(link.reload_tls());
        assert!(
            m.starts_with("outbound_tls.key:") && m.contains("no PEM private key"),
            "{m}"
        );
        let named = refusal(tls.amqp_as("delivery.amqp_tls"));
        assert!(named.starts_with("delivery.amqp_tls.key:"), "{named}");
        let ca = tls.ca.clone().expect("ca");
        std::fs::write(&ca, "not a certificate").expect("write");
        let m = refusal(BusLink::new(settings(url, Some(tls.clone()))).map(|_| ()));
        assert!(
            m.starts_with("outbound_tls.ca:") && m.contains("no PEM certificate"),
            "{m}"
        );
        let half = OutboundTls {
            key: None,
            ..files(dir.path())
        };
        assert!(refusal(half.amqp()).contains("go together"));
        let missing = OutboundTls {
            cert: Some(dir.path().join("absent.pem")),
            ..files(dir.path())
        };
        assert!(refusal(missing.amqp()).starts_with("outbound_tls.cert:"));
    }

    #[test]
    fn a_plain_amqp_link_reads_no_tls_files() {
        let absent = OutboundTls {
            ca: Some("/nonexistent/ca.pem".into()),
            cert: None,
            key: None,
        };
        let link = BusLink::new(settings("amqp://127.0.0.1:5672/%2f", Some(absent))).expect("link");
        assert!(!link.reload_tls().expect("nothing to read"));
    }
}
