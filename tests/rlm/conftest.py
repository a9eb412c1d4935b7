"""RLM fixtures: `make_stack(turns, ...)` builds fake LLM → chat-service → rlm-service, once
per sandbox backend (docker is skipped, with the reason, where it cannot run)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.redis.conftest import any_redis, redis_server  # noqa: F401 (fixtures)
from tests.rlm.harness import (
    RlmStack,
    ScriptedLLM,
    docker_sandbox_unavailable,
    rlm_settings,
    start_chat_service,
    start_rlm_service,
)
from tests.rlm.pool_runners import pool_runners_fixture  # noqa: F401 (fixture: sandbox pool runners)
from tests.support.net import server_url

_process_problem: list[str | None] = []


def _process_unavailable() -> str | None:
    if not _process_problem:
        from tests.rlm.sandbox_fixtures import process_sandbox_unavailable

        _process_problem.append(process_sandbox_unavailable())
    return _process_problem[0]


MakeStack = Callable[..., Awaitable[tuple[RlmStack, ScriptedLLM]]]


@pytest.fixture(
    params=[
        "process",
        pytest.param("docker", marks=pytest.mark.docker),
        pytest.param("pool", marks=pytest.mark.docker),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "process" and (reason := _process_unavailable()):
        pytest.skip(reason)
    if request.param == "docker":
        reason = docker_sandbox_unavailable(rlm_settings("http://127.0.0.1:1", "docker"))
        if reason:
            pytest.skip(reason)
    return request.param


@pytest.fixture
async def make_stack(
    fake_openai: FakeOpenAI, backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[MakeStack]:
    if backend == "pool":  # the runner containers of tests/rlm/pool_runners.py
        pool_endpoints = request.getfixturevalue("pool_runners").endpoints
    chat_server = await start_chat_service(fake_openai)
    chat_url = server_url(chat_server)
    started: list[RlmStack] = []

    async def make(
        turns: list[str | Reply],
        subcall: Callable[[str], str] = lambda prompt: "ok",
        *,
        honour_stop: bool = True,
        llm: ScriptedLLM | None = None,
        **overrides: Any,
    ) -> tuple[RlmStack, ScriptedLLM]:
        """A new rlm-service; pass the `llm` of an earlier one for a second replica."""
        llm = llm or ScriptedLLM(fake_openai, turns, subcall, honour_stop=honour_stop)
        if backend == "pool":
            overrides.setdefault("rlm_sandbox_pool", pool_endpoints)
        settings = rlm_settings(chat_url, backend, **overrides)
        client, sandboxes = await start_rlm_service(settings)
        stack = RlmStack(fake_openai, chat_url, client, sandboxes, settings)
        started.append(stack)
        return stack, llm

    yield make
    for stack in started:
        for extra in stack.extra:
            await extra.close()
        await stack.client.close()
    await chat_server.close()
