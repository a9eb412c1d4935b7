"""A model's reasoning, kept apart from its answer.

Reasoning arrives in three shapes: `delta.reasoning_content` (DeepSeek, vLLM, llama.cpp),
`delta.reasoning` (OpenRouter, Ollama) — both read by openai_stream — and a `<think>…</think>`
block at the very start of the content (models served without a reasoning parser), which
ThinkSplitter separates here however the tags are cut across deltas.
"""

from __future__ import annotations

import re

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"

# Where an answer an earlier turn stored still carries its inline thoughts (an imported
# conversation, an older client): they are stripped before the history goes upstream.
_LEADING_THINK = re.compile(r"^\s*<think>.*?(?:</think>\s*|$)", re.DOTALL)

_START, _THINKING, _AFTER, _ANSWER = range(4)


class ThinkSplitter:
    """Feed it the content deltas in order; each call returns (reasoning, answer) text.

    Only a block that opens the content counts: a `<think>` later in an answer is the
    answer's own text. Once the answer has begun, a feed is a single comparison."""

    __slots__ = ("_held", "_state")

    def __init__(self) -> None:
        self._state = _START
        self._held = ""  # text that may still turn out to be (part of) a tag

    @property
    def passing(self) -> bool:
        """True once nothing more can be reasoning: the caller may skip the splitter."""
        return self._state == _ANSWER

    def feed(self, text: str) -> tuple[str, str]:
        state = self._state
        if state == _ANSWER:
            return "", text
        if state == _START:
            return self._start(text)
        if state == _THINKING:
            return self._thinking(text)
        return self._after(text)

    def close(self) -> tuple[str, str]:
        """The end of the answer: whatever was held back is what it looked like."""
        held, self._held = self._held, ""
        state, self._state = self._state, _ANSWER
        if state == _THINKING:
            return held, ""  # the model stopped while thinking (e.g. max tokens)
        return "", held if state == _START else ""

    def _start(self, text: str) -> tuple[str, str]:
        held = self._held + text
        begun = held.lstrip()
        if begun.startswith(OPEN_TAG):
            self._held, self._state = "", _THINKING
            return self._thinking(begun[len(OPEN_TAG) :])
        if not begun or OPEN_TAG.startswith(begun):
            self._held = held  # blank so far, or a tag that is still arriving
            return "", ""
        self._held, self._state = "", _ANSWER
        return "", held

    def _thinking(self, text: str) -> tuple[str, str]:
        if not self._held and "<" not in text:
            return text, ""  # the commonest case: no tag can begin in this delta
        held = self._held + text
        end = held.find(CLOSE_TAG)
        if end >= 0:
            self._held, self._state = "", _AFTER
            reasoning, answer = held[:end], self._after(held[end + len(CLOSE_TAG) :])[1]
            return reasoning, answer
        keep = _partial_tag_length(held, CLOSE_TAG)
        self._held = held[len(held) - keep :] if keep else ""
        return held[: len(held) - keep], ""

    def _after(self, text: str) -> tuple[str, str]:
        # The blank lines between `</think>` and the answer belong to neither.
        answer = text.lstrip()
        if answer:
            self._state = _ANSWER
        return "", answer


def _partial_tag_length(text: str, tag: str) -> int:
    """How many characters at the end of `text` could be the start of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


def strip_leading_think(content: str) -> str:
    """An answer's text without the `<think>` block it may start with."""
    if "<think>" not in content[:64]:
        return content
    return _LEADING_THINK.sub("", content, count=1)
