//! `mappings/<partner>/partner.toml`: how a mapped partner is reached and how it answers.

use serde::Deserialize;

use crate::signature::SignatureSpec;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `Content-Type` of what we send.
    pub content_type: String,
    pub signature: SignatureSpec,
    pub ack: AckSpec,
    pub reply: ReplySpec,
    /// Polled partners: the shape of their outbox.
    #[serde(default)]
    pub poll: Option<PollSpec>,
}

/// A polled partner's outbox: `GET <poll_url>?cursor=…&limit=…` answers
/// `{<items>: [...], <next_cursor>: "..."}`; `POST <poll_ack_url>` takes
/// `{<ack_ids>: [...], <ack_refused>: [{"id": ..., "reason": ...}]}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollSpec {
    pub items: String,
    pub next_cursor: String,
    /// Path of each item's id.
    pub item_id: String,
    pub ack_ids: String,
    pub ack_refused: String,
    /// Items asked for per poll.
    #[serde(default = "default_batch")]
    pub batch: u32,
}

fn default_batch() -> u32 {
    100
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AckStyle {
    /// The answer to a delivery carries the result and the partner's ticket number.
    Sync,
    /// The answer only says "received"; the acknowledgement arrives later as an `ack` message.
    TwoStep,
}

/// How the partner answers our deliveries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckSpec {
    pub style: AckStyle,
    /// Path of the result code in the answer.
    pub code: String,
    /// Path of the result text.
    #[serde(default)]
    pub message: Option<String>,
    /// Path of the partner's ticket number (sync answers).
    #[serde(default)]
    pub number: Option<String>,
    /// Codes meaning success.
    pub success: Vec<String>,
    /// Codes worth retrying; any other code is permanent.
    #[serde(default)]
    pub retryable: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpStatusPolicy {
    /// Refusals carry a fitting 4xx/5xx status.
    Mirror,
    /// Always HTTP 200; the body's code says what happened.
    #[serde(rename = "always-200")]
    Always200,
}

/// How we answer the partner's messages, in its dialect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplySpec {
    pub http_status: HttpStatusPolicy,
    /// XML answers: root element.
    #[serde(default)]
    pub root: Option<String>,
    pub code: String,
    pub message: String,
    /// Where our ticket id goes.
    #[serde(default)]
    pub number: Option<String>,
    pub success_code: String,
    pub error_codes: ErrorCodes,
}

/// The partner's codes for each kind of refusal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorCodes {
    pub malformed: String,
    pub invalid: String,
    pub bad_signature: String,
    pub not_found: String,
    pub unavailable: String,
}
