"""Turn whatever a provider sent into a JPEG data URI the browser can show.

All of it is CPU work (base64, decode, convert, resize, encode), and much of it holds
the GIL (base64 and JSON of megabytes), so it runs in `Workers`: a small pool of worker
processes (IMAGE_WORKER_PROCESSES), or threads when that is 0. Either way the event loop
keeps streaming other users' answers meanwhile; only processes keep it smooth (see
bench/image_lag.py for the numbers).

Refused: data that is not an image, and images whose header claims more pixels than
`max_pixels` (a decompression bomb: a few KB of PNG that would expand to gigabytes).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import logging
import multiprocessing
import os
import struct
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageProcessingFailed, ImageTooLarge, NotAnImage

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_SIDE = 1024
JPEG_QUALITY = 90
WHITE = (255, 255, 255, 255)
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})


@dataclass(frozen=True, slots=True)
class Limits:
    max_pixels: int = 50_000_000
    max_bytes: int = 32 * 1024 * 1024
    max_side: int = MAX_SIDE
    quality: int = JPEG_QUALITY


class Workers:
    """Where the CPU work runs. Functions and arguments must be picklable (module-level)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: forking a process that runs an event loop and threads is unsafe.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_lower_priority)
        return self._pool

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.processes <= 0:
            return await asyncio.to_thread(fn, *args)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor(), fn, *args)
        except BrokenProcessPool:
            # A worker died (out of memory?): this image fails, the next one gets a new pool.
            log.error("an image worker process died; starting a new pool")
            await self.close()
            raise ImageProcessingFailed() from None

    async def warm_up(self) -> None:
        """Start the worker processes now, so the first image does not wait for them."""
        if self.processes > 0:
            await asyncio.gather(*(self.run(_ready) for _ in range(self.processes)))

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


def _lower_priority() -> None:
    """Image work can wait a few milliseconds; streams cannot. On a busy machine the
    scheduler should run the event loop first."""
    with contextlib.suppress(OSError):
        os.nice(10)


def _ready() -> bool:
    return True


async def to_data_uri(raw: bytes | str, limits: Limits, workers: Workers) -> str:
    return await workers.run(process, raw, limits)


def data_uri_bytes(uri: str, max_bytes: int) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise NotAnImage("The image provider sent a data URI that is not base64 image data.")
    return base64_bytes(payload, max_bytes)


def base64_bytes(payload: str, max_bytes: int) -> bytes:
    if len(payload) * 3 // 4 > max_bytes + 3:
        raise ImageTooLarge(f"The generated image is larger than the {max_bytes // 1024**2} MB limit.")
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        raise NotAnImage("The image provider sent image data that is not valid base64.") from None


def process(raw: bytes | str, limits: Limits) -> str:
    """Decode, flatten to RGB on white, shrink to `max_side`, encode as JPEG, wrap as data URI.

    `raw` is the image's bytes, or text: a `data:` URI or plain base64 (decoded here, in
    the worker, since base64 of megabytes holds the GIL)."""
    if isinstance(raw, str):
        raw = (
            data_uri_bytes(raw, limits.max_bytes)
            if raw.startswith("data:")
            else base64_bytes(raw, limits.max_bytes)
        )
    image = open_checked(raw, limits.max_pixels, limits.max_side)
    image = oriented(image)
    image = flattened(image, limits.max_side)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=limits.quality)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def open_checked(raw: bytes, max_pixels: int, max_side: int = MAX_SIDE) -> Image.Image:
    if not raw:
        raise NotAnImage("The image provider sent an empty image.")
    try:
        image = Image.open(io.BytesIO(raw))
        # Only the header has been read so far: refuse a bomb before decoding a single row.
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"The generated image claims {width}x{height} pixels, more than the "
                f"{max_pixels:,} allowed; it was refused."
            )
        if image.format == "JPEG":
            # JPEG can decode straight at a fraction of its size: much less work for big photos.
            image.draft(image.mode, (max_side, max_side))
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge("The generated image is a decompression bomb; it was refused.") from None
    except UnidentifiedImageError:
        raise NotAnImage() from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error):
        raise NotAnImage("The image provider sent an image that is damaged or cut short.") from None
    return image


def oriented(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, since the JPEG we write carries no EXIF."""
    try:
        return ImageOps.exif_transpose(image) or image
    except (OSError, ValueError, SyntaxError):
        return image


def flattened(image: Image.Image, max_side: int) -> Image.Image:
    """Any mode in, RGB out: deep images scaled to 8 bits, transparency onto white."""
    image = eight_bit(image)
    if image.has_transparency_data:
        image = image.convert("RGBA")
    elif image.mode != "RGB":
        image = image.convert("RGB")
    # Resize before compositing: fewer pixels to blend, and Pillow resizes RGBA premultiplied.
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, WHITE)
        image = Image.alpha_composite(background, image).convert("RGB")
    return image


def eight_bit(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float grey images as 8-bit grey ("L"); others unchanged."""
    if image.mode in SIXTEEN_BIT_MODES:
        return image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if image.mode == "I":
        low, high = band_range(image)
        if low >= 0 and high <= 255:
            return image.convert("L")
        if low >= 0 and high <= 65535:
            return image.point(lambda v: v * (1 / 256)).convert("L")
        return stretched(image, low, high)
    if image.mode == "F":
        low, high = band_range(image)
        return stretched(image, low, high)
    return image


def band_range(image: Image.Image) -> tuple[float, float]:
    """The lowest and highest value of a one-band image ("I", "F")."""
    low, high = image.getextrema()
    if isinstance(low, tuple) or isinstance(high, tuple):
        raise ValueError(f"a one-band image was expected, not {image.mode}")
    return low, high


def stretched(image: Image.Image, low: float, high: float) -> Image.Image:
    """Map [low, high] linearly onto [0, 255]."""
    span = float(high - low) or 1.0
    scale = 255.0 / span
    return image.convert("F").point(lambda v: (v - low) * scale).convert("L")
