//! Shared HTTP parts: the outbound transport and the status classification every HTTP partner uses.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

use crate::{Outcome, TransportError, WireRequest, WireResponse};

/// A pooled HTTP client for one partner.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    timeout: Duration,
}

impl HttpTransport {
    pub fn new(timeout: Duration) -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| TransportError::Request(e.to_string()))?;
        Ok(Self { client, timeout })
    }

    pub async fn send(&self, req: WireRequest) -> Result<WireResponse, TransportError> {
        let resp = self
            .client
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
