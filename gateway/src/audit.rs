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
