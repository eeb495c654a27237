//! Faults (issue 14), each as a user would meet it: an upstream that resets
//! the connection in the middle of a stream; one whose body never ends
//! (cut where woollama reads whole, never buffered where it relays); clients
//! that never read and then vanish; a downstream that dies every few calls;
//! a full state disk; a thousand idle connections held open while another
//! client is served. (A downstream with a flooded stdout is in
//! `flooded_downstream.rs`: it measures the process's memory.)

mod common;

use common::Setup;
use common::mock::Mock;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An "upstream" that answers one streamed chat with a first chunk and then
/// drops the connection mid-body (no terminating chunk: a reset).
async fn resetting_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = s.read(&mut buf).await;
                let chunk = format!(
                    "data: {}\n\n",
                    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                           "choices": [{"index": 0, "delta": {"content": "partial"}, "finish_reason": null}]})
                );
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                let body = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
                let _ = s.flush().await;
                // Gone, mid-body.
                drop(s);
            });
        }
    });
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn an_upstream_that_resets_mid_stream_gives_an_error_frame_and_an_end() {
    let mock = Mock::start().await;
    let upstream = resetting_upstream().await;
    let app = Setup::new(&mock)
        .inferencers(&format!("[inferencers.flaky]\nbase_url = \"{upstream}\"\n"))
        .start()
        .await;
    // Pass-through: the chunk that came, then one error frame.
    let text = app
        .post(
            "/v1/chat/completions",
            json!({"model": "flaky/m", "stream": true, "messages": []}),
        )
        .await
        .text()
        .await
        .expect("the stream ends");
    assert!(text.contains("partial"), "{text}");
    assert!(text.contains("\"error\""), "{text}");
    assert!(text.contains("broke off"), "{text}");
    // Responses: `error` and `response.failed`, never `response.completed`.
    let text = app
        .post(
            "/v1/responses",
            json!({"model": "flaky/m", "stream": true, "input": "x"}),
        )
        .await
        .text()
        .await
        .expect("the stream ends");
    assert!(text.contains("response.failed"), "{text}");
    assert!(!text.contains("response.completed"), "{text}");
    // Anthropic Messages: an `error` event.
    let text = app
        .post(
            "/v1/messages",
            json!({"model": "flaky/m", "stream": true, "max_tokens": 5, "messages": []}),
        )
        .await
        .text()
        .await
        .expect("the stream ends");
    assert!(text.contains("event: error"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_do_not_stop_others_being_served() {
    // Both ends are in this process: room for 2,000 descriptors and more
    // (a fresh machine's soft limit may be 1,024).
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let want = 4096.min(hard);
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want, hard).expect("setrlimit");
    }
    let mock = Mock::start().await;
    let app = Setup::new(&mock).start().await;
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(
            tokio::net::TcpStream::connect(app.addr)
                .await
                .expect("connect"),
        );
    }
    // Some send half a request and stop.
    for s in idle.iter_mut().take(100) {
        s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .expect("write");
    }
    let r = app.get("/v1/models").await;
    assert_eq!(r.status().as_u16(), 200);
    let r = app
        .post(
            "/v1/chat/completions",
            json!({"model": "mock/m", "messages": []}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    drop(idle);
}

/// What an [`endless`] upstream has seen, across its connections.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// Connections answered.
    answered: usize,
    /// Connections whose writes have been blocked for [`BLOCKED`]: the
    /// reader stopped taking bytes.
    blocked: usize,
    /// Connections the other side closed before the body ended.
    gone: usize,
    /// Connections whose whole body was taken.
    finished: usize,
    /// The most bytes any one connection got out before it blocked, went
    /// or finished.
    most_sent: u64,
}

/// How long a write must wait before the upstream counts itself blocked. A
/// reader that buffers everything takes a write in microseconds; this only
/// decides how soon a bounded one is noticed.
const BLOCKED: std::time::Duration = std::time::Duration::from_secs(2);
/// The most any connection of an [`endless`] upstream sends: far past every
/// limit and buffer, so "finished" means something read it all.
const ENDLESS: u64 = 512 << 20;

/// An upstream whose every answer is a 200 with a chunked body that does
/// not end (until [`ENDLESS`] bytes): a chat completion whose content goes
/// on and on, or (`sse`) chunk events that never stop. Reports what it
/// saw through the returned watch.
async fn endless(sse: bool) -> (String, tokio::sync::watch::Receiver<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (seen, watch) = tokio::sync::watch::channel(Seen::default());
    let seen = std::sync::Arc::new(seen);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = s.read(&mut buf).await;
                seen.send_modify(|x| x.answered += 1);
                let (content_type, first, piece) = if sse {
                    let frame = format!(
                        "data: {}\n\n",
                        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                               "choices": [{"index": 0, "delta": {"content": "y".repeat(1000)}, "finish_reason": null}]})
                    );
                    ("text/event-stream", String::new(), frame.repeat(64))
                } else {
                    let open = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":""#;
                    ("application/json", open.to_string(), "y".repeat(64 * 1024))
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n"
                );
                let chunk = |body: &str| format!("{:x}\r\n{body}\r\n", body.len()).into_bytes();
                let mut out = head.into_bytes();
                if !first.is_empty() {
                    out.extend(chunk(&first));
                }
                let piece = chunk(&piece);
                let mut sent = 0u64;
                let mut blocked = false;
                let outcome = loop {
                    if sent >= ENDLESS {
                        break "finished";
                    }
                    let write = s.write_all(&out);
                    let done = if blocked {
                        Ok(write.await)
                    } else {
                        tokio::time::timeout(BLOCKED, write).await
                    };
                    match done {
                        Ok(Ok(())) => {
                            sent += out.len() as u64;
                            out.clone_from(&piece);
                        }
                        Ok(Err(_)) => break "gone",
                        Err(_) => {
                            // Part of `out` may have gone: from here on the
                            // body is garbage, which no one is reading.
                            blocked = true;
                            seen.send_modify(|x| {
                                x.blocked += 1;
                                x.most_sent = x.most_sent.max(sent);
                            });
                        }
                    }
                };
                seen.send_modify(|x| {
                    x.most_sent = x.most_sent.max(sent);
                    match outcome {
                        "gone" => x.gone += 1,
                        _ => x.finished += 1,
                    }
                });
            });
        }
    });
    (format!("http://{addr}/v1"), watch)
}

/// Waits until the endless upstream has seen what `pred` wants.
async fn seen_until(
    watch: &mut tokio::sync::watch::Receiver<Seen>,
    what: &str,
    pred: impl Fn(&Seen) -> bool,
) -> Seen {
    let reached = tokio::time::timeout(common::LIMIT, watch.wait_for(|s| pred(s)))
        .await
        .map(|r| r.map(|s| s.clone()));
    match reached {
        Ok(Ok(s)) => s,
        _ => panic!(
            "{what}: not reached; the upstream saw {:?}",
            *watch.borrow()
        ),
    }
}

/// What woollama must read whole (a recipe's turn) from an upstream that
/// never stops sending is cut at the limit: a 502 naming it, the upstream
/// connection dropped, and no more read than the limit.
#[tokio::test]
async fn an_endless_upstream_body_is_cut_at_the_limit() {
    let mock = Mock::start().await;
    let (upstream, mut seen) = endless(false).await;
    let app = Setup::new(&mock)
        .inferencers(&format!(
            "[inferencers.endless]\nbase_url = \"{upstream}\"\n"
        ))
        .recipes("[recipes.big]\ninferencer = \"endless/m\"\n")
        .start()
        .await;
    let resp = app
        .post(
            "/v1/chat/completions",
            json!({"model": "woollama/big", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    let msg = common::expect_error(resp, 502, "server_error").await;
    assert!(msg.contains("more than 32 MiB"), "{msg}");
    let s = seen_until(&mut seen, "the upstream let go", |s| s.gone == 1).await;
    assert_eq!(s.finished, 0, "{s:?}");
    // Cut near the limit: what was read, plus what sat in socket buffers.
    assert!(s.most_sent < 96 << 20, "{s:?}");
}

/// Clients that open streams and never read a byte: woollama stops reading
/// the upstream once the buffers between are full (its memory does not grow
/// with the upstream's output), on every kind of stream it relays; and when
/// the clients vanish, every upstream request is cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_hold_bounded_buffers_and_vanishing_cancels_every_upstream() {
    let mock = Mock::start().await;
    let (upstream, mut seen) = endless(true).await;
    let app = Setup::new(&mock)
        .inferencers(&format!(
            "[inferencers.endless]\nbase_url = \"{upstream}\"\n"
        ))
        .recipes("[recipes.talker]\ninferencer = \"endless/m\"\n")
        .start()
        .await;
    let bodies = [
        (
            "/v1/chat/completions",
            json!({"model": "endless/m", "stream": true, "messages": []}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "endless/m", "stream": true, "messages": []}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "woollama/talker", "stream": true, "messages": [{"role": "user", "content": "go"}]}),
        ),
        (
            "/v1/responses",
            json!({"model": "endless/m", "stream": true, "input": "go"}),
        ),
        (
            "/v1/messages",
            json!({"model": "endless/m", "stream": true, "max_tokens": 5, "messages": [{"role": "user", "content": "go"}]}),
        ),
    ];
    let mut clients = Vec::new();
    for (path, body) in &bodies {
        let body = body.to_string();
        let mut s = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        let req = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            app.addr,
            body.len()
        );
        s.write_all(req.as_bytes()).await.expect("write");
        clients.push(s); // and never read
    }
    let n = bodies.len();
    let s = seen_until(&mut seen, "every upstream blocked", |s| s.blocked == n).await;
    assert_eq!(s.finished, 0, "{s:?}");
    // Socket buffers on both sides, and woollama's own: a few MiB each way,
    // never the upstream's 512 MiB.
    assert!(s.most_sent < 64 << 20, "{s:?}");

    drop(clients);
    let s = seen_until(&mut seen, "every upstream cancelled", |s| s.gone == n).await;
    assert_eq!(s.finished, 0, "{s:?}");
}

/// A downstream that dies on every third call: the call it died on fails
/// with an error naming the server, the next call after it reconnects is
/// served by a new process, and every dead one was reaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_that_flaps_fails_the_call_it_died_on_and_heals() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pids");
    let mcp = json!({"mcpServers": {"flappy": common::unruly(&file, &["--flap", "3"])}});
    let app = Setup::new(&mock)
        .mcp(&mcp.to_string())
        .env("WOOLLAMA_MCP_RETRY_MAX_SECS", "0.1")
        .start()
        .await;
    let mut outcomes = Vec::new();
    for i in 0..9 {
        common::until(&app.tools, "connected", |s| common::connected(s, "flappy")).await;
        let text = format!("call {i}");
        let args = common::obj(json!({"text": text}));
        match app.tools.call("mcp__flappy__echo", Some(args)).await {
            Ok(r) if r.is_error != Some(true) => {
                assert_eq!(
                    r.content[0].as_text().map(|t| t.text.as_str()),
                    Some(text.as_str())
                );
                outcomes.push("ok");
            }
            other => {
                let said = match other {
                    Ok(r) => format!("{:?}", r.content),
                    Err(e) => e.to_string(),
                };
                assert!(
                    said.contains("server 'flappy'") && said.contains("connection closed"),
                    "{said}"
                );
                outcomes.push("died");
                // Noticed before the next call, which goes to a new process.
                common::until(&app.tools, "noticed", |s| !common::connected(s, "flappy")).await;
            }
        }
    }
    assert_eq!(
        outcomes,
        ["ok", "ok", "died", "ok", "ok", "died", "ok", "ok", "died"]
    );
    common::until(&app.tools, "healed", |s| common::connected(s, "flappy")).await;
    let all = common::pids(&file);
    assert_eq!(all.len(), 4, "{all:?}");
    for dead in &all[..3] {
        assert!(!common::running(dead), "flapped process {dead} still runs");
    }
    app.tools.shutdown(common::LIMIT).await;
    assert!(
        !common::running(&all[3]),
        "the last process outlived shutdown"
    );
}

/// A small tmpfs, mounted for one test and lazily unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// A `size`-byte tmpfs, or `None` when this user may not mount (the
    /// test then says so: it needs root, which CI has).
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount");
        if out.status.success() {
            return Some(SmallDisk { dir });
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let root = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            == Some("0");
        assert!(
            !root,
            "root cannot mount a tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        None
    }

    fn grow(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .expect("run mount");
        assert!(ok.success(), "remount");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// The state dir's disk fills up: the change that did not fit is refused
/// with a 500 that says the disk is full and where; every earlier
/// conversation is still served and still on disk, whole; no temporary
/// file is left; and once there is room again, writes succeed.
#[tokio::test]
async fn a_full_disk_refuses_the_write_and_corrupts_nothing() {
    let Some(disk) = SmallDisk::mount("64k") else {
        return;
    };
    let state = disk.dir.path().join("state");
    let mock = Mock::start().await;
    let app = Setup::new(&mock)
        .env("WOOLLAMA_STATE_DIR", &state.to_string_lossy())
        .start()
        .await;
    let metadata: serde_json::Map<String, serde_json::Value> = (0..16)
        .map(|i| (format!("k{i}"), json!("m".repeat(500))))
        .collect();
    let mut made = Vec::new();
    let refusal = loop {
        assert!(made.len() < 64, "64 KiB never filled");
        let resp = app
            .post("/v1/conversations", json!({"metadata": metadata}))
            .await;
        if resp.status().as_u16() != 201 {
            break common::expect_error(resp, 500, "server_error").await;
        }
        let (_, v) = common::json(resp).await;
        made.push(v["id"].as_str().expect("id").to_string());
    };
    assert!(!made.is_empty());
    assert!(
        refusal.contains("No space left on device")
            && refusal.contains("the disk is full")
            && refusal.contains(&state.join("conversations.journal").display().to_string()),
        "{refusal}"
    );
    // Served: exactly what was made.
    let (status, list) = common::json(app.get("/v1/conversations?limit=100").await).await;
    assert_eq!(status, 200);
    let listed: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(listed, made);
    // On disk: the same, whole (the line cut short by the full disk taken
    // back), and nothing else.
    let names: Vec<String> = std::fs::read_dir(&state)
        .expect("state dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["conversations.journal"]);
    let journal = std::fs::read(state.join("conversations.journal")).expect("read");
    assert!(
        journal.ends_with(b"\n"),
        "a torn line was left in the journal"
    );
    let reopened = woollama::conversations::Table::open(&state).expect("the table reopens");
    let page = reopened
        .list(woollama::conversations::Order::Asc, None, 100)
        .expect("list");
    let on_disk: Vec<&str> = page.data.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(on_disk, made);
    // Room again: writes go on.
    disk.grow("1m");
    let resp = app
        .post("/v1/conversations", json!({"metadata": metadata}))
        .await;
    assert_eq!(resp.status().as_u16(), 201);
}
