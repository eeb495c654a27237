"""A fake `claude` CLI for fast, deterministic tests of how woollama runs it.

Usage (through a wrapper that woollama runs as WOOLLAMA_CLAUDE_BIN):
    fake_claude.py RECORD_FILE <claude argv...>

Appends one JSON line per run to RECORD_FILE: argv, environment, working
directory, pid and the prompt read from stdin. Then answers like the real CLI
(`--output-format json`: one result object; `stream-json`: system init,
partial-message text deltas, the assistant message, the result), or fails on
cue, by what the prompt contains:

    FAIL-LOGIN     exit 1, a result with is_error and "Not logged in · Please run /login"
    FAIL-APIKEY    exit 1, is_error, "Invalid API key", api_error_status 401
    FAIL-CRASH     exit 2, "boom: segfault" on stderr, nothing on stdout
    FAIL-GARBAGE   exit 0, "this is not json" on stdout
    FAIL-NORESULT  exit 0, only a system event
    HANG           never answers (a test of the timeout)

Otherwise the answer is "fake claude: <prompt>", in the session named by
--resume or a new one.
"""

import json
import os
import sys
import time
import uuid

record, argv = sys.argv[1], sys.argv[2:]
prompt = sys.stdin.read()
with open(record, "a") as f:
    f.write(json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd(),
                        "pid": os.getpid(), "prompt": prompt}) + "\n")


def opt(name):
    return argv[argv.index(name) + 1] if name in argv else None


stream = opt("--output-format") == "stream-json"
session = opt("--resume") or str(uuid.uuid4())


def result(text, is_error=False, status=None):
    return {"type": "result", "subtype": "success", "is_error": is_error, "result": text,
            "session_id": session, "api_error_status": status,
            "usage": {"input_tokens": 3, "output_tokens": 4}}


def emit(events):
    if stream:
        for e in events:
            print(json.dumps(e), flush=True)
    else:
        print(json.dumps(events[-1]))


if "HANG" in prompt:
    time.sleep(3600)
if "FAIL-CRASH" in prompt:
    sys.stderr.write("boom: segfault\n")
    sys.exit(2)
if "FAIL-GARBAGE" in prompt:
    print("this is not json")
    sys.exit(0)
if "FAIL-NORESULT" in prompt:
    emit([{"type": "system", "subtype": "init"}])
    sys.exit(0)
if "FAIL-LOGIN" in prompt:
    emit([result("Not logged in · Please run /login", True)])
    sys.exit(1)
if "FAIL-APIKEY" in prompt:
    emit([result("Invalid API key", True, 401)])
    sys.exit(1)

text = "fake claude: " + prompt
half = len(text) // 2
delta = lambda t: {"type": "stream_event", "parent_tool_use_id": None, "session_id": session,
                   "event": {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": t}}}
emit([
    {"type": "system", "subtype": "init", "session_id": session},
    delta(text[:half]),
    delta(text[half:]),
    {"type": "assistant", "message": {"id": "msg_1", "role": "assistant",
                                      "content": [{"type": "text", "text": text}]}},
    result(text),
])
