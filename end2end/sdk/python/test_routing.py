"""Routing hints through the official SDKs' `extra_body`: OpenRouter's `provider` and `models`,
and Weir's `weir` object, on the demo codename served by two providers."""

from __future__ import annotations

import openai
import pytest

from support import CODENAME, ECHO

HI = [{"role": "user", "content": "hi"}]


def provider_of(client: openai.OpenAI, **kwargs: object) -> str:
    raw = client.chat.completions.with_raw_response.create(model=CODENAME, messages=HI, **kwargs)
    raw.parse()
    return raw.headers["x-weir-provider"]


def test_provider_order_is_obeyed(client: openai.OpenAI) -> None:
    for first in ("demo-anthropic", "demo"):
        assert provider_of(client, extra_body={"provider": {"order": [first]}}) == first
    assert provider_of(client, extra_body={"provider": {"ignore": ["demo"]}}) == "demo-anthropic"


def test_weir_hints_and_their_refusals(client: openai.OpenAI) -> None:
    assert provider_of(client, extra_body={"weir": {"optimise": "cost", "model_hints": ["demo/claude-*"]}}) == "demo-anthropic"
    assert provider_of(client, extra_body={"weir": {"require_tools": True}}) in ("demo", "demo-anthropic")
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=CODENAME, messages=HI, extra_body={"weir": {"require_json_schema": True}})
    assert info.value.code == "no_candidate"
    assert info.value.param == "weir.require_json_schema"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=CODENAME, messages=HI, extra_body={"weir": {"optimise": "fastest"}})
    assert info.value.param == "weir.optimise"


def test_models_fallback_list(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="demo/fail-503", messages=HI, extra_body={"models": [ECHO]})
    assert r.model == ECHO
    assert r.choices[0].message.content == "echo: hi"
