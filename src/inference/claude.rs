//! The `claude` CLI as an inferencer: `claude-code/<model>` (contract §8.1,
//! DESIGN decision 9).
//!
//! Each call is one `claude -p` process, locked down so that the model can
//! reach nothing the caller did not grant:
//!
//! - `--tools ""` (an allow-list of no built-in tools) is the lock; the deny
//!   list of every built-in tool is defence in depth; `--strict-mcp-config`
//!   and `--setting-sources project` keep the user's MCP servers and
//!   settings out; `--permission-mode dontAsk` refuses anything unlisted.
//! - **Delegation** (a recipe with tools): `--mcp-config` names exactly one
//!   server, woollama's own `/mcp` reached with a per-call token that grants
//!   the recipe's allow-list and nothing else (`tools::Grants`), so Claude
//!   *sees* only what it may call, and `url` servers work like stdio ones;
//!   `--allowedTools` permits those same names.
//! - The prompt goes on **stdin**: a prompt that starts with `-` is never
//!   read as an option, a long conversation never meets the kernel's
//!   argument limit, and it is not in `ps` for other users to read.
//! - The environment is the allow-list every child gets (no provider key)
//!   plus switches that keep the CLI quiet and local: no retries (the real
//!   CLI retries for minutes otherwise), no tool search, no `CLAUDE.md`
//!   from the directories above, no git status of an enclosing repository
//!   (a home directory kept in git is common), no auto-update, and MCP
//!   connected before the first request (else a delegate sees no tools).
//! - The working directory is fresh per call, under the state dir (0700),
//!   and removed after, and the call keeps no session transcript
//!   (`--no-session-persistence`) — or it is a conversation's own
//!   (claude-resume), kept, whose session Claude keeps for `--resume`.
//! - The process runs under the child guard in a process group of its own;
//!   a timeout, or a caller that goes away, kills the whole group.
//!
//! Output: `--output-format json` (one array of events, or one object) for
//! a whole answer; `stream-json --verbose --include-partial-messages` when
//! streaming, whose text deltas and tool uses are relayed as they come.
//! Either way the last `result` event decides: its text, `is_error`,
//! `api_error_status` and `session_id`. The real CLI reports most failures
//! as exit 1 with that event on stdout and nothing on stderr, so its text is
//! what the error carries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::config::{Env, Secret};

/// Every built-in tool, denied (the lock is `--tools ""`).
pub const DENY: &str = "Bash,Read,Write,Edit,NotebookEdit,WebFetch,WebSearch,Glob,Grep,Task,LSP";

/// The name of woollama's own server in a delegate MCP config: Claude calls
/// a granted tool `mcp__woollama__<wire name>`.
pub const DELEGATE_SERVER: &str = "woollama";

/// The most of stdout woollama reads from one call.
const OUTPUT_LIMIT: usize = 32 * 1024 * 1024;

/// How much of stderr an error quotes.
const STDERR_SHOWN: usize = 300;

/// Why a call failed (contract §8.1's texts; shown after "claude-code
/// backend: ").
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("claude exited {code}: {detail}")]
    Exited { code: i32, detail: String },
    #[error("claude returned an error result: {0}")]
    ErrorResult(String),
    #[error("no 'result' event in claude output")]
    NoResult,
    #[error("could not parse claude output: {0}")]
    BadOutput(String),
    #[error(
        "`{bin}`: {detail}; install Claude Code (`npm install -g @anthropic-ai/claude-code`), or set WOOLLAMA_CLAUDE_BIN to its path"
    )]
    NotFound { bin: String, detail: String },
    #[error("claude timed out after {0}s")]
    Timeout(u64),
    #[error("cannot run claude: {0}")]
    Io(String),
}

/// One call's tools: woollama's `/mcp` at `url`, with `token` granting
/// exactly `tools` (wire names).
#[derive(Debug, Clone)]
pub struct Delegate {
    pub url: String,
    pub token: Secret,
    pub tools: Vec<String>,
    /// `--max-turns`: the recipe's own limit.
    pub max_turns: u32,
}

/// One call of the CLI.
#[derive(Debug, Clone, Default)]
pub struct Call {
    /// The bare model (`haiku`, `sonnet`, a full id); empty leaves the CLI's
    /// default.
    pub model: String,
    /// `--system-prompt` (never on a resumed turn).
    pub system: Option<String>,
    /// What the model is asked (on stdin).
    pub prompt: String,
    /// `--resume <session_id>`.
    pub resume: Option<String>,
    /// A conversation's kept working directory; `None` = a fresh one,
    /// removed after the call.
    pub workdir: Option<PathBuf>,
    /// Delegation: the recipe's tools, through woollama.
    pub delegate: Option<Delegate>,
}

/// What a call reports as it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Assistant text, as it arrives (streaming only).
    Delta(String),
    /// Claude called a tool (its name as Claude knows it).
    ToolUse { name: String, input: Value },
    /// A tool call finished.
    ToolResult { name: String, ok: bool },
    /// The call's answer.
    Done(Answer),
}

/// A finished call.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    pub session_id: Option<String>,
    /// OpenAI-shaped token counts, when the CLI reported them.
    pub usage: Option<Value>,
}

/// Timeouts of a call (contract Appendix B).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub plain: Duration,
    pub delegation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            plain: Duration::from_secs(180),
            delegation: Duration::from_secs(300),
        }
    }
}

/// How to run the CLI.
#[derive(Debug, Clone)]
pub struct ClaudeCli {
    /// `WOOLLAMA_CLAUDE_BIN`, else `claude` on the child's `PATH`.
    bin: String,
    env: Arc<BTreeMap<String, String>>,
    /// `<state dir>/claude`: `calls/<id>` per call, `conversations/<id>`.
    root: PathBuf,
    guard: Option<PathBuf>,
    timeouts: Timeouts,
}

impl ClaudeCli {
    pub fn new(env: &Env, state_dir: &Path, guard: Option<PathBuf>) -> Self {
        let mut vars = env.inherited();
        // woollama's own /mcp (delegation) is on loopback: never through a
        // proxy the user set for the outside world.
        for k in ["NO_PROXY", "no_proxy"] {
            let mut v = vars.get(k).cloned().unwrap_or_default();
            if !v.is_empty() {
                v.push(',');
            }
            v.push_str("127.0.0.1,localhost,::1");
            vars.insert(k.into(), v);
        }
        for (k, v) in [
            ("ENABLE_TOOL_SEARCH", "false"),
            ("CLAUDE_CODE_MAX_RETRIES", "0"),
            ("CLAUDE_CODE_DISABLE_CLAUDE_MDS", "1"),
            ("CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS", "1"),
            ("DISABLE_AUTOUPDATER", "1"),
            // Otherwise `-p` may ask the model before the delegate server is
            // connected, and Claude sees no tools.
            ("MCP_CONNECTION_NONBLOCKING", "0"),
        ] {
            vars.insert(k.into(), v.into());
        }
        Self {
            bin: env
                .non_empty("WOOLLAMA_CLAUDE_BIN")
                .unwrap_or("claude")
                .to_string(),
            env: Arc::new(vars),
            root: state_dir.join("claude"),
            guard,
            timeouts: Timeouts::default(),
        }
    }

    /// The same runner with other timeouts (tests).
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Where conversation `id` keeps its working directory.
    pub fn conversation_dir(&self, id: &str) -> PathBuf {
        self.root.join("conversations").join(id)
    }

    /// The arguments after the program (the prompt goes on stdin).
    pub fn argv(&self, call: &Call, stream: bool, mcp_config: Option<&Path>) -> Vec<String> {
        let mut v: Vec<String> = vec!["-p".into(), "--output-format".into()];
        if stream {
            v.extend(["stream-json", "--verbose", "--include-partial-messages"].map(String::from));
        } else {
            v.push("json".into());
        }
        let turns = call.delegate.as_ref().map_or(1, |d| d.max_turns);
        v.extend(["--max-turns".into(), turns.to_string()]);
        if call.workdir.is_none() {
            // A one-off call leaves no transcript in the user's ~/.claude.
            v.push("--no-session-persistence".into());
        }
        if let Some(path) = mcp_config {
            v.extend(["--mcp-config".into(), path.display().to_string()]);
        }
        v.extend(
            [
                "--strict-mcp-config",
                "--setting-sources",
                "project",
                "--permission-mode",
                "dontAsk",
                "--tools",
                "",
                "--disallowedTools",
                DENY,
            ]
            .map(String::from),
        );
        if let Some(d) = &call.delegate {
            let allowed: Vec<String> = d
                .tools
                .iter()
                .map(|t| format!("mcp__{DELEGATE_SERVER}__{t}"))
                .collect();
            v.extend(["--allowedTools".into(), allowed.join(",")]);
        }
        if let Some(sid) = &call.resume {
            v.extend(["--resume".into(), sid.clone()]);
        } else if let Some(system) = call.system.as_ref().filter(|s| !s.is_empty()) {
            v.extend(["--system-prompt".into(), system.clone()]);
        }
        if !call.model.is_empty() {
            v.extend(["--model".into(), call.model.clone()]);
        }
        v
    }

    fn timeout(&self, call: &Call) -> Duration {
        if call.delegate.is_some() {
            self.timeouts.delegation
        } else {
            self.timeouts.plain
        }
    }

    /// Runs a call to its end: the answer, or why not.
    pub async fn run(&self, call: Call) -> Result<Answer, Error> {
        use futures_util::StreamExt as _;
        let mut events = std::pin::pin!(self.events(call, false));
        while let Some(e) = events.next().await {
            if let Event::Done(answer) = e? {
                return Ok(answer);
            }
        }
        Err(Error::NoResult)
    }

    /// Runs a call, its events as they come: with `stream`, text deltas and
    /// tool uses, then `Done`; without, only `Done`. Dropping the stream
    /// kills the process group.
    pub fn events(
        &self,
        call: Call,
        stream: bool,
    ) -> impl Stream<Item = Result<Event, Error>> + Send + 'static {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let this = self.clone();
        let driver = async move {
            let timeout = this.timeout(&call);
            let secs = timeout.as_secs();
            let outcome = tokio::time::timeout(timeout, this.drive(call, stream, &tx)).await;
            let result = match outcome {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout(secs)),
            };
            match result {
                Ok(answer) => {
                    let _ = tx.send(Ok(Event::Done(answer))).await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
        };
        let events =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|e| (e, rx)) },
            );
        let driver =
            futures_util::StreamExt::filter_map(futures_util::stream::once(driver), |()| async {
                None
            });
        futures_util::stream::select(events, driver)
    }

    async fn drive(
        &self,
        call: Call,
        stream: bool,
        tx: &tokio::sync::mpsc::Sender<Result<Event, Error>>,
    ) -> Result<Answer, Error> {
        let dir = WorkDir::make(&self.root, call.workdir.as_deref())?;
        let config = match &call.delegate {
            Some(d) => Some(dir.write_mcp_config(d)?),
            None => None,
        };
        let args = self.argv(&call, stream, config.as_deref());
        let program = crate::guard::resolve(&self.bin, self.env.get("PATH").map(String::as_str))
            .map_err(|e| Error::NotFound {
                bin: self.bin.clone(),
                // The reason alone: "not found on PATH (…)", "no such file".
                detail: e
                    .split_once(": ")
                    .map_or(e.as_str(), |(_, d)| d)
                    .split("; ")
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            })?;
        let mut cmd = match &self.guard {
            Some(exe) => {
                let mut c = tokio::process::Command::new(exe);
                c.args(crate::guard::argv(&program, &args));
                c
            }
            None => {
                let mut c = tokio::process::Command::new(&program);
                c.args(&args);
                c
            }
        };
        cmd.env_clear()
            .envs(self.env.iter())
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::Io(format!("cannot start `{}`: {e}", program.display())))?;
        // From here on, leaving early (timeout, a caller gone) kills the group.
        let group = Group(child.id());

        let mut stdin = child.stdin.take();
        let prompt = call.prompt.clone();
        let feed = async move {
            if let Some(mut s) = stdin.take() {
                // A CLI that exits without reading is reported by its exit.
                let _ = s.write_all(prompt.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        };
        let stderr = child.stderr.take().map(|s| {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let _ = s.take(64 * 1024).read_to_end(&mut buf).await;
                String::from_utf8_lossy(&buf).into_owned()
            })
        });
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Io("no stdout".into()))?;
        let (_, read) = tokio::join!(feed, read_output(stdout, stream, tx));
        let events = read?;
        let status = child
            .wait()
            .await
            .map_err(|e| Error::Io(format!("waiting for claude: {e}")))?;
        group.finished();
        let stderr = match stderr {
            Some(h) => h.await.unwrap_or_default(),
            None => String::new(),
        };
        outcome(&events, status.code().unwrap_or(-1), &stderr)
    }
}

impl ClaudeCli {
    /// The messages of session `session` as Claude recorded them
    /// (`~/.claude/projects/<dir>/<session>.jsonl`, under the `HOME` the
    /// child sees): user and assistant text, in order; meta entries, side
    /// chains and tool traffic left out. A session not found has none.
    pub fn transcript(&self, session: &str) -> Result<Vec<Value>, Error> {
        // Session ids are UUIDs; anything else never reaches a path.
        if uuid::Uuid::parse_str(session).is_err() {
            return Ok(Vec::new());
        }
        let Some(home) = self.env.get("HOME") else {
            return Ok(Vec::new());
        };
        let projects = Path::new(home).join(".claude").join("projects");
        let Ok(dirs) = std::fs::read_dir(&projects) else {
            return Ok(Vec::new());
        };
        let file = dirs
            .flatten()
            .map(|d| d.path().join(format!("{session}.jsonl")))
            .find(|p| p.is_file());
        let Some(file) = file else {
            return Ok(Vec::new());
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Error::Io(format!("cannot read {}: {e}", file.display())))?;
        Ok(transcript_messages(&text))
    }
}

/// A session transcript's user and assistant text as chat messages; the
/// pieces of one streamed assistant message (one entry per block, same
/// message id) joined.
fn transcript_messages(text: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut last_id: Option<String> = None;
    for line in text.lines() {
        let Ok(e) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let role = match e["type"].as_str() {
            Some(r @ ("user" | "assistant")) => r,
            _ => continue,
        };
        if e["isMeta"] == true || e["isSidechain"] == true {
            continue;
        }
        let message = &e["message"];
        let text = match &message["content"] {
            Value::String(s) => s.clone(),
            Value::Array(blocks) => blocks
                .iter()
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        };
        if text.is_empty() {
            continue;
        }
        let id = message["id"].as_str().map(str::to_string);
        if role == "assistant"
            && id.is_some()
            && id == last_id
            && let Some(prev) = out.last_mut()
        {
            let joined = format!("{}{text}", prev["content"].as_str().unwrap_or(""));
            prev["content"] = Value::String(joined);
            continue;
        }
        last_id = if role == "assistant" { id } else { None };
        out.push(json!({"role": role, "content": text}));
    }
    out
}

/// Kills a process group when dropped, unless its leader ended normally.
struct Group(Option<u32>);

impl Group {
    fn finished(mut self) {
        self.0 = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A call's working directory: fresh (removed when dropped) or kept.
struct WorkDir {
    path: PathBuf,
    fresh: bool,
}

impl WorkDir {
    fn make(root: &Path, kept: Option<&Path>) -> Result<Self, Error> {
        let (path, fresh) = match kept {
            Some(p) => (p.to_path_buf(), false),
            None => (
                root.join("calls")
                    .join(uuid::Uuid::new_v4().simple().to_string()),
                true,
            ),
        };
        private_dirs(&path).map_err(|e| {
            Error::Io(format!(
                "cannot make the working directory {}: {e} (check that WOOLLAMA_STATE_DIR / XDG_STATE_HOME points at a writable directory)",
                path.display()
            ))
        })?;
        Ok(Self { path, fresh })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// The delegate MCP config, 0600 (it holds the call's token).
    fn write_mcp_config(&self, d: &Delegate) -> Result<PathBuf, Error> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let config = json!({"mcpServers": {DELEGATE_SERVER: {
            "type": "http",
            "url": d.url,
            "headers": {"Authorization": format!("Bearer {}", d.token.expose())},
        }}});
        let path = self.path.join("delegate-mcp.json");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(config.to_string().as_bytes())?;
                Ok(f)
            })
            .map_err(|e| Error::Io(format!("cannot write {}: {e}", path.display())))?;
        let _ = f.flush();
        Ok(path)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.fresh {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Makes `path` and its missing parents, each 0700.
fn private_dirs(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Reads stdout: every event, and — when streaming — the deltas and tool
/// uses sent on as they come.
async fn read_output(
    stdout: tokio::process::ChildStdout,
    stream: bool,
    tx: &tokio::sync::mpsc::Sender<Result<Event, Error>>,
) -> Result<Vec<Value>, Error> {
    if !stream {
        let mut buf = Vec::new();
        let n = stdout
            .take(OUTPUT_LIMIT as u64 + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| Error::Io(format!("reading claude's output: {e}")))?;
        if n > OUTPUT_LIMIT {
            return Err(Error::BadOutput(format!(
                "more than {} MiB of output",
                OUTPUT_LIMIT / (1024 * 1024)
            )));
        }
        return parse_json(&buf);
    }
    let mut lines = BufReader::new(stdout).lines();
    let mut events = Vec::new();
    let mut tools = ToolNames::default();
    let mut total = 0usize;
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| Error::Io(format!("reading claude's output: {e}")))?
    {
        total += line.len();
        if total > OUTPUT_LIMIT {
            return Err(Error::BadOutput(format!(
                "more than {} MiB of output",
                OUTPUT_LIMIT / (1024 * 1024)
            )));
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            // Not ours to judge line by line; the result event decides.
            continue;
        };
        for e in tools.events_of(&v) {
            // A caller that went away: the group is killed when we return.
            if tx.send(Ok(e)).await.is_err() {
                return Err(Error::Io("the caller went away".into()));
            }
        }
        if v["type"] == "result" {
            events.push(v);
        }
    }
    Ok(events)
}

/// `--output-format json`: an array of events, or one object.
fn parse_json(buf: &[u8]) -> Result<Vec<Value>, Error> {
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    match serde_json::from_slice::<Value>(buf) {
        Ok(Value::Array(events)) => Ok(events),
        Ok(v @ Value::Object(_)) => Ok(vec![v]),
        Ok(_) => Err(Error::BadOutput("neither an array nor an object".into())),
        Err(e) => Err(Error::BadOutput(e.to_string())),
    }
}

/// Stream-json events as [`Event`]s, remembering tool-use ids so that a
/// result can name its tool.
#[derive(Default)]
struct ToolNames(BTreeMap<String, String>);

impl ToolNames {
    fn events_of(&mut self, v: &Value) -> Vec<Event> {
        let mut out = Vec::new();
        match v["type"].as_str() {
            // Only the top-level conversation's text: a sub-agent's is not
            // the answer.
            Some("stream_event") if v["parent_tool_use_id"].is_null() => {
                let e = &v["event"];
                if e["type"] == "content_block_delta"
                    && e["delta"]["type"] == "text_delta"
                    && let Some(t) = e["delta"]["text"].as_str()
                    && !t.is_empty()
                {
                    out.push(Event::Delta(t.to_string()));
                }
            }
            Some("assistant") => {
                for block in v["message"]["content"].as_array().into_iter().flatten() {
                    if block["type"] == "tool_use" {
                        let name = block["name"].as_str().unwrap_or("").to_string();
                        if let Some(id) = block["id"].as_str() {
                            self.0.insert(id.to_string(), name.clone());
                        }
                        out.push(Event::ToolUse {
                            name,
                            input: block["input"].clone(),
                        });
                    }
                }
            }
            Some("user") => {
                for block in v["message"]["content"].as_array().into_iter().flatten() {
                    if block["type"] == "tool_result" {
                        let id = block["tool_use_id"].as_str().unwrap_or("");
                        out.push(Event::ToolResult {
                            name: self.0.get(id).cloned().unwrap_or_default(),
                            ok: block["is_error"] != true,
                        });
                    }
                }
            }
            _ => {}
        }
        out
    }
}

/// The answer the events and the exit give, or the contract's error.
fn outcome(events: &[Value], code: i32, stderr: &str) -> Result<Answer, Error> {
    let result = events.iter().rev().find(|e| e["type"] == "result");
    let Some(result) = result else {
        if code != 0 {
            return Err(exited(code, stderr));
        }
        return Err(Error::NoResult);
    };
    let text = result["result"].as_str().unwrap_or("").to_string();
    if result["is_error"] == true || code != 0 {
        // The CLI's own words (e.g. "Not logged in · Please run /login").
        let mut detail = if text.is_empty() {
            result["subtype"].as_str().unwrap_or("error").to_string()
        } else {
            text
        };
        if let Some(status) = result["api_error_status"].as_u64() {
            detail.push_str(&format!(" (API status {status})"));
        }
        if result["is_error"] != true {
            return Err(Error::Exited { code, detail });
        }
        return Err(Error::ErrorResult(detail));
    }
    Ok(Answer {
        text,
        session_id: result["session_id"].as_str().map(str::to_string),
        usage: usage_of(result),
    })
}

fn exited(code: i32, stderr: &str) -> Error {
    let detail: String = stderr.trim().chars().take(STDERR_SHOWN).collect();
    Error::Exited {
        code,
        detail: if detail.is_empty() {
            "(nothing on stderr)".into()
        } else {
            detail
        },
    }
}

/// The result's token counts in OpenAI's shape.
fn usage_of(result: &Value) -> Option<Value> {
    let u = result.get("usage")?;
    let input = u["input_tokens"].as_u64().unwrap_or(0)
        + u["cache_read_input_tokens"].as_u64().unwrap_or(0)
        + u["cache_creation_input_tokens"].as_u64().unwrap_or(0);
    let output = u["output_tokens"].as_u64().unwrap_or(0);
    Some(json!({
        "prompt_tokens": input,
        "completion_tokens": output,
        "total_tokens": input + output,
    }))
}

/// A chat message's text: its string content, or its text parts joined by
/// newlines (other parts, such as images, left out).
pub fn message_text(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// A chat conversation as one `claude -p` call's system prompt and prompt
/// (contract §8.1): system messages become the system prompt (joined);
/// a single remaining message is its text verbatim; several become
/// `role: text` lines. Text parts of array content are joined; other parts
/// (images) cannot reach the CLI and are left out.
pub fn flatten(messages: &[Value]) -> (Option<String>, String) {
    let text = message_text;
    let mut system = Vec::new();
    let mut rest = Vec::new();
    for m in messages {
        match m["role"].as_str() {
            Some("system" | "developer") => system.push(text(m)),
            _ => rest.push(m),
        }
    }
    let prompt = match rest.as_slice() {
        [one] => text(one),
        many => many
            .iter()
            .map(|m| format!("{}: {}", m["role"].as_str().unwrap_or("user"), text(m)))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    (system, prompt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> ClaudeCli {
        ClaudeCli::new(
            &Env::from_pairs([("PATH", "/bin"), ("OPENAI_API_KEY", "sk-x")]),
            Path::new("/state"),
            None,
        )
    }

    #[test]
    fn tool_less_argv_is_the_lockdown() {
        let call = Call {
            model: "haiku".into(),
            system: Some("Be terse.".into()),
            prompt: "- buy milk".into(),
            ..Call::default()
        };
        assert_eq!(
            cli().argv(&call, false, None),
            [
                "-p",
                "--output-format",
                "json",
                "--max-turns",
                "1",
                "--no-session-persistence",
                "--strict-mcp-config",
                "--setting-sources",
                "project",
                "--permission-mode",
                "dontAsk",
                "--tools",
                "",
                "--disallowedTools",
                DENY,
                "--system-prompt",
                "Be terse.",
                "--model",
                "haiku"
            ]
        );
    }

    #[test]
    fn delegation_and_resume_and_streaming() {
        let call = Call {
            system: Some("S".into()),
            resume: Some("sid".into()),
            workdir: Some("/w".into()),
            delegate: Some(Delegate {
                url: "http://127.0.0.1:1/mcp".into(),
                token: Secret::new("t"),
                tools: vec!["mcp__hello__count_to".into(), "mcp__a__b".into()],
                max_turns: 8,
            }),
            ..Call::default()
        };
        let v = cli().argv(&call, true, Some(Path::new("/w/delegate-mcp.json")));
        let s = v.join(" ");
        assert!(
            s.starts_with(
                "-p --output-format stream-json --verbose --include-partial-messages --max-turns 8 --mcp-config /w/delegate-mcp.json --strict-mcp-config"
            ),
            "{s}"
        );
        assert!(
            s.contains(
                "--allowedTools mcp__woollama__mcp__hello__count_to,mcp__woollama__mcp__a__b"
            ),
            "{s}"
        );
        // A resumed turn has no system prompt; no model leaves the default.
        assert!(s.ends_with("--resume sid"), "{s}");
    }

    #[test]
    fn the_child_environment_is_the_allow_list_plus_the_quiet_switches() {
        let c = cli();
        assert_eq!(c.env.get("PATH").map(String::as_str), Some("/bin"));
        assert!(!c.env.contains_key("OPENAI_API_KEY"));
        assert_eq!(
            c.env.get("CLAUDE_CODE_MAX_RETRIES").map(String::as_str),
            Some("0")
        );
        assert_eq!(
            c.env.get("ENABLE_TOOL_SEARCH").map(String::as_str),
            Some("false")
        );
        assert_eq!(c.bin, "claude");
    }

    #[test]
    fn flattening() {
        let m = |r: &str, c: &str| json!({"role": r, "content": c});
        assert_eq!(
            flatten(&[m("system", "S"), m("user", "- hi")]),
            (Some("S".into()), "- hi".into())
        );
        assert_eq!(
            flatten(&[m("user", "a"), m("assistant", "b"), m("user", "c")]),
            (None, "user: a\nassistant: b\nuser: c".into())
        );
        let parts = json!({"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "image_url"}]});
        assert_eq!(flatten(&[parts]), (None, "x".into()));
    }

    #[test]
    fn outcomes() {
        let ok = json!({"type": "result", "result": "hi", "is_error": false, "session_id": "s",
            "usage": {"input_tokens": 5, "output_tokens": 7}});
        let a = outcome(&[json!({"type": "system"}), ok], 0, "").expect("ok");
        assert_eq!(a.text, "hi");
        assert_eq!(a.session_id.as_deref(), Some("s"));
        assert_eq!(a.usage.expect("usage")["total_tokens"], 12);

        let login = json!({"type": "result", "subtype": "success", "is_error": true,
            "result": "Not logged in · Please run /login"});
        assert_eq!(
            outcome(&[login], 1, "").expect_err("fails").to_string(),
            "claude returned an error result: Not logged in · Please run /login"
        );
        let api = json!({"type": "result", "is_error": true, "result": "Invalid API key", "api_error_status": 401});
        assert_eq!(
            outcome(&[api], 1, "").expect_err("fails").to_string(),
            "claude returned an error result: Invalid API key (API status 401)"
        );
        assert_eq!(
            outcome(&[], 1, "error: unknown option '--x'\n")
                .expect_err("fails")
                .to_string(),
            "claude exited 1: error: unknown option '--x'"
        );
        assert_eq!(
            outcome(&[], 0, "").expect_err("fails").to_string(),
            "no 'result' event in claude output"
        );
        assert!(
            parse_json(b"{not json")
                .is_err_and(|e| e.to_string().starts_with("could not parse claude output"))
        );
    }

    #[test]
    fn a_transcript_is_the_conversation_text() {
        let lines = [
            json!({"type": "queue-operation", "content": "hi"}),
            json!({"type": "user", "message": {"role": "user", "content": "hi"}}),
            json!({"type": "user", "isMeta": true, "message": {"role": "user", "content": "meta"}}),
            json!({"type": "assistant", "message": {"id": "m1", "role": "assistant", "content": [{"type": "text", "text": "hel"}]}}),
            json!({"type": "assistant", "message": {"id": "m1", "role": "assistant", "content": [{"type": "text", "text": "lo"}]}}),
            json!({"type": "user", "message": {"role": "user", "content": [{"type": "tool_result", "content": "x"}]}}),
            json!({"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": "again"}]}}),
            json!({"type": "assistant", "message": {"id": "m1", "role": "assistant", "content": [{"type": "text", "text": "yes"}]}}),
        ];
        let text: Vec<String> = lines.iter().map(Value::to_string).collect();
        assert_eq!(
            transcript_messages(&(text.join("\n") + "\n{broken")),
            [
                json!({"role": "user", "content": "hi"}),
                json!({"role": "assistant", "content": "hello"}),
                json!({"role": "user", "content": "again"}),
                json!({"role": "assistant", "content": "yes"}),
            ]
        );
    }

    #[test]
    fn stream_json_events() {
        let mut t = ToolNames::default();
        let delta = json!({"type": "stream_event", "parent_tool_use_id": null,
            "event": {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "he"}}});
        assert_eq!(t.events_of(&delta), [Event::Delta("he".into())]);
        let nested = json!({"type": "stream_event", "parent_tool_use_id": "x",
            "event": {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "no"}}});
        assert!(t.events_of(&nested).is_empty());
        let using = json!({"type": "assistant", "message": {"content": [
            {"type": "tool_use", "id": "t1", "name": "mcp__woollama__mcp__hello__count_to", "input": {"n": 3}}]}});
        assert_eq!(t.events_of(&using).len(), 1);
        let result = json!({"type": "user", "message": {"content": [
            {"type": "tool_result", "tool_use_id": "t1", "is_error": false, "content": "1 2 3"}]}});
        assert_eq!(
            t.events_of(&result),
            [Event::ToolResult {
                name: "mcp__woollama__mcp__hello__count_to".into(),
                ok: true
            }]
        );
    }
}
