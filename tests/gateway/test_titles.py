"""POST /api/chat/title through the gateway: validated like a chat request, answered by
chat-service, its refusals passed on as they were."""

from __future__ import annotations

import pytest
from tinychat_chat.app import create_app as create_chat_app
from tinychat_gateway.app import create_app

from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.support.chat_service import chat_settings_for
from tests.support.net import server_url

pytestmark = pytest.mark.timeout(20)

BODY = {
    "messages": [
        {"role": "user", "content": "Plan a trip to Lisbon"},
        {"role": "assistant", "content": "Day 1…"},
    ]
}


async def gateway_for(aiohttp_client, aiohttp_server, gateway_settings, fake: FakeOpenAI, **chat):
    chat_server = await aiohttp_server(create_chat_app(chat_settings_for(fake, **chat)))
    return await aiohttp_client(create_app(gateway_settings(chat_service_url=server_url(chat_server))))


async def test_a_title_comes_back_through_the_gateway(
    aiohttp_client, aiohttp_server, gateway_settings, fake_openai: FakeOpenAI
):
    client = await gateway_for(
        aiohttp_client, aiohttp_server, gateway_settings, fake_openai, chat_titles="on"
    )
    fake_openai.enqueue(Reply(text="Lisbon Trip Plan"))
    response = await client.post("/api/chat/title", json=BODY)
    assert response.status == 200
    assert await response.json() == {"title": "Lisbon Trip Plan"}


async def test_titles_off_is_passed_on_as_409(aiohttp_client, aiohttp_server, gateway_settings, fake_openai):
    client = await gateway_for(aiohttp_client, aiohttp_server, gateway_settings, fake_openai)
    response = await client.post("/api/chat/title", json=BODY)
    assert response.status == 409
    assert (await response.json())["error"] == "titles_off"


async def test_a_bad_body_is_refused_before_chat_service(
    aiohttp_client, aiohttp_server, gateway_settings, fake_openai: FakeOpenAI
):
    client = await gateway_for(
        aiohttp_client, aiohttp_server, gateway_settings, fake_openai, chat_titles="on"
    )
    response = await client.post("/api/chat/title", json={"messages": [], "colour": 1})
    assert response.status == 400
    assert fake_openai.history == []
