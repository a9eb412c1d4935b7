"""image-service against a fake OpenAI Images API."""

from __future__ import annotations

import json

import pytest

from tests.fakes.openai_images import FakeOpenAIImages, ImageReply
from tests.fakes.openai_upstream import openai_error
from tests.fakes.swarmui import png_bytes

from .conftest import MakeClient, assert_ends_with_error, openai_settings, stream
from .images import decode_data_uri, png_bomb

pytestmark = pytest.mark.timeout(30)

KEY = "sk-test-secret-key-123"


async def test_b64_json_image_comes_back_as_jpeg_with_the_revised_prompt(
    fake_openai_images: FakeOpenAIImages, image_client: MakeClient
) -> None:
    fake_openai_images.enqueue(
        ImageReply(image=png_bytes((1792, 1024), "RGBA", (0, 0, 0, 0)), revised_prompt="A calm sea at dawn.")
    )
    client = await image_client(openai_settings(fake_openai_images))
    events = await stream(client, "the sea")

    image = next(e for e in events if "image" in e)
    assert image["prompt"] == "the sea"
    assert image["content"] == "A calm sea at dawn."
    picture = decode_data_uri(image["image"])
    assert picture.size == (1024, 585)
    assert min(picture.getpixel((512, 292))) > 245
    assert events[-1] == {"done": True, "finish_reason": "stop", "usage": None}


async def test_request_has_model_prompt_size_n_and_b64_format_with_the_key(
    fake_openai_images: FakeOpenAIImages, image_client: MakeClient
) -> None:
    client = await image_client(
        openai_settings(fake_openai_images, openai_image_model="dall-e-2", openai_image_size="512x512")
    )
    await stream(client, "a kite")
    assert fake_openai_images.history == [
        {"model": "dall-e-2", "prompt": "a kite", "n": 1, "size": "512x512", "response_format": "b64_json"}
    ]
    assert fake_openai_images.headers[0]["Authorization"] == f"Bearer {KEY}"


async def test_gpt_image_models_are_not_sent_response_format(
    fake_openai_images: FakeOpenAIImages, image_client: MakeClient
) -> None:
    client = await image_client(openai_settings(fake_openai_images, openai_image_model="gpt-image-1"))
    await stream(client)
    assert "response_format" not in fake_openai_images.history[0]


async def test_openai_api_key_is_the_fallback_when_the_image_key_is_empty(
    fake_openai_images: FakeOpenAIImages, image_client: MakeClient
) -> None:
    settings = openai_settings(fake_openai_images, openai_image_api_key="", openai_api_key=KEY)
    events = await stream(await image_client(settings))
    assert any("image" in e for e in events)
    assert fake_openai_images.headers[0]["Authorization"] == f"Bearer {KEY}"


async def test_url_answer_is_downloaded_without_our_key(
    fake_openai_images: FakeOpenAIImages, image_client: MakeClient
) -> None:
    fake_openai_images.enqueue(ImageReply(as_url=True, image=png_bytes((30, 20), "RGB", (0, 255, 0))))
    events = await stream(await image_client(openai_settings(fake_openai_images)))
    assert decode_data_uri(next(e for e in events if "image" in e)["image"]).size == (30, 20)
    assert len(fake_openai_images.file_requests) == 1
    assert "Authorization" not in fake_openai_images.file_requests[0]


async def test_url_download_over_the_size_cap_is_refused(
    fake_openai_images: FakeOpenAIImages, image_client: MakeClient
) -> None:
    fake_openai_images.enqueue(ImageReply(as_url=True, image=b"\x89PNG" + b"\0" * 200_000))
    client = await image_client(openai_settings(fake_openai_images, max_image_bytes=100_000))
    assert_ends_with_error(await stream(client), "image_too_large")


async def test_content_policy_refusal_is_readable(
    fake_openai_images: FakeOpenAIImages, image_client: MakeClient
) -> None:
    message = "Your request was rejected as a result of our safety system."
    fake_openai_images.enqueue(
        ImageReply(status=400, error=openai_error(message, code="content_policy_violation"))
    )
    error = assert_ends_with_error(
        await stream(await image_client(openai_settings(fake_openai_images))), "provider_refused"
    )
    assert "refused this prompt" in error["error"] and message in error["error"]


async def test_invalid_size_is_readable(
    fake_openai_images: FakeOpenAIImages, image_client: MakeClient
) -> None:
    message = "'1000x1000' is not one of ['1024x1024', '1024x1792', '1792x1024'] - 'size'"
    fake_openai_images.enqueue(ImageReply(status=400, error=openai_error(message)))
    error = assert_ends_with_error(
        await stream(await image_client(openai_settings(fake_openai_images))), "provider_refused"
    )
    assert "1000x1000" in error["error"]


async def test_wrong_key_is_reported_without_leaking_it(image_client: MakeClient) -> None:
    async with FakeOpenAIImages(api_key="sk-the-right-one") as fake:
        client = await image_client(openai_settings(fake, openai_image_api_key="sk-wrong-and-secret"))
        async with client.post("/v1/images/stream", json={"prompt": "x"}) as response:
            body = await response.text()
    assert "sk-wrong-and-secret" not in body
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    error = assert_ends_with_error(events, "provider_auth_failed")
    assert "OPENAI_IMAGE_API_KEY" in error["error"]


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (ImageReply(status=500), "provider_unavailable"),
        (ImageReply(status=503, raw=b"<html>Service Unavailable</html>"), "provider_unavailable"),
        (
            ImageReply(status=429, error=openai_error("Rate limit reached", "requests")),
            "provider_rate_limited",
        ),
        (ImageReply(raw=b'{"created": 1, "data": [{"b64_json": '), "provider_bad_response"),
        (ImageReply(raw=b'{"created": 1, "data": []}'), "provider_bad_response"),
        (ImageReply(raw=b'{"created": 1, "data": [{"b64_json": "!!!"}]}'), "not_an_image"),
        (ImageReply(image=b"plain text, not an image"), "not_an_image"),
        (ImageReply(image=png_bomb(30000, 30000)), "image_too_large"),
    ],
)
async def test_failures_give_one_readable_error_and_done(
    fake_openai_images: FakeOpenAIImages, image_client: MakeClient, reply: ImageReply, code: str
) -> None:
    fake_openai_images.enqueue(reply)
    client = await image_client(openai_settings(fake_openai_images))
    events = await stream(client)
    assert_ends_with_error(events, code)
    assert KEY not in json.dumps(events)


async def test_provider_down_gives_a_readable_error(image_client: MakeClient) -> None:
    async with FakeOpenAIImages() as gone:
        url = gone.url
    client = await image_client(openai_settings(gone, openai_image_api_base=url))
    error = assert_ends_with_error(await stream(client), "provider_unavailable")
    assert "not reachable" in error["error"]


async def test_slow_provider_hits_image_timeout_and_the_request_is_dropped(
    fake_openai_images: FakeOpenAIImages, image_client: MakeClient
) -> None:
    fake_openai_images.enqueue(ImageReply(delay=30))
    client = await image_client(openai_settings(fake_openai_images, image_timeout=0.5))
    assert_ends_with_error(await stream(client), "image_timeout")
    await fake_openai_images.disconnected.wait()
