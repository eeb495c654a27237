"""A fake Anthropic Messages API for driving the real `claude` CLI offline.

Usage: fake_anthropic.py RECORD_FILE PORT_FILE

Listens on 127.0.0.1 (a free port, written to PORT_FILE once listening) and
answers every `POST /v1/messages` as a stream (the CLI always streams):

- if the request offers a tool whose name ends in `count_to` and no
  `tool_result` is in the conversation yet, a `tool_use` of it with {"n": 3};
- otherwise the text `fake says: <the last user text or tool result>`.

Each request body is appended to RECORD_FILE as one JSON line, so a test can
prove what reached the API (system prompt, tools, messages).
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECORD, PORT_FILE = sys.argv[1], sys.argv[2]


def last_text(messages):
    for m in reversed(messages):
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, str):
            return content
        for block in reversed(content or []):
            if block.get("type") == "text" and not block["text"].startswith("<system-reminder>"):
                return block["text"]
            if block.get("type") == "tool_result":
                inner = block.get("content")
                if isinstance(inner, list):
                    inner = "".join(b.get("text", "") for b in inner)
                return str(inner)
    return ""


def has_tool_result(messages):
    return any(
        isinstance(m.get("content"), list)
        and any(b.get("type") == "tool_result" for b in m["content"])
        for m in messages
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        with open(RECORD, "a") as f:
            f.write(json.dumps({"path": self.path, "body": body}) + "\n")
        if not self.path.startswith("/v1/messages") or "count_tokens" in self.path:
            self.reply(200, {"input_tokens": 1})
            return
        messages = body.get("messages", [])
        tool = next(
            (t["name"] for t in body.get("tools", []) if t.get("name", "").endswith("count_to")),
            None,
        )
        events = [
            ("message_start", {"type": "message_start", "message": {
                "id": "msg_fake", "type": "message", "role": "assistant",
                "model": body.get("model", "fake"), "content": [], "stop_reason": None,
                "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 0}}}),
        ]
        if tool and not has_tool_result(messages):
            events += [
                ("content_block_start", {"type": "content_block_start", "index": 0,
                  "content_block": {"type": "tool_use", "id": "toolu_fake1", "name": tool, "input": {}}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0,
                  "delta": {"type": "input_json_delta", "partial_json": "{\"n\": 3}"}}),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                ("message_delta", {"type": "message_delta",
                  "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                  "usage": {"output_tokens": 7}}),
            ]
        else:
            text = "fake says: " + last_text(messages)
            half = len(text) // 2
            events += [
                ("content_block_start", {"type": "content_block_start", "index": 0,
                  "content_block": {"type": "text", "text": ""}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0,
                  "delta": {"type": "text_delta", "text": text[:half]}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0,
                  "delta": {"type": "text_delta", "text": text[half:]}}),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                ("message_delta", {"type": "message_delta",
                  "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                  "usage": {"output_tokens": 7}}),
            ]
        events.append(("message_stop", {"type": "message_stop"}))
        payload = "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in events).encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self.reply(200, {"data": []})

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def reply(self, status, obj):
        payload = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.replace(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
