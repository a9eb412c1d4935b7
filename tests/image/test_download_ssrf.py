"""An image URL in the provider's answer is someone else's choice: it must not make
image-service fetch anything inside (loopback, the LAN, cloud metadata), follow a redirect
there, or tell apart what it found."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.fakes.openai_images import FakeOpenAIImages, ImageReply
from tests.image.conftest import MakeClient, assert_ends_with_error, openai_settings, stream
from tests.support.net import closed_port_url, serve_app

pytestmark = pytest.mark.timeout(30)

GENERIC = "The generated image could not be downloaded."


class InternalAdmin:
    """Something on loopback that must never be reached: it records every request."""

    def __init__(self) -> None:
        self.hits: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        return web.Response(body=b"\x89PNG secret admin page", content_type="image/png")


@pytest.fixture
async def internal() -> AsyncIterator[tuple[InternalAdmin, str]]:
    admin = InternalAdmin()
    app = web.Application()
    app.router.add_get("/{tail:.*}", admin.handle)
    runners: list[web.AppRunner] = []
    url = await serve_app(app, runners)
    yield admin, url
    for runner in runners:
        await runner.cleanup()


async def download_error(client_factory: MakeClient, fake: FakeOpenAIImages, reply: ImageReply, **kw) -> str:
    fake.enqueue(reply)
    client = await client_factory(openai_settings(fake, **kw))
    return assert_ends_with_error(await stream(client), "provider_unavailable")["error"]


async def test_a_redirect_to_an_internal_address_is_not_followed(
    fake_openai_images: FakeOpenAIImages, image_client: MakeClient, internal: tuple[InternalAdmin, str]
) -> None:
    admin, url = internal
    reply = ImageReply(redirect_to=f"{url}/internal/admin")
    assert await download_error(image_client, fake_openai_images, reply) == GENERIC
    assert admin.hits == []


async def test_a_url_on_another_host_than_the_providers_is_refused(
    fake_openai_images: FakeOpenAIImages, image_client: MakeClient, internal: tuple[InternalAdmin, str]
) -> None:
    admin, url = internal
    assert await download_error(image_client, fake_openai_images, ImageReply(url=f"{url}/x.png")) == GENERIC
    assert admin.hits == []


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "169.254.169.254", "[::1]", "10.0.0.1"])
async def test_an_allow_listed_name_or_address_that_is_not_public_is_refused(
    fake_openai_images: FakeOpenAIImages,
    image_client: MakeClient,
    internal: tuple[InternalAdmin, str],
    host: str,
) -> None:
    admin, url = internal
    port = url.rsplit(":", 1)[1]
    allowed = host.strip("[]")
    reply = ImageReply(url=f"http://{host}:{port}/x.png")
    error = await download_error(image_client, fake_openai_images, reply, image_download_hosts=allowed)
    assert error == GENERIC
    assert admin.hits == []


async def test_every_download_failure_reads_the_same(
    fake_openai_images: FakeOpenAIImages, image_client: MakeClient
) -> None:
    api = fake_openai_images.base_url
    replies = [
        ImageReply(url=f"{api}/files/missing.png"),  # 404 on the provider's host
        ImageReply(url=closed_port_url() + "/x.png"),  # nothing listening
        ImageReply(url="http://metadata.google.internal/computeMetadata/v1/"),  # not allowed
        ImageReply(url="ftp://example.com/x.png"),  # not http(s)
    ]
    errors = {await download_error(image_client, fake_openai_images, reply) for reply in replies}
    assert errors == {GENERIC}
