"""Faults around RLM jobs: Redis (the concurrency tokens) dying and coming back, and
rlm-service itself being killed mid-job. Each ends within the bound in a readable error
and `done`, with no sandbox, task or token left behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestServer
from tinychat_common.errors import Busy
from tinychat_common.redis_limiter import KEY_PREFIX, RedisLimiter
from tinychat_gateway.app import create_app as create_gateway_app
from tinychat_gateway.config import GatewaySettings
from tinychat_rlm.app import LIMITER
from tinychat_rlm.sandbox.process import MARKER

from tests.fakes.openai_upstream import FakeOpenAI
from tests.redis.server import RedisServer
from tests.rlm.harness import (
    ScriptedLLM,
    repl,
    rlm_settings,
    sandbox_gone,
    start_chat_service,
    start_rlm_service,
)
from tests.support.net import closed_port_url, server_url
from tests.support.polling import wait_until
from tests.support.sse import EventReader, answer_text, is_code_step

from .stack import (
    FAULT_BOUND_SECONDS,
    ServiceProcess,
    assert_no_new_tasks,
    assert_readable_error_then_done,
    in_process,
    task_snapshot,
)

pytestmark = [pytest.mark.redis, pytest.mark.timeout(90)]

LEASE_SECONDS = 2.5  # renewed every third: a busy machine's stall of a second loses nothing
LONG_CELL = repl("import time\ntime.sleep(30)")
ANSWER = repl("FINAL('all good')")


def question(text: str = "Count the apples.") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


@pytest.fixture
async def chat_server(fake_openai: FakeOpenAI) -> AsyncIterator[TestServer]:
    server = await start_chat_service(fake_openai)
    yield server
    await server.close()


async def redis_tokens(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return await client.zcard(KEY_PREFIX + "rlm")
    finally:
        await client.aclose()


async def test_redis_killed_mid_job_ends_it_and_new_jobs_work_once_redis_is_back(
    fake_openai: FakeOpenAI, chat_server: TestServer, redis_server: RedisServer
) -> None:
    llm = ScriptedLLM(fake_openai, [LONG_CELL])
    settings = rlm_settings(
        server_url(chat_server),
        "process",
        redis_url=redis_server.url,
        rlm_token_lease_seconds=LEASE_SECONDS,
        rlm_cell_timeout=60,
        max_concurrent_rlm=1,
    )
    client, sandboxes = await start_rlm_service(settings)
    try:
        before = task_snapshot()
        async with client.post("/v1/rlm/stream", json=question()) as response:
            reader = EventReader(response, FAULT_BOUND_SECONDS)
            await reader.until(is_code_step)
            await redis_server.stop()
            events = await reader.to_the_end()
        error = assert_readable_error_then_done(events, "Redis")
        assert error["code"] == "token_lost"
        await wait_until(
            lambda: sandbox_gone(sandboxes.created[0]), "the job's sandbox was killed", FAULT_BOUND_SECONDS
        )
        await assert_no_new_tasks(before)

        # Redis comes back (empty, as after a crash); the same rlm-service serves again.
        await redis_server.start()
        llm.turns = [ANSWER]
        async with client.post("/v1/rlm/stream", json=question()) as response:
            events = await EventReader(response, FAULT_BOUND_SECONDS).to_the_end()
        assert answer_text(events) == "all good", events
        assert events[-1]["finish_reason"] == "stop"
        # The token goes back just after the last event is written.
        limiter = client.server.app[LIMITER]
        await wait_until(lambda: _none_in_use(limiter), "the job's token was released", FAULT_BOUND_SECONDS)
        assert await redis_tokens(redis_server.url) == 0
        await wait_until(lambda: _all_gone(sandboxes.created), "every sandbox is gone", FAULT_BOUND_SECONDS)
    finally:
        await client.close()


async def _all_gone(sandboxes: list[Any]) -> bool:
    return all([await sandbox_gone(sandbox) for sandbox in sandboxes])


async def _none_in_use(limiter: Any) -> bool:
    return await limiter.in_use() == 0


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def sandbox_processes_under(pid: int) -> set[int]:
    sandboxes = set()
    for child in descendants(pid):
        try:
            arguments = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if MARKER.encode() in arguments:
            sandboxes.add(child)
    return sandboxes


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def token_is_free(url: str) -> bool:
    limiter = RedisLimiter("rlm", 1, url, lease_seconds=LEASE_SECONDS)
    try:
        token = await limiter.acquire()
        await limiter.release(token)
    except Busy:
        return False
    finally:
        await limiter.close()
    return True


async def test_rlm_service_killed_mid_job_ends_with_error_and_done_and_its_token_comes_back(
    fake_openai: FakeOpenAI, chat_server: TestServer, redis_server: RedisServer
) -> None:
    ScriptedLLM(fake_openai, [LONG_CELL, ANSWER])
    env = {
        "CHAT_SERVICE_URL": server_url(chat_server),
        "RLM_SANDBOX": "process",
        "REDIS_URL": redis_server.url,
        "RLM_TOKEN_LEASE_SECONDS": str(LEASE_SECONDS),
        "MAX_CONCURRENT_RLM": "1",
        "RLM_CELL_TIMEOUT": "60",
        "RLM_TIMEOUT": "60",
    }
    async with ServiceProcess("tinychat_rlm", env) as rlm:
        gateway_settings = GatewaySettings(
            chat_service_url=server_url(chat_server),
            image_service_url=closed_port_url(),
            rlm_service_url=rlm.url,
            config_cache_seconds=0,
        )
        async with in_process(create_gateway_app(gateway_settings)) as gateway:
            before = task_snapshot()
            async with gateway.post("/api/chat/stream", json={**question(), "rlm": True}) as response:
                reader = EventReader(response, FAULT_BOUND_SECONDS)
                await reader.until(is_code_step)
                sandbox_pids = sandbox_processes_under(rlm.pid)
                assert sandbox_pids, "the job's sandbox process was not found"
                await rlm.kill()
                # The dead replica's token is still held: its lease has not run out yet.
                assert not await token_is_free(redis_server.url)
                events = await reader.to_the_end()
            assert_readable_error_then_done(events, "RLM service")
            await assert_no_new_tasks(before)
        # Nothing of the dead service's job goes on running.
        await wait_until(
            lambda: not any(alive(pid) for pid in sandbox_pids),
            "the killed service's sandbox processes died",
            FAULT_BOUND_SECONDS,
        )
        # Its token comes back by itself, one lease after the last renewal.
        await wait_until(
            lambda: token_is_free(redis_server.url), "the dead replica's token came back", FAULT_BOUND_SECONDS
        )
