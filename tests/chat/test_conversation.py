"""History trimming and images: what the API is sent for a long or illustrated conversation."""

from __future__ import annotations

import base64

import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.messages import user
from tests.support.sse import read_events

pytestmark = pytest.mark.timeout(15)

# Smallest valid headers of each format: enough for the type check, which reads magic bytes.
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
GIF = b"GIF89a" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def conversation(turns: int) -> list[dict[str, str]]:
    messages = []
    for n in range(turns):
        messages.append(user(f"question {n}"))
        messages.append({"role": "assistant", "content": f"answer {n}"})
    return messages


async def test_a_long_conversation_is_trimmed_keeping_system_messages_and_the_newest(
    client_with, fake_openai: FakeOpenAI
):
    client = await client_with(max_conversation_history=6)
    messages = [{"role": "system", "content": "be brief"}, *conversation(10)]
    messages.insert(5, {"role": "system", "content": "later rule"})
    messages.append(user("the newest question"))
    events = await read_events(await client.post("/v1/chat/stream", json={"messages": messages}))
    assert events[-1]["finish_reason"] == "stop"
    sent = fake_openai.history[-1]["messages"]
    assert [m["content"] for m in sent] == [
        "be brief",
        "later rule",
        "answer 8",
        "question 9",
        "answer 9",
        "the newest question",
    ]


async def test_a_conversation_within_the_limit_is_sent_whole(client_with, fake_openai: FakeOpenAI):
    client = await client_with(max_conversation_history=50)
    messages = [*conversation(3), user("now")]
    await read_events(await client.post("/v1/chat/stream", json={"messages": messages}))
    assert fake_openai.history[-1]["messages"] == messages


async def test_the_newest_message_survives_even_when_system_messages_fill_the_history(
    client_with, fake_openai: FakeOpenAI
):
    client = await client_with(max_conversation_history=2)
    messages = [{"role": "system", "content": f"rule {n}"} for n in range(3)] + [*conversation(2), user("q")]
    await read_events(await client.post("/v1/chat/stream", json={"messages": messages}))
    sent = [m["content"] for m in fake_openai.history[-1]["messages"]]
    assert sent == ["rule 0", "rule 1", "rule 2", "q"]


@pytest.mark.parametrize(
    ("data", "mime"), [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")]
)
async def test_an_image_goes_upstream_as_text_and_image_url_parts(
    chat_client, fake_openai: FakeOpenAI, data, mime
):
    message = user("what is this?", image=b64(data), image_type=mime)
    events = await read_events(await chat_client.post("/v1/chat/stream", json={"messages": [message]}))
    assert events[-1]["finish_reason"] == "stop"
    assert fake_openai.history[-1]["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{b64(data)}"}},
            ],
        }
    ]


async def test_an_image_labelled_with_the_wrong_type_is_sent_as_what_it_is(chat_client, fake_openai):
    message = user("", image=b64(PNG), image_type="image/jpeg")
    await read_events(await chat_client.post("/v1/chat/stream", json={"messages": [message]}))
    parts = fake_openai.history[-1]["messages"][0]["content"]
    assert parts == [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(PNG)}"}}]


async def test_a_large_image_is_validated_and_sent(chat_client, fake_openai: FakeOpenAI):
    data = PNG + b"\x01" * 300_000  # past the size where decoding moves to a thread
    message = user("big", image=b64(data), image_type="image/png")
    events = await read_events(await chat_client.post("/v1/chat/stream", json={"messages": [message]}))
    assert events[-1]["finish_reason"] == "stop"
    url = fake_openai.history[-1]["messages"][0]["content"][1]["image_url"]["url"]
    assert base64.b64decode(url.split(",", 1)[1]) == data


@pytest.mark.parametrize(
    ("image", "image_type", "status", "code"),
    [
        (b64(PNG), "image/tiff", 400, "invalid_image"),
        ("not base64 at all!!", "image/png", 400, "invalid_image"),
        (b64(b"just some text, not a picture"), "image/png", 400, "invalid_image"),
        (b64(PNG + b"\x00" * 2 * 1024 * 1024), "image/png", 413, "image_too_large"),
    ],
)
async def test_a_bad_image_is_refused_before_streaming(
    client_with, fake_openai: FakeOpenAI, image, image_type, status, code
):
    client = await client_with(max_image_size_mb=1)
    message = user("look", image=image, image_type=image_type)
    response = await client.post("/v1/chat/stream", json={"messages": [message]})
    assert response.status == status
    body = await response.json()
    assert body["error"] == code and body["detail"]
    assert fake_openai.history == []


async def test_an_image_on_an_assistant_turn_goes_upstream_as_text_only(chat_client, fake_openai):
    messages = [
        user("/image a cat"),
        {"role": "assistant", "content": "Here is your cat.", "image": b64(PNG), "image_type": "image/png"},
        user("thanks"),
    ]
    await read_events(await chat_client.post("/v1/chat/stream", json={"messages": messages}))
    assert fake_openai.history[-1]["messages"][1] == {"role": "assistant", "content": "Here is your cat."}
