"""A stateful conversation through woollama with the official `openai` SDK:
the README's example, checked. Called by tests/responses.rs with the base
URL of an app that has a conversation store; the mock answers in order."""

import sys

import openai

client = openai.OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0, timeout=30)

first = client.responses.create(model="mock/m", input="My name is Ada.", store=True)
later = client.responses.create(model="mock/m", input="What is my name?", previous_response_id=first.id)
assert later.output_text == "You are Ada.", later
assert later.conversation is not None and later.conversation.id == first.conversation.id, later
conv = client.conversations.retrieve(later.conversation.id)
texts = [item.content[0].text for item in client.conversations.items.list(conv.id)]
assert texts == ["My name is Ada.", "Hello Ada.", "What is my name?", "You are Ada."], texts
streamed = []
with client.responses.stream(model="mock/m", input="Again?", conversation=conv.id) as s:
    for event in s:
        if event.type == "response.output_text.delta":
            streamed.append(event.delta)
    final = s.get_final_response()
assert "".join(streamed) == "Still Ada." and final.conversation.id == conv.id, final
print("4 passed, 0 failed")
