"""Drives woollama's MCP surface with the official `mcp` Python SDK (2.3.0).

Called by tests/mcp_clients.rs, which starts woollama over a config with the
bundled `hello` server as a downstream, the recipes `counter` and `plain`,
and a scripted mock model that answers every `chat` with ANSWER below.

    mcp_sdk_client.py http URL
        Streamable HTTP at URL (the in-process app, `hello` already connected).
    mcp_sdk_client.py stdio WOOLLAMA CONFIG_DIR HOME RUN_DIR
        `WOOLLAMA mcp` spawned by the SDK, over that config.

Each transport is exercised in `mode="legacy"` (initialize handshake) and
`mode="auto"` (2026-07-28 via server/discover where offered). Every check is
recorded; the script prints one JSON summary line and exits 1 if any failed.
"""

import json
import os
import sys
import traceback

import anyio
from mcp import Client, StdioServerParameters

ANSWER = "answer from the mock"
DOWNSTREAM_TOOLS = ["mcp__hello__count_to", "mcp__hello__hello"]
# Bound on every request, and on each whole session.
REQUEST_TIMEOUT = 30
SESSION_TIMEOUT = 120

results = []


def check(name, cond, detail=""):
    results.append({"check": name, "ok": bool(cond), "detail": "" if cond else str(detail)})
    print(("ok " if cond else "FAILED ") + name + ("" if cond else f": {detail}"), file=sys.stderr)
    return bool(cond)


async def attempt(name, body):
    """Runs one check's body; an exception is that check's failure, not the run's end."""
    try:
        await body()
    except Exception as e:  # noqa: BLE001 - reported, with the traceback on stderr
        traceback.print_exc()
        e = leaf(e)
        check(name, False, f"raised {type(e).__name__}: {e}")


def leaf(e):
    """The first real error inside (anyio task groups wrap them in groups)."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e


def names(listing):
    return [t.name for t in listing.tools]


async def surface_checks(client, label, mode):
    """What every mode and transport must show, on a session whose downstream is connected."""
    info = client.server_info
    check(f"{label}: server name", info is not None and info.name == "woollama", info)
    if mode == "auto":
        check(f"{label}: negotiated 2026-07-28", client.protocol_version == "2026-07-28", client.protocol_version)
    else:
        check(f"{label}: handshake-era version", client.protocol_version < "2026", client.protocol_version)

    async def tools_list():
        tools = names(await client.list_tools())
        check(f"{label}: tools/list", tools[:1] == ["chat"] and all(t in tools for t in DOWNSTREAM_TOOLS), tools)

    async def proxied_call():
        heard = []

        async def on_progress(progress, total, message):
            heard.append((progress, total, message))

        r = await client.call_tool("mcp__hello__count_to", {"n": 3}, progress_callback=on_progress)
        check(f"{label}: proxied tools/call structuredContent", r.structured_content == {"count": 3}, r)
        check(f"{label}: proxied tools/call isError", r.is_error is False, r)
        # hello sends all three before its result, so all three must reach the
        # caller before woollama relays that result. Their order is not
        # observable here: the SDK (2.x) runs each progress callback in a task
        # of its own (so does rmcp's client); woollama writes them in the
        # order read (`InOrder` in src/tools/connect.rs).
        want = [(1.0, 3.0, "1"), (2.0, 3.0, "2"), (3.0, 3.0, "3")]
        check(f"{label}: progress of the proxied call", sorted(heard) == want, f"heard {heard}, want {want}")

    async def prompts():
        listed = [p.name for p in (await client.list_prompts()).prompts]
        check(f"{label}: prompts/list", listed == ["counter", "plain"], listed)
        got = await client.get_prompt("counter", {"lang": "French"})
        rendered = [(m.role, getattr(m.content, "text", None)) for m in got.messages]
        check(f"{label}: prompts/get", rendered == [("user", "Count when asked. Speak French.")], got)

    async def chat():
        r = await client.call_tool("chat", {"recipe": "plain", "messages": [{"role": "user", "content": "hi"}]})
        text = [getattr(c, "text", None) for c in r.content]
        check(f"{label}: chat answer", r.is_error is False and text == [ANSWER], r)
        check(f"{label}: chat structuredContent", r.structured_content == {"result": ANSWER}, r)

    await attempt(f"{label}: tools/list", tools_list)
    await attempt(f"{label}: proxied tools/call", proxied_call)
    await attempt(f"{label}: prompts", prompts)
    await attempt(f"{label}: chat", chat)


async def session(target, label, mode, body, **kwargs):
    """Connects, runs `body(client)`, disconnects; all of it bounded."""

    async def run():
        with anyio.fail_after(SESSION_TIMEOUT):
            async with Client(target, mode=mode, read_timeout_seconds=REQUEST_TIMEOUT, **kwargs) as client:
                await body(client)

    await attempt(f"{label}: session", run)


async def late_downstream(params, label, mode):
    """`woollama mcp` answers before its downstreams connect: a client must
    be told when their tools arrive (list_changed, or for 2026-07-28 a
    `subscriptions/listen` stream), and then see them."""
    changed = anyio.Event()

    async def on_message(m):
        if getattr(m, "method", None) == "notifications/tools/list_changed":
            changed.set()

    async def wait_for_tools(client, arrived):
        tools = names(await client.list_tools(cache_mode="refresh"))
        if not all(t in tools for t in DOWNSTREAM_TOOLS):
            with anyio.move_on_after(REQUEST_TIMEOUT):
                await arrived()
            tools = names(await client.list_tools(cache_mode="refresh"))
        check(f"{label}: downstream tools once announced", all(t in tools for t in DOWNSTREAM_TOOLS), tools)

    async def legacy(client):
        await wait_for_tools(client, changed.wait)

    async def modern(client):
        entered = False
        try:
            async with client.listen(tools_list_changed=True) as sub:
                entered = True
                honored = sub.honored is not None and sub.honored.tools_list_changed
                check(f"{label}: subscriptions/listen honours toolsListChanged", honored, sub.honored)

                async def next_event():
                    async for _ in sub:
                        return

                await wait_for_tools(client, next_event)
        except Exception as e:
            if entered:
                raise
            # Only opening the stream failed: that is the finding.
            e = leaf(e)
            check(
                f"{label}: subscriptions/listen (tools.listChanged is advertised)",
                False,
                f"{type(e).__name__}: {e} (JSON-RPC error {getattr(e, 'code', None)})",
            )

    body = legacy if mode == "legacy" else modern
    await session(params, label, mode, body, message_handler=on_message, cache=None)


async def main_http(url):
    for mode in ["legacy", "auto"]:
        await session(url, f"http/{mode}", mode, lambda c, m=mode: surface_checks(c, f"http/{m}", m))


async def main_stdio(woollama, config_dir, home, run_dir):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": home,
        "WOOLLAMA_CONFIG_DIR": config_dir,
        "XDG_RUNTIME_DIR": run_dir,
        "RUST_LOG": "info",
    }
    direct = StdioServerParameters(command=woollama, args=["mcp"], env=env)
    for mode in ["legacy", "auto"]:
        await late_downstream(direct, f"stdio/{mode}/late downstream", mode)
        # Straight after start-up: woollama answers lists once `hello` has
        # had its first connection attempt, so it is there from the start.
        await session(direct, f"stdio/{mode}", mode, lambda c, m=mode: surface_checks(c, f"stdio/{m}", m))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "http":
        anyio.run(main_http, sys.argv[2])
    elif len(sys.argv) == 6 and sys.argv[1] == "stdio":
        anyio.run(main_stdio, *sys.argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    failed = [r for r in results if not r["ok"]]
    print(json.dumps({"passed": len(results) - len(failed), "failed": failed, "checks": [r["check"] for r in results]}))
    sys.exit(1 if failed or not results else 0)


if __name__ == "__main__":
    main()
