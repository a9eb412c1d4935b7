"""The pool backend's own promises (RLM_SANDBOX=pool), against real runner containers
started under the compose constraints (tests/rlm/pool_runners.py): only rlm-service may
drive a runner, job code reaches no address, nothing one job leaves is there for the next,
a full pool makes the job wait and then fail clearly, and a runner that dies mid-job is a
clear error that gives the concurrency token back.

The escape battery (test_sandbox_escapes.py) runs against the pool too, through the
`pool` parameter of the sandbox fixtures.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from tinychat_rlm.app import LIMITER, create_app
from tinychat_rlm.config import RlmSettings
from tinychat_rlm.sandbox import SandboxError
from tinychat_rlm.sandbox.base import SANDBOX_PROGRESS
from tinychat_rlm.sandbox.pool import PoolSandboxFactory

from tests.fakes.openai_upstream import FakeOpenAI
from tests.rlm.harness import ScriptedLLM, repl, rlm_settings, start_chat_service, start_rlm_service
from tests.rlm.pool_runners import PORT, PoolRunners
from tests.rlm.sandbox_fixtures import assert_healthy, make_factory, run
from tests.support.net import free_port, server_url
from tests.support.sse import read_events

POOL_RUNNER = "rlm-service/tinychat_rlm/sandbox/pool_runner.py"


@pytest.fixture
def lone_runner(pool_runners: PoolRunners) -> Iterator[Any]:
    """A runner of its own for this test (so two jobs meet the same one, or it can be killed)."""
    container = pool_runners.start_runner()
    pool_runners.wait_listening(container)
    yield container
    container.remove(force=True)


@pytest.fixture
async def lone_pool(pool_runners: PoolRunners, lone_runner: Any) -> AsyncIterator[PoolSandboxFactory]:
    factory = make_factory("pool", endpoints=pool_runners.endpoint(lone_runner), wait=1.0)
    assert isinstance(factory, PoolSandboxFactory)
    yield factory
    await factory.close()


# -- without docker --------------------------------------------------------------------------


async def test_no_runner_answering_turns_rlm_off_with_the_reason(aiohttp_client: Any) -> None:
    settings = rlm_settings("http://127.0.0.1:9", "pool", rlm_sandbox_pool=f"127.0.0.1:{free_port()}")
    client = await aiohttp_client(create_app(settings))

    config = await (await client.get("/v1/rlm/config")).json()
    assert config["enabled"] is False
    assert config["sandbox"] == "pool"
    assert "no sandbox runner answers" in config["problem"]
    assert (await client.get("/readyz")).status == 200  # chat needs no sandbox
    body = {"rlm": True, "messages": [{"role": "user", "content": "count the words"}]}
    answer = await client.post("/v1/rlm/stream", json=body)
    assert answer.status == 503
    assert "no sandbox runner answers" in (await answer.json())["detail"]


def test_a_runner_address_without_a_port_stops_the_service_at_start() -> None:
    with pytest.raises(ValidationError, match="host:port"):
        RlmSettings(rlm_sandbox="pool", rlm_sandbox_pool="sandbox")


def test_the_runner_server_refuses_to_run_outside_a_container() -> None:
    # It kills every other process it can see after a job: only as PID 1 of a container.
    done = subprocess.run(
        [sys.executable, "-I", POOL_RUNNER],
        capture_output=True,
        text=True,
        timeout=30,
        env={"SANDBOX_ALLOWED_PEERS": "*"},
    )
    assert done.returncode == 2
    assert "PID 1" in done.stderr


# -- against runner containers ----------------------------------------------------------------

pool_only = pytest.mark.docker


@pool_only
async def test_a_peer_that_is_not_allowed_is_closed_before_a_byte_is_read(pool_runners: PoolRunners) -> None:
    target, other = pool_runners.runners[:2]
    target_ip, other_ip = pool_runners.address(target), pool_runners.address(other)
    # From inside the other runner's container: an address on the network, not rlm-service.
    probe = f"""
import socket
s = socket.create_connection(({target_ip!r}, {PORT}), 3)
s.settimeout(3)
try:
    s.sendall(b'{{"type": "init", "context": "", "output_limit": 1000, "limits": {{}}}}\\n')
    data = s.recv(100)
except ConnectionError:
    data = b''
print('answer:', repr(data))
"""
    result = await asyncio.to_thread(other.exec_run, ["python3", "-I", "-c", probe])
    assert result.exit_code == 0, result.output
    assert b"answer: b''" in result.output, result.output
    logs = await asyncio.to_thread(target.logs)
    assert f'"refused_peer", "peer": "{other_ip}"'.encode() in logs
    factory = make_factory("pool", endpoints=pool_runners.endpoint(target))
    await assert_healthy(factory)
    await factory.close()


@pool_only
async def test_job_code_reaches_no_address_not_even_another_runner(pool_runners: PoolRunners) -> None:
    accepted = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()

    host = await asyncio.start_server(count, pool_runners.gateway, 0)
    host_port = host.sockets[0].getsockname()[1]
    first, second = pool_runners.runners[:2]
    targets = [
        (pool_runners.address(first), PORT),
        (pool_runners.address(second), PORT),
        ("127.0.0.1", PORT),
        (pool_runners.gateway, host_port),
    ]
    code = f"""
import socket
for target in {targets!r}:
    try:
        socket.create_connection(target, 3).close()
        print(target, 'connected')
    except OSError as exc:
        print(target, 'refused', type(exc).__name__)
for family, kind in ((socket.AF_INET, socket.SOCK_DGRAM), (socket.AF_UNIX, socket.SOCK_STREAM),
                     (socket.AF_NETLINK, socket.SOCK_RAW)):
    try:
        socket.socket(family, kind).close()
        print(family, kind, 'created')
    except OSError as exc:
        print(family, kind, 'refused', type(exc).__name__)
"""
    logs_before = [await asyncio.to_thread(c.logs) for c in (first, second)]
    factory = make_factory("pool", endpoints=pool_runners.endpoints)
    try:
        async with await factory.create("") as sandbox:
            result = await run(sandbox, code)
    finally:
        host.close()
        await host.wait_closed()
    assert result.error is None, result
    assert "connected" not in result.stdout and "created" not in result.stdout, result.stdout
    assert result.stdout.count("refused") == len(targets) + 3
    assert accepted == 0
    # Not even a refused connection: no socket could be made, so nothing reached the runners.
    logs_after = [await asyncio.to_thread(c.logs) for c in (first, second)]
    for before, after in zip(logs_before, logs_after, strict=True):
        assert b"refused_peer" not in after[len(before) :]
    await assert_healthy(factory)
    await factory.close()


@pool_only
async def test_nothing_a_job_leaves_is_there_for_the_next_job(
    lone_pool: PoolSandboxFactory, pool_runners: PoolRunners, lone_runner: Any
) -> None:
    leave = """
import ctypes, os, subprocess, sys, time
for path in ('/tmp/left.txt', '/dev/shm/left.txt'):
    with open(path, 'w') as f:
        f.write('from the first job')
os.makedirs('/tmp/locked/deeper')
os.chmod('/tmp/locked', 0)
libc = ctypes.CDLL(None, use_errno=True)
print('shm', libc.shmget(0, 4096, 0o1600))
sleeper = [sys.executable, '-c', 'import time; time.sleep(300)', 'tinychat-left-behind']
subprocess.Popen(sleeper, start_new_session=True, stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:  # a classic daemon: new session, then fork again
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, sleeper)
    os._exit(0)
def sleepers():
    found = 0
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            found += b'tinychat-left-behind' in open(f'/proc/{pid}/cmdline', 'rb').read()
        except OSError:
            pass
    return found
for _ in range(200):  # both are running before the job ends (a busy machine is slow to exec)
    if sleepers() == 2:
        break
    time.sleep(0.05)
print('left', sorted(os.listdir('/tmp')), sorted(os.listdir('/dev/shm')), sleepers())
"""
    look = """
import os
mine = {os.getpid(), os.getppid(), 1}  # the cell, the job's runner, the server
others = [open(f'/proc/{p}/cmdline', 'rb').read()
          for p in os.listdir('/proc') if p.isdigit() and int(p) not in mine]
print('tmp', sorted(os.listdir('/tmp')))
print('shm', sorted(os.listdir('/dev/shm')))
print('ipc', open('/proc/sysvipc/shm').read().splitlines()[1:])
print('processes', others)
"""
    async with await lone_pool.create("") as sandbox:
        left = await run(sandbox, leave)
        assert "left ['left.txt', 'locked'] ['left.txt'] 2" in left.stdout, left
        assert len([p for p in pool_runners.processes(lone_runner) if "tinychat-left-behind" in p]) == 2
    assert await pool_runners_idle(pool_runners, lone_runner)
    async with await lone_pool.create("") as sandbox:
        seen = await run(sandbox, look)
    assert seen.error is None, seen
    assert seen.stdout.splitlines() == ["tmp []", "shm []", "ipc []", "processes []"], seen.stdout


async def pool_runners_idle(pool_runners: PoolRunners, container: Any, within: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while len(await asyncio.to_thread(pool_runners.processes, container)) > 1:
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@pool_only
async def test_when_every_runner_is_busy_the_job_waits_saying_so_then_fails_clearly(
    lone_pool: PoolSandboxFactory,
) -> None:
    said: list[str] = []
    holder = await lone_pool.create("")
    try:
        token = SANDBOX_PROGRESS.set(said.append)
        try:
            with pytest.raises(
                SandboxError, match=r"all 1 sandbox runner\(s\) stayed busy for 1 s"
            ) as failure:
                await lone_pool.create("")
        finally:
            SANDBOX_PROGRESS.reset(token)
    finally:
        await holder.kill()
    assert "--scale sandbox=N" in str(failure.value)
    assert said == ["All 1 code sandboxes are busy; waiting for one to free up…"]
    # Once the runner is free again, the next job gets it.
    await assert_healthy(lone_pool)


@pool_only
async def test_a_job_waiting_for_a_busy_pool_gets_a_status_event_then_an_error_and_its_token_back(
    fake_openai: FakeOpenAI, pool_runners: PoolRunners, lone_runner: Any, lone_pool: PoolSandboxFactory
) -> None:
    chat = await start_chat_service(fake_openai)
    ScriptedLLM(fake_openai, [repl("FINAL('never')")])
    settings = rlm_settings(
        server_url(chat),
        "pool",
        rlm_sandbox_pool=pool_runners.endpoint(lone_runner),
        rlm_sandbox_pool_wait=1.0,
    )
    client, _ = await start_rlm_service(settings)
    holder = await lone_pool.create("")  # another job holds the only runner
    try:
        async with client.post(
            "/v1/rlm/stream", json={"messages": [{"role": "user", "content": "hi"}]}
        ) as answer:
            events = await read_all(answer)
        assert {"status": "All 1 code sandboxes are busy; waiting for one to free up…"} in events
        (error,) = [e for e in events if "error" in e]
        assert error["code"] == "sandbox_failed"
        assert "stayed busy for 1 s" in error["error"]
        assert events[-1]["done"] is True and events[-1]["finish_reason"] == "error"
        assert await client.app[LIMITER].in_use() == 0
    finally:
        await holder.kill()
        await client.close()
        await chat.close()


@pool_only
async def test_a_runner_killed_mid_job_is_a_clear_error_and_the_token_is_released(
    fake_openai: FakeOpenAI, pool_runners: PoolRunners, lone_runner: Any
) -> None:
    chat = await start_chat_service(fake_openai)
    ScriptedLLM(fake_openai, [repl("import subprocess\nsubprocess.run(['sleep', '60'])")])
    settings = rlm_settings(
        server_url(chat), "pool", rlm_sandbox_pool=pool_runners.endpoint(lone_runner), rlm_cell_timeout=60.0
    )
    client, sandboxes = await start_rlm_service(settings)
    try:
        job = asyncio.create_task(stream(client, "hi"))
        # The cell is running once the job's processes are in the runner's container.
        async with asyncio.timeout(30):
            while "sleep 60" not in await asyncio.to_thread(pool_runners.processes, lone_runner):
                await asyncio.sleep(0.05)
        await asyncio.to_thread(lone_runner.kill)
        async with asyncio.timeout(30):
            events = await job
        (error,) = [e for e in events if "error" in e]
        assert error["code"] == "sandbox_failed"
        assert "sandbox runner at" in error["error"] and "closed the job's connection" in error["error"]
        assert events[-1]["finish_reason"] == "error"
        assert await client.app[LIMITER].in_use() == 0
        assert not sandboxes.created[0].alive
    finally:
        await client.close()
        await chat.close()


async def stream(client: Any, question: str) -> list[dict[str, Any]]:
    async with client.post(
        "/v1/rlm/stream", json={"messages": [{"role": "user", "content": question}]}
    ) as answer:
        return await read_all(answer)


async def read_all(answer: Any) -> list[dict[str, Any]]:
    return await read_events(answer)
