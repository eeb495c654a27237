//! One MCP session's handler: woollama's own tools and prompts, and the
//! downstreams' under their exposed names, each request proxied with its
//! caller (progress, logs, server→client requests) and cancellable.
//!
//! A request that came with a delegate's grant (`tools::grants`; the HTTP
//! auth layer attached its [`tools::Scope`]) sees only the granted tools:
//! no `chat` tool, no other tool, no prompts, resources or completions.
//! The scope is read per request, not per session, so a session id alone
//! never carries it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult, CompletionInfo,
    DiscoverResult, GetPromptRequestParams, GetPromptResponse, Implementation,
    InitializeRequestParams, InitializeResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, LoggingLevel, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, Reference, ResultType, ServerCapabilities,
    ServerConfig, SetLevelRequestParams, SubscribeRequestParams, SubscriptionFilter, Tool,
    UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use super::clients::{Channel, Clients, lock};
use super::errors;
use super::parked::{Bridged, Outcome, Parked, Reply, Round};
use super::{chat, prompts};
use crate::app::{AppState, Live};
use crate::tools::{self, Caller};

/// One MCP session's handler: cheap handles onto the shared state.
#[derive(Clone)]
pub struct Surface {
    live: Live,
    clients: Clients,
    /// Which session this is.
    id: u64,
    /// The level set by `logging/setLevel` (info by default).
    level: Arc<Mutex<LoggingLevel>>,
    /// 2026-07-28 calls waiting for their clients' input (every session's).
    parked: Parked,
    /// Cancelled when a stdio client goes away (see `Watched`): its listen
    /// streams end with it.
    pub(super) gone: tokio_util::sync::CancellationToken,
    /// The downstream snapshot when the session began (see
    /// `Clients::missed`).
    began: Arc<tools::Snapshot>,
    /// The resources this session subscribed to. A `resources/subscribe`
    /// may come before the session is registered with `clients` (its
    /// `initialized` is handled in a task of its own): registering takes
    /// them from here, and the lock orders the two.
    subscribed: Arc<Mutex<HashSet<String>>>,
}

static SESSIONS: AtomicU64 = AtomicU64::new(1);

impl Surface {
    pub(super) fn new(live: Live, clients: Clients, parked: Parked) -> Self {
        let began = live.load().tools.snapshot();
        Self {
            began,
            live,
            clients,
            id: SESSIONS.fetch_add(1, Ordering::Relaxed),
            level: Arc::new(Mutex::new(LoggingLevel::Info)),
            parked,
            gone: tokio_util::sync::CancellationToken::new(),
            subscribed: Arc::default(),
        }
    }

    /// The current snapshot of the app (a reload swaps it).
    pub(super) fn state(&self) -> AppState {
        self.live.load()
    }

    /// The least severe log level this request's client wants: the
    /// session's `logging/setLevel`, or on 2026-07-28 (no session) the level
    /// the request names in its `_meta` — none named, no log messages.
    fn log_threshold(&self, ctx: &RequestContext<RoleServer>) -> Option<LoggingLevel> {
        if ctx.meta.protocol_version().is_some() {
            ctx.meta.log_level()
        } else {
            Some(*lock(&self.level))
        }
    }

    pub(super) fn logs_info(&self, ctx: &RequestContext<RoleServer>) -> bool {
        self.log_threshold(ctx)
            .is_some_and(|l| tools::severity(LoggingLevel::Info) >= tools::severity(l))
    }

    /// The caller a proxied request is made for.
    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Caller {
        Caller {
            peer: ctx.peer.clone(),
            session: self.id,
            request_id: ctx.id.clone(),
            progress_token: ctx.meta.get_progress_token(),
            log_level: self.log_threshold(ctx),
            stateless: ctx.meta.protocol_version().is_some(),
            capabilities: ctx.client_capabilities(),
            asks: None,
        }
    }

    /// A 2026-07-28 request to a downstream (`method`: a `tools/call`,
    /// `prompts/get` or `resources/read`), or its retry with the client's
    /// input: run through `run` with the caller and whatever of the retry is
    /// the downstream's own, to its end or to the downstream's next
    /// question (then `input_required`, see `parked`).
    async fn bridged<F, Fut>(
        &self,
        method: &'static str,
        target: &str,
        mut retry: tools::Retry,
        ctx: &RequestContext<RoleServer>,
        run: F,
    ) -> Result<Round, ErrorData>
    where
        F: FnOnce(Caller, tools::Retry) -> Fut,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let parked = retry
            .request_state
            .as_deref()
            .and_then(|state| self.parked.take(state, method, target));
        let call = match parked {
            Some(mut call) => {
                call.answer(retry.input_responses.take());
                call
            }
            None => {
                // A state woollama did not issue goes to the downstream:
                // a 2026-07-28 one issued it (the tools layer refuses it
                // for an older one).
                let (to, asked) = tokio::sync::mpsc::unbounded_channel();
                let ended = tokio_util::sync::CancellationToken::new();
                let mut caller = self.caller(ctx);
                caller.asks = Some(tools::Asks {
                    to,
                    ended: ended.clone(),
                });
                let work = run(caller, retry);
                Bridged::start(
                    method,
                    target.to_string(),
                    async move {
                        // Cancelled however the call ends, aborted included.
                        let _ended = ended.drop_guard();
                        work.await
                    },
                    asked,
                )
            }
        };
        let parked = self.parked.clone();
        self.cancellable(ctx, async move { Ok(call.round(&parked).await) })
            .await
    }

    /// Races a proxied request against the client's cancellation, and its
    /// going away (dropping the request cancels it downstream).
    async fn cancellable<T>(
        &self,
        ctx: &RequestContext<RoleServer>,
        work: impl Future<Output = Result<T, ErrorData>>,
    ) -> Result<T, ErrorData> {
        tokio::select! {
            r = work => r,
            () = ctx.ct.cancelled() => Err(ErrorData::internal_error("the request was cancelled", None)),
            () = self.gone.cancelled() => Err(ErrorData::internal_error("the client went away", None)),
        }
    }

    /// The downstream snapshot, once the first connection attempts are over
    /// (bounded; see `ToolRegistry::settled`).
    async fn snapshot(&self) -> Arc<tools::Snapshot> {
        let limit = self
            .state()
            .tools
            .settings()
            .connect_timeout
            .min(std::time::Duration::from_secs(10));
        self.state().tools.settled(limit).await
    }

    /// Whether any downstream is configured (resources and completions are
    /// advertised then).
    fn aggregates(&self) -> bool {
        !self.state().config.servers.is_empty()
    }
}

/// The most of one downstream's `instructions` passed on.
const INSTRUCTIONS_MAX: usize = 2000;

/// woollama's instructions, then each connected downstream's own (under
/// its name, cut at [`INSTRUCTIONS_MAX`] characters), as clients read them
/// in `initialize` and `server/discover`.
fn instructions(snap: &tools::Snapshot) -> String {
    let mut text = String::from(
        "woollama routes between AI clients and backends. `chat` runs a recipe (a system prompt, a model \
         and a tool allow-list) and returns its answer; the recipes are also listed as prompts. Every \
         other tool, prompt and resource belongs to a downstream MCP server: tools and prompts are named \
         mcp__<server>__<name> and resources woollama://<server>/<uri>, unless that server is configured \
         to keep its own names.",
    );
    for s in &snap.servers {
        let Some(own) = s
            .instructions
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            continue;
        };
        let cut: String = own.chars().take(INSTRUCTIONS_MAX).collect();
        let more = if cut.len() < own.len() { " …" } else { "" };
        text.push_str(&format!("\n\nServer '{}' says: {cut}{more}", s.name));
    }
    text
}

/// The grant this request came with, if any.
fn scope(ctx: &RequestContext<RoleServer>) -> Option<Arc<tools::Scope>> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<Arc<tools::Scope>>())
        .cloned()
}

/// What a granted request may not reach.
fn outside_grant(what: &str) -> ErrorData {
    ErrorData::invalid_params(
        format!(
            "{what} is not granted to this delegate (it may call only the tools its recipe allows)"
        ),
        None,
    )
}

/// A downstream tool as woollama re-exports it: its own definition under its
/// wire name.
fn reexport(entry: &tools::ToolEntry) -> Tool {
    let mut t = entry.tool.clone();
    t.name = entry.wire.clone().into();
    t
}

/// Who woollama is, to its MCP clients.
fn implementation() -> Implementation {
    Implementation::new("woollama", env!("CARGO_PKG_VERSION")).with_title("woollama")
}

/// The `_meta` key where a 2026-07-28 result names the server that made it.
const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// A downstream's result names the downstream in its `_meta` (the Python
/// SDK does, on 2026-07-28); through woollama, woollama answered, so the
/// client learns woollama's name there, not one of its downstreams'.
fn as_woollama(meta: &mut Option<rmcp::model::MetaObject>) {
    if let Some(m) = meta.as_mut()
        && m.contains_key(SERVER_INFO)
    {
        m.insert(
            SERVER_INFO.to_string(),
            serde_json::to_value(implementation()).unwrap_or_default(),
        );
    }
}

/// A bridged request that came back as another kind of request (a bug).
fn mixed_up() -> ErrorData {
    ErrorData::internal_error(
        "woollama mixed up a bridged request with another kind; please report this",
        None,
    )
}

impl ServerHandler for Surface {
    fn get_info(&self) -> ServerConfig {
        let builder = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_logging();
        let capabilities = if self.aggregates() {
            builder
                .enable_resources()
                .enable_resources_subscribe()
                .enable_resources_list_changed()
                .enable_completions()
                .build()
        } else {
            builder.build()
        };
        ServerConfig::new(capabilities)
            .with_server_info(implementation())
            .with_instructions(instructions(&self.state().tools.snapshot()))
    }

    /// 2026-07-28 `server/discover`: the aggregated view (what woollama
    /// and its downstreams offer together, their instructions included), once
    /// the first connection attempts are over, so a client that asks the
    /// moment woollama starts learns about the downstreams too.
    async fn discover(&self, ctx: RequestContext<RoleServer>) -> Result<DiscoverResult, ErrorData> {
        self.snapshot().await;
        let mut info = self.get_info();
        if scope(&ctx).is_some() {
            // A delegate sees only its granted tools, not the servers' words.
            info.instructions = Some(instructions(&tools::Snapshot::default()));
        }
        Ok(DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            info,
        ))
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        ctx.peer.set_peer_info(request.clone());
        let mut result = self.negotiate_initialize(&request)?;
        if scope(&ctx).is_some() {
            result.instructions = Some(instructions(&tools::Snapshot::default()));
        }
        Ok(result)
    }

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        let channel = Channel::Session {
            peer: ctx.peer.clone(),
            level: Arc::clone(&self.level),
        };
        {
            let subscribed = lock(&self.subscribed);
            self.clients.add(self.id, channel, subscribed.clone());
        }
        Clients::missed(&ctx.peer, &self.began, &self.state().tools.snapshot()).await;
    }

    /// 2026-07-28 `subscriptions/listen`: every list change and resource
    /// update the client asks for (rmcp narrows the filter to what is
    /// advertised).
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, ctx: SubscriptionContext) -> Result<(), ErrorData> {
        let ended = async {
            tokio::select! {
                () = ctx.cancelled() => {}
                () = self.gone.cancelled() => {}
            }
        };
        if scope(ctx.request_context()).is_some() {
            // A delegate hears nothing outside its calls: no resource
            // updates, no other server's logs or list changes.
            ended.await;
            return Ok(());
        }
        let uris: HashSet<String> = ctx
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        for uri in &uris {
            if let Err(e) = self.state().tools.subscribe(uri, true).await {
                tracing::warn!(uri, error = %e, "a listen subscription could not be passed on");
            }
        }
        let id = SESSIONS.fetch_add(1, Ordering::Relaxed);
        self.clients
            .add(id, Channel::Listen(ctx.sink().clone()), uris.clone());
        ended.await;
        self.clients.remove(id);
        for uri in &uris {
            if !self.clients.subscribe(id, uri, false) {
                let _ = self.state().tools.subscribe(uri, false).await;
            }
        }
        Ok(())
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if ctx.meta.protocol_version().is_some() {
            // 2026-07-28 has no sessions: the level travels in each request's _meta.
            return Err(ErrorData::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                "logging/setLevel is not part of protocol 2026-07-28; send the level in each request's _meta",
                None,
            ));
        }
        *lock(&self.level) = request.level;
        Ok(())
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let snap = self.snapshot().await;
        if let Some(scope) = scope(&ctx) {
            let granted = snap.listed().filter(|t| scope.permits(&t.wire));
            return Ok(ListToolsResult::with_all_items(
                granted.map(reexport).collect(),
            ));
        }
        let mut tools = vec![chat::tool()];
        tools.extend(snap.listed().map(reexport));
        Ok(ListToolsResult::with_all_items(tools))
    }

    /// Lets rmcp validate `Mcp-Param-*` headers against a tool's schema.
    fn get_tool(&self, name: &str) -> Option<Tool> {
        if name == chat::NAME {
            return Some(chat::tool());
        }
        self.state().tools.snapshot().tool(name).map(reexport)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if scope(&ctx).is_some_and(|s| !s.permits(&request.name)) {
            tracing::warn!(tool = %request.name, "refused a delegate's call outside its grant");
            return Err(outside_grant(&format!("tool '{}'", request.name)));
        }
        if request.name == chat::NAME {
            return Ok(CallToolResponse::Complete(
                chat::run(self, request.arguments, ctx).await,
            ));
        }
        if self.state().tools.snapshot().tool(&request.name).is_none() {
            // Right after start-up the tool's server may still be connecting.
            self.snapshot().await;
        }
        let tools = self.state().tools.clone();
        let (name, arguments) = (request.name, request.arguments);
        let retry = tools::Retry {
            input_responses: request.input_responses,
            request_state: request.request_state,
        };
        let outcome = if ctx.meta.protocol_version().is_some() {
            let round = self
                .bridged(
                    "tools/call",
                    &name.clone(),
                    retry,
                    &ctx,
                    |caller, retry| async move {
                        let call = tools.call_for(&name, arguments, retry, Some(caller));
                        call.await.map(Reply::Tool)
                    },
                )
                .await?;
            match round {
                Round::Asked(asked) => return Ok(CallToolResponse::InputRequired(asked)),
                Round::Done(outcome) => outcome,
            }
        } else {
            let call = tools.call_for(&name, arguments, retry, Some(self.caller(&ctx)));
            self.cancellable(&ctx, async { Ok(call.await.map(Reply::Tool)) })
                .await?
        };
        match outcome {
            Ok(Reply::Tool(CallToolResponse::Complete(mut r))) => {
                // Older downstreams omit resultType; 2026-07-28 clients need it.
                r.result_type.get_or_insert(ResultType::COMPLETE);
                as_woollama(&mut r.meta);
                Ok(CallToolResponse::Complete(r))
            }
            Ok(Reply::Tool(CallToolResponse::InputRequired(mut r))) => {
                as_woollama(&mut r.meta);
                Ok(CallToolResponse::InputRequired(r))
            }
            Ok(Reply::Tool(other)) => Ok(other),
            Ok(_) => Err(mixed_up()),
            Err(e) => errors::tool_call(e).map(CallToolResponse::Complete),
        }
    }

    async fn list_prompts(
        &self,
        _: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        if scope(&ctx).is_some() {
            return Ok(ListPromptsResult::with_all_items(Vec::new()));
        }
        let mut list = prompts::list(&self.state().config.recipes);
        let snap = self.snapshot().await;
        list.extend(snap.prompts.iter().map(|p| {
            let mut prompt = p.prompt.clone();
            prompt.name.clone_from(&p.wire);
            prompt
        }));
        Ok(ListPromptsResult::with_all_items(list))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if scope(&ctx).is_some() {
            return Err(outside_grant("a prompt"));
        }
        if self.state().config.recipes.contains_key(&request.name)
            || self.snapshot().await.prompt(&request.name).is_none()
        {
            return prompts::get(&self.state().config.recipes, &request)
                .map(GetPromptResponse::Complete);
        }
        let tools = self.state().tools.clone();
        let outcome = if ctx.meta.protocol_version().is_some() {
            let retry = tools::Retry {
                input_responses: request.input_responses.clone(),
                request_state: request.request_state.clone(),
            };
            let round = self
                .bridged(
                    "prompts/get",
                    &request.name.clone(),
                    retry,
                    &ctx,
                    |caller, retry| async move {
                        let mut request = request;
                        request.input_responses = retry.input_responses;
                        request.request_state = retry.request_state;
                        let get = tools.get_prompt(request, Some(caller));
                        get.await.map(Reply::Prompt)
                    },
                )
                .await?;
            match round {
                Round::Asked(asked) => return Ok(GetPromptResponse::InputRequired(asked)),
                Round::Done(outcome) => outcome,
            }
        } else {
            let get = tools.get_prompt(request, Some(self.caller(&ctx)));
            self.cancellable(&ctx, async { Ok(get.await.map(Reply::Prompt)) })
                .await?
        };
        match outcome.map_err(errors::protocol)? {
            Reply::Prompt(GetPromptResponse::Complete(mut r)) => {
                r.result_type.get_or_insert(ResultType::COMPLETE);
                as_woollama(&mut r.meta);
                Ok(GetPromptResponse::Complete(r))
            }
            Reply::Prompt(GetPromptResponse::InputRequired(mut r)) => {
                as_woollama(&mut r.meta);
                Ok(GetPromptResponse::InputRequired(r))
            }
            _ => Err(mixed_up()),
        }
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        if scope(&ctx).is_some() {
            return Ok(ListResourcesResult::with_all_items(Vec::new()));
        }
        let snap = self.snapshot().await;
        let list = snap.resources.iter().map(|r| {
            let mut resource = r.resource.clone();
            resource.uri.clone_from(&r.uri);
            resource
        });
        Ok(ListResourcesResult::with_all_items(list.collect()))
    }

    async fn list_resource_templates(
        &self,
        _: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        if scope(&ctx).is_some() {
            return Ok(ListResourceTemplatesResult::with_all_items(Vec::new()));
        }
        let snap = self.snapshot().await;
        let list = snap.templates.iter().map(|t| {
            let mut template = t.template.clone();
            template.uri_template.clone_from(&t.uri_template);
            template
        });
        Ok(ListResourceTemplatesResult::with_all_items(list.collect()))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if scope(&ctx).is_some() {
            return Err(outside_grant("a resource"));
        }
        self.snapshot().await;
        let tools = self.state().tools.clone();
        let retry = tools::Retry {
            input_responses: request.input_responses,
            request_state: request.request_state,
        };
        let uri = request.uri;
        let outcome = if ctx.meta.protocol_version().is_some() {
            let round = self
                .bridged(
                    "resources/read",
                    &uri.clone(),
                    retry,
                    &ctx,
                    |caller, retry| async move {
                        let read = tools.read_resource(&uri, retry, Some(caller));
                        read.await.map(Reply::Resource)
                    },
                )
                .await?;
            match round {
                Round::Asked(asked) => return Ok(ReadResourceResponse::InputRequired(asked)),
                Round::Done(outcome) => outcome,
            }
        } else {
            let read = tools.read_resource(&uri, retry, Some(self.caller(&ctx)));
            self.cancellable(&ctx, async { Ok(read.await.map(Reply::Resource)) })
                .await?
        };
        match outcome.map_err(errors::protocol)? {
            Reply::Resource(ReadResourceResponse::Complete(mut r)) => {
                r.result_type.get_or_insert(ResultType::COMPLETE);
                as_woollama(&mut r.meta);
                Ok(ReadResourceResponse::Complete(r))
            }
            Reply::Resource(ReadResourceResponse::InputRequired(mut r)) => {
                as_woollama(&mut r.meta);
                Ok(ReadResourceResponse::InputRequired(r))
            }
            _ => Err(mixed_up()),
        }
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if scope(&ctx).is_some() {
            return Err(outside_grant("a resource"));
        }
        self.state()
            .tools
            .subscribe(&request.uri, true)
            .await
            .map_err(errors::protocol)?;
        let mut subscribed = lock(&self.subscribed);
        subscribed.insert(request.uri.clone());
        self.clients.subscribe(self.id, &request.uri, true);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let others = {
            let mut subscribed = lock(&self.subscribed);
            subscribed.remove(&request.uri);
            self.clients.subscribe(self.id, &request.uri, false)
        };
        if !others {
            self.state()
                .tools
                .subscribe(&request.uri, false)
                .await
                .map_err(errors::protocol)?;
        }
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        if scope(&ctx).is_some() {
            return Err(outside_grant("completion"));
        }
        if let Reference::Prompt(p) = &request.r#ref
            && let Some(values) = prompts::complete(
                &self.state().config.recipes,
                &p.name,
                &request.argument.name,
                &request.argument.value,
            )
        {
            let info =
                CompletionInfo::new(values).map_err(|e| ErrorData::internal_error(e, None))?;
            return Ok(CompleteResult::new(info));
        }
        let mut r = self
            .state()
            .tools
            .complete(request)
            .await
            .map_err(errors::protocol)?
            .unwrap_or_default();
        r.result_type.get_or_insert(ResultType::COMPLETE);
        Ok(r)
    }
}
