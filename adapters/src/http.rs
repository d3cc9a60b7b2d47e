//! Shared HTTP parts: the outbound transport and the status classification every HTTP partner uses.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use crate::{Outcome, TransportError, WireRequest, WireResponse};

/// `[partners.<id>.outbound_tls]`: how we reach a partner's HTTPS endpoint (or its `amqps://`
/// bus, [`crate::bus`]). Always TLS 1.2 or newer; the files are read again on reload
/// (certificate rotation without a restart).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundTls {
    /// PEM CA certificate(s) the partner's server certificate must chain to. When set, only
    /// these are trusted, not the public roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// PEM certificate chain we present as our client certificate (mutual TLS).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

impl OutboundTls {
    /// Applies the roots and the client identity to a client under construction; errors name
    /// the setting (`outbound_tls.cert`, ...) and the file.
    fn apply(
        &self,
        mut b: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, TransportError> {
        let read = |field: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| {
                TransportError::Tls(format!("outbound_tls.{field}: {}: {e}", path.display()))
            })
        };
        if let Some(ca) = &self.ca {
            let roots = reqwest::Certificate::from_pem_bundle(&read("ca", ca)?).map_err(|e| {
                TransportError::Tls(format!("outbound_tls.ca: {}: {e}", ca.display()))
            })?;
            if roots.is_empty() {
                return Err(TransportError::Tls(format!(
                    "outbound_tls.ca: {} holds no PEM certificate",
                    ca.display()
                )));
            }
            b = roots
                .into_iter()
                .fold(b.tls_built_in_root_certs(false), |b, c| {
                    b.add_root_certificate(c)
                });
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let mut pem = read("cert", cert)?;
                pem.push(b'\n');
                pem.extend(read("key", key)?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    TransportError::Tls(format!(
                        "outbound_tls.cert/key: {} with {}: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?;
                b = b.identity(identity);
            }
            (None, None) => {}
            _ => {
                return Err(TransportError::Tls(
                    "outbound_tls: `cert` and `key` go together".into(),
                ));
            }
        }
        Ok(b)
    }
}

/// A pooled HTTP client for one partner. Clones share the client; [`HttpTransport::reload`]
/// swaps it for one built from the TLS files as they are now.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: Arc<RwLock<reqwest::Client>>,
    timeout: Duration,
    tls: Option<OutboundTls>,
}

impl HttpTransport {
    pub fn new(timeout: Duration, tls: Option<OutboundTls>) -> Result<Self, TransportError> {
        let client = Self::build(timeout, tls.as_ref())?;
        Ok(Self {
            client: Arc::new(RwLock::new(client)),
            timeout,
            tls,
        })
    }

    fn build(
        timeout: Duration,
        tls: Option<&OutboundTls>,
    ) -> Result<reqwest::Client, TransportError> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            // The delivery engine retries (with backoff, then dead letters). reqwest's own
            // policy retries HTTP/2 refusals only (not built here), yet copies every request's
            // headers and body before sending in case it must: a policy that never retries
            // and never copies.
            .retry(reqwest::retry::never().max_retries_per_request(0))
            // A delivery carries callers' personal data, signed for this partner's endpoint: a
            // redirect is an answer (a permanent failure, for ops to look at), never followed.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(tls) = tls {
            b = tls.apply(b)?;
        }
        b.build()
            .map_err(|e| TransportError::Request(error_chain(&e)))
    }

    /// Reads the TLS files again; new connections use them, a failure keeps the current ones.
    /// `false`: nothing to reload (no `outbound_tls`).
    pub fn reload(&self) -> Result<bool, TransportError> {
        let Some(tls) = &self.tls else {
            return Ok(false);
        };
        let fresh = Self::build(self.timeout, Some(tls))?;
        *self
            .client
            .write()
            .map_err(|_| TransportError::Other("the HTTP client lock is poisoned".into()))? = fresh;
        Ok(true)
    }

    fn client(&self) -> reqwest::Client {
        match self.client.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub async fn send(&self, req: WireRequest) -> Result<WireResponse, TransportError> {
        let resp = self
            .client()
            .request(req.method, &req.url)
            .headers(req.headers)
            .body(req.body)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| self.error(e))?;
        Ok(WireResponse {
            status,
            headers,
            body,
        })
    }

    fn error(&self, e: reqwest::Error) -> TransportError {
        if e.is_timeout() {
            TransportError::Timeout(self.timeout)
        } else if e.is_connect() {
            TransportError::Connect(error_chain(&e))
        } else if e.is_builder() {
            TransportError::Request(error_chain(&e))
        } else {
            TransportError::Other(error_chain(&e))
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Classifies a non-success HTTP status: 408, 429 and 5xx are retryable (honouring
/// `Retry-After`), every other status is permanent. Returns `None` for 2xx, which only the
/// partner's adapter can read.
pub fn classify_status(resp: &WireResponse) -> Option<Outcome> {
    let status = resp.status;
    if status.is_success() {
        return None;
    }
    let snippet = body_snippet(&resp.body);
    let reason = if snippet.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {snippet}")
    };
    Some(
        if status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
        {
            Outcome::Retryable {
                reason,
                retry_after: retry_after(&resp.headers),
            }
        } else {
            Outcome::Permanent { reason }
        },
    )
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The start of a response body, for error texts: at most 200 characters, one line.
pub fn body_snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    one_line.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&'static str, &str)]) -> WireResponse {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        WireResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: "oops".into(),
        }
    }

    #[test]
    fn statuses_are_classified_as_the_delivery_engine_needs() {
        assert_eq!(classify_status(&resp(200, &[])), None);
        assert_eq!(classify_status(&resp(204, &[])), None);
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(
                    classify_status(&resp(s, &[])),
                    Some(Outcome::Retryable { .. })
                ),
                "{s}"
            );
        }
        for s in [301, 400, 401, 403, 404, 409, 413, 422] {
            assert!(
                matches!(
                    classify_status(&resp(s, &[])),
                    Some(Outcome::Permanent { .. })
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn retry_after_seconds_and_dates_are_honoured() {
        let Some(Outcome::Retryable {
            retry_after: after,
            reason,
        }) = classify_status(&resp(429, &[("retry-after", "120")]))
        else {
            panic!("429 must be retryable")
        };
        assert_eq!(after, Some(Duration::from_secs(120)));
        assert!(reason.contains("429") && reason.contains("oops"));

        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(600));
        let d = retry_after(&resp(503, &[("retry-after", &later)]).headers).unwrap();
        assert!(
            d > Duration::from_secs(590) && d <= Duration::from_secs(600),
            "{d:?}"
        );
        assert_eq!(
            retry_after(&resp(503, &[("retry-after", "soon")]).headers),
            None
        );
    }
}
