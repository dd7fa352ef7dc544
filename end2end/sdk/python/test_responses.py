"""POST /v1/responses with the official openai-python SDK, on both upstream formats: create,
stream with the final-response helper, a function-call round trip, previous_response_id
continuing a stored conversation, retrieve and delete."""

from __future__ import annotations

import json

import openai
import pytest

from support import WIRE_MODELS

TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    }
]


@pytest.mark.parametrize("model", WIRE_MODELS)
def test_create(client: openai.OpenAI, model: str) -> None:
    r = client.responses.create(model=model, instructions="Be brief.", input="hello   weir   gateway")
    assert r.object == "response"
    assert r.id.startswith("resp_")
    assert r.status == "completed"
    assert r.model == model
    assert r.output_text == "echo: hello weir gateway"
    assert r.instructions == "Be brief."
    assert r.usage is not None
    assert r.usage.input_tokens > 0
    assert r.usage.output_tokens == 4
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.usage.input_tokens_details.cached_tokens == 0
    assert r.usage.output_tokens_details.reasoning_tokens == 0


@pytest.mark.parametrize("model", WIRE_MODELS)
def test_stream_with_final_response(client: openai.OpenAI, model: str) -> None:
    deltas: list[str] = []
    sequence: list[int] = []
    with client.responses.stream(model=model, input="stream this please") as stream:
        for event in stream:
            sequence.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == "echo: stream this please"
    assert sequence == list(range(len(sequence)))
    assert final.status == "completed"
    assert final.output_text == "echo: stream this please"
    assert final.usage is not None and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", WIRE_MODELS)
@pytest.mark.parametrize("streamed", [False, True])
def test_function_call_round_trip(client: openai.OpenAI, model: str, streamed: bool) -> None:
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    if streamed:
        with client.responses.stream(model=model, input=question, tools=TOOLS, tool_choice="required") as s:
            for _ in s:
                pass
            first = s.get_final_response()
    else:
        first = client.responses.create(model=model, input=question, tools=TOOLS, tool_choice="required")
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1, first.output
    call = calls[0]
    assert call.name == "get_weather"
    assert isinstance(json.loads(call.arguments), dict)
    assert call.call_id
    # Continue from the stored response: only the tool result is sent.
    second = client.responses.create(
        model=model,
        previous_response_id=first.id,
        tools=TOOLS,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"}],
    )
    assert second.status == "completed"
    assert "18C and sunny" in second.output_text
    assert second.previous_response_id == first.id


@pytest.mark.parametrize("model", WIRE_MODELS)
def test_previous_response_retrieve_delete(client: openai.OpenAI, model: str) -> None:
    first = client.responses.create(model=model, input="remember this")
    second = client.responses.create(model=model, input="and this", previous_response_id=first.id)
    assert second.output_text == "echo: and this"
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens  # the history went upstream
    got = client.responses.retrieve(second.id)
    assert got.id == second.id
    assert got.output_text == "echo: and this"
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=model, input="x", previous_response_id=first.id)


def test_store_false_keeps_nothing(client: openai.OpenAI) -> None:
    r = client.responses.create(model=WIRE_MODELS[0], input="forget me", store=False)
    assert r.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_bad_requests(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(
            model=WIRE_MODELS[0], input="x", tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}]
        )
    assert "file_search" in str(e.value)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no/such-model", input="x")
