//! Request signature schemes partners use, both ways.
//!
//! - `hmac-sha256` / `hmac-sm3`: hex HMAC over app id + timestamp + nonce + body, sent in
//!   `X-App-Id`, `X-Timestamp` (epoch seconds), `X-Nonce`, `X-Signature` (header names
//!   configurable); checked in constant time, with a timestamp window.
//! - `sm2`: an SM2 signature (GB/T 32918, SM3 digest, the standard's default ID) over the same
//!   parts, hex `r‖s` in `X-Signature`; our secret is our private key (64 hex digits), theirs the
//!   partner's public key (SEC1, hex).
//! - `token`: a shared token in a header (`X-Token`).
//! - `bearer`: `Authorization: Bearer <token>`.
//!
//! The partner's secret may list several keys separated by commas: any of them verifies, so a
//! partner rotates its key without a flag day.  The nonce of a signed request is kept by the
//! gateway and refused a second time (replay protection).

use std::time::Duration;

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    HmacSha256,
    HmacSm3,
    Sm2,
    Token,
    Bearer,
}

/// The distinguishing identifier GB/T 35276 gives as the default for SM2 signatures.
pub const SM2_ID: &str = "1234567812345678";

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
    /// What every scheme signs: app id + timestamp + nonce + body.
    fn signed_parts<'a>(&'a self, ts: &'a str, nonce: &'a str, body: &'a [u8]) -> [&'a [u8]; 4] {
        [
            self.app_id.as_bytes(),
            ts.as_bytes(),
            nonce.as_bytes(),
            body,
        ]
    }

    /// The hex HMAC of app id + timestamp + nonce + body under `secret`.
    pub fn hmac_hex(&self, secret: &str, ts: &str, nonce: &str, body: &[u8]) -> String {
        let parts = self.signed_parts(ts, nonce, body);
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

    /// The hex SM2 signature (`r‖s`) of app id + timestamp + nonce + body under the private key
    /// `secret` (hex).
    pub fn sm2_hex(
        &self,
        secret: &str,
        ts: &str,
        nonce: &str,
        body: &[u8],
    ) -> Result<String, SignatureError> {
        use sm2::dsa::signature::Signer as _;
        let bytes = hex::decode(secret.trim())
            .map_err(|_| SignatureError("the SM2 private key is not hex".into()))?;
        let key = sm2::dsa::SigningKey::from_slice(SM2_ID, &bytes)
            .map_err(|_| SignatureError("not an SM2 private key".into()))?;
        let msg = self.signed_parts(ts, nonce, body).concat();
        let sig: sm2::dsa::Signature = key
            .try_sign(&msg)
            .map_err(|e| SignatureError(format!("SM2 signing failed: {e}")))?;
        Ok(hex::encode(sig.to_bytes()))
    }

    fn sm2_verify(
        &self,
        public_key: &str,
        ts: &str,
        nonce: &str,
        body: &[u8],
        signature: &str,
    ) -> bool {
        use sm2::dsa::signature::Verifier as _;
        let (Ok(pk), Ok(sig)) = (
            hex::decode(public_key.trim()),
            hex::decode(signature.trim()),
        ) else {
            return false;
        };
        let (Ok(key), Ok(sig)) = (
            sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_ID, &pk),
            sm2::dsa::Signature::from_slice(&sig),
        ) else {
            return false;
        };
        let msg = self.signed_parts(ts, nonce, body).concat();
        key.verify(&msg, &sig).is_ok()
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
            Scheme::HmacSha256 | Scheme::HmacSm3 | Scheme::Sm2 => {
                let ts = ts.to_string();
                let nonce = uuid::Uuid::now_v7().simple().to_string();
                // A list of keys (rotation) signs with the first.
                let secret = secret.split(',').next().unwrap_or(secret).trim();
                let sig = if s.scheme == Scheme::Sm2 {
                    self.sm2_hex(secret, &ts, &nonce, body)?
                } else {
                    self.hmac_hex(secret, &ts, &nonce, body)
                };
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
            Scheme::HmacSha256 | Scheme::HmacSm3 | Scheme::Sm2 => headers
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
        // Several keys (rotation): any one verifies.
        let keys = || secret.split(',').map(str::trim).filter(|k| !k.is_empty());
        match s.scheme {
            Scheme::HmacSha256 | Scheme::HmacSm3 | Scheme::Sm2 => {
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
                let got = get(&s.signature_header)?.to_ascii_lowercase();
                let ok = if s.scheme == Scheme::Sm2 {
                    keys().any(|k| self.sm2_verify(k, ts, nonce, body, &got))
                } else {
                    // Every key is tried, so the time taken does not tell which one matched.
                    keys().fold(false, |ok, k| {
                        let expected = self.hmac_hex(k, ts, nonce, body);
                        constant_time_eq(expected.as_bytes(), got.as_bytes()) | ok
                    })
                };
                if !ok {
                    return Err(SignatureError("signature does not match".into()));
                }
            }
            Scheme::Token => {
                let got = get(&s.token_header)?;
                if !keys().fold(false, |ok, k| {
                    constant_time_eq(got.as_bytes(), k.as_bytes()) | ok
                }) {
                    return Err(SignatureError("token does not match".into()));
                }
            }
            Scheme::Bearer => {
                let auth = get("authorization")?;
                let token = auth
                    .strip_prefix("Bearer ")
                    .ok_or_else(|| SignatureError("expected `Authorization: Bearer …`".into()))?;
                if !keys().fold(false, |ok, k| {
                    constant_time_eq(token.as_bytes(), k.as_bytes()) | ok
                }) {
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

    /// GB/T 32918.5 (GM/T 0003.5) example key pair on the recommended curve.
    const SM2_PRIVATE: &str = "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8";
    const SM2_PUBLIC: &str = "0409f9df311e5421a150dd7d161e4bc5c672179fad1833fc076bb08ff356f35020\
                              ccea490ce26775a52dc6ea718cc1aa600aed05fbf35e084a6632f6072da9ad13";

    #[test]
    fn sm2_verifies_the_standards_example_signature() {
        use sm2::dsa::signature::Verifier as _;
        // Message "message digest", default ID; r and s from the standard's example.
        let key =
            sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_ID, &hex::decode(SM2_PUBLIC).unwrap())
                .unwrap();
        let sig = sm2::dsa::Signature::from_slice(
            &hex::decode(
                "f5a03b0648d2c4630eeac513e1bb81a15944da3827d5b74143ac7eaceee720b3\
                 b1b6aa29df212fd8763182bc0d421ca1bb9038fd1f7f42d4840b69c485bbc1aa",
            )
            .unwrap(),
        )
        .unwrap();
        assert!(key.verify(b"message digest", &sig).is_ok());
        assert!(key.verify(b"message digesT", &sig).is_err());
        // The key pair belongs together.
        let signing =
            sm2::dsa::SigningKey::from_slice(SM2_ID, &hex::decode(SM2_PRIVATE).unwrap()).unwrap();
        assert_eq!(
            hex::encode(signing.verifying_key().to_sec1_bytes()),
            SM2_PUBLIC
        );
    }

    #[test]
    fn sm2_requests_round_trip_and_tampering_fails() {
        let s = signer(Scheme::Sm2);
        let mut h = HeaderMap::new();
        let now = chrono::Utc::now().timestamp();
        s.sign_with(&mut h, b"<x/>", SM2_PRIVATE, now).unwrap();
        assert!(s.verify_with(&h, b"<x/>", SM2_PUBLIC, now).is_ok());
        assert!(
            s.verify_with(&h, b"<y/>", SM2_PUBLIC, now).is_err(),
            "altered body"
        );
        let other = sm2::dsa::SigningKey::from_slice(SM2_ID, &[7u8; 32]).unwrap();
        let other_pub = hex::encode(other.verifying_key().to_sec1_bytes());
        assert!(
            s.verify_with(&h, b"<x/>", &other_pub, now).is_err(),
            "another key"
        );
        // Rotation: the partner's old and new public keys are both listed.
        assert!(
            s.verify_with(&h, b"<x/>", &format!("{other_pub}, {SM2_PUBLIC}"), now)
                .is_ok()
        );
        assert!(
            s.verify_with(&h, b"<x/>", SM2_PUBLIC, now + 3600).is_err(),
            "window"
        );
    }

    #[test]
    fn hmac_keys_rotate_and_tokens_too() {
        let s = signer(Scheme::HmacSm3);
        let mut h = HeaderMap::new();
        let now = chrono::Utc::now().timestamp();
        s.sign_with(&mut h, b"body", "new-key-0123456789", now)
            .unwrap();
        assert!(
            s.verify_with(&h, b"body", "old-key-0123456789,new-key-0123456789", now)
                .is_ok()
        );
        assert!(
            s.verify_with(&h, b"body", "old-key-0123456789", now)
                .is_err()
        );
        let t = signer(Scheme::Token);
        let mut h = HeaderMap::new();
        t.sign_with(&mut h, b"", "tok-b", now).unwrap();
        assert!(t.verify_with(&h, b"", "tok-a, tok-b", now).is_ok());
        assert!(t.verify_with(&h, b"", "tok-a", now).is_err());
    }

    fn signer(scheme: Scheme) -> Signer {
        Signer {
            spec: toml::from_str(&format!(
                "scheme = \"{}\"",
                match scheme {
                    Scheme::HmacSha256 => "hmac-sha256",
                    Scheme::HmacSm3 => "hmac-sm3",
                    Scheme::Sm2 => "sm2",
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
