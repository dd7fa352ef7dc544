"""Tool calling through the SDK on both upstream formats, streamed and not: the model's call,
then the assistant message and the tool result sent back, then the model's answer to it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from support import WIRE_MODELS

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Current time in a time zone.",
            "parameters": {
                "type": "object",
                "properties": {"zone": {"type": "string"}},
                "required": ["zone"],
            },
        },
    },
]

TOOL_RESULT = '{"temp_c": 18, "sky": "clear"}'


@dataclass
class Case:
    id: str
    prompt: str
    tool_choice: Any
    name: str
    arguments: dict[str, Any]


CASES = [
    # "required": the mock calls the first tool, with "test" in each required string field.
    Case("required", "What is the weather?", "required", "get_weather", {"city": "test"}),
    # A named function.
    Case("named", "What time is it?", {"type": "function", "function": {"name": "get_time"}}, "get_time", {"zone": "test"}),
    # The model chooses (auto) because the prompt asks for the call, with these arguments.
    Case("auto", 'please call get_time {"zone": "Europe/Paris"}', "auto", "get_time", {"zone": "Europe/Paris"}),
]


@dataclass
class Call:
    id: str
    name: str
    arguments: str


def ask(client: openai.OpenAI, model: str, messages: list[Any], stream: bool, **extra: Any) -> tuple[str | None, list[Call], str | None]:
    """One completion: returns (content, tool calls, finish_reason), streamed or not."""
    if not stream:
        r = client.chat.completions.create(model=model, messages=messages, tools=TOOLS, **extra)
        assert len(r.choices) == 1
        m = r.choices[0].message
        assert m.role == "assistant"
        calls = [Call(tc.id, tc.function.name, tc.function.arguments) for tc in m.tool_calls or []]
        for tc in m.tool_calls or []:
            assert tc.type == "function"
        return m.content, calls, r.choices[0].finish_reason

    # Accumulate deltas the way the API reference says clients must: by tool-call index, with
    # id/type/name on the first delta of an index and argument fragments concatenated.
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=messages,
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
            **extra,
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    content: list[str] = []
    by_index: dict[int, dict[str, Any]] = {}
    finish: list[str] = []
    for c in chunks[:-1]:
        assert len(c.choices) == 1, c
        choice = c.choices[0]
        if choice.delta.content:
            content.append(choice.delta.content)
        for tc in choice.delta.tool_calls or []:
            if tc.index not in by_index:
                assert tc.id, f"first delta of tool call {tc.index} has no id: {tc}"
                assert tc.type == "function"
                assert tc.function is not None and tc.function.name
                by_index[tc.index] = {"id": tc.id, "name": tc.function.name, "arguments": ""}
            else:
                assert not tc.id, f"id repeated on a later delta: {tc}"
            if tc.function is not None and tc.function.arguments:
                by_index[tc.index]["arguments"] += tc.function.arguments
        if choice.finish_reason:
            finish.append(choice.finish_reason)
    assert len(finish) == 1, finish
    assert sorted(by_index) == list(range(len(by_index)))
    calls = [Call(**by_index[i]) for i in sorted(by_index)]
    return ("".join(content) or None), calls, finish[0]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("model", WIRE_MODELS)
def test_tool_call_round_trip(client: openai.OpenAI, model: str, case: Case, stream: bool) -> None:
    messages: list[Any] = [{"role": "user", "content": case.prompt}]
    content, calls, finish = ask(client, model, messages, stream, tool_choice=case.tool_choice)

    assert finish == "tool_calls"
    assert not content
    assert len(calls) == 1, calls
    call = calls[0]
    assert call.id
    assert call.name == case.name
    assert json.loads(call.arguments) == case.arguments

    # Send the call back as the assistant turn, then the tool's result, with the tools still
    # offered (tool_choice left to its default, auto).
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT})
    content, calls, finish = ask(client, model, messages, stream)
    assert calls == []
    assert content == f"tool result: {TOOL_RESULT}"
    assert finish == "stop"


@pytest.mark.parametrize("model", WIRE_MODELS)
def test_round_trip_with_sdk_message_object(client: openai.OpenAI, model: str) -> None:
    """The usual SDK idiom: append `response.choices[0].message` itself to the history."""
    messages: list[Any] = [{"role": "user", "content": "What is the weather?"}]
    first = client.chat.completions.create(model=model, messages=messages, tools=TOOLS, tool_choice="required")
    message = first.choices[0].message
    assert message.tool_calls
    messages.append(message)
    for tc in message.tool_calls:
        messages.append({"role": "tool", "tool_call_id": tc.id, "content": TOOL_RESULT})
    second = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == f"tool result: {TOOL_RESULT}"
    assert not second.choices[0].message.tool_calls


@pytest.mark.parametrize("model", WIRE_MODELS)
def test_stream_helper_accumulates_tool_call(client: openai.OpenAI, model: str) -> None:
    """The SDK's `chat.completions.stream()` helper assembles the tool call from the deltas."""
    with client.chat.completions.stream(
        model=model,
        messages=[{"role": "user", "content": 'call get_weather {"city": "Paris", "days": 3}'}],
        tools=TOOLS,
    ) as stream:
        done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    assert [(e.name, json.loads(e.arguments)) for e in done] == [("get_weather", {"city": "Paris", "days": 3})]
    tool_calls = final.choices[0].message.tool_calls
    assert tool_calls is not None and len(tool_calls) == 1
    assert tool_calls[0].function.name == "get_weather"
    assert json.loads(tool_calls[0].function.arguments) == {"city": "Paris", "days": 3}
    assert final.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("model", WIRE_MODELS)
def test_tool_choice_none_answers_in_text(client: openai.OpenAI, model: str) -> None:
    r = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "call get_time now"}],
        tools=TOOLS,
        tool_choice="none",
    )
    assert r.choices[0].message.content == "echo: call get_time now"
    assert not r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "stop"
