"""CHAT_LOG: one JSON object per finished request, appended to a file.

Handlers call `ChatLog.record(entry)`, which never blocks: entries go on a queue and a
writer task appends them in a worker thread, several lines per write under load. With an
empty path the log is off and `record` does nothing.

    CHAT_LOG = web.AppKey("chat_log", ChatLog)
    app.cleanup_ctx.append(chat_log_context(CHAT_LOG, settings.chat_log))
    request.app[CHAT_LOG].record({"model": ..., "messages": redact_images(messages)})

Every line has one shape, whichever service wrote it (the README's "The research log"
table): `log_record()` builds it, the fields every line has first, then the service's own
(FIELDS). A field not in FIELDS is a programming error, refused at once.

`check_log_path` is a settings validator: a path the service cannot write to is a start-up
error naming CHAT_LOG, not a surprise at the first request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any, Literal, TextIO

from aiohttp import web

log = logging.getLogger(__name__)

_BATCH_LIMIT = 256  # lines per write: bounds the time a burst holds the worker thread


def check_log_path(path: str) -> str:
    """Return `path` if a log can be appended there, else raise ValueError saying why."""
    if not path:
        return path
    target = Path(path).expanduser()
    if target.is_dir():
        raise ValueError(f"{path} is a directory; give a file path")
    parent = target.parent
    if not parent.is_dir():
        raise ValueError(f"directory {parent} does not exist")
    if target.exists():
        if not os.access(target, os.W_OK):
            raise ValueError(f"{path} is not writable")
    elif not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"directory {parent} is not writable")
    return str(target)


def image_summary(image: str | None, image_type: str | None) -> dict[str, Any] | None:
    """What the log keeps of an image: its type and decoded size, never the data."""
    if not image:
        return None
    payload = image.split(",", 1)[1] if image.startswith("data:") else image
    return {"type": image_type or "unknown", "bytes": base64_decoded_size(payload)}


def base64_decoded_size(payload: str) -> int:
    """The decoded size, computed from the length: no need to decode megabytes to count them."""
    length = len(payload.strip())
    padding = len(payload) - len(payload.rstrip("=")) if length else 0
    return max(0, length * 3 // 4 - padding)


def redact_images(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as the log stores them: `image` replaced by `{"type", "bytes"}`."""
    redacted = []
    for message in messages:
        entry = {k: v for k, v in message.items() if k not in ("image", "image_type") and v is not None}
        summary = image_summary(message.get("image"), message.get("image_type"))
        if summary is not None:
            entry["image"] = summary
        redacted.append(entry)
    return redacted


Service = Literal["chat", "image", "rlm"]

# On every line: when, which service, who (when the gateway knows), which model, how it
# ended (`ok`, for RLM `answered`/`forced`/`budget`; `cancelled`; or the error's code), and
# how long it took.
COMMON_FIELDS = ("timestamp", "service", "user", "model", "outcome", "duration_ms")
# What each service adds.
FIELDS: dict[Service, tuple[str, ...]] = {
    "chat": ("temperature", "messages", "response", "reasoning", "finish_reason", "usage"),
    "image": ("prompt", "provider"),
    "rlm": (
        "temperature",
        "question",
        "context_chars",
        "documents",
        "iterations",
        "code",
        "subcalls",
        "answer",
        "usage",
    ),
}


def log_record(
    service: Service,
    *,
    model: str | None,
    outcome: str,
    seconds: float,
    user: str | None = None,
    **fields: object,
) -> dict[str, Any]:
    """One CHAT_LOG line: the common fields, then the service's own (`user` only when known)."""
    unknown = set(fields) - set(FIELDS[service])
    if unknown:
        raise ValueError(f"not CHAT_LOG fields of {service}: {sorted(unknown)}")
    record: dict[str, Any] = {"timestamp": utc_timestamp(), "service": service}
    if user:
        record["user"] = user
    record.update(model=model, outcome=outcome, duration_ms=round(seconds * 1000, 1))
    record.update(fields)
    return record


def utc_timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class ChatLog:
    """An append-only JSON-lines file fed through a queue by one writer task."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._file: TextIO | None = None
        self._writer: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.path)

    async def open(self) -> None:
        if not self.enabled:
            return
        # Opening now makes a bad path fail at start-up, not at the first request.
        self._file = await asyncio.to_thread(open_private_log, self.path)
        self._writer = asyncio.create_task(self._write_forever(), name="chat-log-writer")

    def record(self, entry: dict[str, Any]) -> None:
        """Queue one entry; a `timestamp` is added if missing. Never blocks, never raises."""
        if not self.enabled:
            return
        entry.setdefault("timestamp", utc_timestamp())
        try:
            line = json.dumps(entry, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            log.exception("chat log entry could not be encoded")
            return
        self._queue.put_nowait(line + "\n")

    async def flush(self) -> None:
        """Wait until every queued entry is on disk (tests, shutdown)."""
        if self.enabled:
            await self._queue.join()

    async def close(self) -> None:
        if self._writer is not None:
            await self.flush()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        if self._file is not None:
            await asyncio.to_thread(self._file.close)
            self._file = None

    async def _write_forever(self) -> None:
        while True:
            lines = [await self._queue.get()]
            while not self._queue.empty() and len(lines) < _BATCH_LIMIT:
                lines.append(self._queue.get_nowait())
            try:
                await asyncio.to_thread(self._append, "".join(lines))
            except OSError:
                log.exception("could not write %d chat log line(s) to %s", len(lines), self.path)
            finally:
                for _ in lines:
                    self._queue.task_done()

    def _append(self, text: str) -> None:
        assert self._file is not None
        self._file.write(text)
        self._file.flush()


def open_private_log(path: str) -> TextIO:
    """Open the log for appending, created 0600: it holds every user's conversations. A log
    that others can read already is made private too (with a warning)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        mode = os.fstat(fd).st_mode
        if mode & 0o077 and stat.S_ISREG(mode):
            try:
                os.fchmod(fd, 0o600)
                log.warning("chat log %s was readable by others (mode %o); made it 0600", path, mode & 0o777)
            except OSError:
                log.warning("chat log %s is readable by others (mode %o)", path, mode & 0o777)
        return os.fdopen(fd, "a", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def chat_log_context(key: web.AppKey[ChatLog], path: str) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx that opens the chat log under `key` and drains it on shutdown."""

    async def chat_log_ctx(app: web.Application) -> AsyncIterator[None]:
        chat_log = ChatLog(path)
        await chat_log.open()
        app[key] = chat_log
        yield
        await chat_log.close()

    return chat_log_ctx
