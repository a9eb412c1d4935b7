"""What every image provider offers: `generate(prompt)`, an async iterator of `Status`
events (progress for the person waiting) ending with one `RawImage`.

Cancelling the iteration (client gone, IMAGE_TIMEOUT) cancels the generation at the
provider where the provider's API allows it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from tinychat_common.events import Status

from .errors import ImageTooLarge, ProviderBadResponse

_READ_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class RawImage:
    """Image bytes as the provider sent them (any format), before post-processing."""

    data: bytes | str  # bytes, or a data: URI / plain base64 that a worker decodes
    note: str = ""  # shown with the image, e.g. OpenAI's revised prompt


ProviderEvent = Status | RawImage


class ImageProvider(Protocol):
    name: str
    model: str

    def generate(self, prompt: str) -> AsyncGenerator[ProviderEvent, None]: ...

    async def close(self) -> None: ...


async def read_capped(response: aiohttp.ClientResponse, max_bytes: int, what: str) -> bytes:
    """The whole body, or ImageTooLarge as soon as it passes `max_bytes`."""
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise ImageTooLarge(f"{what} is {declared:,} bytes, more than the {max_bytes:,} allowed.")
    body = bytearray()
    try:
        async for chunk in response.content.iter_chunked(_READ_CHUNK):
            body += chunk
            if len(body) > max_bytes:
                raise ImageTooLarge(f"{what} is larger than the {max_bytes:,} bytes allowed.")
    except aiohttp.ClientPayloadError:
        raise ProviderBadResponse(f"{what} was cut off before it was complete.") from None
    return bytes(body)


def progress_status(fraction: float) -> Status:
    return Status(f"Generating image… {round(fraction * 100)}%")
