//! A small rmcp MCP server over Streamable HTTP, in-process, for the
//! downstream tests: `echo`, `hang` (never answers until cancelled), `fail`
//! (a tool-level error), and `added` once the test adds it at run time (the
//! server then sends `notifications/tools/list_changed`). It records every
//! tool call it receives, which is how tests prove what did — and did not —
//! reach a server. One resource, `mem://note`, can be subscribed to, and
//! the test says when it changed. Like any server of both generations, it
//! tells a 2025-11-25 session through its peer and a 2026-07-28 client
//! through its `subscriptions/listen` stream.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, SubscriptionFilter, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext, SubscriptionSink};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct State {
    added: bool,
    peers: Vec<Peer<RoleServer>>,
    listeners: Vec<SubscriptionSink>,
    /// The resources each listen stream accepted, in the order opened.
    listened: Vec<Vec<String>>,
    /// The resources 2025-11-25 sessions subscribed to.
    subscribed: Vec<(Peer<RoleServer>, String)>,
    calls: Vec<String>,
}

/// The fixture's shared state; the server handler is a cheap clone of it.
#[derive(Clone, Default)]
pub struct Fixture {
    state: Arc<Mutex<State>>,
}

fn tool(name: &'static str, description: &'static str) -> Tool {
    let schema = json!({"type": "object", "properties": {"text": {"type": "string"}}, "additionalProperties": false, "$defs": {}});
    let serde_json::Value::Object(m) = schema else {
        unreachable!()
    };
    Tool::new(name, description, Arc::new(m))
}

impl Fixture {
    /// Names of the tools called so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().expect("lock").calls.clone()
    }

    /// The resources of each listen stream opened so far, oldest first.
    pub fn listened(&self) -> Vec<Vec<String>> {
        self.state.lock().expect("lock").listened.clone()
    }

    /// Says `uri` changed, to the listen streams that accepted it (the sink
    /// applies each stream's filter) and the sessions that subscribed to it.
    pub async fn update(&self, uri: &str) {
        let (peers, listeners) = {
            let st = self.state.lock().expect("lock");
            let peers: Vec<_> = st
                .subscribed
                .iter()
                .filter(|(_, u)| u == uri)
                .map(|(p, _)| p.clone())
                .collect();
            (peers, st.listeners.clone())
        };
        for p in peers {
            let _ = p
                .notify_resource_updated(rmcp::model::ResourceUpdatedNotificationParam::new(uri))
                .await;
        }
        for l in listeners {
            let _ = l.notify_resource_updated(uri).await;
        }
    }

    /// Adds the `added` tool and tells every connected client.
    pub async fn add_tool(&self) {
        let (peers, listeners) = {
            let mut st = self.state.lock().expect("lock");
            st.added = true;
            (st.peers.clone(), st.listeners.clone())
        };
        for p in peers {
            let _ = p.notify_tool_list_changed().await;
        }
        for l in listeners {
            let _ = l.notify_tool_list_changed().await;
        }
    }

    /// Serves on `listener` until `stop` is cancelled.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        stop: CancellationToken,
    ) -> SocketAddr {
        let addr = listener.local_addr().expect("addr");
        let fixture = self.clone();
        let config =
            StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token());
        let service = StreamableHttpService::new(
            move || Ok(fixture.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let app = axum::Router::new().nest_service("/mcp", service);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        addr
    }

    /// Starts on a fresh loopback port.
    pub async fn start(&self) -> (SocketAddr, CancellationToken) {
        let stop = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = self.serve(listener, stop.clone()).await;
        (addr, stop)
    }
}

impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
    }

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        self.state.lock().expect("lock").peers.push(ctx.peer);
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, ctx: SubscriptionContext) -> Result<(), ErrorData> {
        {
            let mut st = self.state.lock().expect("lock");
            st.listeners.push(ctx.sink().clone());
            let uris = ctx.accepted().resource_subscriptions.clone();
            st.listened.push(uris.unwrap_or_default());
        }
        ctx.cancelled().await;
        Ok(())
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, ErrorData> {
        Ok(rmcp::model::ListResourcesResult::with_all_items(vec![
            rmcp::model::Resource::new("mem://note", "note"),
        ]))
    }

    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, ErrorData> {
        Ok(
            rmcp::model::ReadResourceResult::new(vec![rmcp::model::ResourceContents::text(
                "a note",
                request.uri,
            )])
            .into(),
        )
    }

    async fn subscribe(
        &self,
        request: rmcp::model::SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.state
            .lock()
            .expect("lock")
            .subscribed
            .push((ctx.peer, request.uri));
        Ok(())
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = vec![
            tool("echo", "Echo the text back."),
            tool("hang", "Never answers until cancelled."),
            tool("fail", "Always reports a tool error."),
        ];
        if self.state.lock().expect("lock").added {
            tools.push(tool("added", "Added at run time."));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        self.state.lock().expect("lock").calls.push(name.clone());
        let text = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("text"))
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_string();
        let result = match name.as_str() {
            "echo" => CallToolResult::success(vec![ContentBlock::text(text)]),
            "added" => CallToolResult::success(vec![ContentBlock::text("added works")]),
            "fail" => CallToolResult::error(vec![ContentBlock::text("it failed")]),
            "hang" => {
                ctx.ct.cancelled().await;
                return Err(ErrorData::internal_error("cancelled", None));
            }
            other => return Err(ErrorData::invalid_params(format!("no tool {other}"), None)),
        };
        Ok(CallToolResponse::Complete(result))
    }
}
