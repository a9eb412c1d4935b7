"""Reading an OpenAI chat-completions stream: SSE frames in, text deltas and the ending out.

The SSE rules (split reads, CRLF, comments, multi-line data) are the shared SSEDecoder's;
this layer knows the OpenAI payloads: `[DONE]`, chunks whose `choices` is empty (the usage
chunk), `finish_reason`, and the `{"error": {...}}` objects some servers send as events.
One `feed()` returns the answer text of every delta in the bytes it was given, joined, so
deltas that arrive together leave together; the reasoning they carried (`reasoning_content`,
`reasoning`, or a leading `<think>` block, see reasoning.py) waits in `take_reasoning()`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tinychat_common.sse import SSEDecoder, SSELineTooLong

from .errors import UpstreamBadResponse, UpstreamError
from .reasoning import ThinkSplitter

DONE_SENTINEL = "[DONE]"
# One chunk of a streamed completion is a few hundred bytes; a line this long is not one.
MAX_UPSTREAM_LINE_CHARS = 4 * 1024 * 1024


class OpenAIStreamParser:
    def __init__(self, scrub: Callable[[str], str] | None = None, *, split_think: bool = True) -> None:
        self._decoder = SSEDecoder(MAX_UPSTREAM_LINE_CHARS)
        self._scrub = scrub or (lambda text: text)
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False  # `[DONE]` seen: nothing after it counts
        self.failure: UpstreamError | None = None
        self._reasoning: list[str] = []
        self._think: ThinkSplitter | None = ThinkSplitter() if split_think else None

    def take_reasoning(self) -> str:
        """The reasoning the last feed or close brought (may be ""), in order."""
        pieces = self._reasoning
        if not pieces:
            return ""
        if len(pieces) == 1:
            return pieces.pop()
        text = "".join(pieces)
        pieces.clear()
        return text

    def feed(self, data: bytes) -> str:
        """The text the bytes complete (may be ""). An error event or garbage is kept in
        `failure` (see raise_failure) so the text before it is not lost."""
        if self.done or self.failure is not None:
            return ""
        try:
            payloads = self._decoder.feed(data)
        except SSELineTooLong:
            self.failure = _line_too_long()
            return ""
        return self._take(payloads)

    def close(self) -> str:
        """End of the byte stream: a last event without its blank line still counts."""
        if self.done or self.failure is not None:
            return self._close_think()
        try:
            payloads = self._decoder.close()
        except SSELineTooLong:
            self.failure = _line_too_long()
            return self._close_think()
        return self._take(payloads) + self._close_think()

    def _close_think(self) -> str:
        if self._think is None:
            return ""
        reasoning, text = self._think.close()
        self._think = None
        if reasoning:
            self._reasoning.append(reasoning)
        return text

    @property
    def complete(self) -> bool:
        """Whether the answer ended properly (`[DONE]` or a finish_reason), not cut off."""
        return self.done or self.finish_reason is not None

    def raise_failure(self) -> None:
        """Raise what went wrong in the last feed, after its good text was taken."""
        if self.failure is not None:
            raise self.failure

    def _take(self, payloads: list[str]) -> str:
        texts = []
        for payload in payloads:
            if self.done or self.failure is not None:
                break
            try:
                text = self._take_payload(payload)
            except UpstreamError as exc:
                # The text that came before the failure in the same read still counts.
                self.failure = exc
                break
            if text:
                texts.append(text)
        return "".join(texts)

    def _take_payload(self, payload: str) -> str:
        stripped = payload.strip()
        if stripped == DONE_SENTINEL:
            self.done = True
            return ""
        if not stripped:
            return ""
        chunk = self._decode(stripped)
        if chunk.get("error"):
            raise UpstreamError(
                "The model API reported an error: " + self._scrub(error_message(chunk)), code="upstream_error"
            )
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        return self._take_choices(chunk.get("choices") or [])

    def _decode(self, payload: str) -> dict[str, Any]:
        try:
            chunk = json.loads(payload)
        except json.JSONDecodeError:
            raise UpstreamBadResponse(
                f"The model API sent data that is not JSON: {_preview(self._scrub(payload))}"
            ) from None
        if not isinstance(chunk, dict):
            raise UpstreamBadResponse(
                f"The model API sent an unexpected event: {_preview(self._scrub(payload))}"
            )
        return chunk

    def _take_choices(self, choices: list[Any]) -> str:
        texts = []
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # we ask for one choice; ignore anything else
            delta = choice.get("delta") or choice.get("message") or {}
            if not isinstance(delta, dict):
                delta = {}
            # DeepSeek, vLLM and llama.cpp say reasoning_content; OpenRouter and Ollama say
            # reasoning (next to reasoning_details, which repeats it in structured form).
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                self._reasoning.append(reasoning)
            content = delta.get("content")
            if isinstance(content, str) and content:
                if self._think is not None:
                    thought, content = self._think.feed(content)
                    if thought:
                        self._reasoning.append(thought)
                    if self._think.passing:
                        self._think = None
                if content:
                    texts.append(content)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        return "".join(texts)


def _line_too_long() -> UpstreamBadResponse:
    return UpstreamBadResponse(
        f"The model API sent a line longer than {MAX_UPSTREAM_LINE_CHARS} characters; the answer was stopped."
    )


def error_message(body: Any) -> str:
    """The readable part of an OpenAI-style error body (or of anything else)."""
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body.get("message")))
        if isinstance(error, dict):
            error = error.get("message") or error.get("code") or error.get("type")
        if error:
            return _preview(str(error))
        return _preview(json.dumps(body))
    return _preview(str(body))


def _preview(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
