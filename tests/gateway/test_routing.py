"""Requests go to the service their last message and flags ask for."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.tinychat_service import DONE, FakeService, Script, frame
from tests.support.messages import chat_body
from tests.support.sse import answer_text, assert_ends_with_one_done, read_events

pytestmark = pytest.mark.timeout(20)


async def test_image_command_goes_to_image_service_with_the_prompt(
    gateway: aiohttp.ClientSession, image_service: FakeService, fake_openai: FakeOpenAI
) -> None:
    picture = frame({"image": "data:image/jpeg;base64,/9j/AA==", "prompt": "a red fox", "content": ""})
    image_service.enqueue(Script(writes=[frame({"status": "Generating image… 50%"}), picture, DONE]))
    body = {
        "messages": [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "Hi!"},
            {"role": "user", "content": "/image   a red fox\nin the snow  "},
        ]
    }
    async with gateway.post("/api/chat/stream", json=body) as response:
        events = await read_events(response)
    path, sent, _ = image_service.history[-1]
    assert path == "/v1/images/stream"
    assert sent == {"prompt": "a red fox\nin the snow"}
    assert events[1]["image"].startswith("data:image/jpeg")
    assert_ends_with_one_done(events)
    assert fake_openai.history == []


@pytest.mark.parametrize("command", ["/image", "/image   ", "  /image\n"])
async def test_image_alone_answers_usage_without_calling_a_service(
    gateway: aiohttp.ClientSession, image_service: FakeService, fake_openai: FakeOpenAI, command: str
) -> None:
    async with gateway.post("/api/chat/stream", json=chat_body(command)) as response:
        events = await read_events(response)
    assert "/image" in answer_text(events)
    assert "for example" in answer_text(events)
    assert_ends_with_one_done(events)
    assert events[-1]["finish_reason"] == "stop"
    assert image_service.history == [] and fake_openai.history == []


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "/images of cats"}],
        [{"role": "user", "content": "please /image a cat"}],
        [{"role": "user", "content": "/image a cat"}, {"role": "assistant", "content": "Here it is."}],
        [{"role": "system", "content": "/image a cat"}],
    ],
)
async def test_text_that_is_not_an_image_command_goes_to_chat(
    gateway: aiohttp.ClientSession, image_service: FakeService, fake_openai: FakeOpenAI, messages: list
) -> None:
    async with gateway.post("/api/chat/stream", json={"messages": messages}) as response:
        events = await read_events(response)
    assert_ends_with_one_done(events)
    assert len(fake_openai.history) == 1
    assert image_service.history == []


async def test_rlm_request_goes_to_rlm_service_with_the_validated_body(
    gateway: aiohttp.ClientSession, rlm_service: FakeService, fake_openai: FakeOpenAI
) -> None:
    body = chat_body("Find the needle", rlm=True, show_rlm_thinking=False, model="fake-model", temperature=0)
    async with gateway.post("/api/chat/stream", json=body) as response:
        events = await read_events(response)
    path, sent, _ = rlm_service.history[-1]
    assert path == "/v1/rlm/stream"
    assert sent == body
    assert_ends_with_one_done(events)
    assert fake_openai.history == []


async def test_passcode_in_the_body_is_not_forwarded(make_gateway, rlm_service: FakeService) -> None:
    gateway = await make_gateway(rlm_passcode="open sesame")
    body = chat_body("go", rlm=True, rlm_passcode="open sesame")
    async with gateway.post("/api/chat/stream", json=body) as response:
        await read_events(response)
    _, sent, headers = rlm_service.history[-1]
    assert "rlm_passcode" not in sent
    assert "open sesame" not in json.dumps(sent) + json.dumps(headers)


async def test_image_command_wins_over_rlm_flag(
    gateway: aiohttp.ClientSession, image_service: FakeService, rlm_service: FakeService
) -> None:
    async with gateway.post("/api/chat/stream", json=chat_body("/image a boat", rlm=True)) as response:
        await read_events(response)
    assert len(image_service.history) == 1
    assert rlm_service.history == []
