"""A JSON body split as it arrives: its long strings decoded one by one, the rest kept small.

An RLM request carries tens of MB of documents. Parsing it whole needs the body and the
parser's working copies at once (about three times the documents); here each chunk of the
body is looked at once, as it arrives:

- outside strings, bytes go to the *skeleton* as they are;
- a string shorter than LONG_STRING_BYTES (raw) goes to the skeleton as it is;
- a longer one is decoded on its own (strict JSON rules: valid UTF-8, no raw control
  characters, only JSON escapes) and replaced in the skeleton by a placeholder string that
  names it, with a random nonce no client can guess.

The skeleton is then validated by the usual pydantic model (all the JSON and schema rules,
the same error messages), and the placeholders are swapped for their texts. The peak is the
decoded documents plus one document's working copies, never the whole body twice.
"""

from __future__ import annotations

import json
import re
import secrets

LONG_STRING_BYTES = 64 * 1024
BACKSLASH = 0x5C


class InvalidJson(ValueError):
    """The body is not valid JSON (a string that does not end, bad UTF-8, a bad escape)."""


class JsonStringSplitter:
    """Feed the body chunk by chunk; `finish()` gives the skeleton and the long strings."""

    def __init__(self, long_string_bytes: int = LONG_STRING_BYTES) -> None:
        self.long_string_bytes = long_string_bytes
        self.nonce = secrets.token_hex(16)
        self.skeleton = bytearray()
        self.strings: list[str] = []
        self._in_string = False
        self._escape_pending = False  # the last chunk ended inside an escape (after its backslash)
        self._pieces: list[memoryview] = []
        self._size = 0

    def placeholder(self, index: int) -> str:
        return f"\x00tinychat-long-string:{self.nonce}:{index}"

    def feed(self, chunk: bytes) -> None:
        position = 0
        end = len(chunk)
        view = memoryview(chunk)  # pieces of a long string are views, joined once at its end
        while position < end:
            if not self._in_string:
                quote = chunk.find(b'"', position)
                if quote < 0:
                    self.skeleton += chunk[position:]
                    return
                self.skeleton += chunk[position:quote]
                self._in_string = True
                self._pieces = []
                self._size = 0
                self._escape_pending = False
                start, position = quote, quote + 1
                body_start = position  # backslashes before it belong to no escape of this string
            else:
                start = body_start = position
            closing = self._closing_quote(chunk, position, body_start)
            if closing < 0:
                self._escape_pending = _ends_escaping(chunk, body_start, self._escape_pending)
                self._add_piece(view[start:])
                return
            self._add_piece(view[start : closing + 1])
            self._end_string()
            position = closing + 1

    def _closing_quote(self, chunk: bytes, position: int, body_start: int) -> int:
        """Where the string's closing quote is in `chunk` (-1: not in this chunk). A quote
        after an odd run of backslashes is escaped; a run may begin in the last chunk."""
        while True:
            quote = chunk.find(b'"', position)
            if quote < 0:
                return -1
            run_start = quote
            while run_start > body_start and chunk[run_start - 1] == BACKSLASH:
                run_start -= 1
            escaped = (quote - run_start) % 2 == 1
            if run_start == body_start and self._escape_pending:
                escaped = not escaped
            if not escaped:
                return quote
            position = quote + 1

    def finish(self) -> tuple[bytes, list[str]]:
        if self._in_string:
            raise InvalidJson("a string does not end")
        skeleton = bytes(self.skeleton)
        self.skeleton = bytearray()
        return skeleton, self.strings

    def _add_piece(self, piece: memoryview) -> None:
        self._pieces.append(piece)
        self._size += len(piece)

    def _end_string(self) -> None:
        self._in_string = False
        pieces, self._pieces = self._pieces, []
        if self._size < self.long_string_bytes:
            for piece in pieces:
                self.skeleton += piece
            return
        raw = b"".join(pieces)
        del pieces
        self.strings.append(_decode_string(raw))
        self.skeleton += json.dumps(self.placeholder(len(self.strings) - 1)).encode()


def _ends_escaping(chunk: bytes, body_start: int, pending: bool) -> bool:
    """Whether the next chunk's first byte is escaped: an odd run of backslashes ends this one."""
    run_start = len(chunk)
    while run_start > body_start and chunk[run_start - 1] == BACKSLASH:
        run_start -= 1
    odd = (len(chunk) - run_start) % 2 == 1
    return odd != pending if run_start == body_start else odd


def _decode_string(raw: bytes) -> str:
    """One JSON string token (quotes included) as its text, by the strict JSON rules."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJson("the body is not valid UTF-8") from None
    del raw
    if "\\" not in text:
        if _has_control_character(text):
            raise InvalidJson("a string holds a raw control character")
        return text[1:-1]
    try:
        value, _end = json.decoder.scanstring(text, 1, True)  # type: ignore[attr-defined]
    except json.JSONDecodeError:
        raise InvalidJson("a string holds a bad escape or a raw control character") from None
    return str(value)


_CONTROL = re.compile("[\x00-\x1f]")


def _has_control_character(text: str) -> bool:
    return _CONTROL.search(text) is not None
