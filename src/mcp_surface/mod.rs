//! woollama as an MCP server: one server that carries the recipes (as
//! prompts), the `chat` tool that runs a recipe, and everything the
//! downstream servers offer — tools, prompts, resources, resource templates
//! and completions — over stdio (`woollama mcp`) and Streamable HTTP at
//! `/mcp` on the daemon's own listeners. Every session shares the one
//! downstream registry.
//!
//! - Identity: `serverInfo` is `woollama` with our version; capabilities
//!   advertise tools and prompts with `listChanged`, logging, and — when
//!   `mcp.json` has servers — resources (with `subscribe` and `listChanged`)
//!   and completions.
//! - Names come from the registry's aggregated namespace (see
//!   `tools::catalog`): `mcp__<server>__<name>` and `woollama://<server>/<uri>`,
//!   or a server's own names when it is configured `"prefix": false`.
//! - Re-exported tools keep their downstream definitions verbatim (input and
//!   output schemas with `$schema`, `$defs`, `additionalProperties`), and
//!   results come back verbatim (`structuredContent`, `isError`). An unknown
//!   tool is a protocol error; a downstream that fails is a tool error; a
//!   downstream's own JSON-RPC error is forwarded as it came.
//! - A proxied request carries its caller along (`tools::Caller`): the
//!   downstream's progress (under the caller's token), log messages and
//!   sampling/elicitation/roots requests reach the client that made it;
//!   cancelling the request cancels it downstream.
//! - When a downstream's lists change, every connected client gets the
//!   matching `list_changed`; a resource update reaches the sessions that
//!   subscribed to it.
#![expect(
    deprecated,
    reason = "MCP logging, resources/subscribe and sampling (deprecated by SEP-2577) are still what 2025-11-25 clients use"
)]

mod chat;
mod prompts;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    CompletionInfo, ContentBlock, GetPromptRequestParams, GetPromptResponse, Implementation,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    LoggingLevel, LoggingMessageNotificationParam, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, Reference, ResourceUpdatedNotificationParam,
    ResultType, ServerCapabilities, ServerConfig, SetLevelRequestParams, SubscribeRequestParams,
    Tool, UnsubscribeRequestParams,
};
use rmcp::model::{ResourceUpdatedNotification, ServerNotification, SubscriptionFilter};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext, SubscriptionSink};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler, ServiceExt};

use crate::config::Config;
use crate::http::AppState;
use crate::tools::{self, Caller, Event, Reserved};

/// The names woollama's own surface takes: the `chat` tool and one prompt
/// per recipe. An unprefixed downstream's names never shadow them.
pub fn reserved(config: &Config) -> Reserved {
    Reserved {
        tools: vec![chat::NAME.to_string()],
        prompts: config.recipes.keys().cloned().collect(),
    }
}

/// Where a client hears what is not an answer: its session (2025-11-25), or
/// a `subscriptions/listen` stream (2026-07-28, which has no sessions).
#[derive(Clone)]
enum Channel {
    Session {
        peer: Peer<RoleServer>,
        level: Arc<Mutex<LoggingLevel>>,
    },
    Listen(SubscriptionSink),
}

/// One client that can be told of changes.
struct Listener {
    id: u64,
    channel: Channel,
    /// Resource URIs (as this client sees them) it subscribed to.
    subscriptions: HashSet<String>,
}

impl Listener {
    fn gone(&self) -> bool {
        match &self.channel {
            Channel::Session { peer, .. } => peer.is_transport_closed(),
            Channel::Listen(_) => false, // removed when its listen request ends
        }
    }
}

/// The clients connected to this process's MCP surface: for `list_changed`,
/// log messages sent outside of a call, and resource updates.
#[derive(Clone, Default)]
pub struct Clients(Arc<Mutex<Vec<Listener>>>);

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clients({})", self.lock().len())
    }
}

/// Which list changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Tools,
    Prompts,
    Resources,
}

impl Clients {
    fn add(&self, id: u64, channel: Channel, subscriptions: HashSet<String>) {
        self.lock().push(Listener {
            id,
            channel,
            subscriptions,
        });
    }

    fn remove(&self, id: u64) {
        self.lock().retain(|l| l.id != id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Listener>> {
        lock(&self.0)
    }

    /// The live channels matching `pick`; forgets the sessions gone.
    fn channels(&self, pick: impl Fn(&Listener) -> bool) -> Vec<Channel> {
        let mut all = self.lock();
        all.retain(|l| !l.gone());
        all.iter()
            .filter(|l| pick(l))
            .map(|l| l.channel.clone())
            .collect()
    }

    async fn changed(&self, list: List) {
        for c in self.channels(|_| true) {
            match c {
                Channel::Session { peer, .. } => {
                    let _ = match list {
                        List::Tools => peer.notify_tool_list_changed().await,
                        List::Prompts => peer.notify_prompt_list_changed().await,
                        List::Resources => peer.notify_resource_list_changed().await,
                    };
                }
                // A listener that did not ask for this list refuses it; fine.
                Channel::Listen(sink) => {
                    let _ = match list {
                        List::Tools => sink.notify_tool_list_changed().await,
                        List::Prompts => sink.notify_prompt_list_changed().await,
                        List::Resources => sink.notify_resource_list_changed().await,
                    };
                }
            }
        }
    }

    /// A log message sent outside of any call: to every session whose level
    /// admits it (2026-07-28 has no place for such messages).
    async fn log(&self, params: LoggingMessageNotificationParam) {
        let wanted = tools::severity(params.level);
        for c in self.channels(|_| true) {
            if let Channel::Session { peer, level } = c
                && wanted >= tools::severity(*lock(&level))
            {
                let _ = peer.notify_logging_message(params.clone()).await;
            }
        }
    }

    async fn resource_updated(&self, uri: &str) {
        let params = ResourceUpdatedNotificationParam::new(uri);
        for c in self.channels(|l| l.subscriptions.contains(uri)) {
            match c {
                Channel::Session { peer, .. } => {
                    let _ = peer.notify_resource_updated(params.clone()).await;
                }
                Channel::Listen(sink) => {
                    let update = ResourceUpdatedNotification::new(params.clone());
                    let _ = sink
                        .send(ServerNotification::ResourceUpdatedNotification(update))
                        .await;
                }
            }
        }
    }

    /// Records a (un)subscription; `true` when another client still holds
    /// one to `uri` (so the downstream subscription stays).
    fn subscribe(&self, id: u64, uri: &str, on: bool) -> bool {
        let mut all = self.lock();
        for l in all.iter_mut().filter(|l| l.id == id) {
            if on {
                l.subscriptions.insert(uri.to_string());
            } else {
                l.subscriptions.remove(uri);
            }
        }
        all.iter()
            .any(|l| l.id != id && l.subscriptions.contains(uri))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a client's lists are made of, to tell which one changed.
#[derive(PartialEq, Eq, Default)]
struct Lists {
    tools: Vec<String>,
    prompts: Vec<String>,
    resources: BTreeSet<String>,
}

impl Lists {
    fn of(s: &tools::Snapshot) -> Self {
        Self {
            tools: s.listed().map(|t| t.wire.clone()).collect(),
            prompts: s.prompts.iter().map(|p| p.wire.clone()).collect(),
            resources: s
                .resources
                .iter()
                .map(|r| r.uri.clone())
                .chain(s.templates.iter().map(|t| t.uri_template.clone()))
                .collect(),
        }
    }
}

/// Follows the downstream registry: sends `list_changed` when a list
/// changes, resource updates to the sessions subscribed, and log messages
/// sent outside of any call to every session. Ends with the daemon.
pub fn spawn_list_changed(state: &AppState, clients: Clients) {
    let registry = state.tools.clone();
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let mut rx = registry.watch();
        let mut events = registry.events();
        let mut last = Lists::of(&registry.snapshot());
        loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() { return }
                    // Clone out of the channel before awaiting anything.
                    let now = Lists::of(&Arc::clone(&rx.borrow_and_update()));
                    for (list, differs) in [
                        (List::Tools, now.tools != last.tools),
                        (List::Prompts, now.prompts != last.prompts),
                        (List::Resources, now.resources != last.resources),
                    ] {
                        if differs {
                            clients.changed(list).await;
                        }
                    }
                    last = now;
                }
                event = events.recv() => match event {
                    Ok(Event::ResourceUpdated { server, uri }) => {
                        let exposed = registry.snapshot().exposed_uri(&server, &uri);
                        clients.resource_updated(&exposed).await;
                    }
                    Ok(Event::Log { server, mut params }) => {
                        params.logger.get_or_insert(server);
                        clients.log(params).await;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "MCP clients missed downstream notifications");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                () = shutdown.cancelled() => return,
            }
        }
    });
}

/// One MCP session's handler: cheap handles onto the shared state.
#[derive(Clone)]
pub struct Surface {
    state: AppState,
    clients: Clients,
    /// Which session this is.
    id: u64,
    /// The level set by `logging/setLevel` (info by default).
    level: Arc<Mutex<LoggingLevel>>,
}

static SESSIONS: AtomicU64 = AtomicU64::new(1);

impl Surface {
    pub fn new(state: AppState, clients: Clients) -> Self {
        Self {
            state,
            clients,
            id: SESSIONS.fetch_add(1, Ordering::Relaxed),
            level: Arc::new(Mutex::new(LoggingLevel::Info)),
        }
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

    fn logs_info(&self, ctx: &RequestContext<RoleServer>) -> bool {
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
        }
    }

    /// The downstream snapshot, once the first connection attempts are over
    /// (bounded; see `ToolRegistry::settled`).
    async fn snapshot(&self) -> Arc<tools::Snapshot> {
        let limit = self
            .state
            .tools
            .settings()
            .connect_timeout
            .min(std::time::Duration::from_secs(10));
        self.state.tools.settled(limit).await
    }

    /// Whether any downstream is configured (resources and completions are
    /// advertised then).
    fn aggregates(&self) -> bool {
        !self.state.config.servers.is_empty()
    }
}

/// A downstream tool as woollama re-exports it: its own definition under its
/// wire name.
fn reexport(entry: &tools::ToolEntry) -> Tool {
    let mut t = entry.tool.clone();
    t.name = entry.wire.clone().into();
    t
}

/// A registry failure as the JSON-RPC error a client gets.
fn protocol_error(e: tools::Error) -> ErrorData {
    match e {
        tools::Error::Protocol { error, .. } => *error,
        tools::Error::UnknownResource(_) => ErrorData::resource_not_found(e.to_string(), None),
        tools::Error::UnknownTool(_) | tools::Error::UnknownPrompt(_) => {
            ErrorData::invalid_params(e.to_string(), None)
        }
        other => ErrorData::internal_error(other.to_string(), None),
    }
}

/// Races a proxied request against the client's cancellation (dropping the
/// request cancels it downstream).
async fn cancellable<T>(
    ctx: &RequestContext<RoleServer>,
    work: impl Future<Output = Result<T, ErrorData>>,
) -> Result<T, ErrorData> {
    tokio::select! {
        r = work => r,
        () = ctx.ct.cancelled() => Err(ErrorData::internal_error("the request was cancelled", None)),
    }
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
        .with_server_info(Implementation::new("woollama", env!("CARGO_PKG_VERSION")).with_title("woollama"))
        .with_instructions(
            "woollama routes between AI clients and backends. `chat` runs a recipe (a system prompt, a model \
             and a tool allow-list) and returns its answer; the recipes are also listed as prompts. Every \
             other tool, prompt and resource belongs to a downstream MCP server: tools and prompts are named \
             mcp__<server>__<name> and resources woollama://<server>/<uri>, unless that server is configured \
             to keep its own names.",
        )
    }

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        let channel = Channel::Session {
            peer: ctx.peer,
            level: Arc::clone(&self.level),
        };
        self.clients.add(self.id, channel, HashSet::new());
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
        let uris: HashSet<String> = ctx
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        for uri in &uris {
            if let Err(e) = self.state.tools.subscribe(uri, true).await {
                tracing::warn!(uri, error = %e, "a listen subscription could not be passed on");
            }
        }
        let id = SESSIONS.fetch_add(1, Ordering::Relaxed);
        self.clients
            .add(id, Channel::Listen(ctx.sink().clone()), uris.clone());
        ctx.cancelled().await;
        self.clients.remove(id);
        for uri in &uris {
            if !self.clients.subscribe(id, uri, false) {
                let _ = self.state.tools.subscribe(uri, false).await;
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
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let snap = self.snapshot().await;
        let mut tools = vec![chat::tool()];
        tools.extend(snap.listed().map(reexport));
        Ok(ListToolsResult::with_all_items(tools))
    }

    /// Lets rmcp validate `Mcp-Param-*` headers against a tool's schema.
    fn get_tool(&self, name: &str) -> Option<Tool> {
        if name == chat::NAME {
            return Some(chat::tool());
        }
        self.state.tools.snapshot().tool(name).map(reexport)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name == chat::NAME {
            return Ok(CallToolResponse::Complete(
                chat::run(self, request.arguments, ctx).await,
            ));
        }
        if self.state.tools.snapshot().tool(&request.name).is_none() {
            // Right after start-up the tool's server may still be connecting.
            self.snapshot().await;
        }
        let call =
            self.state
                .tools
                .call_for(&request.name, request.arguments, Some(self.caller(&ctx)));
        let result = cancellable(&ctx, async { Ok(call.await) }).await?;
        match result {
            Ok(mut r) => {
                // Older downstreams omit resultType; 2026-07-28 clients need it.
                r.result_type.get_or_insert(ResultType::COMPLETE);
                Ok(CallToolResponse::Complete(r))
            }
            Err(e @ (tools::Error::UnknownTool(_) | tools::Error::Protocol { .. })) => {
                Err(protocol_error(e))
            }
            Err(e) => Ok(CallToolResponse::Complete(CallToolResult::error(vec![
                ContentBlock::text(format!("dispatch failed: {e}")),
            ]))),
        }
    }

    async fn list_prompts(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let mut list = prompts::list(&self.state.config.recipes);
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
        if self.state.config.recipes.contains_key(&request.name)
            || self.snapshot().await.prompt(&request.name).is_none()
        {
            return prompts::get(&self.state.config.recipes, &request)
                .map(GetPromptResponse::Complete);
        }
        let caller = self.caller(&ctx);
        let get = self.state.tools.get_prompt(request, Some(caller));
        let mut r = cancellable(&ctx, async { get.await.map_err(protocol_error) }).await?;
        r.result_type.get_or_insert(ResultType::COMPLETE);
        Ok(GetPromptResponse::Complete(r))
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
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
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
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
        self.snapshot().await;
        let read = self
            .state
            .tools
            .read_resource(&request.uri, Some(self.caller(&ctx)));
        let mut r = cancellable(&ctx, async { read.await.map_err(protocol_error) }).await?;
        r.result_type.get_or_insert(ResultType::COMPLETE);
        Ok(ReadResourceResponse::Complete(r))
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.state
            .tools
            .subscribe(&request.uri, true)
            .await
            .map_err(protocol_error)?;
        self.clients.subscribe(self.id, &request.uri, true);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if !self.clients.subscribe(self.id, &request.uri, false) {
            self.state
                .tools
                .subscribe(&request.uri, false)
                .await
                .map_err(protocol_error)?;
        }
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        if let Reference::Prompt(p) = &request.r#ref
            && let Some(values) = prompts::complete(
                &self.state.config.recipes,
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
            .state
            .tools
            .complete(request)
            .await
            .map_err(protocol_error)?
            .unwrap_or_default();
        r.result_type.get_or_insert(ResultType::COMPLETE);
        Ok(r)
    }
}

/// The Streamable HTTP service mounted at `/mcp`. Its `Host` check is the
/// HTTP surface's, the same on every TCP route (`http::auth`), so rmcp's own
/// is off.
pub fn http_service(
    state: &AppState,
    clients: &Clients,
) -> StreamableHttpService<Surface, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_cancellation_token(state.shutdown.child_token())
        .disable_allowed_hosts();
    let state = state.clone();
    let clients = clients.clone();
    StreamableHttpService::new(
        move || Ok(Surface::new(state.clone(), clients.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// Serves MCP on stdin/stdout until the client closes it.
pub async fn serve_stdio(state: AppState) -> Result<(), String> {
    let clients = Clients::default();
    spawn_list_changed(&state, clients.clone());
    let service = Surface::new(state, clients)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("the MCP session could not start: {e}"))?;
    service
        .waiting()
        .await
        .map_err(|e| format!("the MCP session failed: {e}"))?;
    Ok(())
}
