//! OpenAI wire shapes woollama writes itself, as typed serde structs, and the
//! one SSE framing: error bodies, `chat.completion` and
//! `chat.completion.chunk`. Pure: no I/O, no axum.
//!
//! What an upstream sent is relayed as it came and never passes through
//! these types; they are for what woollama composes (recipes' streams, the
//! Ollama native translation, refusals).

use serde::Serialize;
use serde_json::Value;

/// `{"error":{"message":…,"type":…}}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
}

/// The bytes of an error body.
pub fn error_body(message: &str, kind: &str) -> Vec<u8> {
    to_vec(&ErrorBody {
        error: ErrorDetail { message, kind },
    })
}

/// Token counts, as OpenAI reports them.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// A non-streamed answer: `chat.completion`.
#[derive(Debug, Serialize)]
pub struct ChatCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: [Choice; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Serialize)]
pub struct Choice {
    pub index: u32,
    pub message: Value,
    pub finish_reason: String,
}

impl<'a> ChatCompletion<'a> {
    /// One choice with `message`.
    pub fn new(id: &'a str, created: u64, model: &'a str, message: Value, finish: &str) -> Self {
        Self {
            id,
            object: "chat.completion",
            created,
            model,
            choices: [Choice {
                index: 0,
                message,
                finish_reason: finish.to_string(),
            }],
            usage: None,
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The fields every chunk of one streamed answer shares.
#[derive(Debug, Clone)]
pub struct ChunkHead {
    pub id: String,
    pub created: u64,
    pub model: String,
}

#[derive(Debug, Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChunkChoice<'a>; 1],
}

#[derive(Debug, Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: &'a Value,
    finish_reason: Option<&'a str>,
}

impl ChunkHead {
    /// A fresh `chatcmpl-<hex>` id, created now.
    pub fn new(model: &str) -> Self {
        Self {
            id: completion_id(),
            created: now(),
            model: model.to_string(),
        }
    }

    /// One `chat.completion.chunk` as an SSE frame.
    pub fn frame(&self, delta: &Value, finish: Option<&str>) -> Vec<u8> {
        sse_data(&Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: [ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish,
            }],
        })
    }

    /// The stop chunk and `[DONE]`: how every stream woollama composes ends.
    pub fn end(&self, finish: &str) -> Vec<u8> {
        let mut b = self.frame(&Value::Object(serde_json::Map::new()), Some(finish));
        b.extend_from_slice(DONE);
        b
    }
}

/// The frame that ends an OpenAI event stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// `data: <json>\n\n`.
pub fn sse_data(payload: &impl Serialize) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    out.extend(to_vec(payload));
    out.extend_from_slice(b"\n\n");
    out
}

/// `data: <bytes>\n\n` for a payload that is already JSON.
pub fn sse_raw(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    out
}

fn to_vec(v: &impl Serialize) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// A fresh `chatcmpl-<hex>` id.
pub fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The UTC date (year, month, day) of the day `days` after 1970-01-01, in
/// the proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`).
pub fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + u64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes() {
        assert_eq!(
            String::from_utf8(error_body("no \"x\"", "not_found")).expect("utf8"),
            r#"{"error":{"message":"no \"x\"","type":"not_found"}}"#
        );
        let head = ChunkHead {
            id: "chatcmpl-1".into(),
            created: 7,
            model: "m".into(),
        };
        assert_eq!(
            String::from_utf8(head.frame(&json!({"content": "hi"}), None)).expect("utf8"),
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n"
        );
        assert!(
            String::from_utf8(head.end("stop"))
                .expect("utf8")
                .ends_with("\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
        );
        let mut c = ChatCompletion::new(
            "chatcmpl-1",
            7,
            "m",
            json!({"role": "assistant", "content": "x"}),
            "stop",
        );
        c.usage = Some(Usage::new(3, 2));
        assert_eq!(
            c.to_value(),
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "m",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
        );
    }
}
