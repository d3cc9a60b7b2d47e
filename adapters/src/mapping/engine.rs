//! Translation between a partner document and the canonical document, driven by a [`Mapping`].

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset, TimeZone};
use serde_json::{Number, Value};

use super::canonical::Canonical;
use super::doc::Doc;
use super::spec::{Format, JsonType, Kind, Overflow, Required};
use super::{Field, Mapping, Message, TimeFormat, xml};

/// A field's value as the partner sent it: one value in the document, or several joined.
enum Raw<'d> {
    One(&'d Doc),
    Joined(String),
}

/// A decoded partner message in canonical terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    pub message_type: String,
    /// `{"message": {...}, "ticket": {...}, "event": {...}}`, in the mapping's field order.
    pub doc: Doc,
    /// Values cut to the partner's limits, and similar notes.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// A field at fault: on decode named by the partner's path, on encode by the canonical one.
    #[error("`{field}`: {reason}")]
    Field { field: String, reason: String },
    #[error("message type `{0}` is not supported by this partner")]
    Unsupported(String),
    /// Not parseable: bad JSON/XML, wrong encoding.
    #[error("{0}")]
    Malformed(String),
}

fn field_err(field: &str, reason: impl Into<String>) -> TranslateError {
    TranslateError::Field {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// The value at `path` (a canonical one) in a canonical document.
pub(crate) fn get_doc<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(v, |at, key| at.get(key.as_str()))
}

/// A single value as text (borrowed when it is text already).
pub(crate) fn scalar(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

fn required_in(r: Required, inbound: bool) -> bool {
    match r {
        Required::Always => true,
        Required::Inbound => inbound,
        Required::Outbound => !inbound,
        Required::No => false,
    }
}

impl Mapping {
    fn message(&self, message_type: &str) -> Result<&Message, TranslateError> {
        self.messages
            .get(message_type)
            .ok_or_else(|| TranslateError::Unsupported(message_type.to_owned()))
    }

    /// Canonical document → the partner's wire bytes (encoded, with the XML declaration).
    /// With `confidential`, fields marked `personal` are left out.
    pub fn encode(
        &self,
        message_type: &str,
        canonical: &(impl Canonical + ?Sized),
        confidential: bool,
    ) -> Result<(Vec<u8>, Vec<String>), TranslateError> {
        let (doc, warnings) = self.encode_doc(message_type, canonical, confidential)?;
        let text = match self.format {
            Format::Json => {
                serde_json::to_string(&doc).map_err(|e| TranslateError::Malformed(e.to_string()))?
            }
            Format::Xml => {
                let root = self
                    .message(message_type)?
                    .root
                    .as_deref()
                    .unwrap_or("Message");
                xml::write(root, &doc, self.encoding.label())
                    .map_err(|e| TranslateError::Malformed(e.0))?
            }
        };
        let bytes = self
            .encoding
            .encode(&text)
            .map_err(TranslateError::Malformed)?;
        Ok((bytes, warnings))
    }

    /// Canonical document → the partner's document tree.
    pub fn encode_doc(
        &self,
        message_type: &str,
        canonical: &(impl Canonical + ?Sized),
        confidential: bool,
    ) -> Result<(Doc, Vec<String>), TranslateError> {
        let m = self.message(message_type)?;
        // At most a key per field and the type code's.
        let mut doc = Doc::map_with_capacity(m.fields.len() + 1);
        let mut warnings = Vec::new();
        let code = match (self.format, self.type_as) {
            (Format::Json, JsonType::Number) => m
                .code
                .parse::<i64>()
                .map(|n| Doc::Number(n.into()))
                .unwrap_or_else(|_| Doc::Text(m.code.clone())),
            _ => Doc::Text(m.code.clone()),
        };
        doc.set(&self.type_path, code);
        for f in &m.fields {
            if f.personal && confidential {
                continue;
            }
            let value = canonical.get(&f.canonical).filter(|v| !v.is_null());
            let Some(value) = value else {
                if required_in(f.required, false) {
                    return Err(field_err(
                        &f.canonical_label,
                        format!("is required by partner {}", self.partner),
                    ));
                }
                continue;
            };
            let out = if f.list {
                let items = match value.into_owned() {
                    Value::Array(a) => a,
                    other => vec![other],
                };
                if items.is_empty() {
                    continue;
                }
                let converted = items
                    .into_iter()
                    .map(|i| self.to_partner(f, Cow::Owned(i), &mut warnings))
                    .collect::<Result<Vec<_>, _>>()?;
                Doc::List(converted)
            } else {
                self.to_partner(f, value, &mut warnings)?
            };
            let path = f.paths.last().expect("a field has a path");
            doc.set(path, out);
        }
        Ok((doc, warnings))
    }

    /// A canonical value as the partner writes it; text the canonical side made for this
    /// message is taken over, not copied.
    fn to_partner(
        &self,
        f: &Field,
        v: Cow<'_, Value>,
        warnings: &mut Vec<String>,
    ) -> Result<Doc, TranslateError> {
        let name = &f.canonical_label;
        let mut s = match f.kind {
            Kind::Time => {
                let text = v
                    .as_str()
                    .ok_or_else(|| field_err(name, "must be a time"))?;
                let t = DateTime::parse_from_rfc3339(text)
                    .map_err(|e| field_err(name, format!("not an RFC 3339 time: {e}")))?;
                self.format_time(t)
            }
            Kind::Bool => match v.as_ref() {
                Value::Bool(b) => b.to_string(),
                _ => return Err(field_err(name, "must be true or false")),
            },
            Kind::Int | Kind::Text => match v {
                Cow::Owned(Value::String(s)) => s,
                v => scalar(&v)
                    .ok_or_else(|| field_err(name, "must be a single value"))?
                    .into_owned(),
            },
        };
        if let Some(table) = &f.codes {
            let t = &self.codes[table];
            s = t.to_partner.get(&s).cloned().ok_or_else(|| {
                field_err(
                    name,
                    format!(
                        "`{s}` has no code in partner {}'s table `{table}`",
                        self.partner
                    ),
                )
            })?;
        }
        let s = self.fit(s, f, name, warnings)?;
        Ok(match (self.format, f.json_type) {
            (Format::Json, JsonType::Number) => {
                let n: Number = s
                    .parse::<i64>()
                    .map(Number::from)
                    .ok()
                    .or_else(|| s.parse::<f64>().ok().and_then(Number::from_f64))
                    .ok_or_else(|| field_err(name, format!("`{s}` is not a number")))?;
                Doc::Number(n)
            }
            (Format::Json, JsonType::Bool) => Doc::Bool(matches!(s.as_str(), "true" | "1")),
            _ => Doc::Text(s),
        })
    }

    /// Applies the field's length limit under the mapping's overflow policy.
    fn fit(
        &self,
        s: String,
        f: &Field,
        name: &str,
        warnings: &mut Vec<String>,
    ) -> Result<String, TranslateError> {
        let Some((max, n)) = f
            .max_len
            .and_then(|max| hotline_model::validate::chars_over(&s, max).map(|n| (max, n)))
        else {
            return Ok(s);
        };
        match self.overflow {
            Overflow::Reject => Err(field_err(
                name,
                format!(
                    "is {n} characters; partner {} takes at most {max}",
                    self.partner
                ),
            )),
            Overflow::Truncate => {
                warnings.push(format!("`{name}` cut from {n} to {max} characters"));
                Ok(s.chars().take(max).collect())
            }
        }
    }

    fn format_time(&self, t: DateTime<FixedOffset>) -> String {
        let local = t.with_timezone(&self.zone);
        match &self.time {
            TimeFormat::Rfc3339 => local.to_rfc3339(),
            TimeFormat::EpochMillis => t.timestamp_millis().to_string(),
            TimeFormat::Pattern(_, items) => local.format_with_items(items.iter()).to_string(),
        }
    }

    fn parse_time(&self, label: &str, s: &str) -> Result<String, TranslateError> {
        let t: DateTime<FixedOffset> = match &self.time {
            TimeFormat::Rfc3339 => DateTime::parse_from_rfc3339(s)
                .map_err(|e| field_err(label, format!("`{s}` is not an RFC 3339 time: {e}")))?,
            TimeFormat::EpochMillis => {
                let ms: i64 = s
                    .parse()
                    .map_err(|_| field_err(label, format!("`{s}` is not epoch milliseconds")))?;
                self.zone
                    .timestamp_millis_opt(ms)
                    .single()
                    .ok_or_else(|| field_err(label, format!("`{s}` is out of range")))?
            }
            TimeFormat::Pattern(p, items) => {
                let mut parsed = chrono::format::Parsed::new();
                let naive = chrono::format::parse(&mut parsed, s, items.iter())
                    .and_then(|()| parsed.to_naive_datetime_with_offset(0))
                    .map_err(|e| field_err(label, format!("`{s}` does not match `{p}`: {e}")))?;
                self.zone
                    .from_local_datetime(&naive)
                    .single()
                    .ok_or_else(|| field_err(label, format!("`{s}` is not a valid local time")))?
            }
        };
        Ok(t.to_rfc3339())
    }

    /// What the partner sent us → canonical document.
    pub fn decode(&self, bytes: &[u8]) -> Result<Translation, TranslateError> {
        self.decode_from(bytes, true)
    }

    /// What the gateway sent the partner → canonical document, checked against the fields the
    /// partner requires of us (for simulators and contract tests).
    pub fn decode_sent(&self, bytes: &[u8]) -> Result<Translation, TranslateError> {
        self.decode_from(bytes, false)
    }

    /// Any document in the partner's format and encoding (an answer, say) as a tree, without
    /// its XML root element's name.
    pub fn read_doc(&self, bytes: &[u8]) -> Result<Doc, String> {
        let text = self.encoding.decode(bytes)?;
        match self.format {
            Format::Json => serde_json::from_str(&text).map_err(|e| e.to_string()),
            Format::Xml => xml::parse(&text).map(|(_, v)| v).map_err(|e| e.0),
        }
    }

    fn decode_from(&self, bytes: &[u8], inbound: bool) -> Result<Translation, TranslateError> {
        if let (Format::Xml, Some(label)) = (self.format, xml::declared_encoding(bytes))
            && !self.encoding.accepts_label(&label)
        {
            return Err(TranslateError::Malformed(format!(
                "the XML declares encoding `{label}`; partner {} sends {}",
                self.partner,
                self.encoding.label()
            )));
        }
        let text = self
            .encoding
            .decode(bytes)
            .map_err(TranslateError::Malformed)?;
        match self.format {
            Format::Json => {
                let doc: Doc = serde_json::from_str(&text)
                    .map_err(|e| TranslateError::Malformed(format!("malformed JSON: {e}")))?;
                if !matches!(doc, Doc::Map(_)) {
                    return Err(TranslateError::Malformed("expected a JSON object".into()));
                }
                self.decode_tree(None, &doc, inbound)
            }
            Format::Xml => {
                let (root, doc) = xml::parse(&text).map_err(|e| TranslateError::Malformed(e.0))?;
                self.decode_tree(Some(&root), &doc, inbound)
            }
        }
    }

    /// A partner document tree → canonical document; `inbound` when the partner sent it.
    pub fn decode_tree(
        &self,
        root: Option<&str>,
        doc: &Doc,
        inbound: bool,
    ) -> Result<Translation, TranslateError> {
        let code = doc
            .at(&self.type_path)
            .and_then(Doc::scalar)
            .ok_or_else(|| field_err(&self.type_label, "is required: it names the message type"))?;
        let kind = self.by_code.get(code.as_ref()).ok_or_else(|| {
            field_err(
                &self.type_label,
                format!("`{code}` is not a message type of partner {}", self.partner),
            )
        })?;
        let m = self.message(kind)?;
        if let (Some(expected), Some(got)) = (&m.root, root)
            && expected != got
        {
            return Err(field_err(
                got,
                format!("a `{kind}` message has root element <{expected}>"),
            ));
        }
        // A partner-style tree (no hashing); the draft is read straight from it.
        let mut out = Doc::map();
        let mut warnings = Vec::new();
        // Where in the document the last field was found: the next one is usually just after.
        let mut hint = 0;
        for f in &m.fields {
            let raw = self.read(f, doc, &mut hint);
            let Some(raw) = raw else {
                if let Some(d) = &f.default {
                    let v = self.to_canonical(f, d, &mut warnings)?;
                    out.set(&f.canonical, v);
                } else if required_in(f.required, inbound) {
                    return Err(field_err(&f.label, "is required"));
                }
                continue;
            };
            let one = match raw {
                Raw::One(Doc::List(items)) if f.list => {
                    let items = items
                        .iter()
                        .map(|i| {
                            let s = i
                                .scalar()
                                .ok_or_else(|| field_err(&f.label, "must hold text"))?;
                            self.to_canonical(f, &s, &mut warnings)
                        })
                        .collect::<Result<_, _>>()?;
                    out.set(&f.canonical, Doc::List(items));
                    continue;
                }
                Raw::One(Doc::List(_)) => return Err(field_err(&f.label, "must appear once")),
                Raw::One(v) => v
                    .scalar()
                    .ok_or_else(|| field_err(&f.label, "must hold text"))?,
                Raw::Joined(s) => Cow::Owned(s),
            };
            let v = self.to_canonical(f, &one, &mut warnings)?;
            let v = if f.list { Doc::List(vec![v]) } else { v };
            out.set(&f.canonical, v);
        }
        out.set(
            &["message".to_owned(), "type".to_owned()],
            Doc::Text(kind.clone()),
        );
        Ok(Translation {
            message_type: kind.clone(),
            doc: out,
            warnings,
        })
    }

    /// The partner's raw value for a field: one path, or several joined; empty counts as absent.
    fn read<'d>(&self, f: &Field, doc: &'d Doc, hint: &mut usize) -> Option<Raw<'d>> {
        if f.paths.len() == 1 {
            let v = doc.at_from(&f.paths[0], hint)?;
            return match v {
                Doc::Null => None,
                Doc::Text(s) if s.trim().is_empty() => None,
                other => Some(Raw::One(other)),
            };
        }
        let parts: Vec<Cow<'_, str>> = f
            .paths
            .iter()
            .filter_map(|p| doc.at_from(p, hint).and_then(Doc::scalar))
            .filter(|s| !s.trim().is_empty())
            .collect();
        (!parts.is_empty()).then(|| Raw::Joined(parts.join(&f.separator)))
    }

    fn to_canonical(
        &self,
        f: &Field,
        raw: &str,
        warnings: &mut Vec<String>,
    ) -> Result<Doc, TranslateError> {
        let label = &f.label;
        let mut s = self.fit(raw.trim().to_owned(), f, label, warnings)?;
        if let Some(table) = &f.codes {
            s = self.codes[table]
                .to_canonical
                .get(&s)
                .cloned()
                .ok_or_else(|| {
                    field_err(label, format!("unknown code `{s}` (code table `{table}`)"))
                })?;
        }
        Ok(match f.kind {
            Kind::Text => Doc::Text(s),
            Kind::Time => Doc::Text(self.parse_time(label, &s)?),
            Kind::Bool => match s.as_str() {
                "true" | "1" => Doc::Bool(true),
                "false" | "0" => Doc::Bool(false),
                _ => return Err(field_err(label, format!("`{s}` is not a yes/no value"))),
            },
            Kind::Int => Doc::Number(
                s.parse::<i64>()
                    .map_err(|_| field_err(label, format!("`{s}` is not a whole number")))?
                    .into(),
            ),
        })
    }
}
