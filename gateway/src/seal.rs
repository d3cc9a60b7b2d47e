//! Encryption of callers' personal data at rest: name, phone, identity number and address are
//! sealed field by field (AES-256-GCM by default, SM4-GCM as an option) before a ticket or a
//! transfer is stored, and opened when it is read. Each sealed value names its key, so keys
//! rotate: new writes use `active`, old values open with the key they name until re-written.
//! A value without the `enc1:` prefix is plaintext written before encryption was turned on.
//! Lookups and repeat-caller matching use the keyed hash (`privacy.caller_hash_key`), never the
//! sealed value.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hotline_model::TicketDraft;
use hotline_model::legal_aid::Applicant;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The cipher of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CipherKind {
    /// 32-byte key.
    #[serde(rename = "aes-256-gcm", alias = "aes256-gcm")]
    Aes256Gcm,
    /// 16-byte key (GB/T 32907, for commercial-cryptography assessments).
    Sm4Gcm,
}

impl CipherKind {
    fn key_len(self) -> usize {
        match self {
            Self::Aes256Gcm => 32,
            Self::Sm4Gcm => 16,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    #[serde(default = "default_cipher")]
    pub cipher: CipherKind,
    /// Base64 of the key bytes (set it from the environment, not in the file).
    pub key: String,
}

fn default_cipher() -> CipherKind {
    CipherKind::Aes256Gcm
}

/// `[privacy.encryption]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    /// The key new values are sealed with; empty turns encryption off.
    #[serde(default)]
    pub active: String,
    /// Keys by id (lowercase letters, digits, `-`); old ones stay to open old values.
    #[serde(default)]
    pub keys: BTreeMap<String, KeyConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("{0}: {1}")]
    Config(String, String),
    #[error("a sealed value names key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("a sealed value does not open (wrong key or altered)")]
    Corrupt,
}

enum Cipher {
    Aes(Box<aes_gcm::Aes256Gcm>),
    Sm4(Box<aes_gcm::AesGcm<sm4::Sm4, aes_gcm::aead::consts::U12>>),
}

impl Cipher {
    fn new(kind: CipherKind, key: &[u8]) -> Option<Self> {
        match kind {
            CipherKind::Aes256Gcm => aes_gcm::Aes256Gcm::new_from_slice(key)
                .ok()
                .map(|c| Self::Aes(Box::new(c))),
            CipherKind::Sm4Gcm => {
                aes_gcm::AesGcm::<sm4::Sm4, aes_gcm::aead::consts::U12>::new_from_slice(key)
                    .ok()
                    .map(|c| Self::Sm4(Box::new(c)))
            }
        }
    }

    fn seal(&self, nonce: &[u8; 12], p: Payload<'_, '_>) -> Option<Vec<u8>> {
        let n = nonce.into();
        match self {
            Self::Aes(c) => c.encrypt(n, p).ok(),
            Self::Sm4(c) => c.encrypt(n, p).ok(),
        }
    }

    fn open(&self, nonce: &[u8], p: Payload<'_, '_>) -> Option<Vec<u8>> {
        let n: &[u8; 12] = nonce.try_into().ok()?;
        match self {
            Self::Aes(c) => c.decrypt(n.into(), p).ok(),
            Self::Sm4(c) => c.decrypt(n.into(), p).ok(),
        }
    }
}

const PREFIX: &str = "enc1:";

/// The configured keys, ready to seal and open.
pub struct Sealer {
    active: String,
    keys: BTreeMap<String, Cipher>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("active", &self.active)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Sealer {
    /// `None` when encryption is off (no active key).
    pub fn from_config(c: &EncryptionConfig) -> Result<Option<Self>, SealError> {
        if c.active.is_empty() {
            return Ok(None);
        }
        let mut keys = BTreeMap::new();
        for (id, k) in &c.keys {
            let key_path = format!("privacy.encryption.keys.{id}");
            if id.is_empty()
                || !id
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            {
                return Err(SealError::Config(
                    key_path,
                    "key ids use lowercase letters, digits and '-'".into(),
                ));
            }
            let bytes = STANDARD.decode(k.key.trim()).map_err(|e| {
                SealError::Config(format!("{key_path}.key"), format!("not base64: {e}"))
            })?;
            if bytes.len() != k.cipher.key_len() {
                return Err(SealError::Config(
                    format!("{key_path}.key"),
                    format!(
                        "{:?} needs {} bytes, this key has {}",
                        k.cipher,
                        k.cipher.key_len(),
                        bytes.len()
                    ),
                ));
            }
            let cipher = Cipher::new(k.cipher, &bytes).ok_or_else(|| {
                SealError::Config(format!("{key_path}.key"), "unusable key".into())
            })?;
            keys.insert(id.clone(), cipher);
        }
        if !keys.contains_key(&c.active) {
            return Err(SealError::Config(
                "privacy.encryption.active".into(),
                format!("no key `{}` under privacy.encryption.keys", c.active),
            ));
        }
        Ok(Some(Self {
            active: c.active.clone(),
            keys,
        }))
    }

    fn aad(key_id: &str) -> Vec<u8> {
        format!("hotline-gateway pii v1 {key_id}").into_bytes()
    }

    /// `enc1:<key id>:<base64 of nonce and ciphertext>`.
    pub fn seal(&self, plain: &str) -> String {
        let Some(cipher) = self.keys.get(&self.active) else {
            return plain.to_owned();
        };
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let aad = Self::aad(&self.active);
        match cipher.seal(
            &nonce,
            Payload {
                msg: plain.as_bytes(),
                aad: &aad,
            },
        ) {
            Some(ct) => {
                let mut blob = nonce.to_vec();
                blob.extend(ct);
                format!("{PREFIX}{}:{}", self.active, STANDARD.encode(blob))
            }
            None => plain.to_owned(),
        }
    }

    /// The plaintext of a sealed value; plaintext passes through.
    pub fn open(&self, text: &str) -> Result<String, SealError> {
        let Some(rest) = text.strip_prefix(PREFIX) else {
            return Ok(text.to_owned());
        };
        let (id, b64) = rest.split_once(':').ok_or(SealError::Corrupt)?;
        let cipher = self
            .keys
            .get(id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let blob = STANDARD.decode(b64).map_err(|_| SealError::Corrupt)?;
        if blob.len() < 12 + 16 {
            return Err(SealError::Corrupt);
        }
        let aad = Self::aad(id);
        let plain = cipher
            .open(
                &blob[..12],
                Payload {
                    msg: &blob[12..],
                    aad: &aad,
                },
            )
            .ok_or(SealError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| SealError::Corrupt)
    }

    /// The draft with its caller's personal data sealed.
    pub fn seal_draft(&self, d: &TicketDraft) -> TicketDraft {
        let mut d = d.clone();
        d.caller.name = self.seal(&d.caller.name);
        d.caller.phone = self.seal(&d.caller.phone);
        d.caller.id_number = d.caller.id_number.as_deref().map(|v| self.seal(v));
        d.address = d.address.as_deref().map(|v| self.seal(v));
        d.transcript = d.transcript.iter().map(|v| self.seal(v)).collect();
        d
    }

    /// A legal-aid applicant's personal data sealed (name, ID number, phone, address).
    pub fn seal_applicant(&self, a: &mut Applicant) {
        for v in a.personal_mut() {
            *v = self.seal(v);
        }
    }

    /// A legal-aid applicant's personal data opened.
    pub fn open_applicant(&self, a: &mut Applicant) -> Result<(), SealError> {
        for v in a.personal_mut() {
            *v = self.open(v)?;
        }
        Ok(())
    }

    /// The draft with its caller's personal data opened.
    pub fn open_draft(&self, mut d: TicketDraft) -> Result<TicketDraft, SealError> {
        d.caller.name = self.open(&d.caller.name)?;
        d.caller.phone = self.open(&d.caller.phone)?;
        d.caller.id_number = d.caller.id_number.map(|v| self.open(&v)).transpose()?;
        d.address = d.address.map(|v| self.open(&v)).transpose()?;
        d.transcript = d
            .transcript
            .iter()
            .map(|v| self.open(v))
            .collect::<Result<_, _>>()?;
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(active: &str, keys: &[(&str, CipherKind, usize)]) -> EncryptionConfig {
        EncryptionConfig {
            active: active.into(),
            keys: keys
                .iter()
                .map(|(id, cipher, len)| {
                    (
                        (*id).to_owned(),
                        KeyConfig {
                            cipher: *cipher,
                            key: STANDARD.encode(vec![id.len() as u8 + 7; *len]),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn seals_and_opens_with_either_cipher_and_rotates() {
        for cipher in [CipherKind::Aes256Gcm, CipherKind::Sm4Gcm] {
            let len = cipher.key_len();
            let old = Sealer::from_config(&config("k1", &[("k1", cipher, len)]))
                .unwrap()
                .unwrap();
            let sealed = old.seal("13812345678");
            assert!(sealed.starts_with("enc1:k1:"), "{sealed}");
            assert!(!sealed.contains("13812345678"));
            assert_ne!(sealed, old.seal("13812345678"), "a fresh nonce every time");
            assert_eq!(old.open(&sealed).unwrap(), "13812345678");
            // Rotation: k2 active, k1 still opens old values.
            let new = Sealer::from_config(&config(
                "k2",
                &[("k1", cipher, len), ("k2", CipherKind::Aes256Gcm, 32)],
            ))
            .unwrap()
            .unwrap();
            assert_eq!(new.open(&sealed).unwrap(), "13812345678");
            assert!(new.seal("x").starts_with("enc1:k2:"));
            // Without k1 the old value cannot be read, and says why.
            let lost = Sealer::from_config(&config("k2", &[("k2", CipherKind::Aes256Gcm, 32)]))
                .unwrap()
                .unwrap();
            assert_eq!(lost.open(&sealed), Err(SealError::UnknownKey("k1".into())));
        }
    }

    #[test]
    fn altered_values_and_bad_keys_are_refused() {
        let s = Sealer::from_config(&config("k1", &[("k1", CipherKind::Aes256Gcm, 32)]))
            .unwrap()
            .unwrap();
        let sealed = s.seal("张三");
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            s.open(&String::from_utf8(bytes).unwrap()),
            Err(SealError::Corrupt)
        );
        assert_eq!(
            s.open("plain text").unwrap(),
            "plain text",
            "legacy plaintext"
        );
        let short = Sealer::from_config(&config("k1", &[("k1", CipherKind::Aes256Gcm, 16)]));
        assert!(
            matches!(short, Err(SealError::Config(k, m)) if k.ends_with(".key") && m.contains("32 bytes"))
        );
        let missing = Sealer::from_config(&config("k9", &[("k1", CipherKind::Aes256Gcm, 32)]));
        assert!(
            matches!(missing, Err(SealError::Config(k, _)) if k == "privacy.encryption.active")
        );
        assert!(
            Sealer::from_config(&EncryptionConfig::default())
                .unwrap()
                .is_none()
        );
    }
}
