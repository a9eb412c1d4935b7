"""The image-service's routes: one image stream, and what the gateway's /api/config needs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from tinychat_common.bodies import read_body
from tinychat_common.chatlog import log_record
from tinychat_common.errors import MessageTooLong, TinyChatError
from tinychat_common.events import Event, ImageResult, Status
from tinychat_common.internal_auth import USER_HEADER
from tinychat_common.limiter import slot
from tinychat_common.models import ImageRequest
from tinychat_common.streaming import serve_events

from .app_keys import CHAT_LOG, IMAGE_METRICS, LIMITER, PROVIDER, SETTINGS, WORKERS
from .errors import EmptyPrompt, ImagesDisabled, ImageTimeout, ProviderBadResponse
from .postprocess import Limits, to_data_uri
from .providers import ImageProvider, RawImage


async def image_config(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    return web.json_response(
        {
            "enabled": settings.enabled,
            "provider": settings.image_provider if settings.enabled else None,
            "model": settings.model_name or None,
            "max_concurrent": settings.max_concurrent_images,
        }
    )


async def stream_image(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    body = await read_body(request, ImageRequest)
    prompt = body.prompt.strip()
    if not prompt:
        raise EmptyPrompt()
    if len(prompt) > settings.max_message_length:
        raise MessageTooLong(
            f"The prompt is {len(prompt):,} characters; the limit is {settings.max_message_length:,}."
        )
    provider = request.app.get(PROVIDER)
    if provider is None:
        raise ImagesDisabled()
    # Taken before the stream starts: over the cap, the caller gets a plain 429 "busy" at once
    # (the gateway passes it on as it is, Retry-After included).
    async with slot(request.app[LIMITER], in_use=request.app[IMAGE_METRICS].tokens_in_use):
        user = request.headers.get(USER_HEADER)
        return await serve_events(request, image_events(request.app, provider, prompt, user))


async def image_events(
    app: web.Application, provider: ImageProvider, prompt: str, user: str | None = None
) -> AsyncIterator[Event]:
    """Status events while the provider works, then the post-processed image. Every outcome,
    the cancelled ones too, leaves one CHAT_LOG line and one metrics sample."""
    settings = app[SETTINGS]
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + settings.image_timeout
    outcome = "cancelled"
    try:
        yield Status("Generating image…")
        raw = None
        async with contextlib.aclosing(provider.generate(prompt)) as generation:
            # Read to the end (the image is the last event): stopping early would look like
            # a cancelled generation to the provider.
            while (item := await next_before(deadline, generation, settings.image_timeout)) is not None:
                if isinstance(item, RawImage):
                    raw = item
                else:
                    yield item
        if raw is None:
            raise ProviderBadResponse("The image provider finished without an image.")
        limits = Limits(max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes)
        try:
            async with asyncio.timeout_at(deadline):
                data_uri = await to_data_uri(raw.data, limits, app[WORKERS])
        except TimeoutError:
            raise timed_out(settings.image_timeout) from None
        outcome = "ok"
        yield ImageResult(data_uri, prompt, raw.note)
    except TinyChatError as exc:
        outcome = exc.code
        raise
    finally:
        record(app, provider, prompt, outcome, loop.time() - started, user)


async def next_before(
    deadline: float, events: AsyncIterator[Status | RawImage], timeout: float
) -> Status | RawImage | None:
    """The provider's next event (None at the end), awaited under the one deadline.

    The deadline wraps each wait, not the whole loop: a timeout scope must never stay
    open across a `yield` to the stream writer."""
    try:
        async with asyncio.timeout_at(deadline):
            return await anext(events)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise timed_out(timeout) from None


def timed_out(timeout: float) -> ImageTimeout:
    return ImageTimeout(f"The image was not ready within IMAGE_TIMEOUT ({timeout:g} s); it was cancelled.")


def record(
    app: web.Application, provider: ImageProvider, prompt: str, outcome: str, seconds: float, user: str | None
) -> None:
    metrics = app[IMAGE_METRICS]
    metrics.generations.labels(provider.name, outcome).inc()
    metrics.seconds.labels(provider.name).observe(seconds)
    app[CHAT_LOG].record(
        log_record(
            "image",
            model=provider.model,
            outcome=outcome,
            seconds=seconds,
            user=user,
            prompt=prompt,
            provider=provider.name,
        )
    )
