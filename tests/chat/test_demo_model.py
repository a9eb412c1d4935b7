"""The built-in demo model: an OpenAI-compatible server, streamed through chat-service."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from tinychat_demo.app import create_app as create_demo_app
from tinychat_demo.config import DemoSettings
from tinychat_launcher.stack import plan

from tests.fakes.server import FakeServer
from tests.support.messages import user
from tests.support.sse import answer_text, read_events, read_payloads

pytestmark = pytest.mark.timeout(20)


class DemoServer(FakeServer):
    """The real demo app, served on 127.0.0.1 port 0."""

    def __init__(self, app: web.Application) -> None:
        super().__init__()
        self.app = app


@pytest.fixture
async def demo_url() -> AsyncIterator[str]:
    async with DemoServer(create_demo_app(DemoSettings(demo_chunk_delay_ms=0))) as server:
        yield server.base_url + "/v1"


@pytest.fixture
async def demo_chat(aiohttp_client, demo_url):
    from tinychat_chat.app import create_app
    from tinychat_chat.config import ChatSettings

    settings = ChatSettings(openai_api_url=demo_url, default_model="tinychat-demo", available_models="auto")
    return await aiohttp_client(create_app(settings))


async def test_the_demo_answer_streams_through_chat_service_with_markdown_code_and_math(demo_chat):
    response = await demo_chat.post("/v1/chat/stream", json={"messages": [user("Hello?")]})
    events = await read_events(response)
    text = answer_text(events)
    assert text.startswith("## Welcome to TinyChat")
    assert "> You wrote: Hello?" in text
    assert "| Feature" in text and "\n- **Markdown**" in text
    assert "```bash" in text and "```python" in text
    assert "$e^{i\\pi} + 1 = 0$" in text and "$$\n\\int_" in text
    assert "OPENAI_API_URL" in text and "OPENAI_API_KEY" in text
    done = events[-1]
    assert done["done"] is True and done["finish_reason"] == "stop"
    assert done["usage"]["completion_tokens"] > 100


async def test_the_demo_model_is_discovered_as_the_only_model(demo_chat):
    body = await (await demo_chat.get("/v1/models")).json()
    assert body["models"] == ["tinychat-demo"] and body["default_model"] == "tinychat-demo"


async def test_the_demo_model_honours_max_tokens_and_stop(demo_chat):
    cut = await demo_chat.post("/v1/chat/complete", json={"messages": [user("hi")], "max_tokens": 3})
    body = await cut.json()
    assert body["finish_reason"] == "length" and body["content"] == "## Welcome to "
    stopped = await demo_chat.post("/v1/chat/complete", json={"messages": [user("hi")], "stop": ["TinyChat"]})
    assert (await stopped.json())["content"] == "## Welcome to "


async def test_the_demo_model_notices_an_attached_image(demo_chat):
    png = "iVBORw0KGgoAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    message = user("see", image=png, image_type="image/png")
    text = answer_text(
        await read_events(await demo_chat.post("/v1/chat/stream", json={"messages": [message]}))
    )
    assert "You attached an image" in text


async def test_the_demo_model_streams_word_by_word_with_usage_when_asked(demo_url):
    body = {"messages": [user("hi")], "stream": True, "stream_options": {"include_usage": True}}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{demo_url}/chat/completions", json=body) as response,
    ):
        assert response.headers["Content-Type"].startswith("text/event-stream")
        payloads = await read_payloads(response)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert len([d for d in deltas if d]) > 100
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 100


async def test_the_demo_model_refuses_a_request_without_messages(demo_url):
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{demo_url}/chat/completions", json={"model": "tinychat-demo"})
        assert response.status == 400
        assert (await response.json())["error"] == "bad_request"


def test_make_run_starts_the_demo_model_when_no_api_is_configured():
    parts, env, use_demo = plan({"PORT": "9000"})
    assert use_demo and parts[0].name == "demo-model"
    assert env["OPENAI_API_URL"] == "http://127.0.0.1:8010/v1"
    assert env["DEFAULT_MODEL"] == "tinychat-demo" and env["AVAILABLE_MODELS"] == "tinychat-demo"
    assert [p.port for p in parts if p.name == "gateway"] == [9000]


def test_make_run_uses_the_configured_api_without_the_demo():
    parts, env, use_demo = plan({"OPENAI_API_URL": "https://api.example/v1", "DEFAULT_MODEL": "m"})
    assert not use_demo and "demo-model" not in [p.name for p in parts]
    assert env["OPENAI_API_URL"] == "https://api.example/v1" and env["DEFAULT_MODEL"] == "m"


def test_make_run_generates_a_new_internal_token_at_each_start() -> None:
    first = plan({})[1]["INTERNAL_TOKEN"]
    second = plan({})[1]["INTERNAL_TOKEN"]
    assert len(first) >= 32 and first != second
