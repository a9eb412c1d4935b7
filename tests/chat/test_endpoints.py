"""Several named endpoints: each model id names its endpoint, each request reaches its own
endpoint with its own key, bad configuration stops start-up with one line, and per-model
quirks (no temperature, max_completion_tokens) are sent right."""

from __future__ import annotations

import json

import pytest
from tinychat_chat.app import create_app
from tinychat_chat.config import ChatSettings
from tinychat_common.settings import load_settings

from tests.fakes.openai_upstream import FakeOpenAI, Reply, openai_error
from tests.support.chat_service import chat_settings_for
from tests.support.messages import user
from tests.support.sse import answer_text, read_events

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
async def second_openai():
    async with FakeOpenAI(models=["llama3:8b", "qwen3/think"], api_key="sk-local-key-5678") as fake:
        yield fake


def two_endpoints(first: FakeOpenAI, second: FakeOpenAI, **extra) -> str:
    return json.dumps(
        {
            "endpoints": [
                {
                    "name": "cloud",
                    "url": first.url,
                    "api_key": "sk-test-secret-key-1234",
                    "models": ["fake-model"],
                },
                {
                    "name": "local",
                    "label": "Local server",
                    "url": second.url,
                    "api_key": "sk-local-key-5678",
                    **extra,
                },
            ]
        }
    )


async def test_models_are_grouped_by_endpoint_with_unambiguous_ids(
    aiohttp_client, fake_openai: FakeOpenAI, second_openai: FakeOpenAI
):
    settings = chat_settings_for(fake_openai, chat_endpoints=two_endpoints(fake_openai, second_openai))
    client = await aiohttp_client(create_app(settings))
    body = await (await client.get("/v1/models")).json()
    assert body["models"] == ["cloud/fake-model", "local/llama3:8b", "local/qwen3/think"]
    assert body["default_model"] == "cloud/fake-model"
    assert [(g["endpoint"], g["label"]) for g in body["model_groups"]] == [
        ("cloud", "cloud"),
        ("local", "Local server"),
    ]
    assert "sk-" not in json.dumps(body)


async def test_each_request_reaches_its_own_endpoint_with_its_own_key(
    aiohttp_client, fake_openai: FakeOpenAI, second_openai: FakeOpenAI
):
    settings = chat_settings_for(fake_openai, chat_endpoints=two_endpoints(fake_openai, second_openai))
    client = await aiohttp_client(create_app(settings))
    second_openai.enqueue(Reply(text="local answer"))
    events = await read_events(
        await client.post("/v1/chat/stream", json={"messages": [user("hi")], "model": "local/qwen3/think"})
    )
    assert answer_text(events) == "local answer"
    assert second_openai.history[-1]["model"] == "qwen3/think"
    assert second_openai.headers[-1]["Authorization"] == "Bearer sk-local-key-5678"
    fake_openai.enqueue(Reply(text="cloud answer"))
    events = await read_events(
        await client.post("/v1/chat/stream", json={"messages": [user("hi")], "model": "cloud/fake-model"})
    )
    assert answer_text(events) == "cloud answer"
    assert fake_openai.history[-1]["model"] == "fake-model"
    assert fake_openai.headers[-1]["Authorization"] == "Bearer sk-test-secret-key-1234"
    assert len(second_openai.history) == 1


async def test_a_model_of_another_endpoint_or_unprefixed_is_unknown(
    aiohttp_client, fake_openai: FakeOpenAI, second_openai: FakeOpenAI
):
    settings = chat_settings_for(fake_openai, chat_endpoints=two_endpoints(fake_openai, second_openai))
    client = await aiohttp_client(create_app(settings))
    for model in ("fake-model", "cloud/llama3:8b", "nowhere/fake-model"):
        response = await client.post("/v1/chat/stream", json={"messages": [user("hi")], "model": model})
        assert response.status == 400, model
    assert fake_openai.history == [] and second_openai.history == []


async def test_the_endpoint_file_works_like_the_variable(
    tmp_path, aiohttp_client, fake_openai: FakeOpenAI, second_openai: FakeOpenAI
):
    path = tmp_path / "endpoints.json"
    path.write_text(two_endpoints(fake_openai, second_openai))
    client = await aiohttp_client(create_app(chat_settings_for(fake_openai, chat_endpoints_file=str(path))))
    body = await (await client.get("/v1/models")).json()
    assert body["models"][0] == "cloud/fake-model"


def test_a_key_can_come_from_a_variable_named_in_the_file(monkeypatch):
    monkeypatch.setenv("LOCAL_KEY", "sk-from-env-0000")
    endpoints = json.dumps(
        {"endpoints": [{"name": "a", "url": "http://127.0.0.1:9/v1", "api_key_env": "LOCAL_KEY"}]}
    )
    settings = ChatSettings(chat_endpoints=endpoints)
    assert settings.endpoint_configs[0].key() == "sk-from-env-0000"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("{not json", "not valid JSON"),
        ('{"endpoints": []}', "endpoints"),
        ('{"endpoints": [{"name": "a/b", "url": "http://x/v1"}]}', "name"),
        ('{"endpoints": [{"name": "a", "url": "ftp://x"}]}', "url"),
        ('{"endpoints": [{"name": "a", "url": "http://x", "colour": 1}]}', "unknown field"),
        ('{"endpoints": [{"name": "a", "url": "http://x"}, {"name": "a", "url": "http://y"}]}', "twice"),
        ('{"endpoints": [{"name": "a", "url": "http://x", "api_key_env": "NOPE_UNSET"}]}', "NOPE_UNSET"),
    ],
)
def test_bad_endpoints_stop_start_up_with_one_line(monkeypatch, capsys, value: str, says: str):
    monkeypatch.setenv("CHAT_ENDPOINTS", value)
    with pytest.raises(SystemExit):
        load_settings(ChatSettings)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "CHAT_ENDPOINTS" in lines[0] and says in lines[0], lines[0]


def test_a_key_in_a_bad_endpoint_list_is_never_printed(monkeypatch, capsys):
    value = '{"endpoints": [{"name": "a", "url": "ftp://x", "api_key": "sk-very-secret-9999"}]}'
    monkeypatch.setenv("CHAT_ENDPOINTS", value)
    with pytest.raises(SystemExit):
        load_settings(ChatSettings)
    assert "sk-very-secret" not in capsys.readouterr().err


async def test_model_settings_leave_out_temperature_and_rename_max_tokens(
    client_with, fake_openai: FakeOpenAI
):
    quirks = {"fake-vision": {"temperature": False, "max_tokens_param": "max_completion_tokens"}}
    client = await client_with(chat_model_settings=json.dumps(quirks))
    body = {"messages": [user("hi")], "model": "fake-vision", "max_tokens": 300, "temperature": 0.2}
    await read_events(await client.post("/v1/chat/stream", json=body))
    sent = fake_openai.history[-1]
    assert "temperature" not in sent and "max_tokens" not in sent
    assert sent["max_completion_tokens"] == 300
    await read_events(await client.post("/v1/chat/stream", json={**body, "model": "fake-model"}))
    assert fake_openai.history[-1]["temperature"] == 0.2
    assert fake_openai.history[-1]["max_tokens"] == 300


@pytest.mark.parametrize(
    ("refusal", "parameter", "fixed"),
    [
        (
            "Unsupported value: 'temperature' does not support 0.7 with this model. "
            "Only the default (1) value is supported.",
            "temperature",
            lambda sent: "temperature" not in sent,
        ),
        (
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "max_tokens",
            lambda sent: sent.get("max_completion_tokens") == 50 and "max_tokens" not in sent,
        ),
    ],
)
async def test_a_refused_parameter_is_a_clear_error_the_first_time_then_adapted(
    chat_client, fake_openai: FakeOpenAI, refusal: str, parameter: str, fixed
):
    fake_openai.enqueue(Reply(status=400, error_body=openai_error(refusal, code="unsupported_parameter")))
    body = {"messages": [user("hi")], "max_tokens": 50}
    events = await read_events(await chat_client.post("/v1/chat/stream", json=body))
    error = next(e for e in events if "error" in e)
    assert error["code"] == "upstream_parameter_refused"
    assert f"`{parameter}`" in error["error"] and "CHAT_MODEL_SETTINGS" in error["error"]
    events = await read_events(await chat_client.post("/v1/chat/stream", json=body))
    assert events[-1]["finish_reason"] == "stop"
    assert fixed(fake_openai.history[-1])
