"""Tool use through the official Anthropic SDK on both upstream formats, streamed and not: the
model's tool_use block, then the assistant content and a tool_result block sent back, then the
model's answer to it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import anthropic
import pytest

from support import WIRE_MODELS

MAX_TOKENS = 256

TOOLS: list[dict[str, Any]] = [
    {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
    {
        "name": "get_time",
        "description": "Current time in a time zone.",
        "input_schema": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    },
]

TOOL_RESULT = '{"temp_c": 18, "sky": "clear"}'


@dataclass
class Case:
    id: str
    prompt: str
    tool_choice: Any
    name: str
    input: dict[str, Any]


CASES = [
    # A named tool: the mock calls it with "test" in each required string field.
    Case("tool", "What time is it?", {"type": "tool", "name": "get_time"}, "get_time", {"zone": "test"}),
    # "any": the mock calls the first tool.
    Case("any", "What is the weather?", {"type": "any"}, "get_weather", {"city": "test"}),
    # The model chooses (auto) because the prompt asks for the call, with these arguments.
    Case("auto", 'please call get_time {"zone": "Europe/Paris"}', {"type": "auto"}, "get_time", {"zone": "Europe/Paris"}),
]


def ask(client: anthropic.Anthropic, model: str, messages: list[Any], stream: bool, **extra: Any) -> Any:
    """One message, through `messages.create` or the `messages.stream()` helper."""
    if not stream:
        return client.messages.create(model=model, max_tokens=MAX_TOKENS, messages=messages, tools=TOOLS, **extra)
    with client.messages.stream(model=model, max_tokens=MAX_TOKENS, messages=messages, tools=TOOLS, **extra) as s:
        events = list(s)
        final = s.get_final_message()
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    # The helper's input_json events carry the fragments of the tool input, and the input
    # parsed so far; joined, the fragments are the input of the final tool_use block.
    fragments = [e for e in events if e.type == "input_json"]
    uses = [b for b in final.content if b.type == "tool_use"]
    if uses:
        assert len(uses) == 1
        assert fragments, "the tool input arrived as input_json_delta fragments"
        assert json.loads("".join(e.partial_json for e in fragments)) == uses[0].input
        assert fragments[-1].snapshot == uses[0].input
    else:
        assert not fragments
    return final


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("model", WIRE_MODELS)
def test_tool_use_round_trip(anthropic_client: anthropic.Anthropic, model: str, case: Case, stream: bool) -> None:
    messages: list[Any] = [{"role": "user", "content": case.prompt}]
    first = ask(anthropic_client, model, messages, stream, tool_choice=case.tool_choice)

    assert first.stop_reason == "tool_use"
    assert first.model == model
    uses = [b for b in first.content if b.type == "tool_use"]
    assert len(uses) == 1, first.content
    use = uses[0]
    assert use.id
    assert use.name == case.name
    assert use.input == case.input
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0

    # The SDK idiom: the assistant turn is the response's content as it came, then a user turn
    # with the tool_result, with the tools still offered (tool_choice left to its default, auto).
    messages.append({"role": "assistant", "content": first.content})
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": TOOL_RESULT}]}
    )
    second = ask(anthropic_client, model, messages, stream)
    assert [b.type for b in second.content] == ["text"]
    assert second.content[0].text.startswith("tool result:")
    assert second.content[0].text == f"tool result: {TOOL_RESULT}"
    assert second.stop_reason == "end_turn"


@pytest.mark.parametrize("model", WIRE_MODELS)
def test_tool_result_with_content_blocks(anthropic_client: anthropic.Anthropic, model: str) -> None:
    """A tool_result whose content is a list of text blocks, after an assistant turn written by hand."""
    m = anthropic_client.messages.create(
        model=model,
        max_tokens=MAX_TOKENS,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "What is the weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": [{"type": "text", "text": TOOL_RESULT}]}
                ],
            },
        ],
    )
    assert m.content[0].type == "text"
    assert m.content[0].text == f"tool result: {TOOL_RESULT}"


@pytest.mark.parametrize("model", WIRE_MODELS)
def test_tool_choice_none_answers_in_text(anthropic_client: anthropic.Anthropic, model: str) -> None:
    m = anthropic_client.messages.create(
        model=model,
        max_tokens=MAX_TOKENS,
        messages=[{"role": "user", "content": "call get_time now"}],
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice={"type": "none"},
    )
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text == "echo: call get_time now"
    assert m.stop_reason == "end_turn"
