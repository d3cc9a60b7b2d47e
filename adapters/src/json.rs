//! JSON decoding that names the field at fault (`caller.phone`, `units[2]`), used by every JSON
//! ingress: the home API and the JSON partners.

use serde::de::DeserializeOwned;

/// Why a JSON body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct JsonError {
    /// `true` when the body is not JSON at all (400); `false` when it is JSON of the wrong shape
    /// (missing field, wrong type, unknown enum value: 422).
    pub syntax: bool,
    pub field: Option<String>,
    pub reason: String,
}

/// serde names a missing field only in its message (``missing field `x` at …``): the field's
/// name, and what follows it.
pub fn missing_field(message: &str) -> Option<(&str, &str)> {
    message.strip_prefix("missing field `")?.split_once('`')
}

pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, JsonError> {
    // Tracking the path slows every read: only a body that fails is read again with it.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let mut field = (path != "." && path != "?").then_some(path);
        let mut reason = inner.to_string();
        // serde names a missing field only in its message; put it in the path.
        if let Some((name, tail)) = missing_field(&reason) {
            field = Some(match field {
                Some(parent) => format!("{parent}.{name}"),
                None => name.to_owned(),
            });
            reason = format!("is required{tail}");
        }
        JsonError {
            syntax: !inner.is_data(),
            field,
            reason,
        }
    })?;
    Ok(value)
}

impl From<JsonError> for crate::IngressError {
    fn from(e: JsonError) -> Self {
        if e.syntax {
            Self::malformed(e.field, format!("malformed JSON: {}", e.reason))
        } else {
            Self {
                field: e.field,
                ..Self::invalid("", e.reason)
            }
        }
    }
}

/// A partner's JSON message, refused in ingress terms: 400 when it is not JSON, 422 naming the
/// field when it is JSON of the wrong shape.
pub fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, crate::IngressError> {
    parse(body).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
        list: Vec<u8>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        flag: bool,
    }

    #[test]
    fn errors_name_the_path() {
        let e = parse::<Outer>(br#"{"inner":{"flag":1},"list":[]}"#).unwrap_err();
        assert_eq!((e.syntax, e.field.as_deref()), (false, Some("inner.flag")));
        let e = parse::<Outer>(br#"{"inner":{},"list":[]}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("inner.flag"));
        assert!(e.reason.starts_with("is required"), "{}", e.reason);
        let e = parse::<Outer>(br#"{"inner":{"flag":true},"list":[1,"x"]}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("list[1]"));
        let e = parse::<Outer>(br#"{"inner":"#).unwrap_err();
        assert!(e.syntax);
        let e = parse::<Outer>(b"{x").unwrap_err();
        assert_eq!((e.syntax, e.field), (true, None));
    }
}
