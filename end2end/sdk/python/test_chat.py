"""POST /v1/chat/completions text replies, streamed and not, on both upstream formats."""

from __future__ import annotations

import openai
import pytest

from support import CHAT_MODELS

PROMPT = "hello   weir   gateway"  # the echo normalises whitespace
REPLY = "echo: hello weir gateway"


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_non_stream(client: openai.OpenAI, model: str) -> None:
    r = client.chat.completions.create(model=model, messages=user(PROMPT))
    assert r.object == "chat.completion"
    assert r.id
    assert isinstance(r.created, int)
    assert r.model
    assert len(r.choices) == 1
    choice = r.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == REPLY
    assert not choice.message.tool_calls
    assert r.usage is not None
    assert r.usage.prompt_tokens == 3  # the mock counts words
    assert r.usage.completion_tokens == len(REPLY.split())
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_non_stream_with_system_and_history(client: openai.OpenAI, model: str) -> None:
    r = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "echo: first question"},
            {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "part"}]},
        ],
    )
    assert r.choices[0].message.content == "echo: second part"
    assert r.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_length_finish_reason(client: openai.OpenAI, model: str) -> None:
    r = client.chat.completions.create(model=model, messages=user(PROMPT), max_completion_tokens=2)
    assert r.choices[0].message.content == "echo: hello"
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 2


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_stream_with_include_usage(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=user(PROMPT),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert len(chunks) >= 3, chunks
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1, "every chunk carries the same id"

    *body, last = chunks
    # The usage chunk comes last, with no choices; every earlier chunk has usage null.
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == 3
    assert last.usage.completion_tokens == len(REPLY.split())
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    for c in body:
        assert c.usage is None, c
        assert len(c.choices) == 1 and c.choices[0].index == 0, c

    assert body[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in body)
    assert text == REPLY
    finishes = [c.choices[0].finish_reason for c in body if c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert body[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_stream_without_usage(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(model=model, messages=user(PROMPT), stream=True)
    chunks = list(stream)
    assert chunks
    for c in chunks:
        assert c.usage is None, c
        assert len(c.choices) == 1, "no usage-only chunk without include_usage"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REPLY
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_stream_helper_accumulates(client: openai.OpenAI, model: str) -> None:
    """The SDK's higher-level `chat.completions.stream()` helper builds the final completion."""
    with client.chat.completions.stream(
        model=model, messages=user(PROMPT), stream_options={"include_usage": True}
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == REPLY
    assert final.choices[0].message.content == REPLY
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is not None and final.usage.completion_tokens == len(REPLY.split())


@pytest.mark.parametrize("model", ["demo/echo", "demo/claude-echo"])
def test_error_in_stream_raises(client: openai.OpenAI, model: str) -> None:
    """An upstream failure after the 200 header reaches the SDK as an in-stream error."""
    stream = client.chat.completions.create(
        model=model, messages=user("one two three four [[mock error_after=2]]"), stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError):
        for c in stream:
            if c.choices:
                received.append(c.choices[0].delta.content or "")
    assert "".join(received).startswith("echo:")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("stop", ["gateway", ["weir", "gateway"]], ids=["string", "list"])
@pytest.mark.parametrize("model", CHAT_MODELS)
def test_stop_sequence(client: openai.OpenAI, model: str, stop: str | list[str], stream: bool) -> None:
    """The text ends before the earliest stop sequence, which is not included; reason stop."""
    expected = "echo: hello weir " if stop == "gateway" else "echo: hello "
    if stream:
        chunks = list(client.chat.completions.create(model=model, messages=user(PROMPT), stop=stop, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    else:
        r = client.chat.completions.create(model=model, messages=user(PROMPT), stop=stop)
        text, finishes = r.choices[0].message.content or "", [r.choices[0].finish_reason]
    assert text == expected
    assert finishes == ["stop"]
