"""Server-sent events: the one encoder, and an incremental decoder.

The decoder follows the WHATWG event-stream rules that matter for LLM APIs: events may be
split across reads, lines may end in CRLF, CR or LF, comment lines start with ':', and an
event's several `data:` lines join with newlines.
"""

from __future__ import annotations

import codecs
import json
import re
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


# Longest line (and longest event) the decoder holds: an image event (base64 in one line) is
# the largest a TinyChat service sends; anything longer is garbage or an attack.
MAX_LINE_CHARS = 64 * 1024 * 1024
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class SSELineTooLong(ValueError):
    """A line, or an event's data, grew past the decoder's cap without ending."""


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the `data` of each event completed.

    Linear in the bytes fed, however they are split: only new text is searched for line
    breaks, and an unfinished line is kept as a list of pieces joined once, when it ends
    (re-scanning or re-concatenating it per read made one long line quadratic). A line or
    an event longer than `max_line_chars` raises SSELineTooLong."""

    def __init__(self, max_line_chars: int = MAX_LINE_CHARS) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._max = max_line_chars
        self._pieces: list[str] = []  # the unfinished line
        self._pieces_chars = 0
        self._skip_lf = False  # the last text ended in CR: a LF opening the next is its pair
        self._data: list[str] = []
        self._data_chars = 0

    def feed(self, chunk: bytes) -> list[str]:
        if self._between_events() and chunk.endswith(b"\n\n") and b"\r" not in chunk:
            return self._whole_frames(chunk.decode("utf-8", "replace"))
        events: list[str] = []
        self._take_text(self._text.decode(chunk), events)
        return events

    def _between_events(self) -> bool:
        """Nothing is carried over from earlier reads: no partial line, event or character."""
        return not self._pieces and not self._data and not self._skip_lf and not self._text.getstate()[0]

    def _whole_frames(self, text: str) -> list[str]:
        """The common read: whole events, LF line endings. Split into frames in one go, and
        take a frame that is a single `data: ` line as it is; any other frame (comments,
        several data lines, other fields) goes line by line through the general rules."""
        events: list[str] = []
        for frame in text[:-2].split("\n\n"):
            if frame.startswith("data: ") and "\n" not in frame:
                self._check_length(len(frame))
                events.append(frame[6:])
                continue
            for line in frame.split("\n"):
                self._take_line(line, events)
            self._take_line("", events)
        return events

    def close(self) -> list[str]:
        """End of stream: an event with no final blank line still counts."""
        events: list[str] = []
        self._take_text(self._text.decode(b"", final=True), events)
        if self._pieces:
            self._take_line(self._unfinished_line(), events)
        if self._data:
            events.append("\n".join(self._data))
            self._data = []
            self._data_chars = 0
        return events

    def _take_text(self, text: str, events: list[str]) -> None:
        if not text:
            return
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        start = 0
        for match in _LINE_BREAK.finditer(text):
            piece = text[start : match.start()]
            if self._pieces:
                self._pieces.append(piece)
                piece = self._unfinished_line()
            self._check_length(len(piece))
            self._take_line(piece, events)
            start = match.end()
        if text.endswith("\r"):
            self._skip_lf = True
        if start < len(text):
            rest = text[start:]
            self._pieces.append(rest)
            self._pieces_chars += len(rest)
            self._check_length(self._pieces_chars)

    def _unfinished_line(self) -> str:
        line = "".join(self._pieces)
        self._pieces = []
        self._pieces_chars = 0
        return line

    def _check_length(self, chars: int) -> None:
        if chars > self._max:
            raise SSELineTooLong(f"an event-stream line is longer than {self._max} characters")

    def _take_line(self, line: str, events: list[str]) -> None:
        if not line:
            if self._data:
                events.append("\n".join(self._data))
                self._data = []
                self._data_chars = 0
            return
        if line.startswith(":"):
            return
        field, _, value = line.partition(":")
        if field == "data":
            value = value[1:] if value.startswith(" ") else value
            self._data_chars += len(value) + 1
            self._check_length(self._data_chars)
            self._data.append(value)
