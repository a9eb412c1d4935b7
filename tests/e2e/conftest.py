"""Fixtures for the end-to-end tests: they talk to a running compose stack (scripts/e2e.sh
brings it up) at E2E_BASE_URL, default http://localhost:8000, through every hop.

Without a stack answering there, every e2e test is skipped with the reason; `make test`
leaves them out by their `e2e` marker anyway.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from tinychat_common.sse import SSEDecoder

BASE_URL = os.environ.get("E2E_BASE_URL", "http://localhost:8000").rstrip("/")
PROJECT = os.environ.get("COMPOSE_PROJECT_NAME", "tinychat-e2e")
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=90, sock_read=45)
# Set when the stack runs with AUTH_MODE=password: the `http` session logs in first.
AUTH_PASSWORD = os.environ.get("E2E_AUTH_PASSWORD", "")


def stack_is_up() -> bool:
    try:
        with urllib.request.urlopen(f"{BASE_URL}/healthz", timeout=3) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def running_stack() -> None:
    if not stack_is_up():
        pytest.skip(f"no TinyChat stack answers at {BASE_URL} (run `make e2e`)")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=BASE_URL, timeout=STREAM_TIMEOUT) as session:
        if AUTH_PASSWORD:
            async with session.post("/api/auth/login", json={"password": AUTH_PASSWORD}) as response:
                assert response.status == 200, await response.text()
        yield session


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    events: list[dict[str, Any]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if kind in event]

    @property
    def text(self) -> str:
        return "".join(e["content"] for e in self.events if "content" in e and "image" not in e)

    @property
    def done(self) -> dict[str, Any]:
        assert self.events and "done" in self.events[-1], f"the stream did not end with done: {self.events}"
        assert len(self.of("done")) == 1
        return self.events[-1]


async def stream_chat(
    http: aiohttp.ClientSession, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Answer:
    """POST /api/chat/stream and read every event to the end."""
    async with http.post("/api/chat/stream", json=body, headers=headers or {}) as response:
        answer = Answer(response.status, dict(response.headers))
        if response.status != 200:
            answer.events.append(await response.json())
            return answer
        decoder = SSEDecoder()
        async for chunk in response.content.iter_any():
            answer.events += [json.loads(data) for data in decoder.feed(chunk)]
        answer.events += [json.loads(data) for data in decoder.close()]
    return answer


def containers(*labels: str) -> list[str]:
    """Ids of running containers with every given label (docker ps filters)."""
    command = ["docker", "ps", "-q"] + [arg for label in labels for arg in ("--filter", f"label={label}")]
    return subprocess.run(command, capture_output=True, text=True, timeout=20, check=True).stdout.split()


def redis_cli(*args: str) -> str:
    (redis,) = containers(f"com.docker.compose.project={PROJECT}", "com.docker.compose.service=redis")
    # The stack's Redis requires the password secrets-init generated (REDISCLI_AUTH keeps it
    # out of the argument list).
    command = [
        "docker",
        "exec",
        redis,
        "sh",
        "-c",
        'REDISCLI_AUTH="$(cat /run/tinychat-secrets/redis_password)" exec redis-cli "$@"',
        "redis-cli",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=20, check=True).stdout.strip()
