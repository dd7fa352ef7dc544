"""Error statuses of /v1/messages reach the official Anthropic SDK as its documented exception
classes, with the Anthropic envelope `{"type": "error", "error": {"type", "message"}}` and the
`request-id` header; streamed requests fail the same way when the stream is opened."""

from __future__ import annotations

from typing import Any, Callable

import anthropic
import pytest

from support import ECHO

MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "hello"}]


def check_envelope(e: anthropic.APIStatusError, status: int, error_type: str) -> None:
    assert e.status_code == status
    assert isinstance(e.body, dict), f"no JSON error envelope: {e.body!r}"
    assert e.body.get("type") == "error", e.body
    error = e.body.get("error")
    assert isinstance(error, dict), e.body
    assert error.get("type") == error_type, e.body
    assert isinstance(error.get("message"), str) and error["message"], e.body
    # The SDK copies the envelope's fields to the exception, and the request id from the header.
    assert e.type == error_type
    assert e.api_message == error["message"]
    assert error["message"] in e.message
    assert e.request_id and e.request_id.startswith("req_"), e.response.headers
    assert e.response.headers.get("content-type", "").startswith("application/json")


def create(client: anthropic.Anthropic, how: str, **params: Any) -> None:
    """One request that is expected to fail: `create`, `create(stream=True)`, or the `stream()` helper."""
    body: dict[str, Any] = {"model": ECHO, "max_tokens": 64, "messages": MESSAGES, **params}
    if how == "json":
        client.messages.create(**body)
    elif how == "stream":
        # The error status comes before any event: the SDK raises here, not while iterating.
        client.messages.create(**body, stream=True)
        pytest.fail("create(stream=True) returned a stream for an error status")
    else:
        with client.messages.stream(**body):
            pytest.fail("messages.stream() opened a stream for an error status")


HOW = ["json", "stream", "helper"]


@pytest.mark.parametrize("how", HOW)
def test_bad_key(make_anthropic_client: Callable[..., anthropic.Anthropic], how: str) -> None:
    c = make_anthropic_client(api_key="weir_dev_not_a_real_key")
    with pytest.raises(anthropic.AuthenticationError) as info:
        create(c, how)
    check_envelope(info.value, 401, "authentication_error")


def test_bad_key_in_x_api_key(make_anthropic_client: Callable[..., anthropic.Anthropic]) -> None:
    headers = {"X-Api-Key": "weir_dev_not_a_real_key", "Authorization": anthropic.Omit()}
    c = make_anthropic_client(default_headers=headers)
    with pytest.raises(anthropic.AuthenticationError) as info:
        create(c, "json")
    check_envelope(info.value, 401, "authentication_error")


def test_missing_key(make_anthropic_client: Callable[..., anthropic.Anthropic]) -> None:
    c = make_anthropic_client(api_key="unused")
    with pytest.raises(anthropic.AuthenticationError) as info:
        c.messages.create(
            model=ECHO, max_tokens=64, messages=MESSAGES, extra_headers={"Authorization": anthropic.Omit()}  # type: ignore[dict-item]
        )
    check_envelope(info.value, 401, "authentication_error")
    sent = info.value.response.request.headers
    assert sent.get("authorization") is None and sent.get("x-api-key") is None, "sent without a key"


@pytest.mark.parametrize("how", HOW)
def test_inactive_team(make_anthropic_client: Callable[..., anthropic.Anthropic], inactive_key: str, how: str) -> None:
    c = make_anthropic_client(api_key=inactive_key)
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        create(c, how)
    check_envelope(info.value, 403, "permission_error")


@pytest.mark.parametrize("how", HOW)
def test_no_balance(make_anthropic_client: Callable[..., anthropic.Anthropic], broke_key: str, how: str) -> None:
    c = make_anthropic_client(api_key=broke_key)
    # 402 is PaymentRequiredError in this SDK version, an APIStatusError like every status class.
    with pytest.raises(anthropic.APIStatusError) as info:
        create(c, how)
    assert isinstance(info.value, anthropic.PaymentRequiredError), type(info.value)
    check_envelope(info.value, 402, "billing_error")


@pytest.mark.parametrize("how", HOW)
def test_unknown_model(anthropic_client: anthropic.Anthropic, how: str) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        create(anthropic_client, how, model="demo/no-such-model")
    check_envelope(info.value, 404, "not_found_error")
    assert "demo/no-such-model" in info.value.body["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize(
    "params, mentions",
    [
        # This SDK version has no `temperature` parameter any more; it goes in the body all the same.
        ({"extra_body": {"temperature": 5}}, "temperature"),
        ({"messages": []}, "messages"),
        # A content block type that does not exist, past the SDK's types.
        ({"messages": [{"role": "user", "content": [{"type": "no_such_block", "text": "hi"}]}]}, "no_such_block"),
    ],
    ids=["temperature=5", "no-messages", "unknown-block"],
)
def test_bad_request(anthropic_client: anthropic.Anthropic, params: dict[str, Any], mentions: str, how: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        create(anthropic_client, how, **params)
    check_envelope(info.value, 400, "invalid_request_error")
    assert mentions in info.value.body["error"]["message"]  # type: ignore[index]


def test_bad_request_extra_body(anthropic_client: anthropic.Anthropic) -> None:
    """`max_tokens` is required by the SDK itself; without it on the wire, the 400 is Weir's."""
    with pytest.raises(anthropic.BadRequestError) as info:
        anthropic_client.messages.create(
            model=ECHO, max_tokens=64, messages=MESSAGES, extra_body={"max_tokens": None}
        )
    check_envelope(info.value, 400, "invalid_request_error")
    assert "max_tokens" in info.value.body["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize(
    "model, status, error_type, cls",
    [
        # An overloaded upstream (503) is Anthropic's 529 overloaded_error.
        ("demo/fail-503", 529, "overloaded_error", anthropic.OverloadedError),
        # A failed upstream (500) is a 502 api_error.
        ("demo/fail-500", 502, "api_error", anthropic.InternalServerError),
    ],
)
def test_upstream_failure(
    anthropic_client: anthropic.Anthropic, model: str, status: int, error_type: str, cls: type, how: str
) -> None:
    with pytest.raises(anthropic.InternalServerError) as info:
        create(anthropic_client, how, model=model)
    assert isinstance(info.value, cls), type(info.value)
    check_envelope(info.value, status, error_type)


@pytest.mark.parametrize("how", HOW)
def test_rate_limited(anthropic_client: anthropic.Anthropic, how: str) -> None:
    with pytest.raises(anthropic.RateLimitError) as info:
        create(anthropic_client, how, model="demo/fail-429")
    check_envelope(info.value, 429, "rate_limit_error")


def test_count_tokens_errors(
    anthropic_client: anthropic.Anthropic, make_anthropic_client: Callable[..., anthropic.Anthropic]
) -> None:
    try:
        anthropic_client.messages.count_tokens(model="demo/no-such-model", messages=MESSAGES)  # type: ignore[arg-type]
    except anthropic.NotFoundError as e:
        if isinstance(e.body, dict) and (e.body.get("error") or {}).get("code") == "unknown_url":
            pytest.skip("this Weir build has no POST /v1/messages/count_tokens (404 unknown_url)")
        check_envelope(e, 404, "not_found_error")
    else:
        pytest.fail("count_tokens of an unknown model succeeded")
    bad = make_anthropic_client(api_key="weir_dev_not_a_real_key")
    with pytest.raises(anthropic.AuthenticationError) as info:
        bad.messages.count_tokens(model=ECHO, messages=MESSAGES)  # type: ignore[arg-type]
    check_envelope(info.value, 401, "authentication_error")
    with pytest.raises(anthropic.BadRequestError) as info2:
        anthropic_client.messages.count_tokens(model=ECHO, messages=[])
    check_envelope(info2.value, 400, "invalid_request_error")


def test_client_is_usable_after_errors(anthropic_client: anthropic.Anthropic) -> None:
    """Errors must not poison the kept-alive connection for the next request."""
    for _ in range(3):
        with pytest.raises(anthropic.BadRequestError):
            anthropic_client.messages.create(model=ECHO, max_tokens=64, messages=MESSAGES, extra_body={"temperature": 5})
        with pytest.raises(anthropic.RateLimitError):
            anthropic_client.messages.create(model="demo/fail-429", max_tokens=64, messages=MESSAGES)
        m = anthropic_client.messages.create(model=ECHO, max_tokens=64, messages=MESSAGES)
        assert m.content[0].type == "text"
        assert m.content[0].text == "echo: hello"
