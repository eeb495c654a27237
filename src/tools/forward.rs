//! What travels back up a proxied call: a downstream's progress, log
//! messages and server→client requests (sampling, elicitation, roots) go to
//! the MCP client whose call is in flight.
//!
//! - rmcp gives every outbound request a progress token of its own, so each
//!   call is registered under that token and the downstream request id; a
//!   progress notification is sent on with the caller's token (or dropped if
//!   the caller did not ask for progress).
//! - A server→client request is matched to its call by the HTTP stream it
//!   arrived on when rmcp knows it, else to the most recent call in flight on
//!   that server. It is re-sent to the caller tagged with the caller's
//!   request id, so a Streamable HTTP client gets it on that request's own
//!   stream. A caller that did not declare the capability, or no call in
//!   flight, gets the downstream a clean JSON-RPC error saying so.
//! - Log messages go to the callers in flight on that server, or to every
//!   connected client when there is none (see [`super::Event::Log`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    ClientCapabilities, ClientResult, CreateMessageRequest, CreateMessageRequestParams,
    CreateMessageResult, ElicitRequest, ElicitRequestParams, ElicitResult, ErrorCode,
    ListRootsRequest, ListRootsResult, LoggingLevel, LoggingMessageNotificationParam,
    ProgressNotificationParam, ProgressToken, RequestId, ServerRequest,
};
use rmcp::service::{InboundStreamOrigin, OriginatingRequestId, RequestContext};
use rmcp::{ErrorData, Peer, RoleClient, RoleServer, ServiceError};
use tokio::sync::Notify;

/// The MCP client a proxied call is made for.
#[derive(Clone)]
pub struct Caller {
    pub peer: Peer<RoleServer>,
    /// Which MCP session the peer belongs to (one log copy per session).
    pub session: u64,
    /// The caller's request (server→client requests are tagged with it).
    pub request_id: RequestId,
    /// The caller's progress token, when it asked for progress.
    pub progress_token: Option<ProgressToken>,
    /// The least severe log level the caller wants; `None`: no log messages
    /// (a 2026-07-28 request that named no level).
    pub log_level: Option<LoggingLevel>,
    /// A 2026-07-28 request (no session): a call that needed a capability
    /// it did not declare is refused with -32021 as a whole.
    pub stateless: bool,
    /// What the request declared it can do: its `_meta` on 2026-07-28, else
    /// the session's `initialize`.
    pub capabilities: Option<ClientCapabilities>,
    /// For a 2026-07-28 caller: where a downstream's request for input goes,
    /// to become an `input_required` result (multi-round-trip requests)
    /// instead of a request on the response stream, which that protocol
    /// does not carry.
    pub asks: Option<Asks>,
}

/// Where a 2026-07-28 call's questions go, and the call's end: a question
/// still waiting when the call ends (it timed out, or was let go) is
/// answered with an error at once, so the downstream is never left hanging.
#[derive(Clone)]
pub struct Asks {
    pub to: tokio::sync::mpsc::UnboundedSender<Ask>,
    pub ended: tokio_util::sync::CancellationToken,
}

/// A downstream's request for the client's input, and where the client's
/// answer (the result as JSON, or why there is none) goes.
pub struct Ask {
    pub request: rmcp::model::InputRequest,
    pub answer: tokio::sync::oneshot::Sender<Result<serde_json::Value, ErrorData>>,
}

/// How long a downstream's request for input waits for the client's retry.
pub const ASK_LIMIT: Duration = Duration::from_secs(300);

struct Call {
    key: u64,
    /// The downstream request and its progress token; `None` for the moment
    /// between registering a call and rmcp handing back its ids.
    ids: Option<(RequestId, ProgressToken)>,
    caller: Caller,
    /// A capability the downstream asked the caller for, which the caller
    /// had not declared.
    missing: Option<ClientCapabilities>,
}

/// The calls in flight on one downstream, with their callers.
#[derive(Default)]
pub(super) struct InFlight {
    calls: Mutex<Vec<Call>>,
    next: AtomicU64,
    /// Signalled whenever a call gets its ids or goes away.
    settled: Notify,
}

/// A call's place in [`InFlight`]; removed when dropped.
pub(super) struct Registration {
    inflight: Arc<InFlight>,
    key: u64,
}

impl Registration {
    /// Records the ids rmcp gave the downstream request.
    pub fn sent(&self, request: RequestId, token: ProgressToken) {
        for c in self
            .inflight
            .lock()
            .iter_mut()
            .filter(|c| c.key == self.key)
        {
            c.ids = Some((request.clone(), token.clone()));
        }
        self.inflight.settled.notify_waiters();
    }

    /// A capability the downstream needed and the caller had not declared
    /// during this call, if any.
    pub fn missing(&self) -> Option<ClientCapabilities> {
        self.inflight
            .lock()
            .iter()
            .find(|c| c.key == self.key)
            .and_then(|c| c.missing.clone())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.inflight.lock().retain(|c| c.key != self.key);
        self.inflight.settled.notify_waiters();
    }
}

/// How long a notification waits for its call's ids (which take
/// microseconds: the request is being handed to rmcp's send loop).
const IDS_WAIT: Duration = Duration::from_secs(2);

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Call>> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a call **before** it is sent, so whatever the downstream
    /// sends back about it finds its caller.
    pub fn register(self: &Arc<Self>, caller: Caller) -> Registration {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().push(Call {
            key,
            ids: None,
            caller,
            missing: None,
        });
        Registration {
            inflight: Arc::clone(self),
            key,
        }
    }

    /// The caller of the call with this progress token, waiting (bounded)
    /// for calls still being sent.
    async fn by_token(&self, token: &ProgressToken) -> Option<Caller> {
        let found = tokio::time::timeout(IDS_WAIT, async {
            loop {
                let settled = self.settled.notified();
                tokio::pin!(settled);
                settled.as_mut().enable();
                {
                    let calls = self.lock();
                    if let Some(c) = calls
                        .iter()
                        .find(|c| c.ids.as_ref().is_some_and(|(_, t)| t == token))
                    {
                        return Some(c.caller.clone());
                    }
                    if calls.iter().all(|c| c.ids.is_some()) {
                        return None;
                    }
                }
                settled.await;
            }
        })
        .await;
        found.ok().flatten()
    }

    /// The caller a server→client request belongs to: the call on whose
    /// stream it came when rmcp knows it, else the most recent call.
    fn for_request(&self, ctx: &RequestContext<RoleClient>) -> Option<(u64, Caller)> {
        let calls = self.lock();
        if let Some(InboundStreamOrigin::OutboundRequest(id)) = ctx.extensions.get()
            && let Some(c) = calls
                .iter()
                .find(|c| c.ids.as_ref().is_some_and(|(r, _)| r == id))
        {
            return Some((c.key, c.caller.clone()));
        }
        calls.last().map(|c| (c.key, c.caller.clone()))
    }

    /// Notes that call `key` needed `required`, which its caller lacks.
    fn mark_missing(&self, key: u64, required: &ClientCapabilities) {
        for c in self.lock().iter_mut().filter(|c| c.key == key) {
            c.missing = Some(required.clone());
        }
    }

    /// Every caller in flight (one entry per call).
    pub fn callers(&self) -> Vec<Caller> {
        self.lock().iter().map(|c| c.caller.clone()).collect()
    }
}

/// Sends a downstream's progress on to the caller, under the caller's token.
pub(super) async fn progress(inflight: &InFlight, mut params: ProgressNotificationParam) {
    let Some(caller) = inflight.by_token(&params.progress_token).await else {
        return;
    };
    let Some(token) = caller.progress_token else {
        return;
    };
    params.progress_token = token;
    let _ = caller.peer.notify_progress(params).await;
}

/// How severe a log level is (debug lowest).
pub fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// Sends a downstream's log message to its callers in flight; `false` when
/// there were none (the caller broadcasts it instead).
pub(super) async fn log(
    inflight: &InFlight,
    server: &str,
    mut params: LoggingMessageNotificationParam,
) -> bool {
    let callers = inflight.callers();
    if callers.is_empty() {
        return false;
    }
    params.logger.get_or_insert_with(|| server.to_string());
    let mut sent = Vec::new();
    for c in &callers {
        let wanted = c
            .log_level
            .is_some_and(|l| severity(params.level) >= severity(l));
        if !wanted || sent.contains(&c.session) {
            continue;
        }
        sent.push(c.session);
        let _ = c.peer.notify_logging_message(params.clone()).await;
    }
    true
}

/// Which server→client request is being forwarded.
#[derive(Clone, Copy)]
enum Kind {
    Sampling,
    Elicitation,
    Roots,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Sampling => "sampling",
            Kind::Elicitation => "elicitation",
            Kind::Roots => "roots",
        }
    }
}

/// The caller for a server→client request of `kind`, or the error the
/// downstream gets.
fn caller_for(
    inflight: &InFlight,
    server: &str,
    kind: Kind,
    ctx: &RequestContext<RoleClient>,
) -> Result<Caller, ErrorData> {
    let Some((key, caller)) = inflight.for_request(ctx) else {
        return Err(ErrorData::invalid_request(
            format!(
                "woollama cannot forward a {} request from server '{server}': no client call to it is in flight",
                kind.as_str()
            ),
            None,
        ));
    };
    if let Some(required) = undeclared(&caller, kind) {
        // -32021, naming the capability: the downstream can pass it on, and
        // the client (on 2026-07-28 with HTTP 400) learns what to declare.
        inflight.mark_missing(key, &required);
        return Err(ErrorData::new(
            ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY,
            format!(
                "the client calling server '{server}' through woollama does not support {}",
                kind.as_str()
            ),
            Some(serde_json::json!({ "requiredCapabilities": required })),
        ));
    }
    if caller.stateless && caller.asks.is_none() {
        // A 2026-07-28 response stream carries no server→client request:
        // the ask would have to become an `input_required` result.
        return Err(ErrorData::invalid_request(
            format!(
                "woollama cannot yet pass a {} request from server '{server}' to a 2026-07-28 client (as input_required)",
                kind.as_str()
            ),
            None,
        ));
    }
    Ok(caller)
}

/// Asks a 2026-07-28 caller through its `input_required` rounds: the
/// client's answer, as the result type the downstream expects.
async fn ask<T: serde::de::DeserializeOwned>(
    asks: &Asks,
    request: rmcp::model::InputRequest,
) -> Result<T, ErrorData> {
    let ended = || {
        ErrorData::internal_error(
            "the client's call ended before it answered (it timed out, or the client did not come back)",
            None,
        )
    };
    let (answer, answered) = tokio::sync::oneshot::channel();
    asks.to.send(Ask { request, answer }).map_err(|_| ended())?;
    let value = tokio::select! {
        a = tokio::time::timeout(ASK_LIMIT, answered) => a
            .map_err(|_| {
                ErrorData::internal_error(
                    format!("the client did not answer within {}s", ASK_LIMIT.as_secs()),
                    None,
                )
            })?
            .map_err(|_| ended())??,
        () = asks.ended.cancelled() => return Err(ended()),
    };
    serde_json::from_value(value)
        .map_err(|e| ErrorData::invalid_params(format!("the client's answer: {e}"), None))
}

async fn send(caller: &Caller, mut request: ServerRequest) -> Result<ClientResult, ErrorData> {
    use rmcp::model::GetExtensions;
    request
        .extensions_mut()
        .insert(OriginatingRequestId(caller.request_id.clone()));
    caller
        .peer
        .send_request(request)
        .await
        .map_err(|e| match e {
            ServiceError::McpError(e) => e,
            other => ErrorData::internal_error(
                format!("the client did not answer through woollama: {other}"),
                None,
            ),
        })
}

fn unexpected() -> ErrorData {
    ErrorData::internal_error("the client answered with an unexpected result", None)
}

pub(super) async fn sampling(
    inflight: &InFlight,
    server: &str,
    params: CreateMessageRequestParams,
    ctx: RequestContext<RoleClient>,
) -> Result<CreateMessageResult, ErrorData> {
    let caller = caller_for(inflight, server, Kind::Sampling, &ctx)?;
    if let Some(asks) = caller.asks.as_ref().filter(|_| caller.stateless) {
        let request = rmcp::model::InputRequest::CreateMessage(CreateMessageRequest::new(params));
        return ask(asks, request).await;
    }
    let request = ServerRequest::CreateMessageRequest(CreateMessageRequest::new(params));
    match send(&caller, request).await? {
        ClientResult::CreateMessageResult(r) => Ok(*r),
        _ => Err(unexpected()),
    }
}

pub(super) async fn elicitation(
    inflight: &InFlight,
    server: &str,
    params: ElicitRequestParams,
    ctx: RequestContext<RoleClient>,
) -> Result<ElicitResult, ErrorData> {
    let caller = caller_for(inflight, server, Kind::Elicitation, &ctx)?;
    if let Some(asks) = caller.asks.as_ref().filter(|_| caller.stateless) {
        let request = rmcp::model::InputRequest::Elicitation(ElicitRequest::new(params));
        return ask(asks, request).await;
    }
    let request = ServerRequest::ElicitRequest(ElicitRequest::new(params));
    match send(&caller, request).await? {
        ClientResult::ElicitResult(r) => Ok(r),
        _ => Err(unexpected()),
    }
}

pub(super) async fn roots(
    inflight: &InFlight,
    server: &str,
    ctx: RequestContext<RoleClient>,
) -> Result<ListRootsResult, ErrorData> {
    let caller = caller_for(inflight, server, Kind::Roots, &ctx)?;
    if let Some(asks) = caller.asks.as_ref().filter(|_| caller.stateless) {
        let request = rmcp::model::InputRequest::ListRoots(ListRootsRequest::default());
        return ask(asks, request).await;
    }
    let request = ServerRequest::ListRootsRequest(ListRootsRequest::default());
    match send(&caller, request).await? {
        ClientResult::ListRootsResult(r) => Ok(r),
        _ => Err(unexpected()),
    }
}

/// Answers a 2026-07-28 downstream's `input_required` questions from an
/// older caller: each one becomes the request it names, sent on the
/// caller's session (tagged with its request, so a Streamable HTTP client
/// gets it on that request's stream), and its result is the answer under
/// the same key.
///
/// # Errors
///
/// A question for a capability the caller did not declare (the server was
/// told what it declared, so this is the server's mistake), or a client
/// that refused or failed to answer: the call cannot go on.
pub(super) async fn fulfil(
    caller: &Caller,
    server: &str,
    questions: rmcp::model::InputRequests,
) -> Result<rmcp::model::InputResponses, super::Error> {
    use rmcp::model::InputRequest;
    let mut answers = rmcp::model::InputResponses::new();
    for (key, question) in questions {
        let (kind, request) = match question {
            InputRequest::CreateMessage(r) => {
                (Kind::Sampling, ServerRequest::CreateMessageRequest(r))
            }
            InputRequest::Elicitation(r) => (Kind::Elicitation, ServerRequest::ElicitRequest(r)),
            InputRequest::ListRoots(r) => (Kind::Roots, ServerRequest::ListRootsRequest(r)),
            other => {
                return Err(super::Error::Input {
                    server: server.to_string(),
                    detail: format!(
                        "its input request '{key}' is of a kind woollama does not know: {}",
                        serde_json::to_string(&other).unwrap_or_default()
                    ),
                });
            }
        };
        if let Some(required) = undeclared(caller, kind) {
            return Err(super::Error::MissingCapability {
                server: server.to_string(),
                required: Box::new(required),
            });
        }
        let refused = |detail: String| super::Error::Input {
            server: server.to_string(),
            detail: format!("its {} request ('{key}'): {detail}", kind.as_str()),
        };
        let answer = match send(caller, request).await {
            Ok(ClientResult::CreateMessageResult(r)) => serde_json::to_value(r),
            Ok(ClientResult::ElicitResult(r)) => serde_json::to_value(r),
            Ok(ClientResult::ListRootsResult(r)) => serde_json::to_value(r),
            Ok(_) => return Err(refused(unexpected().message.to_string())),
            Err(e) => {
                return Err(refused(format!(
                    "the client answered with an error: {}",
                    e.message
                )));
            }
        }
        .map_err(|e| refused(e.to_string()))?;
        answers.insert(key, answer);
    }
    Ok(answers)
}

/// The capability `kind` needs, when `caller` did not declare it.
fn undeclared(caller: &Caller, kind: Kind) -> Option<ClientCapabilities> {
    let declared = caller.capabilities.as_ref().is_some_and(|c| match kind {
        Kind::Sampling => c.sampling.is_some(),
        Kind::Elicitation => c.elicitation.is_some(),
        Kind::Roots => c.roots.is_some(),
    });
    (!declared).then(|| match kind {
        Kind::Sampling => ClientCapabilities::builder().enable_sampling().build(),
        Kind::Elicitation => ClientCapabilities::builder().enable_elicitation().build(),
        Kind::Roots => ClientCapabilities::builder().enable_roots().build(),
    })
}
