"""What the fake LLM container answers during the end-to-end run.

One responder for every request chat-service forwards, told apart by content:
- the RLM root model (its system prompt describes the REPL) answers with a ```repl block
  whose result only running code can produce (a SHA-256 digest) and which asks a helper
  model through `llm_query`, so the trace crosses sandbox → rlm-service → chat-service;
- that helper call (its prompt carries `SUBCALL_MARKER`) answers `SUBCALL_ANSWER`;
- a question containing `SLOW_MARKER` waits `SLOW_SECONDS` first, so a test can look at
  the sandbox container and the Redis token while the job is running;
- anything else is a plain chat answer that echoes the question.
"""

from __future__ import annotations

import hashlib
from typing import Any

from tests.fakes.openai_upstream import Reply

SUBCALL_MARKER = "e2e-subcall"
SUBCALL_ANSWER = "pong-from-the-helper-model"
SLOW_MARKER = "e2e-slow"
SLOW_SECONDS = 4.0
DIGEST_INPUT = b"tinychat-e2e"
CHAT_PREFIX = "Hello from the e2e upstream. You said:"

RLM_CODE = f"""\
import hashlib
digest = hashlib.sha256({DIGEST_INPUT!r}).hexdigest()[:16]
helper = llm_query("{SUBCALL_MARKER}: answer with one word")
FINAL(f"digest={{digest}} helper={{helper}} context_chars={{len(str(context))}}")
"""


def expected_digest() -> str:
    return hashlib.sha256(DIGEST_INPUT).hexdigest()[:16]


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def _is_rlm_root(messages: list[dict[str, Any]]) -> bool:
    return any(m.get("role") == "system" and "REPL" in _text(m) for m in messages)


def respond(body: dict[str, Any]) -> Reply:
    messages = body.get("messages") or []
    everything = " ".join(_text(m) for m in messages)
    delay = SLOW_SECONDS if SLOW_MARKER in everything else 0.0
    if _is_rlm_root(messages):
        return Reply(text="Let me compute it.\n```repl\n" + RLM_CODE + "```", first_byte_delay=delay)
    last = _text(messages[-1]) if messages else ""
    if SUBCALL_MARKER in last:
        return Reply(text=SUBCALL_ANSWER)
    return Reply(text=f"{CHAT_PREFIX} {last}", chunk_delay=0.01, first_byte_delay=delay)
