"""Drives a running woollama with the official `openai` Python SDK.

Called by tests/openai_sdk.rs with the base URL; the Rust side scripts the
mock upstream so each step below gets the answer it expects, in this order.
The SDK validates response and SSE shapes, so wire mistakes fail here.
"""

import sys

import openai

from checks import check, done

base_url = sys.argv[1]
client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=30)


# 1. Non-streaming pass-through.
r = client.chat.completions.create(
    model="mock/m", messages=[{"role": "user", "content": "hi"}]
)
check("non-stream content", r.choices[0].message.content == "hello from mock", r)
check("non-stream finish", r.choices[0].finish_reason == "stop", r)

# 2. Streaming pass-through.
stream = client.chat.completions.create(
    model="mock/m", messages=[{"role": "user", "content": "hi"}], stream=True
)
parts, finishes = [], []
for chunk in stream:
    if chunk.choices:
        parts.append(chunk.choices[0].delta.content or "")
        finishes.append(chunk.choices[0].finish_reason)
check("stream content", "".join(parts) == "Hello, world", parts)
check("stream finish", finishes[-1] == "stop", finishes)

# 3. The model list, with recipes.
ids = [m.id for m in client.models.list()]
check("models has recipes", "woollama/streamer" in ids, ids)

# 4. Unknown recipe: 404, surfaced as the SDK's NotFoundError.
try:
    client.chat.completions.create(model="woollama/nope", messages=[])
    check("unknown recipe raises", False, "no error")
except openai.NotFoundError as e:
    check("unknown recipe message", "unknown recipe 'nope'" in str(e), str(e))

# 5. An upstream 429 is relayed: the SDK's RateLimitError.
try:
    client.chat.completions.create(model="mock/m", messages=[])
    check("429 raises", False, "no error")
except openai.RateLimitError as e:
    check("429 relayed", "slow down" in str(e), str(e))

# 6. Embeddings.
e = client.embeddings.create(model="mock/embed", input="hi")
check("embedding", e.data[0].embedding == [0.25, 0.5], e)

# 7. Ollama native (num_ctx), streamed: our NDJSON→SSE translation must
#    satisfy the SDK's stream parser.
stream = client.chat.completions.create(
    model="ollama/qwen3",
    messages=[{"role": "user", "content": "hi"}],
    stream=True,
    extra_body={"options": {"num_ctx": 8192}},
)
text = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
check("native stream", text == "Grüß dich 👋", text)

# 8. A malformed request is an OpenAI-shaped 400.
try:
    client.chat.completions.create(model="nonsense", messages=[])
    check("unknown namespace raises", False, "no error")
except openai.BadRequestError as e:
    check("unknown namespace", "unknown model namespace" in str(e), str(e))

done()
