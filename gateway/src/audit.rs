//! The audit log's hash chain: each entry's hash covers its content and the previous entry's
//! hash, so an edited, inserted or deleted entry breaks every hash after it.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::store::{AuditEntry, NewAudit};

/// The hash the chain starts from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of an entry with sequence number `seq`, written at `at`, after `prev_hash`.
pub fn entry_hash(prev_hash: &str, seq: u64, at: DateTime<Utc>, e: &NewAudit) -> String {
    let mut h = Sha256::new();
    // Length-prefixed fields: no two different entries serialise alike.
    for field in [
        prev_hash,
        &seq.to_string(),
        &at.timestamp_millis().to_string(),
        &e.actor,
        &e.role,
        &e.action,
        e.target.as_deref().unwrap_or("\u{0}"),
        e.reason.as_deref().unwrap_or("\u{0}"),
        &e.detail.to_string(),
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Whether a stored entry's hash matches its content and its predecessor.
pub fn entry_intact(e: &AuditEntry) -> bool {
    let content = NewAudit {
        actor: e.actor.clone(),
        role: e.role.clone(),
        action: e.action.clone(),
        target: e.target.clone(),
        reason: e.reason.clone(),
        detail: e.detail.clone(),
    };
    entry_hash(&e.prev_hash, e.seq, e.at, &content) == e.hash
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    #[error(
        "审计记录 {0} 被修改 / audit entry {0} was edited: its hash does not match its content"
    )]
    Edited(u64),
    #[error("审计记录 {0} 缺失 / audit entry {0} is missing: deleted, or the log was cut")]
    Missing(u64),
    #[error("审计记录 {0} 与前一条不衔接 / audit entry {0} does not follow the entry before it")]
    Unlinked(u64),
}

/// Checks a whole log, oldest entry first: every entry intact, numbered from 1 without gaps,
/// each naming its predecessor's hash. Returns the head (last sequence number and hash), to be
/// kept elsewhere: an entry cut from the end shows only against a kept head.
pub fn verify(entries: &[AuditEntry]) -> Result<(u64, String), Break> {
    let mut prev = (0, GENESIS.to_owned());
    for e in entries {
        if e.seq != prev.0 + 1 {
            return Err(Break::Missing(prev.0 + 1));
        }
        if !entry_intact(e) {
            return Err(Break::Edited(e.seq));
        }
        if e.prev_hash != prev.1 {
            return Err(Break::Unlinked(e.seq));
        }
        prev = (e.seq, e.hash.clone());
    }
    Ok(prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(actor: &str) -> NewAudit {
        NewAudit {
            actor: actor.into(),
            role: "operator".into(),
            action: "delivery.retry".into(),
            target: Some("d1".into()),
            reason: None,
            detail: serde_json::json!({"n": 1}),
        }
    }

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for seq in 1..=n {
            let prev_hash = out.last().map_or(GENESIS.to_owned(), |e| e.hash.clone());
            let at = DateTime::from_timestamp_millis(1_790_000_000_000 + seq as i64).unwrap();
            let content = entry("wang");
            out.push(AuditEntry {
                seq,
                at,
                hash: entry_hash(&prev_hash, seq, at, &content),
                prev_hash,
                actor: content.actor,
                role: content.role,
                action: content.action,
                target: content.target,
                reason: content.reason,
                detail: content.detail,
            });
        }
        out
    }

    #[test]
    fn verify_finds_edits_deletions_and_splices() {
        let log = chain(5);
        assert_eq!(verify(&log), Ok((5, log[4].hash.clone())));
        assert_eq!(verify(&[]), Ok((0, GENESIS.to_owned())));
        let mut edited = log.clone();
        edited[2].reason = Some("changed".into());
        assert_eq!(verify(&edited), Err(Break::Edited(3)));
        let mut deleted = log.clone();
        deleted.remove(3);
        assert_eq!(verify(&deleted), Err(Break::Missing(4)));
        // An entry rewritten with a fresh hash still breaks the link to the next one.
        let mut rehashed = log.clone();
        rehashed[1].actor = "li".into();
        let content = NewAudit {
            actor: "li".into(),
            ..entry("wang")
        };
        rehashed[1].hash = entry_hash(&rehashed[1].prev_hash, 2, rehashed[1].at, &content);
        assert_eq!(verify(&rehashed), Err(Break::Unlinked(3)));
    }

    #[test]
    fn hash_covers_every_field_and_the_predecessor() {
        let at = Utc::now();
        let base = entry_hash(GENESIS, 1, at, &entry("wang"));
        assert_eq!(base, entry_hash(GENESIS, 1, at, &entry("wang")));
        assert_ne!(base, entry_hash(GENESIS, 1, at, &entry("li")));
        assert_ne!(base, entry_hash(GENESIS, 2, at, &entry("wang")));
        assert_ne!(base, entry_hash(&base, 1, at, &entry("wang")));
        let mut with_reason = entry("wang");
        with_reason.reason = Some(String::new());
        assert_ne!(base, entry_hash(GENESIS, 1, at, &with_reason));
    }
}
