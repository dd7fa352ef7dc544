"""POST /v1/embeddings through the SDK: its default (it asks for base64 and decodes), explicit
float and explicit base64 must all give the same vectors."""

from __future__ import annotations

import base64
import json
import math
import struct

import openai
import pytest

from support import EMBED

INPUTS = ["hello world", "a second, longer input text"]
DIMENSIONS = 8  # the demo model's default


def decode(b64: str) -> list[float]:
    raw = base64.b64decode(b64, validate=True)
    assert len(raw) % 4 == 0
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def assert_close(a: list[float], b: list[float]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-7), (a, b)


@pytest.fixture(scope="module")
def float_vectors(client: openai.OpenAI) -> list[list[float]]:
    r = client.embeddings.create(model=EMBED, input=INPUTS, encoding_format="float")
    assert r.object == "list"
    assert r.model
    assert [d.index for d in r.data] == list(range(len(INPUTS)))
    assert {d.object for d in r.data} == {"embedding"}
    vectors = [d.embedding for d in r.data]
    for v in vectors:
        assert isinstance(v, list) and len(v) == DIMENSIONS
        assert all(isinstance(x, float) for x in v)
        assert math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-4)  # unit vectors
    assert vectors[0] != vectors[1]
    assert r.usage.prompt_tokens == r.usage.total_tokens == sum(len(t.split()) for t in INPUTS)
    return vectors


def test_float(float_vectors: list[list[float]]) -> None:
    assert len(float_vectors) == len(INPUTS)


def test_default_encoding_is_base64_on_the_wire(client: openai.OpenAI, float_vectors: list[list[float]]) -> None:
    raw = client.embeddings.with_raw_response.create(model=EMBED, input=INPUTS)
    sent = json.loads(raw.http_request.content)
    assert sent["encoding_format"] == "base64", "the SDK asks for base64 when the caller does not choose"
    body = raw.http_response.json()
    wire = [d["embedding"] for d in body["data"]]
    assert all(isinstance(e, str) for e in wire), f"server answered a base64 request with {wire!r}"
    for e, expected in zip(wire, float_vectors):
        assert_close(decode(e), expected)

    # What a caller sees: the SDK decoded the base64 into floats.
    parsed = raw.parse()
    assert [d.index for d in parsed.data] == list(range(len(INPUTS)))
    for d, expected in zip(parsed.data, float_vectors):
        assert isinstance(d.embedding, list)
        assert_close(d.embedding, expected)


def test_default_encoding_plain_call(client: openai.OpenAI, float_vectors: list[list[float]]) -> None:
    r = client.embeddings.create(model=EMBED, input=INPUTS[0])
    assert len(r.data) == 1
    assert_close(r.data[0].embedding, float_vectors[0])


def test_explicit_base64_is_left_encoded(client: openai.OpenAI, float_vectors: list[list[float]]) -> None:
    r = client.embeddings.create(model=EMBED, input=INPUTS, encoding_format="base64")
    for d, expected in zip(r.data, float_vectors):
        assert isinstance(d.embedding, str)
        assert_close(decode(d.embedding), expected)


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_dimensions(client: openai.OpenAI, encoding_format: str) -> None:
    r = client.embeddings.create(model=EMBED, input="hello world", dimensions=16, encoding_format=encoding_format)  # type: ignore[arg-type]
    e = r.data[0].embedding
    vector = decode(e) if isinstance(e, str) else e
    assert len(vector) == 16


def test_token_id_input(client: openai.OpenAI) -> None:
    r = client.embeddings.create(model=EMBED, input=[[1, 2, 3], [4, 5]], encoding_format="float")
    assert [len(d.embedding) for d in r.data] == [DIMENSIONS, DIMENSIONS]
    assert r.data[0].embedding != r.data[1].embedding


def test_unknown_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.embeddings.create(model="demo/no-such-embedder", input="x")
    assert info.value.code == "model_not_found"
