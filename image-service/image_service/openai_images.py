"""OpenAI Images (and compatible servers): `POST {base}/images/generations`.

The answer is `{"data": [{"b64_json": …}]}` or `{"data": [{"url": …}]}`; a URL is fetched
with a timeout and a size cap. Errors are `{"error": {"message", "type", "code"}}`:
content-policy refusals and bad sizes come back to the user as readable text, while the
API key never appears in any message.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from tinychat_common.redact import Scrubber

from .config import ImageSettings, without_credentials
from .errors import (
    ProviderAuthFailed,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRefused,
    ProviderUnavailable,
)
from .postprocess import Workers
from .providers import ProviderEvent, RawImage, read_capped

log = logging.getLogger("image_service.openai")

_MESSAGE_LIMIT = 400
_DOWNLOAD_TIMEOUT = 60.0
_JSON_IN_WORKER = 256 * 1024
_REFUSAL_CODES = frozenset({"content_policy_violation", "moderation_blocked", "image_generation_user_error"})


class OpenAIImages:
    name = "openai"

    def __init__(self, http: aiohttp.ClientSession, workers: Workers, settings: ImageSettings) -> None:
        self.http = http
        self.workers = workers
        self.base = settings.openai_image_api_base
        self.shown = without_credentials(settings.openai_image_api_base)
        self.model = settings.openai_image_model
        self.size = settings.openai_image_size
        self.max_bytes = settings.max_image_bytes
        self._key = settings.image_api_key
        self._scrub = Scrubber([self._key] if len(self._key) >= 4 else [])

    async def generate(self, prompt: str) -> AsyncIterator[ProviderEvent]:
        item = await self._first_image(prompt)
        note = item.get("revised_prompt") if isinstance(item.get("revised_prompt"), str) else ""
        if isinstance(item.get("b64_json"), str) and item["b64_json"]:
            yield RawImage(item["b64_json"], note)  # decoded by a worker, with the rest
        elif isinstance(item.get("url"), str) and item["url"]:
            yield RawImage(await self._download(item["url"]), note)
        else:
            raise ProviderBadResponse("The image API answered without an image.")

    async def close(self) -> None:
        return None

    def request_body(self, prompt: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "prompt": prompt, "n": 1, "size": self.size}
        # gpt-image-* always answer base64 and reject the parameter; DALL·E defaults to URLs.
        if not self.model.startswith("gpt-image"):
            body["response_format"] = "b64_json"
        return body

    async def _first_image(self, prompt: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        # The body carries the image as base64: a third bigger than the image itself.
        cap = self.max_bytes * 4 // 3 + 1024**2
        try:
            async with self.http.post(
                f"{self.base}/images/generations", json=self.request_body(prompt), headers=headers
            ) as response:
                raw = await read_capped(response, cap, "The image API's answer")
                status = response.status
        except (aiohttp.ClientError, OSError):
            raise ProviderUnavailable(f"The image API at {self.shown} is not reachable.") from None
        data = await self._parse(raw, status)
        if status != 200:
            raise self._error_for(status, data)
        items = data.get("data")
        if not isinstance(items, list) or not items or not isinstance(items[0], dict):
            raise ProviderBadResponse("The image API answered without an image.")
        return items[0]

    async def _parse(self, raw: bytes, status: int) -> dict[str, Any]:
        try:
            # Megabytes of JSON hold the GIL while parsed: a worker process does it.
            data = json.loads(raw) if len(raw) < _JSON_IN_WORKER else await self.workers.run(json.loads, raw)
        except (UnicodeDecodeError, ValueError):
            data = None
        if isinstance(data, dict):
            return data
        if status >= 500:
            raise ProviderUnavailable(f"The image API failed (HTTP {status}); try again later.")
        raise ProviderBadResponse(f"The image API answered HTTP {status} with something that is not JSON.")

    def _error_for(self, status: int, data: dict[str, Any]) -> Exception:
        error = data.get("error") if isinstance(data.get("error"), dict) else {}
        code = str(error.get("code") or error.get("type") or "")
        message = self._readable(error.get("message"))
        if status in (401, 403):
            return ProviderAuthFailed("The image API rejected the API key; check OPENAI_IMAGE_API_KEY.")
        if status == 429:
            return ProviderRateLimited(f"The image API is rate limiting requests: {message}")
        if code in _REFUSAL_CODES:
            return ProviderRefused(f"The image provider refused this prompt: {message}")
        if 400 <= status < 500:
            return ProviderRefused(f"The image API rejected the request: {message}")
        if status >= 500:
            return ProviderUnavailable(f"The image API failed (HTTP {status}); try again later.")
        return ProviderBadResponse(f"The image API answered HTTP {status}.")

    def _readable(self, message: Any) -> str:
        return self._scrub(str(message or "no reason given").strip()[:_MESSAGE_LIMIT])

    async def _download(self, url: str) -> bytes:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ProviderBadResponse("The image API gave an image URL that is not http(s).")
        try:
            async with asyncio.timeout(_DOWNLOAD_TIMEOUT):
                async with self.http.get(url) as response:
                    if response.status != 200:
                        raise ProviderBadResponse(
                            f"The image could not be downloaded (HTTP {response.status})."
                        )
                    return await read_capped(response, self.max_bytes, "The image download")
        except TimeoutError:
            raise ProviderUnavailable("Downloading the generated image took too long.") from None
        except (aiohttp.ClientError, OSError):
            raise ProviderUnavailable("The generated image could not be downloaded.") from None
