"""Every hop of the compose stack against the fake LLM and the fake SwarmUI containers
(tests/fakes_container/): browser API → gateway → chat-service → LLM; gateway →
image-service → SwarmUI (websocket progress); gateway → rlm-service → a runner of the
sandbox pool per job, with llm_query going back through chat-service, under a Redis
concurrency token.

Run by scripts/e2e.sh after `docker-compose up` with the fakes configured.
"""

from __future__ import annotations

import asyncio
import os
import subprocess

import aiohttp
import pytest

from tests.e2e.conftest import PROJECT, containers, redis_cli, stream_chat
from tests.fakes_container.llm_script import CHAT_PREFIX, SLOW_MARKER, SUBCALL_ANSWER, expected_digest

pytestmark = pytest.mark.e2e

PASSCODE = os.environ.get("E2E_RLM_PASSCODE", "e2e-passcode")
TOKEN_KEYS = "tinychat:tokens:*"


def user(text: str) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}]}


def tokens_in_use() -> int:
    keys = redis_cli("--scan", "--pattern", TOKEN_KEYS).split()
    return sum(int(redis_cli("ZCARD", key) or 0) for key in keys)


async def test_a_chat_streams_through_every_hop_from_the_upstream(http: aiohttp.ClientSession) -> None:
    answer = await stream_chat(http, {**user("ping through four hops"), "temperature": 0})
    assert answer.status == 200
    assert answer.text == f"{CHAT_PREFIX} ping through four hops"
    assert len(answer.of("content")) > 1
    done = answer.done
    assert done["finish_reason"] == "stop"
    assert done["usage"]["total_tokens"] > 0


async def test_image_command_streams_progress_then_the_image(http: aiohttp.ClientSession) -> None:
    answer = await stream_chat(http, user("/image a red square on white"))
    assert answer.status == 200
    assert any("%" in event["status"] for event in answer.of("status")), answer.events
    (image,) = answer.of("image")
    assert image["image"].startswith("data:image/jpeg;base64,")
    assert image["prompt"] == "a red square on white"
    assert answer.done["finish_reason"] == "stop"


async def test_rlm_without_the_passcode_is_refused(http: aiohttp.ClientSession) -> None:
    answer = await stream_chat(http, {**user("what is in the context?"), "rlm": True})
    assert 400 <= answer.status < 500, answer.events
    assert "passcode" in str(answer.events).lower()


def job_processes() -> int:
    """Processes in the sandbox runners besides their servers: a job is running there."""
    count = 0
    for runner in containers(f"com.docker.compose.project={PROJECT}", "com.docker.compose.service=sandbox"):
        top = subprocess.run(
            ["docker", "top", runner], capture_output=True, text=True, timeout=20, check=True
        )
        count += len(top.stdout.strip().splitlines()) - 2  # the header and the server
    return count


async def test_rlm_job_runs_code_in_a_sandbox_runner_under_a_redis_token(http: aiohttp.ClientSession) -> None:
    assert tokens_in_use() == 0
    job = asyncio.create_task(
        stream_chat(
            http,
            {**user(f"{SLOW_MARKER}: compute the digest"), "rlm": True, "show_rlm_thinking": True},
            headers={"X-RLM-Passcode": PASSCODE},
        )
    )
    # The fake LLM holds the root model's first reply for a few seconds: look meanwhile.
    seen_job = 0
    seen_tokens = 0
    async with asyncio.timeout(30):
        while not job.done() and not (seen_job and seen_tokens):
            seen_job = max(seen_job, await asyncio.to_thread(job_processes))
            seen_tokens = max(seen_tokens, await asyncio.to_thread(tokens_in_use))
            await asyncio.sleep(0.2)
        answer = await job

    assert seen_job, "a runner ran the job's process while the job did"
    assert seen_tokens == 1, "the job held one Redis token"
    assert answer.status == 200
    assert not answer.of("error"), answer.events
    assert f"digest={expected_digest()}" in answer.text, "the digest exists only if the code ran"
    assert f"helper={SUBCALL_ANSWER}" in answer.text, "llm_query went back through chat-service"
    assert answer.of("rlm"), "the trace came as rlm events"
    assert answer.done["finish_reason"] == "stop"

    async with asyncio.timeout(15):
        while await asyncio.to_thread(job_processes) or tokens_in_use():
            await asyncio.sleep(0.2)


def compose_container(service: str) -> str:
    (container,) = containers(
        f"com.docker.compose.project={PROJECT}", f"com.docker.compose.service={service}"
    )
    return container


async def wait_until_the_stack_is_healthy(http: aiohttp.ClientSession) -> None:
    async with asyncio.timeout(90):
        while True:
            try:
                async with http.get("/api/health") as response:
                    if (await response.json())["status"] == "ok":
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)


async def test_sigterm_lets_the_stream_in_flight_finish_and_refuses_new_ones(
    http: aiohttp.ClientSession,
) -> None:
    # Last in this file: it stops chat-service (and starts it again).
    chat_service = compose_container("chat-service")
    question = f"{SLOW_MARKER}: a long answer please"
    in_flight = asyncio.create_task(stream_chat(http, user(question)))
    await asyncio.sleep(1.5)  # the request is at the fake LLM, which holds it for a few seconds
    await asyncio.to_thread(
        subprocess.run, ["docker", "kill", "--signal", "SIGTERM", chat_service], check=True, timeout=20
    )
    try:
        refused = await stream_chat(http, user("a new question while chat-service drains"))
        finished = await in_flight

        assert finished.text == f"{CHAT_PREFIX} {question}", finished.events
        assert finished.done["finish_reason"] == "stop"
        assert not refused.text
        assert refused.of("error") or refused.status >= 500, refused.events
    finally:
        # Once drained it exits by itself; then bring it back for whatever runs next.
        await asyncio.to_thread(subprocess.run, ["docker", "wait", chat_service], timeout=60)
        await asyncio.to_thread(subprocess.run, ["docker", "start", chat_service], check=True, timeout=30)
        await wait_until_the_stack_is_healthy(http)
