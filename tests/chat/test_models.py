"""GET /v1/models and AVAILABLE_MODELS: fixed lists, `auto` discovery, settings errors."""

from __future__ import annotations

import pytest
from tinychat_chat.config import ChatSettings
from tinychat_common.settings import load_settings

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.messages import user
from tests.support.sse import read_events

pytestmark = pytest.mark.timeout(15)


def test_default_model_list_puts_default_model_first_without_duplicates():
    settings = ChatSettings(default_model="my-model")
    assert settings.model_list == ["my-model", "gpt-3.5-turbo", "gpt-4", "gpt-4-turbo"]
    assert ChatSettings().model_list == ["gpt-3.5-turbo", "gpt-4", "gpt-4-turbo"]


def test_a_model_list_is_trimmed_deduplicated_and_gets_the_default(monkeypatch):
    monkeypatch.setenv("AVAILABLE_MODELS", " a, b ,a,,c ")
    monkeypatch.setenv("DEFAULT_MODEL", "z")
    assert load_settings(ChatSettings).model_list == ["z", "a", "b", "c"]


def test_the_api_key_never_shows_in_repr(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    settings = load_settings(ChatSettings)
    assert "sk-very-secret" not in repr(settings) and "sk-very-secret" not in str(settings)
    assert settings.openai_api_key.get_secret_value() == "sk-very-secret"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEFAULT_TEMPERATURE", "hot"),
        ("DEFAULT_TEMPERATURE", "5"),
        ("MAX_MESSAGE_LENGTH", "0"),
        ("MAX_CONVERSATION_HISTORY", "many"),
        ("OPENAI_API_URL", "ftp://example"),
        ("UPSTREAM_IDLE_TIMEOUT", "-1"),
    ],
)
def test_a_bad_value_stops_start_up_with_one_line_naming_the_variable(monkeypatch, capsys, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit):
        load_settings(ChatSettings)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0]


async def test_models_endpoint_reports_models_and_limits(chat_client):
    body = await (await chat_client.get("/v1/models")).json()
    assert body == {
        "models": ["fake-model", "fake-vision"],
        "model_groups": [
            {"endpoint": "", "label": "127.0.0.1", "titles": False, "models": ["fake-model", "fake-vision"]}
        ],
        "default_model": "fake-model",
        "default_temperature": 0.7,
        "max_message_length": 262144,
        "max_conversation_history": 50,
        "max_image_size_mb": 10.0,
    }


async def test_auto_discovers_models_from_the_api_and_caches_them(client_with, fake_openai: FakeOpenAI):
    fake_openai.models = ["zeta", "fake-model", "alpha"]
    client = await client_with(available_models="auto")
    for _ in range(3):
        body = await (await client.get("/v1/models")).json()
    assert body["models"] == ["fake-model", "zeta", "alpha"]
    assert body["default_model"] == "fake-model"
    assert fake_openai.model_list_calls == 1
    events = await read_events(
        await client.post("/v1/chat/stream", json={"messages": [user("hi")], "model": "alpha"})
    )
    assert events[-1]["finish_reason"] == "stop"
    assert fake_openai.model_list_calls == 1


async def test_auto_asks_again_once_the_cache_expires(client_with, fake_openai: FakeOpenAI):
    client = await client_with(available_models="auto", models_cache_seconds=0)
    await client.get("/v1/models")
    fake_openai.models = ["fake-model", "brand-new"]
    body = await (await client.get("/v1/models")).json()
    assert body["models"] == ["fake-model", "brand-new"]
    assert fake_openai.model_list_calls == 2


async def test_auto_defaults_to_the_first_offered_model_when_default_model_is_missing(
    client_with, fake_openai
):
    fake_openai.models = ["llama3", "mistral"]
    client = await client_with(available_models="auto", default_model="gpt-3.5-turbo")
    body = await (await client.get("/v1/models")).json()
    assert body["models"] == ["llama3", "mistral"]
    assert body["default_model"] == "llama3"


async def test_auto_falls_back_to_default_model_with_a_warning_when_discovery_fails(
    client_with, fake_openai: FakeOpenAI, caplog
):
    fake_openai.api_key = "another-key"  # the list answers 401
    client = await client_with(available_models="auto")
    body = await (await client.get("/v1/models")).json()
    assert body["models"] == ["fake-model"]
    assert body["default_model"] == "fake-model"
    assert any("model discovery failed" in r.getMessage() for r in caplog.records)
    assert "sk-test" not in caplog.text


async def test_readyz_does_not_call_the_api(client_with, fake_openai: FakeOpenAI):
    client = await client_with(available_models="auto")
    for _ in range(3):
        response = await client.get("/readyz")
        assert response.status == 200
    assert fake_openai.model_list_calls == 0 and fake_openai.history == []
