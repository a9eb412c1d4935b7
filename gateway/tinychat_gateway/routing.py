"""Which service answers a chat request, decided by its last message and its flags."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tinychat_common.models import ChatRequest

# `/image` then whitespace then the prompt; `/image` alone asks for help.
IMAGE_COMMAND = re.compile(r"/image(?:\s+(?P<prompt>.*))?", re.DOTALL)

IMAGE_USAGE = (
    "To generate an image, type `/image` followed by a description, for example:\n\n"
    "`/image a lighthouse on a cliff at dusk, oil painting`"
)

STREAM_PATHS = {
    "chat": "/v1/chat/stream",
    "image": "/v1/images/stream",
    "rlm": "/v1/rlm/stream",
}


@dataclass(frozen=True)
class Route:
    service: str  # "chat", "image", "rlm", or "usage" (answered by the gateway itself)
    image_prompt: str = ""


def image_prompt(chat: ChatRequest) -> str | None:
    """The prompt when the last message is a user's `/image …` command ("" for `/image`
    alone); None when it is not one."""
    last = chat.messages[-1]
    if last.role != "user":
        return None
    match = IMAGE_COMMAND.fullmatch(last.content.strip())
    if match is None:
        return None
    return (match.group("prompt") or "").strip()


def choose_route(chat: ChatRequest) -> Route:
    prompt = image_prompt(chat)
    if prompt is not None:
        return Route("image", prompt) if prompt else Route("usage")
    if chat.rlm:
        return Route("rlm")
    return Route("chat")
