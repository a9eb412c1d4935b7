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

from .events import Content, Event, Reasoning

KEEPALIVE = b": keepalive\n\n"


# One encoder object, made once: json.dumps() with options builds a new one per call.
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_CONTENT_START = b'data: {"content":'
_REASONING_START = b'data: {"reasoning":'
_FRAME_END = b"}\n\n"


def encode(event: Event) -> bytes:
    if type(event) is Content:
        # The commonest event by far, and its frame is fixed around one JSON string: the
        # same bytes as encoding {"content": text}, without building the dict.
        return _CONTENT_START + _utf8(_to_json(event.text)) + _FRAME_END
    if type(event) is Reasoning:  # a reasoning model sends as many of these as of content
        return _REASONING_START + _utf8(_to_json(event.text)) + _FRAME_END
    return encode_data(event.as_dict())


def encode_many(events: Iterable[Event]) -> bytes:
    return b"".join([encode(event) for event in events])


def encode_data(payload: dict[str, Any]) -> bytes:
    return b"data: " + _utf8(_to_json(payload)) + b"\n\n"


def _utf8(text: str) -> bytes:
    # A lone surrogate (a model may send one as a JSON escape) cannot be UTF-8: it becomes
    # U+FFFD rather than failing the whole event.
    return text.encode("utf-8", "replace")


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the `data` of each event completed."""

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        if self._between_events() and chunk.endswith(b"\n\n") and b"\r" not in chunk:
            return self._whole_frames(chunk.decode("utf-8", "replace"))
        self._pending += self._text.decode(chunk)
        return self._drain(final=False)

    def _between_events(self) -> bool:
        """Nothing is carried over from earlier reads: no partial line, event or character."""
        return not self._pending and not self._data and not self._text.getstate()[0]

    def _whole_frames(self, text: str) -> list[str]:
        """The common read: whole events, LF line endings. Split into frames in one go, and
        take a frame that is a single `data: ` line as it is; any other frame (comments,
        several data lines, other fields) goes line by line through the general rules."""
        events: list[str] = []
        for frame in text[:-2].split("\n\n"):
            if frame.startswith("data: ") and "\n" not in frame:
                events.append(frame[6:])
                continue
            for line in frame.split("\n"):
                self._take_line(line, events)
            self._take_line("", events)
        return events

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
