//! The mapping engine: partner wire formats described by data in `mappings/<partner>/`.
//!
//! A partner message (JSON, or XML read into the same tree: a [`Doc`]) is translated field by field to and
//! from a *canonical document*: `{"message": {...}, "ticket": {...}, "event": {...}}`, whose
//! fields are the canonical model's (see [`CANONICAL_FIELDS`]). Mappings are loaded, checked and
//! compiled once at start; translating never re-reads them.

mod canonical;
mod doc;
pub mod encoding;
mod engine;
pub mod spec;
pub mod xml;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::FixedOffset;
use chrono::format::{Item, StrftimeItems};

// The mapping's own tables (code tables, message codes), looked up for every field of every
// message with keys of our mapping files or a partner's values (looked up, never inserted): a
// fast hash, not the standard one's flood-resistant one.
use foldhash::HashMap;

pub use canonical::{
    Canonical, OutboundDocument, answer_document, offer_document, outbound_document,
};
pub use doc::Doc;
pub use engine::{TranslateError, Translation};
pub use spec::{Encoding, Format, MappingSpec};
use spec::{FieldSpec, JsonType, Kind, Overflow, Required};

/// Every canonical field a mapping may name.
pub const CANONICAL_FIELDS: &[&str] = &[
    "message.id",
    "message.type",
    "message.sent_at",
    "message.ref",
    "message.accepted",
    "message.reason",
    "ticket.id",
    "ticket.origin",
    "ticket.external_id",
    "ticket.partner_number",
    "ticket.kind",
    "ticket.urgency",
    "ticket.caller.name",
    "ticket.caller.phone",
    "ticket.caller.id_number",
    "ticket.confidential",
    "ticket.region_code",
    "ticket.address",
    "ticket.classification_code",
    "ticket.title",
    "ticket.content",
    "ticket.remarks",
    "ticket.received_at",
    "ticket.units",
    "ticket.channel",
    "ticket.transcript",
    "event.units",
    "event.note",
    "event.partner_number",
    "event.unit",
    "event.reason",
    "event.working_days",
    "event.approved",
    "event.content",
    "event.satisfaction",
    "event.case_no",
    "event.status",
    "transfer.id",
    "transfer.call_id",
    "transfer.agent_id",
    "transfer.ticket_number",
    "transfer.granted",
    "transfer.reason",
    "transfer.detail",
    "transfer.dial_target",
    "transfer.token",
    "transfer.expires_at",
    "transfer.partner_ref",
];

/// The message types of three-way call transfers: an offer, and the answer to it.
pub const TRANSFER_TYPES: [&str; 2] = ["transfer_request", "transfer_answer"];

/// Message types a mapping may describe: the canonical event kinds, `ack`, and the transfer
/// messages.
pub fn is_message_type(name: &str) -> bool {
    name == "ack"
        || TRANSFER_TYPES.contains(&name)
        || name.parse::<hotline_model::EventKind>().is_ok()
}

/// A path in a partner document: its keys in order. An XML attribute's key is `@name`, as in
/// the document tree.
pub(crate) type DocPath = Vec<String>;

fn parse_path(s: &str) -> Result<DocPath, String> {
    if s.is_empty() {
        return Err("empty path".into());
    }
    s.split('.')
        .map(|part| match part {
            "" | "@" => Err(format!("empty segment in `{s}`")),
            key => Ok(key.to_owned()),
        })
        .collect()
}

#[derive(Debug, Clone)]
pub(crate) enum TimeFormat {
    Rfc3339,
    EpochMillis,
    /// A strftime pattern, parsed once.
    Pattern(String, Vec<Item<'static>>),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct CodeTable {
    pub to_partner: HashMap<String, String>,
    pub to_canonical: HashMap<String, String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// The partner path(s) as written, for error messages.
    pub label: String,
    pub paths: Vec<DocPath>,
    pub separator: String,
    pub canonical: Vec<String>,
    pub canonical_label: String,
    pub required: Required,
    pub kind: Kind,
    pub codes: Option<String>,
    pub default: Option<String>,
    pub max_len: Option<usize>,
    pub list: bool,
    pub json_type: JsonType,
    pub personal: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub code: String,
    pub root: Option<String>,
    pub fields: Vec<Field>,
}

/// A checked, compiled mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub partner: String,
    pub version: String,
    pub format: Format,
    pub encoding: Encoding,
    pub(crate) time: TimeFormat,
    pub(crate) zone: FixedOffset,
    pub(crate) overflow: Overflow,
    pub(crate) type_path: DocPath,
    pub(crate) type_label: String,
    pub(crate) type_as: JsonType,
    pub(crate) codes: HashMap<String, CodeTable>,
    pub(crate) messages: BTreeMap<String, Message>,
    pub(crate) by_code: HashMap<String, String>,
}

/// One problem in a mapping file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingProblem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for MappingProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": `{}`: {}", self.key, self.message)
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct MappingProblems(pub Vec<MappingProblem>);

impl Mapping {
    /// Loads and compiles `dir/mapping.toml`.
    pub fn load(dir: &Path) -> Result<Self, MappingProblems> {
        let file = dir.join("mapping.toml");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            MappingProblems(vec![MappingProblem {
                file: file.clone(),
                line: None,
                key: String::new(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        Self::from_toml(&text, &file)
    }

    /// Parses and compiles mapping text; `file` is only used in problem reports.
    pub fn from_toml(text: &str, file: &Path) -> Result<Self, MappingProblems> {
        let locate = crate::toml_locate::Locator::new(text);
        let problem = |key: String, message: String| MappingProblem {
            file: file.to_owned(),
            line: locate.line(&key),
            key,
            message,
        };
        let spec: MappingSpec = toml::from_str(text).map_err(|e| {
            MappingProblems(vec![MappingProblem {
                file: file.to_owned(),
                line: e.span().map(|s| locate.line_of(s.start)),
                key: String::new(),
                message: e.message().trim().to_owned(),
            }])
        })?;
        let mut problems = Vec::new();
        let compiled = compile(spec, &mut |k, m| problems.push(problem(k, m)));
        if problems.is_empty() {
            Ok(compiled)
        } else {
            Err(MappingProblems(problems))
        }
    }

    /// Message types this partner takes and sends.
    pub fn message_types(&self) -> impl Iterator<Item = &str> {
        self.messages.keys().map(String::as_str)
    }

    pub fn supports(&self, message_type: &str) -> bool {
        self.messages.contains_key(message_type)
    }

    /// The canonical fields a message type carries, e.g. `ticket.caller.phone`.
    pub fn canonical_fields(&self, message_type: &str) -> Vec<&str> {
        self.messages
            .get(message_type)
            .map(|m| {
                m.fields
                    .iter()
                    .map(|f| f.canonical_label.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The XSD shipped beside an XML mapping, `mappings/<partner>/<partner>.xsd`.
    pub fn schema_file(&self, dir: &Path) -> Option<PathBuf> {
        let xsd = dir.join(format!("{}.xsd", self.partner));
        (self.format == Format::Xml && xsd.exists()).then_some(xsd)
    }
}

fn compile(spec: MappingSpec, bad: &mut dyn FnMut(String, String)) -> Mapping {
    let time = match spec.time_format.as_str() {
        "rfc3339" => TimeFormat::Rfc3339,
        "epoch_millis" => TimeFormat::EpochMillis,
        pattern => {
            let items = match StrftimeItems::new(pattern).parse_to_owned() {
                Ok(items) if !items.iter().any(|i| matches!(i, Item::Error)) => items,
                _ => {
                    bad(
                        "time_format".into(),
                        format!("`{pattern}` is not a valid strftime pattern"),
                    );
                    Vec::new()
                }
            };
            TimeFormat::Pattern(pattern.to_owned(), items)
        }
    };
    let zone = spec.time_zone.parse::<FixedOffset>().unwrap_or_else(|_| {
        bad(
            "time_zone".into(),
            format!("`{}` is not an offset like +08:00", spec.time_zone),
        );
        FixedOffset::east_opt(8 * 3600).expect("valid offset")
    });
    let type_path = parse_path(&spec.type_field).unwrap_or_else(|e| {
        bad("type_field".into(), e);
        Vec::new()
    });
    let mut codes = HashMap::default();
    for (name, table) in &spec.codes {
        let mut t = CodeTable::default();
        for (canonical, code) in table {
            if let Some(other) = t.to_canonical.insert(code.clone(), canonical.clone()) {
                bad(
                    format!("codes.{name}.{canonical}"),
                    format!(
                        "code `{code}` is also used for `{other}`; codes must map back uniquely"
                    ),
                );
            }
            t.to_partner.insert(canonical.clone(), code.clone());
        }
        codes.insert(name.clone(), t);
    }
    let mut messages = BTreeMap::new();
    let mut by_code = HashMap::default();
    for (kind, m) in &spec.messages {
        let key = format!("messages.{kind}");
        if !is_message_type(kind) {
            bad(key.clone(), format!("`{kind}` is not a message type"));
        }
        if let Some(other) = by_code.insert(m.code.clone(), kind.clone()) {
            bad(
                format!("{key}.code"),
                format!("code `{}` is also used by `{other}`", m.code),
            );
        }
        match (spec.format, &m.root) {
            (Format::Xml, None) => bad(key.clone(), "XML messages need a `root` element".into()),
            (Format::Xml, Some(_)) => {}
            (Format::Json, Some(_)) => {
                bad(format!("{key}.root"), "JSON messages have no root".into())
            }
            (Format::Json, None) => {}
        }
        let fields = m
            .fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| compile_field(f, &format!("{key}.field[{i}]"), &codes, bad))
            .collect();
        messages.insert(
            kind.clone(),
            Message {
                code: m.code.clone(),
                root: m.root.clone(),
                fields,
            },
        );
    }
    Mapping {
        partner: spec.partner,
        version: spec.version,
        format: spec.format,
        encoding: spec.encoding,
        time,
        zone,
        overflow: spec.overflow,
        type_label: spec.type_field,
        type_as: spec.type_as,
        type_path,
        codes,
        messages,
        by_code,
    }
}

fn compile_field(
    f: &FieldSpec,
    key: &str,
    codes: &HashMap<String, CodeTable>,
    bad: &mut dyn FnMut(String, String),
) -> Option<Field> {
    if !CANONICAL_FIELDS.contains(&f.canonical.as_str()) {
        bad(
            format!("{key}.canonical"),
            format!("`{}` is not a canonical field", f.canonical),
        );
        return None;
    }
    let written: Vec<String> = match (&f.path, f.join.is_empty()) {
        (Some(p), true) => vec![p.clone()],
        (None, false) => f.join.clone(),
        _ => {
            bad(key.into(), "give exactly one of `path` and `join`".into());
            return None;
        }
    };
    let mut paths = Vec::new();
    for p in &written {
        match parse_path(p) {
            Ok(p) => paths.push(p),
            Err(e) => {
                bad(format!("{key}.path"), e);
                return None;
            }
        }
    }
    if let Some(table) = &f.codes
        && !codes.contains_key(table)
    {
        bad(
            format!("{key}.codes"),
            format!("no code table `{table}` in [codes]"),
        );
        return None;
    }
    if f.list && paths.len() > 1 {
        bad(
            key.into(),
            "a list field cannot `join` several paths".into(),
        );
        return None;
    }
    if f.max_len == Some(0) {
        bad(format!("{key}.max_len"), "must be at least 1".into());
    }
    Some(Field {
        label: written.join(" + "),
        paths,
        separator: f.separator.clone(),
        canonical: f.canonical.split('.').map(str::to_owned).collect(),
        canonical_label: f.canonical.clone(),
        required: f.required,
        kind: f.kind,
        codes: f.codes.clone(),
        default: f.default.clone(),
        max_len: f.max_len,
        list: f.list,
        json_type: f.json_type,
        personal: f.personal,
    })
}

#[cfg(test)]
mod tests;

/// The text at a dotted path (`A.B`, `A.@attr`) of a partner document.
pub fn read_text(doc: &Doc, path: &str) -> Option<String> {
    read_path(doc, path)
        .and_then(Doc::scalar)
        .map(Cow::into_owned)
}

/// Puts text at a dotted path of a partner document, making the objects on the way.
pub fn write_text(doc: &mut Doc, path: &str, text: String) {
    write_path(doc, path, Doc::Text(text));
}

/// The value at a dotted path of a partner document.
pub fn read_path<'v>(doc: &'v Doc, path: &str) -> Option<&'v Doc> {
    doc.at(&parse_path(path).ok()?)
}

/// Puts a value at a dotted path of a partner document.
pub fn write_path(doc: &mut Doc, path: &str, value: Doc) {
    if let Ok(p) = parse_path(path) {
        doc.set(&p, value);
    }
}
