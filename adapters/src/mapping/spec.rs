//! The mapping file format, `mappings/<partner>/mapping.toml`, as written by people.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// The partner id this mapping is for.
    pub partner: String,
    /// Shown on the dashboard and in errors, so that ops know which variant is live.
    pub version: String,
    pub format: Format,
    #[serde(default)]
    pub encoding: Encoding,
    /// chrono `strftime` pattern, or `epoch_millis`, or `rfc3339`.
    #[serde(default = "default_time_format")]
    pub time_format: String,
    /// The partner's UTC offset, e.g. `+08:00`.
    #[serde(default = "default_zone")]
    pub time_zone: String,
    /// What happens to a value longer than its field's `max_len`.
    #[serde(default)]
    pub overflow: Overflow,
    /// Where each message says what type it is.
    pub type_field: String,
    /// JSON partners: how the type code is typed on the wire.
    #[serde(default)]
    pub type_as: JsonType,
    /// Code tables: table → canonical value → partner code.
    #[serde(default)]
    pub codes: BTreeMap<String, BTreeMap<String, String>>,
    /// Per message type (`dispatch`, `receipt`, ..., and `ack`): its fields.
    pub messages: BTreeMap<String, MessageSpec>,
}

fn default_time_format() -> String {
    "rfc3339".into()
}

fn default_zone() -> String {
    "+08:00".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Xml,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    #[serde(alias = "utf8")]
    #[serde(rename = "utf-8")]
    Utf8,
    Gb18030,
    Gbk,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overflow {
    /// Refuse the message, naming the field.
    #[default]
    Reject,
    /// Cut the value to `max_len` characters and record a warning.
    Truncate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    /// The partner's code for this message type (the value at `type_field`).
    pub code: String,
    /// XML root element (XML partners only).
    #[serde(default)]
    pub root: Option<String>,
    #[serde(default, rename = "field")]
    pub fields: Vec<FieldSpec>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Required {
    #[default]
    No,
    /// Required in both directions.
    Always,
    /// Required in what the partner sends us.
    Inbound,
    /// Required in what we send the partner.
    Outbound,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Text,
    /// A time, in the mapping's `time_format` and `time_zone`.
    Time,
    /// A boolean (use `codes` for `"0"`/`"1"` and the like).
    Bool,
    /// An integer.
    Int,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    #[default]
    String,
    Number,
    Bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Where the value sits in the partner's message: `A.B.C`, `A.@attr`. Lists: the element.
    #[serde(default)]
    pub path: Option<String>,
    /// Several partner fields joined into one canonical value on decode (e.g. province, city,
    /// detail → address); on encode the whole value goes to the last of them.
    #[serde(default)]
    pub join: Vec<String>,
    #[serde(default)]
    pub separator: String,
    /// The canonical field: `ticket.caller.phone`, `event.reason`, `message.id` ...
    pub canonical: String,
    #[serde(default)]
    pub required: Required,
    #[serde(default)]
    pub kind: Kind,
    /// Name of a code table in `[codes]`.
    #[serde(default)]
    pub codes: Option<String>,
    /// Used on decode when the partner leaves the field out.
    #[serde(default)]
    pub default: Option<String>,
    /// The partner's limit, in characters.
    #[serde(default)]
    pub max_len: Option<usize>,
    /// The canonical value is a list; the partner repeats the element (or uses an array).
    #[serde(default)]
    pub list: bool,
    /// JSON partners: how the value is typed on the wire.
    #[serde(default, rename = "as")]
    pub json_type: JsonType,
    /// Never sent to the partner for a confidential (保密) ticket.
    #[serde(default)]
    pub personal: bool,
}
