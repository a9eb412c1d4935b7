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
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from tinychat_common.egress import host_matches, is_public_address, literal_address, public_only_session
from tinychat_common.redact import Scrubber, url_origin, without_credentials

from .config import ImageSettings
from .errors import (
    ProviderAuthFailed,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRefused,
    ProviderUnavailable,
)
from .postprocess import Workers
from .providers import ProviderEvent, RawImage, read_capped

log = logging.getLogger(__name__)

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
        self._download_hosts = settings.image_download_hosts
        # Image URLs elsewhere than the API's own host are fetched through a session that
        # connects to public addresses only (made on first use, inside the loop).
        self._outside: aiohttp.ClientSession | None = None
        self._scrub = Scrubber([self._key] if len(self._key) >= 4 else [])

    async def generate(self, prompt: str) -> AsyncGenerator[ProviderEvent, None]:
        item = await self._first_image(prompt)
        revised, b64, url = item.get("revised_prompt"), item.get("b64_json"), item.get("url")
        note = revised if isinstance(revised, str) else ""
        if isinstance(b64, str) and b64:
            yield RawImage(b64, note)  # decoded by a worker, with the rest
        elif isinstance(url, str) and url:
            yield RawImage(await self._download(url), note)
        else:
            raise ProviderBadResponse("The image API answered without an image.")

    async def close(self) -> None:
        if self._outside is not None:
            await self._outside.close()

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
        found = data.get("error")
        error = found if isinstance(found, dict) else {}
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
        """The image at `url`. Every failure, whatever its cause (a refused host, a
        redirect, a closed port, an error status, a timeout), is one and the same error,
        so a provider answer cannot turn this into a probe of the network behind it."""
        session = self._session_for(url)
        if session is None:
            log.warning("refused to download an image from %s", url_origin(url))
            raise _download_failed()
        try:
            async with asyncio.timeout(_DOWNLOAD_TIMEOUT):
                async with session.get(url, allow_redirects=False) as response:
                    if response.status != 200:
                        log.info("image download from %s answered HTTP %s", url_origin(url), response.status)
                        raise _download_failed()
                    return await read_capped(response, self.max_bytes, "The image download")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.info("image download from %s failed: %s", url_origin(url), type(exc).__name__)
            raise _download_failed() from None

    def _session_for(self, url: str) -> aiohttp.ClientSession | None:
        """The session to fetch `url` with, or None when it may not be fetched at all."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        api = urlsplit(self.base)
        if (parts.scheme, parts.hostname, parts.port) == (api.scheme, api.hostname, api.port):
            return self.http  # the image API's own host, configured by the operator
        if not host_matches(parts.hostname, self._download_hosts):
            return None
        literal = literal_address(url)
        if literal is not None and not is_public_address(literal):
            return None
        if self._outside is None:
            self._outside = public_only_session()
        return self._outside


def _download_failed() -> ProviderUnavailable:
    return ProviderUnavailable("The generated image could not be downloaded.")
