"""Server-sent events: the one encoder, and an incremental decoder.

The decoder follows the WHATWG event-stream rules that matter for LLM APIs: events may be
split across reads, lines may end in CRLF, CR or LF, comment lines start with ':', and an
event's several `data:` lines join with newlines.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable
from typing import Any

from .events import Event

KEEPALIVE = b": keepalive\n\n"


def encode(event: Event) -> bytes:
    return encode_data(event.as_dict())


def encode_many(events: Iterable[Event]) -> bytes:
    return b"".join(encode_data(event.as_dict()) for event in events)


def encode_data(payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return b"data: " + body.encode() + b"\n\n"


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the `data` of each event completed."""

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        self._pending += self._text.decode(chunk)
        return self._drain(final=False)

    def close(self) -> list[str]:
        """End of stream: an event with no final blank line still counts."""
        self._pending += self._text.decode(b"", final=True)
        events = self._drain(final=True)
        if self._pending:
            self._take_line(self._pending, events)
            self._pending = ""
        if self._data:
            events.append("\n".join(self._data))
            self._data = []
        return events

    def _drain(self, final: bool) -> list[str]:
        events: list[str] = []
        text = self._pending
        start = 0
        length = len(text)
        while start < length:
            newline = text.find("\n", start)
            carriage = text.find("\r", start, newline if newline >= 0 else length)
            if carriage >= 0:
                # A CR at the very end may be the first half of a CRLF still in flight.
                if carriage == length - 1 and not final:
                    break
                end = carriage
                next_start = carriage + 2 if text.startswith("\n", carriage + 1) else carriage + 1
            elif newline >= 0:
                end = newline
                next_start = newline + 1
            else:
                break
            self._take_line(text[start:end], events)
            start = next_start
        self._pending = text[start:]
        return events

    def _take_line(self, line: str, events: list[str]) -> None:
        if not line:
            if self._data:
                events.append("\n".join(self._data))
                self._data = []
            return
        if line.startswith(":"):
            return
        field, _, value = line.partition(":")
        if field == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
