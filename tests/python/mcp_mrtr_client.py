"""Drives woollama's bridge of multi-round-trip requests with the official
`mcp` Python SDK (2.3.0) in `mode="auto"` (protocol 2026-07-28).

Called by tests/server_everything.rs, which starts woollama with
`@modelcontextprotocol/server-everything` as a downstream. That server asks
for sampling and elicitation the 2025-11-25 way (a request to its client,
woollama); the SDK client here sees `input_required`, answers through its
callbacks, and retries — which must complete the downstream's call.

    mcp_mrtr_client.py URL
        Streamable HTTP at URL (the in-process app).
    mcp_mrtr_client.py stdio WOOLLAMA CONFIG_DIR HOME
        `WOOLLAMA mcp` spawned by the SDK, over that config.

Prints the failed checks as JSON and `N passed, M failed`; exits 1 if a
check failed.
"""

import json
import os
import sys
import traceback

import anyio
from mcp import Client, StdioServerParameters, types

SAMPLED = "a line the client's model wrote"
asked = {"sampling": 0, "elicitation": 0}
results = []


def check(name, cond, detail=""):
    results.append({"check": name, "ok": bool(cond), "detail": "" if cond else str(detail)})
    print(("ok " if cond else "FAILED ") + name + ("" if cond else f": {detail}"), file=sys.stderr)


async def sampling(context, params):
    asked["sampling"] += 1
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=SAMPLED),
        model="client-model",
        stop_reason="endTurn",
    )


async def elicitation(context, params):
    asked["elicitation"] += 1
    return types.ElicitResult(action="accept", content={"name": "Ada Lovelace", "check": True})


async def main(target):
    with anyio.fail_after(120):
        async with Client(
            target,
            mode="auto",
            read_timeout_seconds=30,
            sampling_callback=sampling,
            elicitation_callback=elicitation,
        ) as client:
            check("negotiated 2026-07-28", client.protocol_version == "2026-07-28", client.protocol_version)
            r = await client.call_tool(
                "mcp__everything__trigger-sampling-request", {"prompt": "a line", "maxTokens": 20}
            )
            text = " ".join(getattr(c, "text", "") for c in r.content)
            check("sampling: the call completed", r.is_error is not True, r)
            check("sampling: the client's answer reached the server", SAMPLED in text, text)
            check("sampling: asked once", asked["sampling"] == 1, asked)
            r = await client.call_tool("mcp__everything__trigger-elicitation-request", {})
            text = " ".join(getattr(c, "text", "") for c in r.content)
            check("elicitation: the call completed", r.is_error is not True, r)
            check("elicitation: the client's answer reached the server", "Ada Lovelace" in text, text)
            check("elicitation: asked once", asked["elicitation"] == 1, asked)


def target(argv):
    if len(argv) == 5 and argv[1] == "stdio":
        env = {"PATH": os.environ.get("PATH", ""), "HOME": argv[4], "WOOLLAMA_CONFIG_DIR": argv[3],
               "XDG_RUNTIME_DIR": os.path.join(argv[4], "run")}
        return StdioServerParameters(command=argv[2], args=["mcp"], env=env)
    return argv[1]


if __name__ == "__main__":
    try:
        anyio.run(main, target(sys.argv))
    except Exception as e:  # noqa: BLE001 - reported
        traceback.print_exc()
        check("session", False, f"raised {type(e).__name__}: {e}")
    failed = [r for r in results if not r["ok"]]
    print(json.dumps({"failed": failed}))
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)
