//! Shared test harness: the mock upstream, and the real woollama app started
//! in-process on `127.0.0.1:0` over a config written to a temp dir.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

pub mod daemon;
pub mod fake_claude;
pub mod fixture;
pub mod mock;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use woollama::app::{AppState, Options};
use woollama::config::{self, Config, Env, Severity};
use woollama::inference::{Timeouts, build_client};
use woollama::tools::ToolRegistry;

use mock::Mock;

/// A config under construction. By default: no MCP servers, and three
/// inferencers pointing at the mock — `mock` (no auth), `keyed` (bearer key
/// from `MOCK_KEY`), and the built-in `ollama` overridden to the mock.
pub struct Setup {
    pub dir: TempDir,
    env: Env,
    inferencers: String,
    recipes: Option<String>,
    mcp: String,
    timeouts: Timeouts,
}

impl Setup {
    pub fn new(mock: &Mock) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = mock.base_url();
        Setup {
            env: Env::from_pairs([("HOME", dir.path().to_string_lossy().to_string())]),
            dir,
            inferencers: format!(
                "[inferencers.mock]\nbase_url = \"{base}\"\n\
                 [inferencers.keyed]\nbase_url = \"{base}\"\napi_key_env = \"MOCK_KEY\"\n\
                 [inferencers.ollama]\nbase_url = \"{base}\"\ndiscover = false\n"
            ),
            recipes: None,
            mcp: r#"{"mcpServers": {}}"#.to_string(),
            timeouts: Timeouts::default(),
        }
    }

    pub fn env(mut self, name: &str, value: &str) -> Setup {
        self.env = self.env.with(name, value);
        self
    }

    pub fn inferencers(mut self, more: &str) -> Setup {
        self.inferencers.push_str(more);
        self
    }

    pub fn mcp(mut self, text: &str) -> Setup {
        self.mcp = text.to_string();
        self
    }

    pub fn recipes(mut self, text: &str) -> Setup {
        self.recipes = Some(text.to_string());
        self
    }

    pub fn timeouts(mut self, t: Timeouts) -> Setup {
        self.timeouts = t;
        self
    }

    /// All timeouts short, for tests of a hung upstream.
    pub fn short_timeouts(self, d: Duration) -> Setup {
        self.timeouts(Timeouts {
            chat: d,
            native: d,
            images: d,
            embeddings: d,
            ..Timeouts::default()
        })
    }

    /// Writes the files and loads them; panics on a fatal diagnostic.
    pub fn config(&self) -> Config {
        let d = self.dir.path();
        std::fs::write(d.join("inferencers.toml"), &self.inferencers).expect("write");
        std::fs::write(d.join("mcp.json"), &self.mcp).expect("write");
        if let Some(r) = &self.recipes {
            std::fs::write(d.join("recipes.toml"), r).expect("write");
        }
        let loaded = config::load_from(Some(d), &self.env);
        let fatal: Vec<String> = loaded
            .diagnostics
            .of(Severity::Fatal)
            .map(ToString::to_string)
            .collect();
        assert!(fatal.is_empty(), "test config is fatal: {fatal:?}");
        loaded.config
    }

    /// The app's shared state, assembled as the daemon assembles it (stdio
    /// servers through the built binary's child guard).
    pub fn state(&self) -> AppState {
        let options = Options {
            guard: Some(env!("CARGO_BIN_EXE_woollama").into()),
            timeouts: self.timeouts,
            reconnect: true,
        };
        AppState::build(Arc::new(self.config()), &self.env, options).expect("app")
    }

    pub async fn start(self) -> TestApp {
        let state = self.state();
        let config = Arc::clone(&state.config);
        let tools = state.tools.clone();
        let live = woollama::app::Live::new(state.clone(), self.env.clone());
        let (app, _) = woollama::serve::routers(&live);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        state.listening_on(addr);
        tokio::spawn(woollama::serve::conn::serve(
            listener,
            app,
            tokio_util::sync::CancellationToken::new(),
        ));
        TestApp {
            addr,
            client: build_client().expect("client"),
            config,
            tools,
            _dir: self.dir,
        }
    }
}

/// The real app, serving on loopback.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub config: Arc<Config>,
    pub tools: ToolRegistry,
    _dir: TempDir,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json_body(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }
}

/// `reqwest` is built without its `json` feature; this is the one helper
/// tests need from it.
pub trait JsonBody {
    fn json_body(self, v: &serde_json::Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, v: &serde_json::Value) -> Self {
        self.header("content-type", "application/json")
            .body(v.to_string())
    }
}

/// Status and parsed JSON body of a response.
pub async fn json(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, v)
}

/// Asserts an OpenAI-shaped error with this status and type; returns the message.
pub async fn expect_error(resp: reqwest::Response, status: u16, kind: &str) -> String {
    let (s, v) = json(resp).await;
    assert_eq!(s, status, "status; body {v}");
    assert_eq!(v["error"]["type"], kind, "type; body {v}");
    v["error"]["message"].as_str().expect("message").to_string()
}

/// A JSON object (tool arguments) from a `json!` literal; anything else is empty.
pub fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// The entry point of `@modelcontextprotocol/server-everything` (npm), run
/// with `node`; installed into `.peers` by `scripts/install-peers`.
pub fn server_everything() -> std::path::PathBuf {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-peers",
        p.display()
    );
    p
}

/// The bundled `hello` server held back until the test opens a gate: its
/// `mcp.json` entry runs `sh`, which waits on a FIFO before it becomes the
/// server. A downstream that is still connecting, for as long as the test
/// needs, without a sleep.
pub struct ServerGate {
    _dir: TempDir,
    fifo: std::path::PathBuf,
}

impl ServerGate {
    pub fn new() -> ServerGate {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("gate");
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(ok.success());
        ServerGate { _dir: dir, fifo }
    }

    /// The `mcp.json` entry.
    pub fn entry(&self) -> serde_json::Value {
        let script = format!(
            "read _ < '{}'; exec '{}' example-server hello",
            self.fifo.display(),
            env!("CARGO_BIN_EXE_woollama")
        );
        serde_json::json!({"command": "sh", "args": ["-c", script]})
    }

    /// Lets the server start.
    pub fn open(&self) {
        let fifo = self.fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, "go\n"));
    }
}

/// The Python with the test peers: `$WOOLLAMA_TEST_PYTHON`, else the
/// project's `.peers/venv`, else `python3`.
pub fn python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("WOOLLAMA_TEST_PYTHON") {
        return p.into();
    }
    let venv = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".peers/venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// Runs `tests/python/<script>` with the peers' Python and `base`, and
/// returns its output; panics unless it exits 0 and reports `passed`
/// checks passed.
pub async fn python_script(script: &str, base: String, passed: usize) -> String {
    python_script_with(script, vec![base], passed).await
}

/// [`python_script`] with any arguments.
pub async fn python_script_with(script: &str, args: Vec<String>, passed: usize) -> String {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python())
            .arg(path)
            .args(args)
            .output()
    })
    .await
    .expect("join")
    .expect("run python");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains(&format!("{passed} passed, 0 failed")),
        "{script} failed:\n{text}"
    );
    text
}

impl Setup {
    /// Conversations kept under `state`, with the bundled convstore (threads
    /// in `state/threads`) as the conversation store.
    pub fn with_store(self, state: &std::path::Path) -> Setup {
        let mcp = serde_json::json!({
            "mcpServers": {"store": {"command": env!("CARGO_BIN_EXE_woollama"),
                                     "args": ["example-server", "convstore", state.join("threads")]}},
            "conversationStore": "store",
        })
        .to_string();
        self.env("WOOLLAMA_STATE_DIR", &state.to_string_lossy())
            .mcp(&mcp)
    }
}

impl TestApp {
    /// `POST /v1/responses` with `body`: the status and the JSON answer.
    pub async fn respond(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        json(self.post("/v1/responses", body).await).await
    }
}

/// A bound that turns a hang into a failure; passing runs never wait on it.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Waits until the registry's snapshot satisfies `pred`.
pub async fn until(
    tools: &ToolRegistry,
    what: &str,
    pred: impl Fn(&woollama::tools::Snapshot) -> bool,
) -> Arc<woollama::tools::Snapshot> {
    let result = tokio::time::timeout(LIMIT, tools.wait_for(|s| pred(s))).await;
    match result {
        Ok(Some(s)) => s,
        _ => panic!(
            "{what}: not reached within {LIMIT:?}; last snapshot {:#?}",
            tools.snapshot()
        ),
    }
}

/// Whether server `name` is connected.
pub fn connected(s: &woollama::tools::Snapshot, name: &str) -> bool {
    s.server(name)
        .is_some_and(|x| x.health == woollama::tools::Health::Connected)
}

/// The misbehaving stdio MCP server (`tests/python/unruly_mcp.py`) as an
/// `mcp.json` entry; it appends its pid to `pids`.
pub fn unruly(pids: &std::path::Path, cues: &[&str]) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/unruly_mcp.py");
    let mut args = vec![script.to_string(), pids.display().to_string()];
    args.extend(cues.iter().map(ToString::to_string));
    serde_json::json!({"command": python(), "args": args})
}

/// The pids a test server wrote to `file`, one per line.
pub fn pids(file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether a process is running (a zombie — dead, not yet reaped by
/// whoever inherited it — is not).
pub fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z" | "X") | None)
    })
}

/// `woollama mcp` over the config dir `dir`, whose `recipes.toml` is
/// `recipes` and whose one downstream is the bundled `hello` server, in a
/// cleared environment (`HOME` is `dir` too): a command for rmcp's
/// `TokioChildProcess`; add the test's own variables to it.
pub fn woollama_mcp(dir: &std::path::Path, recipes: &str) -> tokio::process::Command {
    let bin = env!("CARGO_BIN_EXE_woollama");
    std::fs::write(dir.join("recipes.toml"), recipes).expect("write");
    std::fs::write(
        dir.join("mcp.json"),
        serde_json::json!({"mcpServers": {"hello": {"command": bin, "args": ["example-server", "hello"]}}})
            .to_string(),
    )
    .expect("write");
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("mcp")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("WOOLLAMA_CONFIG_DIR", dir)
        .env("XDG_RUNTIME_DIR", dir.join("run"));
    cmd
}
