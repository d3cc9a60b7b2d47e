//! Request signature schemes partners use, both ways.
//!
//! - `hmac-sha256` / `hmac-sm3`: hex HMAC over app id + timestamp + nonce + body, sent in
//!   `X-App-Id`, `X-Timestamp` (epoch seconds), `X-Nonce`, `X-Signature` (header names
//!   configurable); checked in constant time, with a timestamp window.
//! - `token`: a shared token in a header (`X-Token`).
//! - `bearer`: `Authorization: Bearer <token>`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    HmacSha256,
    HmacSm3,
    Token,
    Bearer,
}

/// Header names a scheme uses, with conventional defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureSpec {
    pub scheme: Scheme,
    #[serde(default = "h_app")]
    pub app_id_header: String,
    #[serde(default = "h_ts")]
    pub timestamp_header: String,
    #[serde(default = "h_nonce")]
    pub nonce_header: String,
    #[serde(default = "h_sig")]
    pub signature_header: String,
    #[serde(default = "h_token")]
    pub token_header: String,
}

fn h_app() -> String {
    "x-app-id".into()
}
fn h_ts() -> String {
    "x-timestamp".into()
}
fn h_nonce() -> String {
    "x-nonce".into()
}
fn h_sig() -> String {
    "x-signature".into()
}
fn h_token() -> String {
    "x-token".into()
}

/// Accepted clock difference between a signed request and us.
pub const WINDOW: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SignatureError(pub String);

/// One partner's keys: ours to sign, theirs to verify.
#[derive(Debug, Clone)]
pub struct Signer {
    pub spec: SignatureSpec,
    pub app_id: String,
    pub our_secret: String,
    pub their_secret: String,
}

fn mac(scheme: Scheme, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut m = <M as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    }
    match scheme {
        Scheme::HmacSm3 => run::<Hmac<sm3::Sm3>>(key, parts),
        _ => run::<Hmac<sha2::Sha256>>(key, parts),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

fn header(name: &str) -> Result<HeaderName, SignatureError> {
    HeaderName::try_from(name).map_err(|e| SignatureError(format!("header `{name}`: {e}")))
}

fn value(v: &str) -> Result<HeaderValue, SignatureError> {
    HeaderValue::try_from(v).map_err(|e| SignatureError(format!("header value: {e}")))
}

impl Signer {
    /// The hex HMAC of app id + timestamp + nonce + body under `secret`.
    pub fn hmac_hex(&self, secret: &str, ts: &str, nonce: &str, body: &[u8]) -> String {
        let parts: [&[u8]; 4] = [
            self.app_id.as_bytes(),
            ts.as_bytes(),
            nonce.as_bytes(),
            body,
        ];
        hex::encode(mac(self.spec.scheme, secret.as_bytes(), &parts))
    }

    /// Adds our signature headers for `body`.
    pub fn sign(&self, headers: &mut HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
        self.sign_with(
            headers,
            body,
            &self.our_secret,
            chrono::Utc::now().timestamp(),
        )
    }

    /// Signs as the partner would (for simulators and tests).
    pub fn sign_as_partner(
        &self,
        headers: &mut HeaderMap,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        self.sign_with(
            headers,
            body,
            &self.their_secret,
            chrono::Utc::now().timestamp(),
        )
    }

    pub fn sign_with(
        &self,
        headers: &mut HeaderMap,
        body: &[u8],
        secret: &str,
        ts: i64,
    ) -> Result<(), SignatureError> {
        let s = &self.spec;
        match s.scheme {
            Scheme::HmacSha256 | Scheme::HmacSm3 => {
                let ts = ts.to_string();
                let nonce = uuid::Uuid::now_v7().simple().to_string();
                let sig = self.hmac_hex(secret, &ts, &nonce, body);
                headers.insert(header(&s.app_id_header)?, value(&self.app_id)?);
                headers.insert(header(&s.timestamp_header)?, value(&ts)?);
                headers.insert(header(&s.nonce_header)?, value(&nonce)?);
                headers.insert(header(&s.signature_header)?, value(&sig)?);
            }
            Scheme::Token => {
                headers.insert(header(&s.token_header)?, value(secret)?);
            }
            Scheme::Bearer => {
                headers.insert(
                    http::header::AUTHORIZATION,
                    value(&format!("Bearer {secret}"))?,
                );
            }
        }
        Ok(())
    }

    /// The nonce a signed request carries (HMAC schemes), which must not come twice.
    pub fn nonce<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        match self.spec.scheme {
            Scheme::HmacSha256 | Scheme::HmacSm3 => headers
                .get(&self.spec.nonce_header)
                .and_then(|v| v.to_str().ok())
                .filter(|n| !n.is_empty()),
            _ => None,
        }
    }

    /// Checks a request the partner signed.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
        self.verify_with(
            headers,
            body,
            &self.their_secret,
            chrono::Utc::now().timestamp(),
        )
    }

    /// Checks a request we signed (for simulators and tests).
    pub fn verify_ours(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
        self.verify_with(
            headers,
            body,
            &self.our_secret,
            chrono::Utc::now().timestamp(),
        )
    }

    pub fn verify_with(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        secret: &str,
        now: i64,
    ) -> Result<(), SignatureError> {
        let s = &self.spec;
        let get = |name: &str| -> Result<&str, SignatureError> {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| SignatureError(format!("header `{name}` is missing")))
        };
        match s.scheme {
            Scheme::HmacSha256 | Scheme::HmacSm3 => {
                let app = get(&s.app_id_header)?;
                if app != self.app_id {
                    return Err(SignatureError(format!("unknown app id `{app}`")));
                }
                let ts = get(&s.timestamp_header)?;
                let t: i64 = ts.parse().map_err(|_| {
                    SignatureError(format!("`{}` is not a timestamp", s.timestamp_header))
                })?;
                if (now - t).unsigned_abs() > WINDOW.as_secs() {
                    return Err(SignatureError(format!(
                        "timestamp is outside the ±{} s window",
                        WINDOW.as_secs()
                    )));
                }
                let nonce = get(&s.nonce_header)?;
                let expected = self.hmac_hex(secret, ts, nonce, body);
                let got = get(&s.signature_header)?.to_ascii_lowercase();
                if !constant_time_eq(expected.as_bytes(), got.as_bytes()) {
                    return Err(SignatureError("signature does not match".into()));
                }
            }
            Scheme::Token => {
                if !constant_time_eq(get(&s.token_header)?.as_bytes(), secret.as_bytes()) {
                    return Err(SignatureError("token does not match".into()));
                }
            }
            Scheme::Bearer => {
                let auth = get("authorization")?;
                let token = auth
                    .strip_prefix("Bearer ")
                    .ok_or_else(|| SignatureError("expected `Authorization: Bearer …`".into()))?;
                if !constant_time_eq(token.as_bytes(), secret.as_bytes()) {
                    return Err(SignatureError("bearer token does not match".into()));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(scheme: Scheme) -> Signer {
        Signer {
            spec: toml::from_str(&format!(
                "scheme = \"{}\"",
                match scheme {
                    Scheme::HmacSha256 => "hmac-sha256",
                    Scheme::HmacSm3 => "hmac-sm3",
                    Scheme::Token => "token",
                    Scheme::Bearer => "bearer",
                }
            ))
            .unwrap(),
            app_id: "hotline-12348".into(),
            our_secret: "ours".into(),
            their_secret: "theirs".into(),
        }
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let tag = mac(
            Scheme::HmacSha256,
            b"Jefe",
            &[b"what do ya want ", b"for nothing?"],
        );
        assert_eq!(
            hex::encode(tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn sm3_matches_gb_t_32905_example_1() {
        use sm3::Digest;
        // GB/T 32905-2016 appendix A, example 1: SM3("abc").
        assert_eq!(
            hex::encode(sm3::Sm3::digest(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
    }

    #[test]
    fn every_scheme_verifies_its_own_signature_and_refuses_others() {
        for scheme in [
            Scheme::HmacSha256,
            Scheme::HmacSm3,
            Scheme::Token,
            Scheme::Bearer,
        ] {
            let s = signer(scheme);
            let mut h = HeaderMap::new();
            s.sign_as_partner(&mut h, b"<x/>").unwrap();
            s.verify(&h, b"<x/>")
                .unwrap_or_else(|e| panic!("{scheme:?}: {e}"));
            assert!(s.verify_ours(&h, b"<x/>").is_err(), "{scheme:?}: wrong key");
            if matches!(scheme, Scheme::HmacSha256 | Scheme::HmacSm3) {
                assert!(s.verify(&h, b"<y/>").is_err(), "{scheme:?}: altered body");
            }
        }
    }

    #[test]
    fn old_timestamps_are_refused() {
        let s = signer(Scheme::HmacSm3);
        let mut h = HeaderMap::new();
        let then = chrono::Utc::now().timestamp() - 3600;
        s.sign_with(&mut h, b"{}", "theirs", then).unwrap();
        let err = s.verify(&h, b"{}").unwrap_err();
        assert!(err.0.contains("window"), "{err}");
    }

    #[test]
    fn sm3_and_sha256_give_different_signatures() {
        let a = signer(Scheme::HmacSha256).hmac_hex("k", "1", "n", b"body");
        let b = signer(Scheme::HmacSm3).hmac_hex("k", "1", "n", b"body");
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(b.len(), 64);
    }
}
