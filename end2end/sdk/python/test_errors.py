"""Error statuses reach the SDK as its documented exception classes, with the OpenAI envelope."""

from __future__ import annotations

from typing import Any, Callable

import openai
import pytest

from support import ECHO

MESSAGES = [{"role": "user", "content": "hello"}]


def check_envelope(e: openai.APIStatusError, status: int) -> None:
    assert e.status_code == status
    assert isinstance(e.body, dict), f"no JSON error envelope: {e.body!r}"
    # The SDK unwraps {"error": {...}} into e.body and copies the fields to the exception.
    assert set(e.body) >= {"message", "type", "param", "code"}, e.body
    assert isinstance(e.body["message"], str) and e.body["message"]
    assert e.message and e.body["message"] in e.message
    assert e.type == e.body["type"]
    assert e.code == e.body["code"]
    assert e.param == e.body["param"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_bad_key(make_client: Callable[..., openai.OpenAI], stream: bool) -> None:
    c = make_client(api_key="weir_dev_not_a_real_key")
    with pytest.raises(openai.AuthenticationError) as info:
        c.chat.completions.create(model=ECHO, messages=MESSAGES, stream=stream)  # type: ignore[call-overload]
    check_envelope(info.value, 401)
    assert info.value.code == "invalid_api_key"


def test_bad_key_on_models(make_client: Callable[..., openai.OpenAI]) -> None:
    c = make_client(api_key="weir_dev_not_a_real_key")
    with pytest.raises(openai.AuthenticationError) as info:
        c.models.list()
    check_envelope(info.value, 401)


def test_missing_key(make_client: Callable[..., openai.OpenAI]) -> None:
    c = make_client(api_key="unused")
    with pytest.raises(openai.AuthenticationError) as info:
        c.chat.completions.create(
            model=ECHO, messages=MESSAGES, extra_headers={"Authorization": openai.Omit()}  # type: ignore[dict-item]
        )
    check_envelope(info.value, 401)
    assert info.value.response.request.headers.get("authorization") is None, "sent without a key"


def test_inactive_team(make_client: Callable[..., openai.OpenAI], inactive_key: str) -> None:
    c = make_client(api_key=inactive_key)
    with pytest.raises(openai.PermissionDeniedError) as info:
        c.chat.completions.create(model=ECHO, messages=MESSAGES)
    check_envelope(info.value, 403)
    with pytest.raises(openai.PermissionDeniedError) as info:
        c.models.list()
    check_envelope(info.value, 403)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_unknown_model(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="demo/no-such-model", messages=MESSAGES, stream=stream)  # type: ignore[call-overload]
    check_envelope(info.value, 404)
    assert info.value.code == "model_not_found"
    assert info.value.param == "model"


@pytest.mark.parametrize(
    "params, param",
    [
        ({"messages": MESSAGES, "temperature": 5}, "temperature"),
        ({"messages": []}, "messages"),
    ],
    ids=["temperature=5", "no-messages"],
)
def test_bad_request(client: openai.OpenAI, params: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=ECHO, **params)
    check_envelope(info.value, 400)
    assert info.value.param == param


def test_malformed_body(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.post(
            "/chat/completions",
            cast_to=object,
            content=b'{"model": "demo/echo",',
            options={"headers": {"Content-Type": "application/json"}},
        )
    check_envelope(info.value, 400)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("model, status", [("demo/fail-503", 503), ("demo/fail-500", 502)])
def test_upstream_failure(client: openai.OpenAI, model: str, status: int, stream: bool) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=model, messages=MESSAGES, stream=stream)  # type: ignore[call-overload]
    check_envelope(info.value, status)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_rate_limited(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="demo/fail-429", messages=MESSAGES, stream=stream)  # type: ignore[call-overload]
    check_envelope(info.value, 429)


def test_errors_carry_request_id(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="demo/no-such-model", messages=MESSAGES)
    assert info.value.request_id


def test_client_is_usable_after_errors(client: openai.OpenAI) -> None:
    """Errors must not poison the kept-alive connection for the next request."""
    for _ in range(3):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model=ECHO, messages=MESSAGES, temperature=5)
        r = client.chat.completions.create(model=ECHO, messages=MESSAGES)
        assert r.choices[0].message.content == "echo: hello"
