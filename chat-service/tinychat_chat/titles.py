"""A short title for a new conversation: one cheap, non-streaming call to the model after
its first answer, instead of the first message's text. Off per endpoint (CHAT_TITLES, the
endpoint's `titles`) where every call is billed."""

from __future__ import annotations

import re
from typing import Any

from tinychat_common.models import Message

from .endpoint_config import ModelQuirks
from .reasoning import strip_leading_think

TITLE_INSTRUCTION = (
    "Write a title of at most six words for the conversation below. "
    "Answer with the title only: no quotes, no final punctuation."
)
# Enough for a title, and for the few words a small reasoning model thinks first.
TITLE_MAX_TOKENS = 48
EXCERPT_CHARS = 1500
MAX_TITLE_CHARS = 60


def title_payload(model: str, messages: list[Message], quirks: ModelQuirks) -> dict[str, Any]:
    """The request: the conversation's first question and answer (trimmed), non-streaming."""
    question = next((m.content for m in messages if m.role == "user" and m.content.strip()), "")
    answer = next((m.content for m in messages if m.role == "assistant" and m.content.strip()), "")
    transcript = f"User: {question[:EXCERPT_CHARS]}"
    if answer:
        transcript += f"\n\nAssistant: {strip_leading_think(answer)[:EXCERPT_CHARS]}"
    payload: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": TITLE_INSTRUCTION},
            {"role": "user", "content": transcript},
        ],
        "stream": False,
        quirks.max_tokens_param: TITLE_MAX_TOKENS,
    }
    if quirks.temperature:
        payload["temperature"] = 0.2
    return payload


def clean_title(text: str) -> str:
    """The model's answer as a title: its first line, without thoughts, quotes, markdown or
    a final full stop, at most MAX_TITLE_CHARS characters ("" when nothing is left)."""
    text = strip_leading_think(text).strip()
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = re.sub(r"^(title\s*:\s*)", "", line.strip(), flags=re.I)
    line = line.strip().strip("#*_`\"'“”‘’ ").rstrip(".!。").strip()
    line = " ".join(line.split())
    if len(line) > MAX_TITLE_CHARS:
        line = line[: MAX_TITLE_CHARS - 1].rstrip() + "…"
    return line
