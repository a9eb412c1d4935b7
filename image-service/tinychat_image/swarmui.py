"""SwarmUI (https://github.com/mcmonkeyprojects/SwarmUI), through its own API.

- A session comes from `POST /API/GetNewSession`. Sessions are pooled: each generation
  takes an idle one (or a new one) and gives it back afterwards, so sessions are reused,
  and `InterruptAll` for one session never stops another user's image. When SwarmUI
  answers `"error_id": "invalid_session_id"` (it restarted, or expired the session), a new
  session is made and the generation is tried once more.
- Generation goes over the websocket `/API/GenerateText2ImageWS`: it sends
  `{"gen_progress": {"overall_percent": …}}` messages, then `{"image": {"image": …}}`.
  Where the websocket is not available (a proxy without upgrade support, an old
  SwarmUI), `POST /API/GenerateText2Image` answers `{"images": [...]}` at the end.
- An image is a `data:` URI (with `donotsave`) or a path such as `View/local/raw/…png`
  to GET from SwarmUI.
- A generation that is cancelled (client gone, IMAGE_TIMEOUT) closes the socket and calls
  `POST /API/InterruptAll` for its session, so the GPU stops working on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
from tinychat_common.errors import TinyChatError
from tinychat_common.redact import without_credentials

from .config import ImageSettings
from .errors import ProviderBadResponse, ProviderRefused, ProviderUnavailable
from .postprocess import Workers
from .providers import ProviderEvent, RawImage, progress_status, read_capped

log = logging.getLogger(__name__)

_MESSAGE_LIMIT = 300  # characters of a SwarmUI error shown to the user
_INTERRUPT_TIMEOUT = 10.0
_JSON_IN_WORKER = 256 * 1024


_SOCKET_ENDS = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)


class SessionExpired(Exception):
    """SwarmUI does not know our session id (any more)."""


class SwarmUI:
    name = "swarmui"

    def __init__(self, http: aiohttp.ClientSession, workers: Workers, settings: ImageSettings) -> None:
        self.http = http
        self.workers = workers
        self.base = settings.swarmui
        self.shown = without_credentials(settings.swarmui)
        self.model = settings.image_model
        self.settings = settings
        self.max_bytes = settings.max_image_bytes
        self.websocket_works: bool | None = None  # None: not tried yet
        self._idle_sessions: list[str] = []
        self._background: set[asyncio.Task[None]] = set()

    # -- the provider interface ------------------------------------------------------------

    async def generate(self, prompt: str) -> AsyncGenerator[ProviderEvent, None]:
        session_id = await self._take_session()
        finished = False
        try:
            for attempt in (1, 2):
                try:
                    async with contextlib.aclosing(self._generate_once(session_id, prompt)) as events:
                        async for event in events:
                            if isinstance(event, RawImage):
                                finished = True  # the image is in hand: nothing left to interrupt
                            yield event
                    finished = True
                    return
                except SessionExpired:
                    if attempt == 2:
                        raise ProviderBadResponse("SwarmUI rejected a session it had just created.") from None
                    log.info("SwarmUI session expired; getting a new one")
                    session_id = await self._new_session()
        except TinyChatError:
            finished = True  # SwarmUI said no: nothing is running there, the session is fine
            raise
        finally:
            if finished:
                self._idle_sessions.append(session_id)
            else:
                # Cancelled or torn down mid-generation: stop the GPU, and do not reuse the
                # session, so the interrupt cannot hit the next generation on it.
                self._interrupt_soon(session_id)

    async def close(self) -> None:
        """Let pending interrupts reach SwarmUI before the app's ClientSession closes."""
        if self._background:
            await asyncio.wait(self._background, timeout=_INTERRUPT_TIMEOUT)

    # -- one generation ----------------------------------------------------------------------

    def request_body(self, session_id: str, prompt: str) -> dict[str, Any]:
        s = self.settings
        return {
            "session_id": session_id,
            "images": 1,
            "prompt": prompt,
            "negativeprompt": "",
            "model": s.image_model,
            "cfgscale": s.image_cfgscale,
            "steps": s.image_steps,
            "width": s.image_width,
            "height": s.image_height,
            "seed": s.image_seed,
            # Not saved on SwarmUI's disk: the image comes back inline as a data URI.
            "donotsave": True,
        }

    async def _generate_once(self, session_id: str, prompt: str) -> AsyncGenerator[ProviderEvent, None]:
        body = self.request_body(session_id, prompt)
        if self.websocket_works is not False:
            try:
                socket = await self.http.ws_connect(
                    f"{self.base}/API/GenerateText2ImageWS",
                    max_msg_size=self.max_bytes * 2 + 1024**2,
                    autoping=True,
                )
            except aiohttp.WSServerHandshakeError as exc:
                log.info("SwarmUI websocket not available (HTTP %s); using POST instead", exc.status)
                self.websocket_works = False
            except (aiohttp.ClientError, OSError):
                raise self._unreachable() from None
            else:
                self.websocket_works = True
                async with socket:
                    await socket.send_json(body)
                    async for event in self._socket_events(socket):
                        yield event
                return
        yield await self._generate_over_http(body)

    async def _socket_events(self, socket: aiohttp.ClientWebSocketResponse) -> AsyncIterator[ProviderEvent]:
        shown_percent: int | None = None
        while True:
            message = await socket.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                data = await self._parse(message.data)
                raise_for_error(data)
                if isinstance(data.get("gen_progress"), dict):
                    fraction = progress_fraction(data["gen_progress"])
                    if fraction is not None and round(fraction * 100) != shown_percent:
                        shown_percent = round(fraction * 100)
                        yield progress_status(fraction)
                if "image" in data:
                    yield RawImage(await self._image_bytes(data["image"]))
                    return
            elif message.type == aiohttp.WSMsgType.ERROR:
                raise ProviderUnavailable("The connection to SwarmUI broke during the generation.")
            elif message.type in _SOCKET_ENDS:
                raise ProviderBadResponse("SwarmUI ended the generation without sending an image.")

    async def _generate_over_http(self, body: dict[str, Any]) -> RawImage:
        data = await self._post("GenerateText2Image", body, self.max_bytes * 2 + 1024**2)
        images = data.get("images")
        if not isinstance(images, list) or not images:
            raise ProviderBadResponse("SwarmUI finished without an image.")
        return RawImage(await self._image_bytes(images[0]))

    async def _image_bytes(self, value: Any) -> bytes | str:
        if isinstance(value, dict):
            value = value.get("image")
        if not isinstance(value, str) or not value:
            raise ProviderBadResponse("SwarmUI's answer has no image in it.")
        if value.startswith("data:"):
            return value  # decoded by a worker, with the rest of the post-processing
        return await self._fetch_output(value)

    async def _fetch_output(self, path: str) -> bytes:
        """GET an output path such as `View/local/raw/2024-01-02/a cat.png` from SwarmUI."""
        parts = path.lstrip("/").split("/")
        if "://" in path or path.startswith("//") or ".." in parts:
            raise ProviderBadResponse("SwarmUI named an image outside its own View/ paths.")
        url = f"{self.base}/{quote('/'.join(parts), safe='/')}"
        try:
            async with self.http.get(url) as response:
                if response.status != 200:
                    raise ProviderBadResponse(f"SwarmUI could not serve the image (HTTP {response.status}).")
                return await read_capped(response, self.max_bytes, "The image from SwarmUI")
        except (aiohttp.ClientError, OSError):
            raise self._unreachable() from None

    # -- sessions --------------------------------------------------------------------------

    async def _take_session(self) -> str:
        if self._idle_sessions:
            return self._idle_sessions.pop()
        return await self._new_session()

    async def _new_session(self) -> str:
        data = await self._post("GetNewSession", {}, 1024**2)
        session_id = data.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise ProviderBadResponse("SwarmUI did not give a session id.")
        return session_id

    def _interrupt_soon(self, session_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._interrupt(session_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _interrupt(self, session_id: str) -> None:
        body = {"session_id": session_id, "other_sessions": False}
        try:
            async with asyncio.timeout(_INTERRUPT_TIMEOUT):
                async with self.http.post(f"{self.base}/API/InterruptAll", json=body) as response:
                    await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("could not interrupt a SwarmUI generation: %s", type(exc).__name__)

    # -- plumbing --------------------------------------------------------------------------

    async def _post(self, route: str, body: dict[str, Any], max_bytes: int) -> dict[str, Any]:
        try:
            async with self.http.post(f"{self.base}/API/{route}", json=body) as response:
                raw = await read_capped(response, max_bytes, "SwarmUI's answer")
                status = response.status
        except (aiohttp.ClientError, OSError):
            raise self._unreachable() from None
        try:
            data = await self._parse(raw)
        except ProviderBadResponse:
            if status >= 500:
                raise ProviderUnavailable(f"SwarmUI failed (HTTP {status}); try again later.") from None
            raise ProviderBadResponse(
                f"SwarmUI answered HTTP {status} with something that is not JSON."
            ) from None
        if status >= 500 and data.get("error_id") != "invalid_session_id":
            detail = str(data.get("error") or "")[:_MESSAGE_LIMIT]
            raise ProviderUnavailable(f"SwarmUI failed (HTTP {status}) {detail}".strip())
        raise_for_error(data)
        if status != 200:
            raise ProviderBadResponse(f"SwarmUI answered HTTP {status}.")
        return data

    async def _parse(self, raw: str | bytes) -> dict[str, Any]:
        # An answer with an image inline is megabytes of JSON: parsed by a worker process,
        # since parsing holds the GIL.
        if len(raw) < _JSON_IN_WORKER:
            return _json_object(raw)
        return await self.workers.run(_json_object, raw)

    def _unreachable(self) -> ProviderUnavailable:
        return ProviderUnavailable(f"SwarmUI is not reachable at {self.shown}; is it running?")


def raise_for_error(data: dict[str, Any]) -> None:
    """SwarmUI reports errors as `{"error_id": …}` and/or `{"error": "text for users"}`."""
    if data.get("error_id") == "invalid_session_id":
        raise SessionExpired()
    if "error" in data or "error_id" in data:
        text = str(data.get("error") or data.get("error_id"))[:_MESSAGE_LIMIT]
        raise ProviderRefused(f"SwarmUI could not generate the image: {text}")


def progress_fraction(progress: dict[str, Any]) -> float | None:
    value = progress.get("overall_percent", progress.get("current_percent"))
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return min(1.0, max(0.0, float(value)))


def _json_object(raw: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ProviderBadResponse("SwarmUI sent something that is not JSON.") from None
    if not isinstance(data, dict):
        raise ProviderBadResponse("SwarmUI sent JSON that is not an object.")
    return data
