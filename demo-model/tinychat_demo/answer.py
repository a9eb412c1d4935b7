"""What the demo model says, and how it is cut into streamed pieces."""

from __future__ import annotations

import re
from typing import Any

from .rlm import helper_answer, helper_prompt, is_rlm_root, root_turn

DEMO_MODEL = "tinychat-demo"

_ANSWER = r"""## Welcome to TinyChat 👋

You are talking to the **built-in demo model**, so you can see TinyChat work before adding a real one.{echo}

### What TinyChat renders

- **Markdown**: headings, *emphasis*, lists and tables
- **Code** with syntax highlighting and a copy button
- **Math**, inline like $e^{{i\pi}} + 1 = 0$ or as a display formula:

$$
\int_{{-\infty}}^{{\infty}} e^{{-x^2}}\,dx = \sqrt{{\pi}}
$$

| Feature           | Service       | Needs                     |
|-------------------|---------------|---------------------------|
| Chat              | chat-service  | any OpenAI-compatible API |
| Images (`/image`) | image-service | SwarmUI or OpenAI Images  |
| RLM               | rlm-service   | a sandbox for its code    |

### Connect a real model

Set these before `make run` (or in `.env` for Docker Compose):

```bash
export OPENAI_API_URL=https://api.openai.com/v1   # or any OpenAI-compatible server
export OPENAI_API_KEY=sk-...
export AVAILABLE_MODELS=auto                      # list the server's own models
make run
```

A local server works too, for example `OPENAI_API_URL=http://localhost:11434/v1` for Ollama.
Here is the smallest possible Python client of the same API:

```python
import json, urllib.request

body = {{"messages": [{{"role": "user", "content": "Hello!"}}]}}
request = urllib.request.Request(
    "http://localhost:8000/api/chat/stream",
    data=json.dumps(body).encode(),
    headers={{"Content-Type": "application/json"}},
)
for line in urllib.request.urlopen(request):
    if line.startswith(b"data: "):
        print(json.loads(line[6:]))
```

Happy chatting!
"""

_IMAGE_NOTE = (
    "\n\nYou attached an image: the demo model cannot see it, but a vision model such as gpt-4o can."
)
_WORD_OR_SPACE = re.compile(r"\S+\s*|\s+")


def last_user_text(messages: list[dict[str, Any]]) -> tuple[str, bool]:
    """The newest user message's text, and whether it carries an image."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):
            text = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            has_image = any(isinstance(p, dict) and p.get("type") == "image_url" for p in content)
            return text, has_image
        return str(content or ""), False
    return "", False


def compose_answer(messages: list[dict[str, Any]]) -> str:
    if is_rlm_root(messages):
        return root_turn(messages)
    asked = helper_prompt(messages)
    if asked is not None:
        return helper_answer(asked)
    question, has_image = last_user_text(messages)
    question = " ".join(question.split())
    echo = ""
    if question:
        shown = question if len(question) <= 80 else question[:79] + "…"
        echo = f"\n\n> You wrote: {_escape_markdown(shown)}"
    if has_image:
        echo += _IMAGE_NOTE
    return _ANSWER.format(echo=echo)


def _escape_markdown(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]<>#|$])", r"\\\1", text)


def split_into_pieces(text: str) -> list[str]:
    """Word by word, each with the space after it, as a model's tokens would arrive."""
    return _WORD_OR_SPACE.findall(text)


def apply_limits(pieces: list[str], stop: list[str] | None, max_tokens: int | None) -> tuple[list[str], str]:
    """Cut the answer at a stop sequence or after max_tokens pieces: (pieces, finish_reason)."""
    finish_reason = "stop"
    if stop:
        text = "".join(pieces)
        cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
        if cut >= 0:
            pieces = split_into_pieces(text[:cut])
    if max_tokens is not None and len(pieces) > max_tokens:
        pieces, finish_reason = pieces[:max_tokens], "length"
    return pieces, finish_reason


def count_tokens(messages: list[dict[str, Any]]) -> int:
    """A rough prompt size in "tokens" (words): the demo has no tokenizer."""
    total = 0
    for message in messages:
        text, _ = last_user_text([{**message, "role": "user"}])
        total += len(text.split()) + 4
    return total
