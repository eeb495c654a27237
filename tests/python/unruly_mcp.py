"""A stdio MCP server that misbehaves on cue, written on bare JSON-RPC lines
(no SDK, so nothing tidies its output) for woollama's fault tests.

Usage: unruly_mcp.py PIDFILE [--flap N] [--noise] [--flood MIB] [--strict] [--grumble]

Appends its pid to PIDFILE at start. Two tools: `echo` answers its `text`;
`sample` asks the client for a sampling (`sampling/createMessage`) and
answers with the sampled text — or, as real servers do, a tool error
saying why the sampling failed (also appended to PIDFILE.events). One
prompt, `ask`, is made the same way: its one message is the sampled text.

    --flap N     die (exit 3, no answer) on every Nth tools/call it receives,
                 so a client sees N-1 answers and then the connection close
    --noise      before every answer, write lines that are not JSON-RPC: text,
                 bytes that are not UTF-8, an empty line, a JSON object that
                 is no message, and an unsolicited notification
    --flood MIB  before answering `initialize`, write one MIB-MiB line of
                 garbage (no newline until its end)
    --strict     exit (status 4, no answer) on a request that comes before
                 `initialize`, as some older servers do on 2026-07-28's
                 `server/discover` probe

    --grumble    before refusing a method it does not know, write a report of
                 it to stderr, as older Python SDK servers do for
                 `server/discover` (lines with "unknown method report")

Without --strict it answers `server/discover` as servers that predate
2026-07-28 do: -32601, method not found.
"""

import json
import os
import sys

args = sys.argv[1:]
pidfile = args.pop(0)
flap = int(args[args.index("--flap") + 1]) if "--flap" in args else 0
noise = "--noise" in args
flood = int(args[args.index("--flood") + 1]) if "--flood" in args else 0
strict = "--strict" in args
grumble = "--grumble" in args
initialized = False

with open(pidfile, "a") as f:
    f.write(f"{os.getpid()}\n")

out = sys.stdout.buffer
calls = 0


def write(raw: bytes) -> None:
    out.write(raw)
    out.flush()


def send(message: dict) -> None:
    if noise:
        write(b"this is not json\n")
        write(b"\xff\xfe\xfd not utf-8 either\n")
        write(b"\n")
        write(b'{"hello": "a JSON object that is no JSON-RPC message"}\n')
        write(b'{"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "noise"}}\n')
    write(json.dumps(message).encode() + b"\n")


ECHO = {
    "name": "echo",
    "description": "Answers its text.",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
}
SAMPLE = {
    "name": "sample",
    "description": "Asks the client's model for a line.",
    "inputSchema": {"type": "object", "properties": {}},
}
# Our sampling requests still unanswered: their id -> the tools/call id.
asked = {}

for line in sys.stdin.buffer:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if isinstance(msg, dict) and "method" not in msg and msg.get("id") in asked:
        call, kind = asked.pop(msg["id"])
        if "error" in msg:
            text, failed = f"sampling failed: {msg['error'].get('message')}", True
            with open(pidfile + ".events", "a") as f:
                f.write(text + "\n")
        else:
            text, failed = msg["result"]["content"]["text"], False
        if kind == "prompt":
            send({"jsonrpc": "2.0", "id": call, "result": {"messages": [
                {"role": "user", "content": {"type": "text", "text": text}}]}})
        else:
            send({"jsonrpc": "2.0", "id": call, "result": {
                "content": [{"type": "text", "text": text}], "isError": failed}})
        continue
    if not isinstance(msg, dict) or "method" not in msg or "id" not in msg:
        continue  # notifications, and woollama's answers to our noise
    method, rid = msg["method"], msg["id"]
    if strict and not initialized and method != "initialize":
        sys.exit(4)
    if method == "initialize":
        initialized = True
        if flood:
            chunk = b"x" * (1 << 20)
            for _ in range(flood):
                out.write(chunk)
            write(b"\n")
        version = msg.get("params", {}).get("protocolVersion", "2025-11-25")
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "protocolVersion": version,
            "capabilities": {"tools": {}, "prompts": {}},
            "serverInfo": {"name": "unruly", "version": "0.0.1"},
        }})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [ECHO, SAMPLE]}})
    elif method == "tools/call":
        calls += 1
        if flap and calls % flap == 0:
            sys.exit(3)
        if msg.get("params", {}).get("name") == "sample":
            ask = f"sample-{rid}"
            asked[ask] = (rid, "tool")
            send({"jsonrpc": "2.0", "id": ask, "method": "sampling/createMessage", "params": {
                "messages": [{"role": "user", "content": {"type": "text", "text": "A line, please."}}],
                "maxTokens": 20}})
            continue
        text = msg.get("params", {}).get("arguments", {}).get("text", "")
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "content": [{"type": "text", "text": text}],
        }})
    elif method == "prompts/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"prompts": [
            {"name": "ask", "description": "A prompt made of a sampled line."}]}})
    elif method == "prompts/get":
        ask = f"prompt-{rid}"
        asked[ask] = (rid, "prompt")
        send({"jsonrpc": "2.0", "id": ask, "method": "sampling/createMessage", "params": {
            "messages": [{"role": "user", "content": {"type": "text", "text": "A prompt line, please."}}],
            "maxTokens": 20}})
    elif method == "ping":
        send({"jsonrpc": "2.0", "id": rid, "result": {}})
    else:
        if grumble:
            for i in range(5):
                sys.stderr.write(f"unknown method report {i}: {method} is not a request this server knows\n")
            sys.stderr.flush()
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"no method {method}"}})
