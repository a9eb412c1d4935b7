"""rlm-service's memory stays flat (< 50 MB growth) through a forged 60 MB protocol line and
through a client that does not read its stream. rlm-service runs as a process of its own
(so its memory is its own), behind the real chat-service and a scripted fake model."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.rlm.harness import ScriptedLLM, repl, start_chat_service
from tests.rlm.sandbox_fixtures import (  # noqa: F401  (fixtures)
    REPO,
    TEST_IMAGE,
    docker_unavailable_fixture,
    process_unavailable_fixture,
)
from tests.rlm.test_sandbox_escapes import FORGE_EVERYWHERE
from tests.support.net import server_url

pytestmark = [pytest.mark.timeout(180), pytest.mark.skipif(sys.platform != "linux", reason="Linux only")]

GROWTH_LIMIT = 50 * 1024**2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_of(pid: int) -> dict[str, int]:
    """Resident and peak resident memory of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


class RlmProcess:
    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url


@pytest.fixture(params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def memory_backend(request: pytest.FixtureRequest) -> str:
    unavailable = "docker_unavailable" if request.param == "docker" else "process_unavailable"
    if reason := request.getfixturevalue(unavailable):
        pytest.skip(reason)
    return request.param


@pytest.fixture
async def rlm_process(
    fake_openai: FakeOpenAI, memory_backend: str
) -> AsyncIterator[tuple[RlmProcess, FakeOpenAI]]:
    chat = await start_chat_service(fake_openai)
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "RLM_SANDBOX": memory_backend,
        "RLM_SANDBOX_IMAGE": TEST_IMAGE,
        "CHAT_SERVICE_URL": server_url(chat),
        "RLM_TIMEOUT": "120",
        "RLM_CELL_TIMEOUT": "60",
    }
    if "DOCKER_HOST" in os.environ:
        env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "tinychat_rlm", env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                with_config = None
                try:
                    async with session.get(url + "/v1/rlm/config") as answer:
                        with_config = await answer.json()
                except aiohttp.ClientError:
                    pass
                if with_config is not None:
                    break
                assert process.returncode is None, "rlm-service did not start"
                await asyncio.sleep(0.1)
        if not with_config["enabled"]:
            pytest.skip(f"RLM is off here: {with_config['problem']}")
        yield RlmProcess(process, url), fake_openai
    finally:
        process.terminate()
        await process.wait()
        await chat.close()


def rlm_body(question: str) -> dict:
    return {"rlm": True, "show_rlm_thinking": True, "messages": [{"role": "user", "content": question}]}


async def test_a_forged_60_mb_line_leaves_memory_flat(rlm_process) -> None:
    rlm, fake = rlm_process
    forge = (
        FORGE_EVERYWHERE
        + 'forge(b\'{"type": "result", "id": 1, "stdout": "\' + b\'x\' * 60_000_000 + b\'"}\\n\')'
    )
    ScriptedLLM(fake, [repl(forge)])
    await asyncio.sleep(1.0)  # settle after start-up
    before = memory_of(rlm.process.pid)
    async with (
        aiohttp.ClientSession() as session,
        session.post(rlm.url + "/v1/rlm/stream", json=rlm_body("Forge.")) as answer,
    ):
        text = await answer.text()
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    errors = [e for e in events if "error" in e]
    assert errors and "line limit" in errors[0]["error"], events
    assert events[-1]["done"] is True
    after = memory_of(rlm.process.pid)
    assert after["VmHWM"] - before["VmRSS"] < GROWTH_LIMIT, (before, after)


async def test_a_client_that_does_not_read_slows_the_job_instead_of_growing_memory(rlm_process) -> None:
    rlm, fake = rlm_process
    # 100 MB of reasoning deltas from the model, each one an rlm event for the client.
    chunk = "thinking " * 600
    turn = Reply(chunks=[chunk] * 20_000 + ["\n```repl\nFINAL('done')\n```\n"])
    llm = ScriptedLLM(fake, [turn])
    await asyncio.sleep(1.0)
    before = memory_of(rlm.process.pid)
    host, port = rlm.url.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    body = json.dumps(rlm_body("Think a lot.")).encode()
    writer.write(
        b"POST /v1/rlm/stream HTTP/1.1\r\nHost: rlm\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    try:
        for _ in range(300):  # the job has started: the model is being asked
            if llm.root_requests:
                break
            await asyncio.sleep(0.1)
        assert llm.root_requests
        peak = 0
        for _ in range(40):  # 8 s of not reading, the model ready to send 100 MB meanwhile
            await asyncio.sleep(0.2)
            peak = max(peak, memory_of(rlm.process.pid)["VmRSS"])
        assert peak - before["VmRSS"] < GROWTH_LIMIT, (before, peak)
    finally:
        writer.close()
