"""Fixtures for the official openai-python SDK acceptance suite.

The suite talks to a running Weir server started with `weir serve --demo`:

  BASE_URL           server root without /v1, e.g. http://127.0.0.1:18555 (required)
  WEIR_KEY           the `demo key:` printed by `weir serve --demo` (required)
  WEIR_INACTIVE_KEY  a key of a deactivated team (optional; the 403 tests skip without it)
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterator

import openai
import pytest


def pytest_configure(config: pytest.Config) -> None:
    requirements = Path(__file__).with_name("requirements.txt").read_text()
    pinned = re.search(r"^openai==(\S+)", requirements, re.MULTILINE)
    if pinned is None or openai.__version__ != pinned.group(1):
        raise pytest.UsageError(
            f"openai {openai.__version__} is installed but requirements.txt pins "
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
