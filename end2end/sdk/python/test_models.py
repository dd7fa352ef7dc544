"""GET /v1/models and GET /v1/models/{id} through the SDK."""

import openai
import pytest

from support import CHAT_MODELS, CLAUDE_ECHO, ECHO, EMBED


def test_list_contains_demo_models(client: openai.OpenAI) -> None:
    page = client.models.list()
    models = list(page)  # iterating a page follows pagination, if the server offered any
    ids = [m.id for m in models]
    for wanted in (ECHO, CLAUDE_ECHO, EMBED):
        assert wanted in ids, ids
    assert len(ids) == len(set(ids)), f"duplicate ids: {ids}"
    for m in models:
        assert m.object == "model"
        assert isinstance(m.created, int)
        assert isinstance(m.owned_by, str) and m.owned_by


@pytest.mark.parametrize("model_id", [*CHAT_MODELS, EMBED])
def test_retrieve_by_id_with_slash(client: openai.OpenAI, model_id: str) -> None:
    m = client.models.retrieve(model_id)
    assert m.id == model_id
    assert m.object == "model"
    assert isinstance(m.created, int)
    assert m.owned_by


def test_retrieve_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("demo/no-such-model")
    assert info.value.status_code == 404
    assert info.value.code == "model_not_found"
