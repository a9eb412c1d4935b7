"""The demo model as an RLM root and helper model, so that a first RLM try with no API key
works: the root writes a real code cell that measures `context` and asks the helper through
`llm_query`, then finishes from code with FINAL; the helper answers the prompts that cell sends.

It recognises the roles by what rlm-service sends: the root's system prompt describes the
REPL; the helper's prompt is the one the demo's own cell writes (HELPER_PROMPT).
"""

from __future__ import annotations

from typing import Any

HELPER_PROMPT = "Describe this text in one sentence for an RLM demo:"

FIRST_CELL = f"""I will measure `context` with code, then ask the helper model about its start.

```repl
kind = type(context).__name__
material = context if isinstance(context, str) else "\\n".join(context)
size = len(material)
print(f"context is a {{kind}} of {{size:,}} characters, {{len(material.split()):,}} words")
summary = llm_query({HELPER_PROMPT!r} + "\\n\\n" + material[:2000])
print("llm_query answered:", summary)
```
"""

FINAL_CELL = """The helper answered; I can finish from code.

```repl
found = globals().get("summary", "(the helper gave no answer)")
FINAL(
    "**What RLM just did.** The model wrote Python that ran in a sandbox: it measured your "
    f"message ({globals().get('size', 0):,} characters) and asked a helper model through "
    f"`llm_query`, which answered: *{found}*\\n\\n"
    "With a real model connected, RLM answers questions about material far larger than a "
    "model's context window the same way: by reading it with code and delegating pieces."
)
```
"""


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def is_rlm_root(messages: list[dict[str, Any]]) -> bool:
    system = next((m for m in messages if m.get("role") == "system"), None)
    text = _text(system.get("content")) if system else ""
    return "persistent Python REPL" in text and "llm_query" in text


def helper_prompt(messages: list[dict[str, Any]]) -> str | None:
    """The text the demo's cell asked about, when this request is that llm_query."""
    last = _text(messages[-1].get("content")) if messages else ""
    if not last.startswith(HELPER_PROMPT):
        return None
    return last[len(HELPER_PROMPT) :].strip()


def root_turn(messages: list[dict[str, Any]]) -> str:
    """The first turn measures and delegates; any later turn finishes."""
    ran = any(m.get("role") == "user" and "REPL output of block" in _text(m.get("content")) for m in messages)
    return FINAL_CELL if ran else FIRST_CELL


def helper_answer(text: str) -> str:
    words = text.split()
    if not words:
        return "The text is empty."
    start = " ".join(words[:8])
    return f"a text of {len(words)} words that begins “{start}”"
