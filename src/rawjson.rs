//! A JSON object kept as the bytes it came in, with where its top-level
//! fields are: what pass-through forwards. Pure, no I/O.
//!
//! Relaying a request means changing one value — `model` becomes the bare
//! model — and, for a non-streamed chat, making `stream` false. Parsing the
//! whole body into a tree and writing the tree out again to do that cost a
//! tenth of a pass-through's CPU (an allocation per key and string, a hash
//! per key); here one validating pass over the bytes finds the top-level
//! fields (nested values are skipped, not built), and forwarding copies the
//! bytes with the changed values spliced in. Everything else reaches the
//! upstream byte for byte, as the client sent it.
//!
//! A body whose top level repeats a field woollama reads or changes is not
//! taken apart this way ([`RawObject::parse`] says so): its meaning depends
//! on which copy a reader keeps, so the caller parses it whole instead.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The top-level fields woollama reads or rewrites.
const WATCHED: [&str; 4] = ["model", "stream", "options", "tools"];

/// Why a body is not a [`RawObject`].
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not valid JSON (serde_json's words).
    NotJson(String),
    /// Valid JSON, but not an object: what it is.
    NotAnObject(&'static str),
    /// A watched field appears twice: parse it whole.
    Repeated,
}

/// A JSON object as bytes, with the spans of its watched top-level values.
#[derive(Clone)]
pub struct RawObject {
    bytes: Bytes,
    /// Byte range of each watched field's value, in [`WATCHED`] order.
    spans: [Option<Range<usize>>; 4],
    /// Byte offset just past the opening `{`.
    open: usize,
    empty: bool,
}

impl fmt::Debug for RawObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawObject")
            .field("len", &self.bytes.len())
            .field("spans", &self.spans)
            .finish()
    }
}

/// A key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The top level of a body: watched fields' values (as raw slices), or
/// what the body is instead of an object.
enum Top<'a> {
    Object {
        values: [Option<&'a RawValue>; 4],
        repeated: bool,
        empty: bool,
    },
    Other(&'static str),
}

impl<'de> de::Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut values: [Option<&'de RawValue>; 4] = [None; 4];
                let mut repeated = false;
                let mut empty = true;
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    empty = false;
                    let v: &'de RawValue = map.next_value()?;
                    if let Some(i) = WATCHED.iter().position(|w| *w == k) {
                        repeated |= values[i].is_some();
                        values[i] = Some(v);
                    }
                }
                Ok(Top::Object {
                    values,
                    repeated,
                    empty,
                })
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Top::Other("an array"))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Top::Other("a string"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Top::Other("a number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Top::Other("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Top::Other("a number"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Top::Other("a boolean"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Top::Other("null"))
            }
        }
        d.deserialize_any(V)
    }
}

impl RawObject {
    /// Reads `bytes` as a JSON object: one validating pass, nested values
    /// skipped.
    pub fn parse(bytes: Bytes) -> Result<Self, Refused> {
        let top: Top<'_> =
            serde_json::from_slice(&bytes).map_err(|e| Refused::NotJson(e.to_string()))?;
        let (values, repeated, empty) = match top {
            Top::Object {
                values,
                repeated,
                empty,
            } => (values, repeated, empty),
            Top::Other(what) => return Err(Refused::NotAnObject(what)),
        };
        if repeated {
            return Err(Refused::Repeated);
        }
        let base = bytes.as_ptr() as usize;
        let spans = values.map(|v| {
            v.map(|raw| {
                let start = raw.get().as_ptr() as usize - base;
                start..start + raw.get().len()
            })
        });
        // The first non-whitespace byte is the `{`.
        let open = bytes.iter().position(|b| *b == b'{').map_or(0, |p| p + 1);
        Ok(Self {
            bytes,
            spans,
            open,
            empty,
        })
    }

    fn span(&self, field: &str) -> Option<&Range<usize>> {
        let i = WATCHED.iter().position(|w| *w == field)?;
        self.spans[i].as_ref()
    }

    /// The raw JSON text of a watched top-level field.
    pub fn field(&self, field: &str) -> Option<&str> {
        let r = self.span(field)?;
        // The span is a whole JSON value inside valid UTF-8 JSON.
        std::str::from_utf8(&self.bytes[r.clone()]).ok()
    }

    /// A watched field's value as a string, if it is one.
    pub fn string(&self, field: &str) -> Option<Cow<'_, str>> {
        let text = self.field(field)?;
        if !text.starts_with('"') {
            return None;
        }
        if !text.contains('\\') {
            return Some(Cow::Borrowed(&text[1..text.len() - 1]));
        }
        serde_json::from_str::<String>(text).ok().map(Cow::Owned)
    }

    /// Whether a watched field is present (and not `null`).
    pub fn has(&self, field: &str) -> bool {
        self.field(field).is_some_and(|t| t != "null")
    }

    /// The bytes as they came.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The body with watched fields set to new raw JSON values (each
    /// `(field, json)`): a present field's value is replaced in place, an
    /// absent one is added first. Everything else is copied as it came.
    pub fn with(&self, changes: &[(&str, &str)]) -> Vec<u8> {
        let extra: usize = changes.iter().map(|(f, v)| f.len() + v.len() + 4).sum();
        let mut out = Vec::with_capacity(self.bytes.len() + extra);
        let mut edits: Vec<(Range<usize>, &str)> = Vec::new();
        let mut added = Vec::new();
        for (field, value) in changes {
            match self.span(field) {
                Some(r) => edits.push((r.clone(), value)),
                None => added.push((*field, *value)),
            }
        }
        edits.sort_by_key(|(r, _)| r.start);
        out.extend_from_slice(&self.bytes[..self.open]);
        for (i, (field, value)) in added.iter().enumerate() {
            out.push(b'"');
            out.extend_from_slice(field.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(value.as_bytes());
            if i + 1 < added.len() || !self.empty {
                out.push(b',');
            }
        }
        let mut at = self.open;
        for (r, value) in edits {
            out.extend_from_slice(&self.bytes[at..r.start]);
            out.extend_from_slice(value.as_bytes());
            at = r.end;
        }
        out.extend_from_slice(&self.bytes[at..]);
        out
    }

    /// The whole body as a tree, for the paths that need one.
    pub fn to_object(&self) -> Result<serde_json::Map<String, serde_json::Value>, Refused> {
        serde_json::from_slice(&self.bytes).map_err(|e| Refused::NotJson(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn raw(s: &str) -> RawObject {
        RawObject::parse(Bytes::from(s.to_string())).expect("object")
    }

    #[test]
    fn finds_the_top_level_fields_only() {
        let r = raw(
            r#" { "messages": [{"model": "inner", "stream": true}], "model" : "ollama/qwen3:8b", "stream":false } "#,
        );
        assert_eq!(r.string("model").as_deref(), Some("ollama/qwen3:8b"));
        assert_eq!(r.field("stream"), Some("false"));
        assert!(!r.has("tools"));
    }

    #[test]
    fn rewrites_in_place_and_keeps_the_rest_byte_for_byte() {
        let body =
            r#"{"model":"mock/m","messages":[{"role":"user","content":"Grüß \"dich\""}],"x":1.50}"#;
        let out = raw(body).with(&[("model", "\"m\""), ("stream", "false")]);
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(
            text,
            r#"{"stream":false,"model":"m","messages":[{"role":"user","content":"Grüß \"dich\""}],"x":1.50}"#
        );
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["model"], json!("m"));
        assert_eq!(
            raw("{}").with(&[("stream", "false")]),
            b"{\"stream\":false}"
        );
        assert_eq!(
            raw(r#"{"stream":null,"model":"a"}"#).with(&[("stream", "false"), ("model", "\"b\"")]),
            br#"{"stream":false,"model":"b"}"#
        );
    }

    #[test]
    fn escaped_values_and_keys_are_read() {
        let r = raw(r#"{"mod\u0065l":"a\/b","stream":true}"#);
        assert_eq!(r.string("model").as_deref(), Some("a/b"));
        assert_eq!(r.field("stream"), Some("true"));
    }

    #[test]
    fn refusals_say_what_the_body_is() {
        let p = |s: &str| RawObject::parse(Bytes::from(s.to_string())).map(|_| ());
        assert_eq!(p("[1]"), Err(Refused::NotAnObject("an array")));
        assert_eq!(p("\"x\""), Err(Refused::NotAnObject("a string")));
        assert_eq!(p("3"), Err(Refused::NotAnObject("a number")));
        assert_eq!(p("null"), Err(Refused::NotAnObject("null")));
        assert_eq!(p("true"), Err(Refused::NotAnObject("a boolean")));
        assert!(matches!(p("{\"a\":"), Err(Refused::NotJson(_))));
        assert!(matches!(p("{} x"), Err(Refused::NotJson(_))));
        assert_eq!(
            p(r#"{"model":"a","model":"b"}"#),
            Err(Refused::Repeated),
            "a repeated model is parsed whole, where the last one wins"
        );
        assert!(p(r#"{"x":1,"x":2}"#).is_ok(), "others pass as they came");
    }
}
