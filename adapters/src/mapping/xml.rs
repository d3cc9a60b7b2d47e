//! XML ↔ the partner document tree ([`Doc`]), with hostile-input limits.
//!
//! Conventions: an element with only text is a string; an element with children is an object of
//! its children (a repeated child becomes an array); attributes are `@name` keys; text beside
//! children or attributes is `$text`. DTDs and entities other than the five predefined ones and
//! character references are refused.

use super::doc::{Doc, Entries};
use quick_xml::Reader;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 32;
/// Most elements accepted in one document.
pub const MAX_ELEMENTS: usize = 10_000;
/// Most attributes accepted on one element (partners' messages carry a handful).
pub const MAX_ATTRIBUTES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct XmlError(pub String);

struct Frame {
    name: String,
    map: Entries,
    text: String,
}

fn add(map: &mut Entries, name: String, v: Doc) {
    match map.find_mut(&name) {
        None => map.push(name, v),
        Some(Doc::List(items)) => items.push(v),
        Some(existing) => {
            let first = std::mem::take(existing);
            *existing = Doc::List(vec![first, v]);
        }
    }
}

/// The element's name and value.
fn finish(frame: Frame) -> (String, Doc) {
    let Frame {
        name,
        mut map,
        mut text,
    } = frame;
    // Trimmed in place: most values have no space around them and keep their buffer.
    let end = text.trim_end().len();
    text.truncate(end);
    let start = text.len() - text.trim_start().len();
    text.drain(..start);
    if map.is_empty() {
        return (name, Doc::Text(text));
    }
    if !text.is_empty() {
        match map.find_mut("$text") {
            Some(slot) => *slot = Doc::Text(text),
            None => map.push("$text".into(), Doc::Text(text)),
        }
    }
    (name, map.into_doc())
}

/// Our partners speak XML 1.0; line ends and attribute whitespace are normalised as it says.
const XML_1_0: quick_xml::XmlVersion = quick_xml::XmlVersion::Implicit1_0;

fn start_frame(e: &BytesStart<'_>) -> Result<Frame, XmlError> {
    let name = std::str::from_utf8(e.name().as_ref())
        .map_err(|_| XmlError("element name is not UTF-8".into()))?
        .to_owned();
    let mut map = Entries::default();
    for (i, attr) in e.attributes().enumerate() {
        if i == MAX_ATTRIBUTES {
            return Err(XmlError(format!(
                "more than {MAX_ATTRIBUTES} attributes on <{name}>"
            )));
        }
        let attr = attr.map_err(|err| XmlError(format!("bad attribute in <{name}>: {err}")))?;
        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        let value = attr
            .normalized_value(XML_1_0)
            .map_err(|err| XmlError(format!("bad attribute `{key}` in <{name}>: {err}")))?;
        map.push(format!("@{key}"), Doc::Text(value.into_owned()));
    }
    Ok(Frame {
        name,
        map,
        text: String::new(),
    })
}

/// Parses a document into its root element's name and content.
pub fn parse(text: &str) -> Result<(String, Doc), XmlError> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut elements = 0usize;
    let mut root: Option<(String, Doc)> = None;
    loop {
        // Space before an element's first text is trimmed at its end anyway (the layout
        // between elements, usually): the reader drops it, and the events of only that, itself.
        // Space after text already taken belongs to it (mixed content keeps its spaces).
        reader.config_mut().trim_text_start = stack.last().is_none_or(|f| f.text.is_empty());
        let pos = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| XmlError(format!("malformed XML at byte {pos}: {e}")))?;
        if root.is_some() && matches!(event, Event::Start(_) | Event::Empty(_)) {
            return Err(XmlError("content after the root element".into()));
        }
        match event {
            Event::Start(e) => {
                elements += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError(format!("elements nested deeper than {MAX_DEPTH}")));
                }
                if elements > MAX_ELEMENTS {
                    return Err(XmlError(format!("more than {MAX_ELEMENTS} elements")));
                }
                stack.push(start_frame(&e)?);
            }
            Event::Empty(e) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(XmlError(format!("more than {MAX_ELEMENTS} elements")));
                }
                let (name, v) = finish(start_frame(&e)?);
                match stack.last_mut() {
                    Some(parent) => add(&mut parent.map, name, v),
                    None => root = Some((name, v)),
                }
            }
            Event::End(_) => {
                let frame = stack
                    .pop()
                    .ok_or_else(|| XmlError("unbalanced end tag".into()))?;
                let (name, v) = finish(frame);
                match stack.last_mut() {
                    Some(parent) => add(&mut parent.map, name, v),
                    None => root = Some((name, v)),
                }
            }
            Event::Text(t) => {
                let s = t
                    .xml_content(XML_1_0)
                    .map_err(|e| XmlError(format!("bad text: {e}")))?;
                match stack.last_mut() {
                    Some(f) => f.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => return Err(XmlError("text outside the root element".into())),
                }
            }
            Event::CData(c) => {
                let s = c
                    .decode()
                    .map_err(|e| XmlError(format!("bad CDATA: {e}")))?;
                if let Some(f) = stack.last_mut() {
                    f.text.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                let name = r
                    .decode()
                    .map_err(|e| XmlError(format!("bad reference: {e}")))?;
                let raw = format!("&{name};");
                let s = quick_xml::escape::unescape(&raw)
                    .map_err(|_| XmlError(format!("entity `{raw}` is not allowed")))?;
                if let Some(f) = stack.last_mut() {
                    f.text.push_str(&s);
                }
            }
            Event::DocType(_) => {
                return Err(XmlError("DTDs (<!DOCTYPE>) are refused".into()));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError("document ends inside an element".into()));
    }
    root.ok_or_else(|| XmlError("no root element".into()))
}

/// The `encoding="…"` of the XML declaration, if there is one. Read from the bytes as they came
/// (the declaration is ASCII), before the document is decoded.
pub fn declared_encoding(head: &[u8]) -> Option<String> {
    let head = &head[..head.len().min(200)];
    let decl = head
        .strip_prefix(b"\xef\xbb\xbf")
        .unwrap_or(head)
        .trim_ascii_start();
    let decl = decl.strip_prefix(b"<?xml")?;
    let end = decl.windows(2).position(|w| w[0] == b'?' && w[1] == b'>')?;
    let decl = &decl[..end];
    let at = decl
        .windows(8)
        .position(|w| w[0] == b'e' && w == b"encoding")?;
    let rest = decl[at + b"encoding".len()..]
        .trim_ascii_start()
        .strip_prefix(b"=")?
        .trim_ascii_start();
    // Only `"` or `'` may quote it; anything else (even a multi-byte character) is no value.
    let (&quote, rest) = rest
        .split_first()
        .filter(|(q, _)| matches!(q, b'"' | b'\''))?;
    let close = rest.iter().position(|&b| b == quote)?;
    Some(String::from_utf8_lossy(&rest[..close]).into_owned())
}

/// Writes `content` as the document element `root`, with a declaration naming `encoding`.
pub fn write(root: &str, content: &Doc, encoding: &str) -> Result<String, XmlError> {
    let mut w = Writer::new(Vec::new());
    let io = |e: std::io::Error| XmlError(e.to_string());
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some(encoding), None)))
        .map_err(io)?;
    write_element(&mut w, root, content)?;
    String::from_utf8(w.into_inner()).map_err(|e| XmlError(e.to_string()))
}

fn write_element(w: &mut Writer<Vec<u8>>, name: &str, v: &Doc) -> Result<(), XmlError> {
    let io = |e: std::io::Error| XmlError(e.to_string());
    match v {
        Doc::Null => Ok(()),
        Doc::List(items) => items.iter().try_for_each(|i| write_element(w, name, i)),
        Doc::Map(map) => {
            let mut start = BytesStart::new(name);
            for (k, val) in map {
                if let (Some(attr), Some(s)) = (k.strip_prefix('@'), val.scalar()) {
                    start.push_attribute((attr, s.as_ref()));
                }
            }
            w.write_event(Event::Start(start)).map_err(io)?;
            for (k, val) in map {
                if k == "$text" {
                    if let Some(s) = val.scalar() {
                        w.write_event(Event::Text(BytesText::new(s.as_ref())))
                            .map_err(io)?;
                    }
                } else if !k.starts_with('@') {
                    write_element(w, k, val)?;
                }
            }
            w.write_event(Event::End(BytesEnd::new(name))).map_err(io)
        }
        other => {
            let s = other.scalar().unwrap_or_default();
            w.write_event(Event::Start(BytesStart::new(name)))
                .map_err(io)?;
            w.write_event(Event::Text(BytesText::new(&s))).map_err(io)?;
            w.write_event(Event::End(BytesEnd::new(name))).map_err(io)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_declaration_quoted_oddly_has_no_encoding() {
        // Found by tests/fuzz.rs: a multi-byte character where the quote belongs.
        assert_eq!(
            declared_encoding("<?xml version=\"1.0\" encoding=\u{fffd}GB18030\"?><x/>".as_bytes()),
            None
        );
        assert_eq!(
            declared_encoding(b"<?xml version=\"1.0\" encoding='GBK'?><x/>").as_deref(),
            Some("GBK")
        );
    }

    #[test]
    fn elements_attributes_and_repeats_round_trip() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<GD ver="2"><BH>A&amp;B &#x4E2D;</BH><DW>甲</DW><DW>乙</DW><K/><T lang="zh">文本</T></GD>"#;
        let (root, v) = parse(doc).unwrap();
        assert_eq!(root, "GD");
        assert_eq!(
            serde_json::Value::from(v.clone()),
            json!({"@ver": "2", "BH": "A&B 中", "DW": ["甲", "乙"], "K": "", "T": {"@lang": "zh", "$text": "文本"}})
        );
        let again = write("GD", &v, "UTF-8").unwrap();
        assert_eq!(parse(&again).unwrap(), ("GD".to_owned(), v));
        assert_eq!(
            declared_encoding(again.as_bytes()).as_deref(),
            Some("UTF-8")
        );
    }

    #[test]
    fn layout_space_is_dropped_and_text_beside_children_keeps_its_own() {
        let doc = "<GD>\n  <A>  甲 乙  </A>\n  <M>x <B/> y<C/>\n</M>\n</GD>\n";
        let (_, v) = parse(doc).unwrap();
        assert_eq!(
            serde_json::Value::from(v),
            json!({"A": "甲 乙", "M": {"B": "", "C": "", "$text": "x  y"}})
        );
    }

    #[test]
    fn hostile_documents_are_refused() {
        let dtd = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>"#;
        assert!(parse(dtd).unwrap_err().0.contains("DTD"));
        assert!(
            parse("<x>&custom;</x>")
                .unwrap_err()
                .0
                .contains("not allowed")
        );
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep).unwrap_err().0.contains("deeper"));
        let wide = format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS + 1));
        assert!(parse(&wide).unwrap_err().0.contains("elements"));
        let attrs: String = (0..=MAX_ATTRIBUTES)
            .map(|i| format!(" a{i}=\"v\""))
            .collect();
        assert!(
            parse(&format!("<a{attrs}/>"))
                .unwrap_err()
                .0
                .contains("attributes on <a>")
        );
        let fine: String = (0..MAX_ATTRIBUTES)
            .map(|i| format!(" a{i}=\"v\""))
            .collect();
        assert!(parse(&format!("<a{fine}/>")).is_ok());
        // Many different children (their keys indexed past the first few dozen): a repeat far
        // from its first still joins it in a list.
        let many: String = (0..200).map(|i| format!("<k{i}>{i}</k{i}>")).collect();
        let (_, v) = parse(&format!("<a>{many}<k3>again</k3></a>")).unwrap();
        assert_eq!(
            v.get("k3"),
            Some(&Doc::List(vec![
                Doc::Text("3".into()),
                Doc::Text("again".into())
            ]))
        );
        assert_eq!(v.get("k199"), Some(&Doc::Text("199".into())));
        // Space between two references is text (only the space before any is trimmed).
        let (_, v) = parse("<a>\n  <s>\n &amp; &#x4E2D;\n</s></a>").unwrap();
        assert_eq!(v.get("s"), Some(&Doc::Text("& 中".into())));
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a></a><b></b>").is_err());
        assert!(parse("").is_err());
    }
}
