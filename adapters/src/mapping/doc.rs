//! A partner document as a tree: what JSON can hold, with each object's keys kept in the order
//! they came (the partner's order, which XML needs) and found by comparing them one by one.
//!
//! A partner message has a handful to a few dozen short keys on each level, so a scan is cheaper
//! than hashing every key, as `serde_json::Map` does (with its `preserve_order` index, that
//! hashing and the index's growth were a quarter of a translation's time). An object being read
//! that grows past [`INDEXED_FROM`] keys (a hostile one) gets a hash index while it is built, so
//! that finding a repeated key stays cheap however wide the object is.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::value::{
    BorrowedStrDeserializer, Error as DeError, MapAccessDeserializer, MapDeserializer,
    SeqDeserializer,
};
use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};
use serde_json::{Number, Value};

/// Room made for the keys of an object [`Doc::set`] makes on a path's way.
const PARENT_CAPACITY: usize = 8;

/// Keys an object being built may have before they are indexed.
pub const INDEXED_FROM: usize = 32;

/// Whether two keys are the same, compared in line: keys are a few bytes, mostly of the same
/// length and differing early, where a call to `memcmp` per comparison cost more than the
/// comparison.
#[inline]
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// A partner document, or a part of one.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Doc {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    Text(String),
    List(Vec<Doc>),
    /// Keys in document order; each key once.
    Map(Vec<(String, Doc)>),
}

impl Doc {
    /// An empty object.
    pub fn map() -> Doc {
        Doc::Map(Vec::new())
    }

    /// An empty object with room for `n` keys.
    pub fn map_with_capacity(n: usize) -> Doc {
        Doc::Map(Vec::with_capacity(n))
    }

    /// The value under `key`, when this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Doc> {
        match self {
            Doc::Map(entries) => entries
                .iter()
                .find(|(k, _)| same_key(k, key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value at `path`, a key per level.
    pub fn at(&self, path: &[String]) -> Option<&Doc> {
        path.iter().try_fold(self, |at, key| at.get(key))
    }

    /// The value at `path`, its first key looked for from position `hint` on, then from the
    /// start; `hint` is moved past the key found. Reading a document's fields in the order it
    /// usually has them (a partner writes its fields in its own order, which its mapping lists)
    /// finds each at the first look instead of scanning the keys before it.
    pub fn at_from(&self, path: &[String], hint: &mut usize) -> Option<&Doc> {
        let (first, rest) = path.split_first()?;
        let Doc::Map(entries) = self else {
            return None;
        };
        let start = (*hint).min(entries.len());
        let (before, after) = entries.split_at(start);
        let i = match after.iter().position(|(k, _)| same_key(k, first)) {
            Some(i) => start + i,
            None => before.iter().position(|(k, _)| same_key(k, first))?,
        };
        *hint = i + 1;
        entries[i].1.at(rest)
    }

    /// Puts `value` at `path`, making objects on the way (a level that is not an object becomes
    /// one); a key already there keeps its place and takes the new value.
    pub fn set(&mut self, path: &[String], value: Doc) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut at = self;
        for key in parents {
            at = at.slot(key);
            if !matches!(at, Doc::Map(_)) {
                // A level made on the way usually takes several keys (a ticket's fields).
                *at = Doc::map_with_capacity(PARENT_CAPACITY);
            }
        }
        *at.slot(last) = value;
    }

    /// The value under `key` of this object, added as null at the end when it is new; a value
    /// that is not an object becomes an empty one first.
    fn slot(&mut self, key: &str) -> &mut Doc {
        if !matches!(self, Doc::Map(_)) {
            *self = Doc::map();
        }
        let Doc::Map(entries) = self else {
            unreachable!("made an object above")
        };
        // Paths that share a parent usually come one after another: look from the end.
        let i = match entries.iter().rposition(|(k, _)| same_key(k, key)) {
            Some(i) => i,
            None => {
                entries.push((key.to_owned(), Doc::Null));
                entries.len() - 1
            }
        };
        &mut entries[i].1
    }

    /// The text, when this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Doc::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The flag, when this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Doc::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A single value as text (borrowed when it is text already).
    pub fn scalar(&self) -> Option<Cow<'_, str>> {
        match self {
            Doc::Text(s) => Some(Cow::Borrowed(s)),
            Doc::Number(n) => Some(Cow::Owned(n.to_string())),
            Doc::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            _ => None,
        }
    }
}

/// An object's entries while it is read, each key once: a repeated key is handed back to the
/// reader to merge (JSON replaces the value, XML makes a list of the repeats).
#[derive(Default)]
pub(crate) struct Entries {
    items: Vec<(String, Doc)>,
    /// Key → position, once there are [`INDEXED_FROM`] keys.
    index: Option<HashMap<String, usize>>,
}

impl Entries {
    /// The value already under `key`.
    pub(crate) fn find_mut(&mut self, key: &str) -> Option<&mut Doc> {
        let i = match &self.index {
            Some(index) => index.get(key).copied(),
            // A repeated XML element usually follows the one before it: look from the end.
            None => self.items.iter().rposition(|(k, _)| same_key(k, key)),
        }?;
        Some(&mut self.items[i].1)
    }

    /// Adds a key not there yet.
    pub(crate) fn push(&mut self, key: String, value: Doc) {
        match &mut self.index {
            Some(index) => {
                index.insert(key.clone(), self.items.len());
            }
            None if self.items.len() + 1 >= INDEXED_FROM => {
                let mut index: HashMap<String, usize> = self
                    .items
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k.clone(), i))
                    .collect();
                index.insert(key.clone(), self.items.len());
                self.index = Some(index);
            }
            None => {}
        }
        self.items.push((key, value));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn into_doc(self) -> Doc {
        Doc::Map(self.items)
    }
}

impl From<Value> for Doc {
    fn from(v: Value) -> Doc {
        match v {
            Value::Null => Doc::Null,
            Value::Bool(b) => Doc::Bool(b),
            Value::Number(n) => Doc::Number(n),
            Value::String(s) => Doc::Text(s),
            Value::Array(items) => Doc::List(items.into_iter().map(Doc::from).collect()),
            Value::Object(map) => Doc::Map(map.into_iter().map(|(k, v)| (k, v.into())).collect()),
        }
    }
}

impl From<Doc> for Value {
    fn from(d: Doc) -> Value {
        match d {
            Doc::Null => Value::Null,
            Doc::Bool(b) => Value::Bool(b),
            Doc::Number(n) => Value::Number(n),
            Doc::Text(s) => Value::String(s),
            Doc::List(items) => Value::Array(items.into_iter().map(Value::from).collect()),
            Doc::Map(entries) => {
                Value::Object(entries.into_iter().map(|(k, v)| (k, v.into())).collect())
            }
        }
    }
}

impl Serialize for Doc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Doc::Null => s.serialize_unit(),
            Doc::Bool(b) => s.serialize_bool(*b),
            Doc::Number(n) => n.serialize(s),
            Doc::Text(t) => s.serialize_str(t),
            Doc::List(items) => s.collect_seq(items),
            Doc::Map(entries) => s.collect_map(entries.iter().map(|(k, v)| (k, v))),
        }
    }
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Doc, D::Error> {
        d.deserialize_any(DocVisitor)
    }
}

/// A document read straight into a typed value (a ticket draft, say), borrowing its text, as
/// `serde_json::Value` can be read: no tree of another kind is built first.
impl<'de> Deserializer<'de> for &'de Doc {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Doc::Null => visitor.visit_unit(),
            Doc::Bool(b) => visitor.visit_bool(*b),
            Doc::Number(n) => n.deserialize_any(visitor).map_err(de::Error::custom),
            Doc::Text(s) => visitor.visit_borrowed_str(s),
            Doc::List(items) => {
                let mut seq = SeqDeserializer::new(items.iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Doc::Map(entries) => {
                let mut map = MapDeserializer::new(entries.iter().map(|(k, v)| (k.as_str(), v)));
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Doc::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    /// A variant is its name as text, or an object of one key (the name) and its content.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self {
            Doc::Text(s) => visitor.visit_enum(BorrowedStrDeserializer::new(s)),
            Doc::Map(entries) if entries.len() == 1 => {
                visitor.visit_enum(MapAccessDeserializer::new(MapDeserializer::new(
                    entries.iter().map(|(k, v)| (k.as_str(), v)),
                )))
            }
            _ => Err(de::Error::invalid_type(
                self.unexpected(),
                &"a variant name or an object of one key",
            )),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, DeError> for &'de Doc {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl Doc {
    /// What this is, for a type error.
    fn unexpected(&self) -> de::Unexpected<'_> {
        match self {
            Doc::Null => de::Unexpected::Unit,
            Doc::Bool(b) => de::Unexpected::Bool(*b),
            Doc::Number(_) => de::Unexpected::Other("number"),
            Doc::Text(s) => de::Unexpected::Str(s),
            Doc::List(_) => de::Unexpected::Seq,
            Doc::Map(_) => de::Unexpected::Map,
        }
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Doc, E> {
        Ok(Doc::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Doc, E> {
        Ok(Doc::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Doc, E> {
        Ok(Doc::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Doc, E> {
        Ok(Number::from_f64(n).map_or(Doc::Null, Doc::Number))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Doc, E> {
        Ok(Doc::Text(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Doc, E> {
        Ok(Doc::Text(s))
    }

    fn visit_unit<E>(self) -> Result<Doc, E> {
        Ok(Doc::Null)
    }

    fn visit_none<E>(self) -> Result<Doc, E> {
        Ok(Doc::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Doc, D::Error> {
        Doc::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Doc::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
        let mut entries = Entries::default();
        while let Some((key, value)) = map.next_entry::<String, Doc>()? {
            // As serde_json's own map does: the last value of a repeated key, in the first
            // one's place.
            match entries.find_mut(&key) {
                Some(slot) => *slot = value,
                None => entries.push(key, value),
            }
        }
        Ok(entries.into_doc())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn json_reads_and_writes_as_serde_json_does_in_document_order() {
        let text = r#"{"z":1,"a":{"y":[true,null,"x"],"b":-2.5},"m":"文","a2":{}}"#;
        let doc: Doc = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&doc).unwrap(), text);
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(Value::from(doc.clone()), value);
        assert_eq!(Doc::from(value), doc);
        // A repeated key: its last value, in its first place (as serde_json's map).
        let doc: Doc = serde_json::from_str(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(serde_json::to_string(&doc).unwrap(), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn paths_are_read_and_set_in_place() {
        let mut doc = Doc::map();
        doc.set(&path("a.b"), Doc::Text("1".into()));
        doc.set(&path("c"), Doc::Bool(true));
        doc.set(&path("a.d"), Doc::Number(7.into()));
        // A key set again keeps its place; a scalar on the way becomes an object.
        doc.set(&path("a.b"), Doc::Text("2".into()));
        doc.set(&path("c.e"), Doc::Null);
        assert_eq!(
            Value::from(doc.clone()),
            json!({"a": {"b": "2", "d": 7}, "c": {"e": null}})
        );
        assert_eq!(
            doc.at(&path("a.d")).and_then(Doc::scalar).as_deref(),
            Some("7")
        );
        assert_eq!(doc.at(&path("a.b.x")), None);
        assert_eq!(doc.at(&path("nope")), None);
        // Looked for from a hint: found wherever it is, the hint moved past it.
        let mut hint = 1;
        assert_eq!(
            doc.at_from(&path("a.d"), &mut hint),
            Some(&Doc::Number(7.into()))
        );
        assert_eq!(hint, 1, "`a` is the first key");
        assert_eq!(doc.at_from(&path("c.e"), &mut hint), Some(&Doc::Null));
        assert_eq!(hint, 2);
        assert_eq!(doc.at_from(&path("nope"), &mut hint), None);
        assert_eq!(hint, 2, "unchanged when nothing is found");
        let mut far = 99;
        assert_eq!(doc.at_from(&path("c"), &mut far), doc.at(&path("c")));
    }

    #[test]
    fn a_typed_value_reads_straight_from_a_document_as_from_json() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            Help,
            Moved { to: String },
        }
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Draft {
            title: String,
            count: u32,
            urgent: bool,
            note: Option<String>,
            gone: Option<String>,
            units: Vec<String>,
            kind: Kind,
            then: Kind,
        }
        let text = r#"{"title":"讨薪","count":3,"urgent":true,"note":"n","gone":null,
            "units":["甲","乙"],"kind":"help","then":{"moved":{"to":"12315"}}}"#;
        let doc: Doc = serde_json::from_str(text).unwrap();
        let from_doc = Draft::deserialize(&doc).unwrap();
        assert_eq!(from_doc, serde_json::from_str::<Draft>(text).unwrap());
        assert_eq!(from_doc.then, Kind::Moved { to: "12315".into() });

        // Errors say what is missing or wrong, as reading JSON does.
        let mut missing = doc.clone();
        let Doc::Map(entries) = &mut missing else {
            panic!("an object")
        };
        entries.retain(|(k, _)| k != "title");
        let err = Draft::deserialize(&missing).unwrap_err().to_string();
        assert_eq!(err, "missing field `title`");
        let mut wrong = doc.clone();
        wrong.set(&path("count"), Doc::Text("three".into()));
        let err = Draft::deserialize(&wrong).unwrap_err().to_string();
        assert!(err.starts_with("invalid type: string \"three\""), "{err}");
        wrong.set(&path("kind"), Doc::Text("gossip".into()));
        wrong.set(&path("count"), Doc::Number(1.into()));
        let err = Draft::deserialize(&wrong).unwrap_err().to_string();
        assert!(err.starts_with("unknown variant `gossip`"), "{err}");
    }

    #[test]
    fn a_wide_object_is_indexed_and_still_keeps_each_key_once_in_order() {
        let n = INDEXED_FROM * 4;
        let mut text = String::from("{");
        for i in 0..n {
            text.push_str(&format!("\"k{i}\":{i},"));
        }
        // Repeats of the first and of a late key, after the index exists.
        text.push_str(&format!("\"k0\":\"first\",\"k{}\":\"late\"}}", n - 1));
        let doc: Doc = serde_json::from_str(&text).unwrap();
        let Doc::Map(entries) = &doc else {
            panic!("an object")
        };
        assert_eq!(entries.len(), n);
        assert_eq!(entries[0], ("k0".to_owned(), Doc::Text("first".into())));
        assert_eq!(entries[n - 1].1, Doc::Text("late".into()));
        assert_eq!(doc.get("k40"), Some(&Doc::Number(40.into())));
    }
}
