"""Fixtures for the official openai-python and anthropic-python SDK acceptance suites.

The suites talk to a running Weir server started with `weir serve --demo`:

  BASE_URL           server root without /v1, e.g. http://127.0.0.1:18555 (required)
  WEIR_KEY           the `demo key:` printed by `weir serve --demo` (required)
  WEIR_INACTIVE_KEY  a key of a deactivated team (optional; the 403 tests skip without it)
  WEIR_BROKE_KEY     a key of a team with no balance (optional; the 402 tests skip without it)
  WEIR_SERIAL_KEY    a key limited to one request at a time (optional; the 429 tests skip without it)
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterator

import anthropic
import openai
import pytest


def pytest_configure(config: pytest.Config) -> None:
    requirements = Path(__file__).with_name("requirements.txt").read_text()
    for name, installed in (("openai", openai.__version__), ("anthropic", anthropic.__version__)):
        pinned = re.search(rf"^{name}==(\S+)", requirements, re.MULTILINE)
        if pinned is None or installed != pinned.group(1):
            raise pytest.UsageError(
                f"{name} {installed} is installed but requirements.txt pins "
                f"{pinned.group(1) if pinned else '?'}: install end2end/sdk/python/requirements.txt"
            )
    missing = [name for name in ("BASE_URL", "WEIR_KEY") if not os.environ.get(name)]
    if missing:
        raise pytest.UsageError(
            f"set {' and '.join(missing)}: BASE_URL is the root of a running `weir serve --demo` "
            "(no /v1) and WEIR_KEY the `demo key:` it printed; see end2end/sdk/README.md"
        )


def api_base() -> str:
    return os.environ["BASE_URL"].rstrip("/") + "/v1"


def new_client(api_key: str | None = None, **kwargs: object) -> openai.OpenAI:
    """An SDK client for the server under test; no retries, so a failure surfaces at once."""
    options: dict[str, object] = {"max_retries": 0, "timeout": 30.0}
    options.update(kwargs)
    return openai.OpenAI(
        base_url=api_base(),
        api_key=api_key if api_key is not None else os.environ["WEIR_KEY"],
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def client() -> Iterator[openai.OpenAI]:
    c = new_client()
    yield c
    c.close()


@pytest.fixture
def make_client() -> Iterator[Callable[..., openai.OpenAI]]:
    """Builds extra clients (another key, other options) and closes them after the test."""
    made: list[openai.OpenAI] = []

    def make(api_key: str | None = None, **kwargs: object) -> openai.OpenAI:
        c = new_client(api_key, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def inactive_key() -> str:
    key = os.environ.get("WEIR_INACTIVE_KEY")
    if not key:
        pytest.skip(
            "WEIR_INACTIVE_KEY is not set: it must hold a key of a deactivated team "
            "(weir team create / key create / team deactivate, see end2end/sdk/README.md)"
        )
    return key


@pytest.fixture
def broke_key() -> str:
    key = os.environ.get("WEIR_BROKE_KEY")
    if not key:
        pytest.skip(
            "WEIR_BROKE_KEY is not set: it must hold a key of a team with no balance "
            "(weir team create / key create, without crediting it, see end2end/sdk/README.md)"
        )
    return key


@pytest.fixture
def serial_key() -> str:
    key = os.environ.get("WEIR_SERIAL_KEY")
    if not key:
        pytest.skip(
            "WEIR_SERIAL_KEY is not set: it must hold a key limited to one request at a time "
            "(weir key create, then weir key limit <key id> --concurrency 1, see end2end/sdk/README.md)"
        )
    return key


# The Anthropic SDK. Its paths include /v1 (`/v1/messages`), so its base URL is the server root.


def new_anthropic(api_key: str | None = None, **kwargs: object) -> anthropic.Anthropic:
    """An Anthropic SDK client for the server under test; no retries, so a failure surfaces at once.

    `api_key` defaults to WEIR_KEY; pass `auth_token=` instead to use that option. A credential is
    always passed explicitly, so the SDK reads no ANTHROPIC_* variable or profile for one.
    """
    options: dict[str, object] = {"max_retries": 0, "timeout": 30.0}
    options.update(kwargs)
    if "auth_token" not in options:
        options["api_key"] = api_key if api_key is not None else os.environ["WEIR_KEY"]
    return anthropic.Anthropic(base_url=os.environ["BASE_URL"].rstrip("/"), **options)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def anthropic_client() -> Iterator[anthropic.Anthropic]:
    c = new_anthropic()
    yield c
    c.close()


@pytest.fixture
def make_anthropic_client() -> Iterator[Callable[..., anthropic.Anthropic]]:
    """Builds extra Anthropic clients (another key, other options) and closes them after the test."""
    made: list[anthropic.Anthropic] = []

    def make(api_key: str | None = None, **kwargs: object) -> anthropic.Anthropic:
        c = new_anthropic(api_key, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
