//! woollama as an MCP server: one server that carries the recipes (as
//! prompts), the `chat` tool that runs a recipe, and every downstream's tools
//! re-exported under their wire names — over stdio (`woollama mcp`) and
//! Streamable HTTP at `/mcp` on the daemon's own listeners. Every session
//! shares the one downstream registry.
//!
//! - Identity: `serverInfo` is `woollama` with our version; capabilities
//!   advertise tools and prompts with `listChanged`, and logging.
//! - Re-exported tools keep their downstream definitions verbatim (input and
//!   output schemas with `$schema`, `$defs`, `additionalProperties`), and
//!   results come back verbatim (`structuredContent`, `isError`). An unknown
//!   tool is a protocol error; a downstream that fails is a tool error; a
//!   downstream's own JSON-RPC error is forwarded as it came.
//! - When the set of downstream tools changes, every connected client gets
//!   `notifications/tools/list_changed`.
#![expect(
    deprecated,
    reason = "MCP logging (deprecated by SEP-2577) is still what clients display for the chat tool's steps"
)]

mod chat;
mod prompts;

use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, Implementation, ListPromptsResult, ListToolsResult, LoggingLevel,
    PaginatedRequestParams, ResultType, ServerCapabilities, ServerConfig, SetLevelRequestParams,
    Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler, ServiceExt};

use crate::http::AppState;
use crate::tools;

/// The clients connected to this process's MCP surface, for `list_changed`.
#[derive(Clone, Default)]
pub struct Clients(Arc<Mutex<Vec<Peer<RoleServer>>>>);

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clients({})", self.lock().len())
    }
}

impl Clients {
    fn add(&self, peer: Peer<RoleServer>) {
        self.lock().push(peer);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Peer<RoleServer>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tells every client its tool list changed; forgets the ones gone.
    async fn tools_changed(&self) {
        let peers = self.lock().clone();
        for p in peers.iter().filter(|p| !p.is_transport_closed()) {
            let _ = p.notify_tool_list_changed().await;
        }
        self.lock().retain(|p| !p.is_transport_closed());
    }
}

/// Follows the downstream registry and sends `tools/list_changed` when the
/// listed tools change. Ends with the daemon.
pub fn spawn_list_changed(state: &AppState, clients: Clients) {
    let registry = state.tools.clone();
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let mut rx = registry.watch();
        let names = |s: &tools::Snapshot| s.listed().map(|t| t.wire.clone()).collect::<Vec<_>>();
        let mut last = names(&registry.snapshot());
        loop {
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                () = shutdown.cancelled() => return,
            }
            // Clone out of the channel before awaiting anything.
            let now = names(&Arc::clone(&rx.borrow_and_update()));
            if now != last {
                last = now;
                clients.tools_changed().await;
            }
        }
    });
}

/// One MCP session's handler: cheap handles onto the shared state.
#[derive(Clone)]
pub struct Surface {
    state: AppState,
    clients: Clients,
    /// The level set by `logging/setLevel` (info by default).
    level: Arc<Mutex<LoggingLevel>>,
}

impl Surface {
    pub fn new(state: AppState, clients: Clients) -> Self {
        Self {
            state,
            clients,
            level: Arc::new(Mutex::new(LoggingLevel::Info)),
        }
    }

    fn logs_info(&self) -> bool {
        let level = *self
            .level
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        matches!(level, LoggingLevel::Debug | LoggingLevel::Info)
    }
}

/// A downstream tool as woollama re-exports it: its own definition under its
/// wire name.
fn reexport(entry: &tools::ToolEntry) -> Tool {
    let mut t = entry.tool.clone();
    t.name = entry.wire.clone().into();
    t
}

impl ServerHandler for Surface {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_logging()
                .build(),
        )
        .with_server_info(Implementation::new("woollama", env!("CARGO_PKG_VERSION")).with_title("woollama"))
        .with_instructions(
            "woollama routes between AI clients and backends. `chat` runs a recipe (a system prompt, a model \
             and a tool allow-list) and returns its answer; the recipes are also listed as prompts. Every \
             other tool belongs to a downstream MCP server and is named mcp__<server>__<tool>.",
        )
    }

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        self.clients.add(ctx.peer);
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        *self
            .level
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = request.level;
        Ok(())
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let snap = self.state.tools.snapshot();
        let mut tools = vec![chat::tool()];
        tools.extend(snap.listed().map(reexport));
        Ok(ListToolsResult::with_all_items(tools))
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
        // Dropping this future (the client cancelled) cancels the downstream call.
        let call = self.state.tools.call(&request.name, request.arguments);
        let result = tokio::select! {
            r = call => r,
            () = ctx.ct.cancelled() => return Err(ErrorData::internal_error("the call was cancelled", None)),
        };
        match result {
            Ok(mut r) => {
                // Older downstreams omit resultType; 2026-07-28 clients need it.
                r.result_type.get_or_insert(ResultType::COMPLETE);
                Ok(CallToolResponse::Complete(r))
            }
            Err(tools::Error::UnknownTool(name)) => Err(ErrorData::invalid_params(
                format!("unknown tool '{name}'"),
                None,
            )),
            Err(tools::Error::Protocol { error, .. }) => Err(error),
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
        Ok(ListPromptsResult::with_all_items(prompts::list(
            &self.state.config.recipes,
        )))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        prompts::get(&self.state.config.recipes, &request).map(GetPromptResponse::Complete)
    }
}

/// Which `Host` headers `/mcp` accepts.
#[derive(Debug, Clone)]
pub enum HostCheck {
    /// Loopback names, plus the configured `WOOLLAMA_ADDRESS` host: a web page
    /// that rebinds a DNS name to 127.0.0.1 is refused.
    Loopback(Vec<String>),
    /// The Unix socket: no browser can reach it.
    Off,
}

impl HostCheck {
    /// The hosts for the TCP listener.
    pub fn for_tcp(state: &AppState) -> Self {
        let mut hosts = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        hosts.extend(
            state
                .config
                .settings
                .explicit_host()
                .filter(|h| !hosts.contains(h)),
        );
        HostCheck::Loopback(hosts)
    }
}

/// The Streamable HTTP service mounted at `/mcp`.
pub fn http_service(
    state: &AppState,
    clients: &Clients,
    hosts: HostCheck,
) -> StreamableHttpService<Surface, LocalSessionManager> {
    let mut config =
        StreamableHttpServerConfig::default().with_cancellation_token(state.shutdown.child_token());
    config = match hosts {
        HostCheck::Loopback(h) => config.with_allowed_hosts(h),
        HostCheck::Off => config.disable_allowed_hosts(),
    };
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
