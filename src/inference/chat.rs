//! The backend seam: what the surfaces and the recipe loop call.
//!
//! - [`Registry::relay`]: pass-through. The surface speaks the upstream's own
//!   protocol, so the answer is relayed as raw bytes as they arrive — except
//!   for a chat request to Ollama that asks for a context size, which goes to
//!   the native `/api/chat` and is translated both ways (`ollama`).
//! - [`Registry::complete`] and [`Registry::stream`]: one chat turn of the
//!   recipe loop, as a typed answer (the `chat.completion`) or a stream of
//!   typed [`ChatEvent`]s (text deltas, tool-call fragments, usage, finish).
//!
//! Nothing here returns an HTTP client's type: callers see [`Relay`],
//! `serde_json::Value` and [`ChatEvent`]. The `claude` CLI implements the
//! same three calls for the `claude-code` inferencer: the chat request's
//! messages become one locked-down call (`claude`), its answer a
//! `chat.completion`, its text deltas chunks.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value};

use super::sse::{self, ChatEvent, DataLines};
use super::upstream::Answer;
use super::{Error, Inferencer, Registry, claude, ollama, openai};
use crate::rawjson::RawObject;
use crate::wire::{self, ChunkHead};

/// The largest answer of known length that pass-through reads whole before
/// relaying it.
const SMALL_ANSWER: u64 = 64 * 1024;

/// A pass-through endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Embeddings,
    Images,
}

impl Endpoint {
    /// The path under the inferencer's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat/completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Images => "images/generations",
        }
    }

    /// The capability a model must not lack to be called here.
    pub fn capability(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Embeddings => "embedding",
            Endpoint::Images => "image",
        }
    }
}

/// A request body to pass through: as it came, with its top-level fields
/// located (the usual case: forwarded with `model` rewritten in place), or
/// as a tree (a body whose top level repeats a field woollama reads).
#[derive(Debug)]
pub enum Body {
    Raw(RawObject),
    Tree(Map<String, Value>),
}

impl Body {
    /// Whether the body asks for a stream (`"stream": true`).
    pub fn stream(&self) -> bool {
        match self {
            Body::Raw(r) => r.field("stream") == Some("true"),
            Body::Tree(m) => m.get("stream").and_then(Value::as_bool) == Some(true),
        }
    }

    /// Whether a top-level field is present and not `null`.
    pub fn has(&self, field: &str) -> bool {
        match self {
            Body::Raw(r) => r.has(field),
            Body::Tree(m) => m.get(field).is_some_and(|v| !v.is_null()),
        }
    }

    /// The body as a tree. A raw body was checked as JSON text already, but
    /// not every string in it was decoded: one that is not text (a lone
    /// `\ud800`) fails here, with serde_json's words.
    pub fn into_tree(self) -> Result<Map<String, Value>, String> {
        match self {
            Body::Raw(r) => r.to_object().map_err(|e| match e {
                crate::rawjson::Refused::NotJson(why) => why,
                other => format!("{other:?}"),
            }),
            Body::Tree(m) => Ok(m),
        }
    }
}

/// An upstream answer on its way to the client.
pub struct Relay {
    pub status: u16,
    pub content_type: String,
    /// The length, when the upstream said it and the body is not rewritten.
    pub content_length: Option<u64>,
    /// Whether the body is an event stream (a failure mid-way is then told
    /// with an error frame).
    pub sse: bool,
    pub body: BoxStream<'static, Result<Bytes, Error>>,
}

impl Relay {
    /// A whole JSON answer woollama composed (200).
    fn json(answer: &Value) -> Self {
        let bytes = Bytes::from(bytes_of(answer));
        Relay {
            status: 200,
            content_type: "application/json".into(),
            content_length: Some(bytes.len() as u64),
            sse: false,
            body: futures_util::stream::once(async move { Ok(bytes) }).boxed(),
        }
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

impl Registry {
    fn timeout_for(&self, endpoint: Endpoint) -> Duration {
        let t = self.timeouts();
        match endpoint {
            Endpoint::Chat => t.chat,
            Endpoint::Embeddings => t.embeddings,
            Endpoint::Images => t.images,
        }
    }

    /// Pass-through of `body` (its `model` replaced by the bare `model`):
    /// streamed when it says `"stream": true`, relayed as it arrives either
    /// way. An upstream error status is [`Error::Upstream`], before any byte.
    pub async fn relay(
        &self,
        inf: &Inferencer,
        endpoint: Endpoint,
        model: &str,
        body: Body,
    ) -> Result<Relay, Error> {
        let stream = body.stream();
        let native = endpoint == Endpoint::Chat && inf.speaks_ollama() && body.has("options");
        let mut body = match body {
            // The usual case: `model` (and a chat's `stream`) rewritten in
            // place, everything else as the client sent it.
            Body::Raw(raw) if !inf.is_claude() && !native => {
                let bare = serde_json::to_string(model).unwrap_or_default();
                let bytes = if endpoint == Endpoint::Chat && !stream {
                    raw.with(&[("model", &bare), ("stream", "false")])
                } else {
                    raw.with(&[("model", &bare)])
                };
                return self.post_and_relay(inf, endpoint, bytes, stream).await;
            }
            other => other.into_tree().map_err(|why| {
                Error::Refused(format!("the request body is not valid JSON: {why}"))
            })?,
        };
        if inf.is_claude() {
            body.insert("model".into(), Value::String(model.to_string()));
            return self.claude_relay(model, &body, stream).await;
        }
        if endpoint == Endpoint::Chat && inf.speaks_ollama() && ollama::wants_native(&body) {
            return self.native(inf, model, &body, stream).await;
        }
        if endpoint == Endpoint::Chat && !stream {
            body.insert("stream".into(), Value::Bool(false));
        }
        body.insert("model".into(), Value::String(model.to_string()));
        self.post_and_relay(inf, endpoint, bytes_of(&Value::Object(body)), stream)
            .await
    }

    /// Posts a pass-through body and relays the answer.
    async fn post_and_relay(
        &self,
        inf: &Inferencer,
        endpoint: Endpoint,
        body: Vec<u8>,
        stream: bool,
    ) -> Result<Relay, Error> {
        let timeout = self.timeout_for(endpoint);
        let resp = openai::post(
            self.client(),
            self.fast(),
            inf,
            endpoint.path(),
            None,
            body,
            timeout,
            stream,
        )
        .await?;
        relayed(
            inf,
            &openai::Path(inf, endpoint.path()),
            resp,
            stream,
            timeout,
        )
        .await
    }

    /// Anthropic's own Messages API, passed through natively for
    /// `anthropic/<model>` on `/v1/messages` (`path` is `messages` or
    /// `messages/count_tokens` under the inferencer's base URL): the key as
    /// `x-api-key`, the client's `anthropic-version` (default `2023-06-01`)
    /// and `anthropic-beta`; the answer relayed as it arrives.
    pub async fn anthropic(
        &self,
        inf: &Inferencer,
        path: &str,
        model: &str,
        mut body: Map<String, Value>,
        version: Option<&str>,
        beta: Option<&str>,
    ) -> Result<Relay, Error> {
        body.insert("model".into(), Value::String(model.to_string()));
        let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
        let url = inf.url(path);
        let timeout = self.timeouts().chat;
        let mut req = match inf.parsed_url(path) {
            Some(u) => self.client().post(u.clone()),
            None => self.client().post(&url),
        }
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("anthropic-version", version.unwrap_or("2023-06-01"))
        .body(bytes_of(&Value::Object(body)));
        if let Some(b) = beta {
            req = req.header("anthropic-beta", b);
        }
        if let Some(key) = inf.auth()? {
            let mut v = reqwest::header::HeaderValue::from_str(key.expose()).map_err(|_| {
                Error::BadResponse {
                    inferencer: inf.name().to_string(),
                    detail: "the API key is not a valid header value".into(),
                }
            })?;
            v.set_sensitive(true);
            req = req.header("x-api-key", v);
        }
        if stream {
            req = req.header(reqwest::header::ACCEPT, "text/event-stream");
        } else {
            req = req.timeout(timeout);
        }
        let resp = openai::send(req, inf, url.clone(), timeout).await?;
        relayed(inf, &url, resp, stream, timeout).await
    }

    /// Ollama's native `/api/chat` (`model` bare), its answer translated
    /// to OpenAI's shapes: as a whole `chat.completion`, or as SSE bytes.
    async fn native(
        &self,
        inf: &Inferencer,
        model: &str,
        body: &Map<String, Value>,
        stream: bool,
    ) -> Result<Relay, Error> {
        let head = ChunkHead::new(model);
        if !stream {
            let out = self.native_answer(inf, model, body, &head).await?;
            return Ok(Relay::json(&out));
        }
        let (resp, timeout) = self.native_post(inf, model, body, true).await?;
        let frames = translated(
            openai::relay(inf, resp, timeout),
            ollama::SseTranslator::new(head),
        );
        Ok(Relay {
            status: 200,
            content_type: "text/event-stream".into(),
            content_length: None,
            sse: true,
            body: frames.boxed(),
        })
    }

    /// A native non-streamed answer as a `chat.completion`.
    async fn native_answer(
        &self,
        inf: &Inferencer,
        model: &str,
        body: &Map<String, Value>,
        head: &ChunkHead,
    ) -> Result<Value, Error> {
        let (resp, timeout) = self.native_post(inf, model, body, false).await?;
        let url = resp.url();
        let raw = openai::read_body(inf, &url, resp, timeout).await?;
        let native: Value = serde_json::from_slice(&raw).map_err(|e| Error::BadResponse {
            inferencer: inf.name().to_string(),
            detail: format!("{url} did not answer JSON: {e}"),
        })?;
        Ok(ollama::from_native_response(
            &native,
            model,
            &head.id,
            head.created,
        ))
    }

    /// Posts to `/api/chat`; Ollama's `{"error": "…"}` comes back
    /// OpenAI-shaped.
    async fn native_post(
        &self,
        inf: &Inferencer,
        model: &str,
        body: &Map<String, Value>,
        stream: bool,
    ) -> Result<(Answer, Duration), Error> {
        let url = format!("{}/api/chat", ollama::native_root(&inf.spec.base_url));
        let request = Value::Object(ollama::to_native_request(body, model, stream));
        let timeout = self.timeouts().native;
        let resp = openai::post(
            self.client(),
            self.fast(),
            inf,
            "",
            Some(url),
            bytes_of(&request),
            timeout,
            stream,
        )
        .await
        .map_err(|e| match e {
            Error::Upstream {
                inferencer,
                status,
                body,
                ..
            } => Error::Upstream {
                inferencer,
                status,
                content_type: Some("application/json".into()),
                body: Bytes::from(ollama::error_body(&body)),
            },
            other => other,
        })?;
        Ok((resp, timeout))
    }

    /// Sends one chat turn; the status is checked before this returns.
    async fn turn(
        &self,
        inf: &Inferencer,
        body: &Value,
        streaming: bool,
    ) -> Result<(Answer, Duration), Error> {
        let timeout = self.timeouts().chat;
        let path = Endpoint::Chat.path();
        let body = bytes_of(body);
        let resp = openai::post(
            self.client(),
            self.fast(),
            inf,
            path,
            None,
            body,
            timeout,
            streaming,
        )
        .await?;
        Ok((resp, timeout))
    }

    /// [`Registry::complete`], except that an Ollama request asking for a
    /// context size (`options.num_ctx`) goes to the native API, as on
    /// pass-through (the Responses route uses it).
    pub async fn answer(&self, inf: &Inferencer, body: &Value) -> Result<Value, Error> {
        if let Value::Object(map) = body
            && inf.speaks_ollama()
            && ollama::wants_native(map)
        {
            let model = map.get("model").and_then(Value::as_str).unwrap_or("");
            return self
                .native_answer(inf, model, map, &ChunkHead::new(model))
                .await;
        }
        self.complete(inf, body).await
    }

    /// One non-streamed chat turn (`body` complete, `model` bare): the
    /// `chat.completion` the upstream answered, read whole (bounded by
    /// `openai::RESPONSE_LIMIT`).
    pub async fn complete(&self, inf: &Inferencer, body: &Value) -> Result<Value, Error> {
        if inf.is_claude() {
            return self.claude_complete(body).await;
        }
        let (resp, timeout) = self.turn(inf, body, false).await?;
        let url = inf.url(Endpoint::Chat.path());
        let bytes = openai::read_body(inf, &url, resp, timeout).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::BadResponse {
            inferencer: inf.name().to_string(),
            detail: format!("{url} did not answer JSON: {e}"),
        })
    }

    /// One streamed chat turn as typed events. A chunk that carries an
    /// `error` ends the stream with [`Error::StreamFailed`].
    pub async fn stream(
        &self,
        inf: &Inferencer,
        body: &Value,
    ) -> Result<BoxStream<'static, Result<ChatEvent, Error>>, Error> {
        if inf.is_claude() {
            return Ok(self.claude_stream(body)?.boxed());
        }
        let (resp, timeout) = self.turn(inf, body, true).await?;
        let name = inf.name().to_string();
        let metrics = inf.metrics.clone();
        let bytes = Box::pin(openai::relay(inf, resp, timeout));
        Ok(futures_util::stream::unfold(
            Some((
                bytes,
                DataLines::default(),
                std::collections::VecDeque::<Result<ChatEvent, Error>>::new(),
            )),
            move |state| {
                let name = name.clone();
                let metrics = metrics.clone();
                async move {
                    let (mut bytes, mut lines, mut ready) = state?;
                    loop {
                        if let Some(item) = ready.pop_front() {
                            // An error ends the stream.
                            let rest = item.is_ok().then_some((bytes, lines, ready));
                            return Some((item, rest));
                        }
                        let payloads = match bytes.next().await {
                            Some(Ok(chunk)) => lines.push(&chunk),
                            Some(Err(e)) => return Some((Err(e), None)),
                            None => match lines.finish() {
                                Some(last) => vec![last],
                                None => return None,
                            },
                        };
                        for data in payloads {
                            let data = data.trim();
                            if data == "[DONE]" || data.is_empty() {
                                continue;
                            }
                            let Ok(v) = serde_json::from_str::<Value>(data) else {
                                continue;
                            };
                            if v.get("error").is_some_and(|e| !e.is_null()) {
                                metrics.upstream_error(&name);
                                ready.push_back(Err(Error::StreamFailed {
                                    inferencer: name.clone(),
                                    body: Bytes::from(data.to_string()),
                                }));
                                break;
                            }
                            ready.extend(sse::events(&v).into_iter().map(Ok));
                        }
                    }
                }
            },
        )
        .boxed())
    }

    /// A chat request as one `claude` call. The CLI runs Claude with no tools
    /// but the ones a recipe grants, so a request carrying its own `tools`
    /// is refused rather than answered as if they did not exist.
    fn claude_call(body: &Value) -> Result<claude::Call, Error> {
        if body
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty())
        {
            return Err(Error::Refused(CLIENT_TOOLS.into()));
        }
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let (system, prompt) = claude::flatten(messages);
        Ok(claude::Call {
            model: body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            system,
            prompt,
            ..claude::Call::default()
        })
    }

    /// A whole `claude` answer as a `chat.completion`.
    async fn claude_complete(&self, body: &Value) -> Result<Value, Error> {
        let call = Self::claude_call(body)?;
        let model = call.model.clone();
        let metrics = &self.claude_code().metrics;
        let answer = self.claude().run(call).await.map_err(|e| {
            metrics.upstream_error(super::CLAUDE_CODE);
            claude_code(e)
        })?;
        Ok(claude_completion(&model, &answer))
    }

    /// A streamed `claude` answer as chat events: text deltas, then usage
    /// and `stop`.
    fn claude_stream(
        &self,
        body: &Value,
    ) -> Result<impl Stream<Item = Result<ChatEvent, Error>> + Send + 'static, Error> {
        let call = Self::claude_call(body)?;
        Ok(self.claude().events(call, true).flat_map(|e| {
            let out: Vec<Result<ChatEvent, Error>> = match e {
                Ok(claude::Event::Delta(t)) => vec![Ok(ChatEvent::Delta(t))],
                Ok(claude::Event::Done(answer)) => {
                    let mut v = Vec::new();
                    if let Some(u) = answer.usage {
                        v.push(Ok(ChatEvent::Usage(u)));
                    }
                    v.push(Ok(ChatEvent::Finish("stop".into())));
                    v
                }
                Ok(_) => Vec::new(),
                Err(e) => vec![Err(claude_code(e))],
            };
            futures_util::stream::iter(out)
        }))
    }

    /// Pass-through to `claude-code/<model>`: the answer composed as the
    /// chat API's (a stream's first event is awaited before the status, so
    /// a CLI that cannot start is a JSON error, not an empty stream).
    async fn claude_relay(
        &self,
        model: &str,
        body: &Map<String, Value>,
        stream: bool,
    ) -> Result<Relay, Error> {
        let body = Value::Object(body.clone());
        if !stream {
            return Ok(Relay::json(&self.claude_complete(&body).await?));
        }
        let mut events = self.claude_stream(&body)?.boxed();
        let first = events.next().await;
        if let Some(Err(e)) = first {
            return Err(e);
        }
        let head = ChunkHead::new(model);
        let mut opening = head.frame(&serde_json::json!({"role": "assistant"}), None);
        let mut done = false;
        if let Some(Ok(e)) = &first {
            let (b, end) = claude_frame(&head, e);
            opening.extend(b);
            done = end;
        }
        let rest = futures_util::stream::unfold(
            (events, head, done),
            |(mut events, head, done)| async move {
                if done {
                    return None;
                }
                let (bytes, end) = match events.next().await {
                    Some(Ok(e)) => claude_frame(&head, &e),
                    Some(Err(e)) => (failed_end(&e, &head), true),
                    None => (head.end("stop"), true),
                };
                Some((Ok(Bytes::from(bytes)), (events, head, end)))
            },
        )
        .filter(|b| std::future::ready(!matches!(b, Ok(b) if b.is_empty())));
        Ok(Relay {
            status: 200,
            content_type: "text/event-stream".into(),
            content_length: None,
            sse: true,
            body: futures_util::stream::once(async move { Ok(Bytes::from(opening)) })
                .chain(rest)
                .boxed(),
        })
    }
}

/// Why a `claude-code/<model>` request with its own `tools` is refused.
pub const CLIENT_TOOLS: &str = "claude-code/<model> cannot call the client's own tools (the `claude` CLI runs with no tools but the MCP tools a recipe grants); drop `tools`, or make a recipe with an MCP tool allow-list";

/// An upstream's answer as a [`Relay`]: its status and content type; a
/// small answer of known length read whole (bounded, and one write to the
/// client instead of a stream of them), anything else relayed as it
/// arrives.
async fn relayed(
    inf: &Inferencer,
    url: &(impl openai::Where + ?Sized),
    resp: Answer,
    stream: bool,
    timeout: Duration,
) -> Result<Relay, Error> {
    let content_type = resp
        .header(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(if stream {
            "text/event-stream"
        } else {
            "application/json"
        })
        .to_string();
    let status = resp.status().as_u16();
    let sse = content_type.starts_with("text/event-stream");
    let length = if stream { None } else { resp.content_length() };
    let body = match length {
        Some(n) if n <= SMALL_ANSWER => {
            let bytes = openai::read_body(inf, url, resp, timeout).await?;
            futures_util::stream::once(async move { Ok(bytes) }).boxed()
        }
        _ => openai::relay(inf, resp, timeout).boxed(),
    };
    Ok(Relay {
        status,
        sse,
        content_type,
        content_length: length,
        body,
    })
}

/// A `claude` failure as the `claude-code` backend's error.
fn claude_code(source: claude::Error) -> Error {
    Error::Claude {
        backend: "claude-code",
        source,
    }
}

/// A `claude` answer as a `chat.completion`.
pub fn claude_completion(model: &str, answer: &claude::Answer) -> Value {
    let id = wire::completion_id();
    let mut c = wire::ChatCompletion::new(
        &id,
        wire::now(),
        model,
        serde_json::json!({"role": "assistant", "content": answer.text}),
        "stop",
    )
    .to_value();
    if let Some(u) = &answer.usage {
        c["usage"] = u.clone();
    }
    c
}

/// The SSE bytes for one chat event of a `claude` stream, and whether the
/// stream is over.
fn claude_frame(head: &ChunkHead, e: &ChatEvent) -> (Vec<u8>, bool) {
    match e {
        ChatEvent::Delta(t) => (head.frame(&serde_json::json!({"content": t}), None), false),
        ChatEvent::Finish(reason) => (head.end(reason), true),
        _ => (Vec::new(), false),
    }
}

/// A failure after the stream started: one error frame, then the end.
fn failed_end(e: &Error, head: &ChunkHead) -> Vec<u8> {
    tracing::warn!(error = %e, "claude failed mid-stream");
    let mut b = wire::sse_raw(&wire::error_body(&e.to_string(), "server_error"));
    b.extend(head.end("stop"));
    b
}

/// Ollama's NDJSON stream as OpenAI SSE, as it arrives. A failure mid-way
/// is told with an error frame, and the stream still ends properly.
fn translated(
    ndjson: impl Stream<Item = Result<Bytes, Error>> + Send + 'static,
    translator: ollama::SseTranslator,
) -> impl Stream<Item = Result<Bytes, Error>> + Send + 'static {
    let ndjson = Box::pin(ndjson);
    futures_util::stream::unfold(Some((ndjson, translator)), |state| async move {
        let (mut ndjson, mut t) = state?;
        loop {
            let out = match ndjson.next().await {
                Some(Ok(chunk)) => {
                    let out = t.push(&chunk);
                    if out.is_empty() {
                        continue;
                    }
                    return Some((Ok(Bytes::from(out)), Some((ndjson, t))));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "native stream failed");
                    let mut out =
                        wire::sse_raw(&wire::error_body(&e.to_string(), "upstream_error"));
                    out.extend(t.finish());
                    out
                }
                None => t.finish(),
            };
            return Some((Ok(Bytes::from(out)), None));
        }
    })
}

fn bytes_of(v: &Value) -> Vec<u8> {
    // Serializing a Value cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}
