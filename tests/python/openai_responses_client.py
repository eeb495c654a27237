"""Drives woollama's /v1/responses with the official `openai` Python SDK.

Called by tests/responses.rs with the base URL; the Rust side scripts the
mock upstream so each step gets the answer it expects, in this order. The
SDK parses every response object and stream event into its own types, so a
wire mistake fails here.
"""

import sys

import openai

from checks import check, done

client = openai.OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0, timeout=30)


ADD = {
    "type": "function",
    "name": "add",
    "description": "Adds numbers.",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
}

# 1. Stateless, not streamed, a provider model.
r = client.responses.create(model="mock/m", input="hi", instructions="Be brief.")
check("text", r.output_text == "hello from mock", r)
check("status", r.status == "completed", r)
check("usage", r.usage is not None and r.usage.total_tokens == 5, r.usage)
check("id", r.id.startswith("resp_"), r.id)

# 2. Streamed, through the SDK's stream helper.
deltas = []
with client.responses.stream(model="mock/m", input="hi") as s:
    for event in s:
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
    final = s.get_final_response()
check("stream deltas", "".join(deltas) == "Hello, world", deltas)
check("stream final", final.output_text == "Hello, world" and final.status == "completed", final)

# 3. A client function tool, round trip.
first = client.responses.create(
    model="mock/m", input=[{"role": "user", "content": "add 2"}], tools=[ADD]
)
call = first.output[0]
check("call item", call.type == "function_call" and call.name == "add", first.output)
check("call id kept", call.call_id == "call_1", call)
second = client.responses.create(
    model="mock/m",
    input=[
        {"role": "user", "content": "add 2"},
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "4"},
    ],
    tools=[ADD],
)
check("after the tool", second.output_text == "4", second)

# 4. A streamed tool call.
with client.responses.stream(model="mock/m", input="add 1", tools=[ADD]) as s:
    kinds = [event.type for event in s]
    final = s.get_final_response()
check("streamed call events", "response.function_call_arguments.done" in kinds, kinds)
calls = [o for o in final.output if o.type == "function_call"]
check("streamed call", len(calls) == 1 and calls[0].arguments == '{"a":1}', final.output)

# 5. A recipe.
r = client.responses.create(model="woollama/plain", input="hi")
check("recipe", r.output_text == "recipe answer", r)

# 6. A recipe refuses client tools.
try:
    client.responses.create(model="woollama/plain", input="hi", tools=[ADD])
    check("recipe tools refused", False, "no error")
except openai.BadRequestError as e:
    check("recipe tools refused", "cannot be added" in str(e), str(e))

# 7. Conversation state is not kept yet: 501, saying so.
try:
    client.responses.create(model="mock/m", input="hi", previous_response_id="resp_x")
    check("stateful refused", False, "no error")
except openai.APIStatusError as e:
    check("stateful refused", e.status_code == 501 and "no stateful backend" in str(e), str(e))

# 8. A stream that breaks off ends failed, never completed.
kinds = []
for event in client.responses.create(model="mock/m", input="hi", stream=True):
    kinds.append(event.type)
check("failed stream", kinds[-1] == "response.failed" and "error" in kinds, kinds)
check("never completed", "response.completed" not in kinds, kinds)

# 9. A known field of the wrong type is a 400 naming it.
try:
    client.responses.create(model="mock/m", input="hi", extra_body={"temperature": "hot"})
    check("wrong type", False, "no error")
except openai.BadRequestError as e:
    check("wrong type", "`temperature`" in str(e), str(e))

# 10. Conversations: handles, created, read, updated, listed, deleted.
conv = client.conversations.create(metadata={"topic": "soup"})
check("conversation id", conv.id.startswith("conv_"), conv)
check("conversation read", client.conversations.retrieve(conv.id).metadata == {"topic": "soup"}, conv)
updated = client.conversations.update(conv.id, metadata={"topic": "stew"})
check("conversation updated", updated.metadata == {"topic": "stew"}, updated)
check("no items yet", list(client.conversations.items.list(conv.id)) == [], conv.id)
deleted = client.conversations.delete(conv.id)
check("conversation deleted", deleted.deleted and deleted.id == conv.id, deleted)
try:
    client.conversations.retrieve(conv.id)
    check("deleted is gone", False, "no error")
except openai.NotFoundError as e:
    check("deleted is gone", "unknown conversation" in str(e), str(e))

done()
