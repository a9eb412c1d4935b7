"""chat-service settings for tests: the real service, pointed at a fake OpenAI upstream."""

from __future__ import annotations

from typing import Any

from tinychat_chat.config import ChatSettings

from tests.fakes.openai_upstream import FakeOpenAI

TEST_API_KEY = "sk-test-secret-key-1234"


def chat_settings_for(fake: FakeOpenAI, **overrides: Any) -> ChatSettings:
    """Settings for a chat-service talking to `fake`, with timeouts short enough that a
    stalled test fails in seconds; `overrides` are ChatSettings fields."""
    values: dict[str, Any] = {
        "openai_api_url": fake.url,
        "openai_api_key": TEST_API_KEY,
        "default_model": "fake-model",
        "available_models": "fake-model,fake-vision",
        "upstream_connect_timeout": 2.0,
        "upstream_first_byte_timeout": 5.0,
        "upstream_idle_timeout": 5.0,
    }
    values.update(overrides)
    return ChatSettings(**values)
