"""Drives a running woollama's /v1/messages with the official `anthropic`
Python SDK.

Called by tests/messages.rs with woollama's base URL; the Rust side scripts
the mock OpenAI-compatible upstream so each step gets the answer it expects,
in this order. The SDK validates the message and SSE shapes it reads.
"""

import sys

import anthropic

from checks import check, done

client = anthropic.Anthropic(base_url=sys.argv[1], api_key="unused", max_retries=0, timeout=30)

# 1. A plain message.
m = client.messages.create(
    model="mock/m", max_tokens=100, system="Be terse.",
    messages=[{"role": "user", "content": "hi"}],
)
check("create text", m.content[0].type == "text" and m.content[0].text == "hello from mock", m)
check("create stop", m.stop_reason == "end_turn", m)
check("create model", m.model == "mock/m", m)

# 2. Streamed.
with client.messages.stream(
    model="mock/m", max_tokens=100, messages=[{"role": "user", "content": "stream"}]
) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
check("stream text", text == "Hello, world", text)
check("stream final", final.content[0].text == "Hello, world" and final.stop_reason == "end_turn", final)

# 3. A tool-use round trip: the model calls the client's tool, the client
#    answers with a tool_result, the model answers.
tools = [{
    "name": "get_weather", "description": "Weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}]
m = client.messages.create(
    model="mock/m", max_tokens=100, tools=tools,
    messages=[{"role": "user", "content": "Weather in Paris?"}],
)
use = next(b for b in m.content if b.type == "tool_use")
check("tool_use", use.name == "get_weather" and use.input == {"city": "Paris"}, m)
check("tool_use stop", m.stop_reason == "tool_use", m)
m2 = client.messages.create(
    model="mock/m", max_tokens=100, tools=tools,
    messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": m.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C and sunny"}]},
    ],
)
check("tool answer", m2.content[0].text == "It is 18C in Paris.", m2)

# 4. A streamed tool call.
with client.messages.stream(
    model="mock/m", max_tokens=100, tools=tools,
    messages=[{"role": "user", "content": "Weather in Rome?"}],
) as s:
    final = s.get_final_message()
use = next(b for b in final.content if b.type == "tool_use")
check("stream tool_use", use.name == "get_weather" and use.input == {"city": "Rome"}, final)

# 5. Errors, in Anthropic's shape, as the SDK's exceptions.
try:
    client.messages.create(model="nowhere/m", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    check("unknown model refused", False)
except anthropic.BadRequestError as e:
    check("unknown model refused", "unknown model namespace" in str(e) and e.body["error"]["type"] == "invalid_request_error", e.body)
try:
    client.messages.create(model="mock/m", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    check("upstream 429 relayed", False)
except anthropic.RateLimitError as e:
    check("upstream 429 relayed", e.body["error"]["message"] == "slow down", e.body)

# 6. count_tokens (an estimate here).
n = client.messages.count_tokens(model="mock/m", messages=[{"role": "user", "content": "hello there"}])
check("count_tokens", n.input_tokens > 0, n)

done()
