//! The MCP surface as a transparent aggregator, with a real third-party
//! downstream: `@modelcontextprotocol/server-everything` (npm, run with
//! `node`) behind woollama's `/mcp`, driven by rmcp clients. Covers what the
//! tools-only proxy did not: progress mapped back to the caller's token,
//! resources and templates under `woollama://<server>/`, downstream prompts
//! and completions, sampling and elicitation forwarded to the calling client
//! (and refused cleanly for a client without the capability), structured
//! output, and `"prefix": false`.
#![expect(
    deprecated,
    reason = "sampling (deprecated by SEP-2577) is what server-everything asks for"
)]

mod common;

use std::time::Duration;

use common::mock::Mock;
use common::{Setup, TestApp, obj, server_everything};
use rmcp::model::{
    ArgumentInfo, CallToolRequestParams, ClientCapabilities, ClientConfig, CompleteRequestParams,
    ContentBlock, CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams,
    ElicitResult, ElicitationAction, GetPromptRequestParams, Implementation,
    ProgressNotificationParam, PromptReference, ReadResourceRequestParams, Reference,
    ResourceContents, SamplingMessage,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use woollama::tools::Health;

const LIMIT: Duration = Duration::from_secs(60);

/// A client that can sample and elicit (when `capable`), and reports the
/// progress it hears.
#[derive(Clone)]
struct Client {
    capable: bool,
    progress: mpsc::UnboundedSender<ProgressNotificationParam>,
}

impl ClientHandler for Client {
    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let asked = serde_json::to_string(&params.messages).unwrap_or_default();
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text(format!("sampled by the client (asked {asked})")),
            "client-model".into(),
        ))
    }

    async fn create_elicitation(
        &self,
        _: ElicitRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        Ok(ElicitResult::new(ElicitationAction::Decline))
    }

    async fn on_progress(&self, p: ProgressNotificationParam, _: NotificationContext<RoleClient>) {
        let _ = self.progress.send(p);
    }

    fn get_info(&self) -> ClientConfig {
        let caps: ClientCapabilities = if self.capable {
            serde_json::from_value(json!({"sampling": {}, "elicitation": {"form": {}}}))
                .unwrap_or_default()
        } else {
            ClientCapabilities::default()
        };
        ClientConfig::new(caps, Implementation::new("aggregation-test", "0"))
    }
}

async fn connect(
    app: &TestApp,
    capable: bool,
) -> (
    RunningService<RoleClient, Client>,
    mpsc::UnboundedReceiver<ProgressNotificationParam>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let transport = StreamableHttpClientTransport::with_client(
        woollama::inference::build_client().expect("client"),
        StreamableHttpClientTransportConfig::with_uri(app.url("/mcp")),
    );
    let client = Client {
        capable,
        progress: tx,
    }
    .serve(transport)
    .await
    .expect("MCP initialize");
    (client, rx)
}

async fn start(server: Value) -> (Mock, TestApp) {
    let mock = Mock::start().await;
    let app = Setup::new(&mock)
        .env("PATH", &std::env::var("PATH").unwrap_or_default())
        .mcp(&json!({"mcpServers": {"everything": server}}).to_string())
        .start()
        .await;
    let ready = tokio::time::timeout(
        LIMIT,
        app.tools.wait_for(|s| {
            s.server("everything")
                .is_some_and(|x| x.health == Health::Connected)
        }),
    )
    .await;
    assert!(
        matches!(ready, Ok(Some(_))),
        "not connected: {:#?}",
        app.tools.snapshot()
    );
    (mock, app)
}

fn text(c: &ContentBlock) -> &str {
    c.as_text().map_or("", |t| t.text.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_through_the_mcp_surface() {
    let (_mock, app) =
        start(json!({"command": "node", "args": [server_everything(), "stdio"]})).await;
    let (client, mut progress) = connect(&app, true).await;
    let caps = &client.peer_info().expect("server info").capabilities;
    assert!(caps.resources.as_ref().and_then(|r| r.subscribe) == Some(true));
    assert!(caps.completions.is_some());

    // Progress of a long-running downstream tool reaches the caller, under
    // the caller's own token.
    let r = client
        .call_tool(
            CallToolRequestParams::new("mcp__everything__trigger-long-running-operation")
                .with_arguments(obj(json!({"duration": 0.3, "steps": 3}))),
        )
        .await
        .expect("long-running operation");
    assert!(text(&r.content[0]).contains("Steps: 3"), "{r:?}");
    let mut heard = Vec::new();
    while heard.len() < 3 {
        let p = tokio::time::timeout(LIMIT, progress.recv())
            .await
            .expect("progress")
            .expect("open");
        heard.push((p.progress, p.total));
    }
    assert_eq!(
        heard,
        vec![(1.0, Some(3.0)), (2.0, Some(3.0)), (3.0, Some(3.0))]
    );

    // Structured output, verbatim.
    let r = client
        .call_tool(
            CallToolRequestParams::new("mcp__everything__get-structured-content")
                .with_arguments(obj(json!({"location": "New York"}))),
        )
        .await
        .expect("structured");
    assert!(r.structured_content.is_some(), "{r:?}");

    // Sampling: server-everything asks woollama, woollama asks this client.
    let r = client
        .call_tool(
            CallToolRequestParams::new("mcp__everything__trigger-sampling-request")
                .with_arguments(obj(json!({"prompt": "say hi"}))),
        )
        .await
        .expect("sampling tool");
    let shown = serde_json::to_string(&r.content).unwrap_or_default();
    assert!(shown.contains("sampled by the client"), "{shown}");
    assert!(shown.contains("say hi"), "{shown}");

    // Elicitation, likewise (this client declines).
    let r = client
        .call_tool(CallToolRequestParams::new(
            "mcp__everything__trigger-elicitation-request",
        ))
        .await
        .expect("elicitation tool");
    let shown = serde_json::to_string(&r.content).unwrap_or_default();
    assert!(shown.to_lowercase().contains("decline"), "{shown}");

    // A client that cannot sample gets a clean refusal, not a hang.
    let (plain, _) = connect(&app, false).await;
    let r = plain
        .call_tool(
            CallToolRequestParams::new("mcp__everything__trigger-sampling-request")
                .with_arguments(obj(json!({"prompt": "say hi"}))),
        )
        .await;
    let shown = format!("{r:?}");
    assert!(shown.contains("does not support sampling"), "{shown}");

    // Resources and templates, under woollama://everything/.
    let resources = client.list_all_resources().await.expect("resources/list");
    assert!(!resources.is_empty());
    assert!(
        resources
            .iter()
            .all(|r| r.uri.starts_with("woollama://everything/")),
        "{resources:?}"
    );
    let first = resources[0].uri.clone();
    let read = client
        .read_resource(ReadResourceRequestParams::new(first.clone()))
        .await
        .expect("resources/read");
    match &read.contents[0] {
        ResourceContents::TextResourceContents { uri, .. }
        | ResourceContents::BlobResourceContents { uri, .. } => assert_eq!(uri, &first),
        other => panic!("unexpected contents {other:?}"),
    }
    let templates = client
        .list_all_resource_templates()
        .await
        .expect("templates/list");
    let dynamic = templates
        .iter()
        .find(|t| t.uri_template.contains("{resourceId}") && t.uri_template.contains("text"))
        .unwrap_or_else(|| panic!("no text template in {templates:?}"));
    assert!(dynamic.uri_template.starts_with("woollama://everything/"));
    let instance = dynamic.uri_template.replace("{resourceId}", "7");
    let read = client
        .read_resource(ReadResourceRequestParams::new(instance.clone()))
        .await
        .expect("read a template instance");
    let shown = serde_json::to_string(&read.contents).unwrap_or_default();
    assert!(shown.contains(&instance), "{shown}");

    // An unknown resource is a protocol error naming it.
    let err = client
        .read_resource(ReadResourceRequestParams::new("nope://x"))
        .await
        .expect_err("unknown resource");
    assert!(format!("{err:?}").contains("nope://x"), "{err:?}");

    // Downstream prompts, namespaced, with arguments; completions forwarded.
    let prompts = client.list_all_prompts().await.expect("prompts/list");
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    let with_args = prompts
        .iter()
        .find(|p| p.arguments.as_ref().is_some_and(|a| !a.is_empty()))
        .unwrap_or_else(|| panic!("no prompt with arguments in {names:?}"));
    assert!(with_args.name.starts_with("mcp__everything__"), "{names:?}");
    let args = with_args.arguments.clone().unwrap_or_default();
    let mut get = GetPromptRequestParams::new(with_args.name.clone());
    get.arguments = Some(
        args.iter()
            .map(|a| (a.name.clone(), json!("Paris")))
            .collect(),
    );
    let got = client.get_prompt(get).await.expect("prompts/get");
    assert!(!got.messages.is_empty());
    let completing = prompts
        .iter()
        .find(|p| p.name.contains("completable"))
        .unwrap_or_else(|| panic!("no completable prompt in {names:?}"));
    let arg = completing
        .arguments
        .as_ref()
        .and_then(|a| a.first())
        .map(|a| a.name.clone())
        .unwrap_or_default();
    let done = client
        .complete(CompleteRequestParams::new(
            Reference::Prompt(PromptReference::new(completing.name.clone())),
            ArgumentInfo::new(arg, ""),
        ))
        .await
        .expect("completion/complete");
    assert!(!done.completion.values.is_empty(), "{done:?}");

    client.cancel().await.expect("close");
    plain.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprefixed_server_keeps_its_own_names() {
    let (_mock, app) = start(json!({
        "command": "node",
        "args": [server_everything(), "stdio"],
        "prefix": false
    }))
    .await;
    let (client, _) = connect(&app, true).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(
        names.contains(&"chat") && names.contains(&"get-sum"),
        "{names:?}"
    );
    let r = client
        .call_tool(
            CallToolRequestParams::new("get-sum").with_arguments(obj(json!({"a": 2, "b": 40}))),
        )
        .await
        .expect("get-sum");
    assert!(text(&r.content[0]).contains("42"), "{r:?}");
    let resources = client.list_all_resources().await.expect("resources/list");
    assert!(
        resources.iter().all(|r| !r.uri.starts_with("woollama://")),
        "{resources:?}"
    );
    let read = client
        .read_resource(ReadResourceRequestParams::new(resources[0].uri.clone()))
        .await
        .expect("read an unprefixed resource");
    assert!(!read.contents.is_empty());
    client.cancel().await.expect("close");
}
