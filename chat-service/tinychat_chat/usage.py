"""Token counts for every answer: the API's own `usage` when it sends one, else an estimate
that says it is one (`"estimated": true`), so the UI can mark it instead of showing a number
it does not have."""

from __future__ import annotations

from typing import Any

# English text averages about four characters per token across the common tokenizers;
# an estimate is only ever shown marked as one.
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The text of the messages sent upstream (image parts do not count)."""
    parts: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict))
    return "\n".join(parts)


def with_estimates(
    usage: dict[str, Any] | None, messages: list[dict[str, Any]], output: str
) -> dict[str, Any]:
    """The API's `usage` as it sent it, or, where it sent none, an estimate marked as one."""
    if isinstance(usage, dict) and usage:
        return usage
    prompt, completion = estimate_tokens(prompt_text(messages)), estimate_tokens(output)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "estimated": True,
    }
