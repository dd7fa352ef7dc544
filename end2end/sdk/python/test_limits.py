"""Weir's own 429s (a key limited to one request at a time): the SDKs raise their rate-limit
error with Retry-After, and their own retry loops wait it out and succeed."""

from __future__ import annotations

import threading
import time
from typing import Callable

import anthropic
import openai
import pytest

from support import ECHO

# Holds the key's one slot for about a second.
SLOW = "[[mock delay_ms=1000]] slow"


def hold_the_slot(call) -> threading.Thread:
    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.25)
    return t


def test_openai_rate_limit_error_then_retry_loop_succeeds(
    serial_key: str, make_client: Callable[..., openai.OpenAI]
) -> None:
    c = make_client(serial_key)
    busy = hold_the_slot(lambda: c.chat.completions.create(model=ECHO, messages=[{"role": "user", "content": SLOW}]))
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model=ECHO, messages=[{"role": "user", "content": "hi"}])
    e = info.value
    assert e.status_code == 429
    assert e.code == "rate_limit_exceeded"
    assert int(e.response.headers["retry-after"]) >= 1
    started = time.monotonic()
    r = make_client(serial_key, max_retries=3).chat.completions.create(
        model=ECHO, messages=[{"role": "user", "content": "hi"}]
    )
    assert r.object == "chat.completion"
    assert time.monotonic() - started >= 0.4, "the SDK waited before its retry"
    busy.join()


def test_anthropic_rate_limit_error_then_retry_loop_succeeds(
    serial_key: str, make_anthropic_client: Callable[..., anthropic.Anthropic]
) -> None:
    c = make_anthropic_client(serial_key)
    busy = hold_the_slot(
        lambda: c.messages.create(model=ECHO, max_tokens=32, messages=[{"role": "user", "content": SLOW}])
    )
    with pytest.raises(anthropic.RateLimitError) as info:
        c.messages.create(model=ECHO, max_tokens=32, messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 429
    assert int(info.value.response.headers["retry-after"]) >= 1
    r = make_anthropic_client(serial_key, max_retries=3).messages.create(
        model=ECHO, max_tokens=32, messages=[{"role": "user", "content": "hi"}]
    )
    assert r.type == "message"
    busy.join()
