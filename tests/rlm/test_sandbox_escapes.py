"""The escape battery: hostile cells against both backends. Each attempt must fail, and the
factory must give working sandboxes afterwards (the service stays healthy)."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
from rlm_service.sandbox import SandboxError, SandboxFactory
from rlm_service.sandbox.process import ProcessSandbox, ProcessSandboxFactory

from tests.rlm.sandbox_fixtures import (  # noqa: F401  (fixtures)
    assert_healthy,
    docker_unavailable_fixture,
    run,
    sandbox_backend_fixture,
    sandboxes_fixture,
    wait_until_gone,
)

pytestmark = pytest.mark.timeout(90)


async def test_tcp_to_a_host_loopback_listener_is_refused(sandboxes: SandboxFactory) -> None:
    accepted = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with await sandboxes.create("") as sandbox:
            result = await run(
                sandbox,
                f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 3)\nprint('connected')",
            )
    finally:
        server.close()
        await server.wait_closed()
    assert "connected" not in result.stdout
    assert result.error and result.error.startswith(
        ("OSError", "ConnectionRefusedError", "TimeoutError", "PermissionError")
    )
    assert accepted == 0
    await assert_healthy(sandboxes)


async def test_the_services_environment_is_invisible(
    sandboxes: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"planted-{uuid.uuid4().hex}"
    monkeypatch.setenv("TINYCHAT_PLANTED_SECRET", secret)
    code = """
import os
seen = [repr(dict(os.environ))]
for pid in os.listdir('/proc'):
    for name in ('environ', 'cmdline'):
        try:
            seen.append(open(f'/proc/{pid}/{name}', 'rb').read().decode('latin-1'))
        except OSError:
            pass
print('\\n'.join(seen))
"""
    async with await sandboxes.create("") as sandbox:
        result = await run(sandbox, code)
    assert result.error is None
    assert secret not in result.stdout + result.stderr
    await assert_healthy(sandboxes)


async def test_a_planted_host_file_cannot_be_read(sandboxes: SandboxFactory, tmp_path: Path) -> None:
    secret = f"planted-{uuid.uuid4().hex}"
    planted = tmp_path / "secret.txt"
    planted.write_text(secret)
    planted.chmod(0o644)  # even readable by everyone, it must stay out of reach
    async with await sandboxes.create("") as sandbox:
        result = await run(sandbox, f"print(open({str(planted)!r}).read())")
    assert secret not in result.stdout + result.stderr
    assert result.error and ("FileNotFoundError" in result.error or "PermissionError" in result.error)
    await assert_healthy(sandboxes)


async def test_a_fork_bomb_is_contained(sandboxes: SandboxFactory) -> None:
    if isinstance(sandboxes, ProcessSandboxFactory) and (await sandboxes.isolation()).mode == "none":
        pytest.skip("without namespaces a fork bomb is bounded only by RLIMIT_NPROC of a shared uid")
    async with await sandboxes.create("") as sandbox:
        result = await run(sandbox, "import os\nwhile True:\n    os.fork()", timeout=8)
    # Either every fork past the limit failed, or the time limit killed the lot.
    assert result.timed_out or (result.error and "BlockingIOError" in result.error), result
    await assert_healthy(sandboxes)


async def test_allocating_4_gb_fails(sandboxes: SandboxFactory) -> None:
    async with await sandboxes.create("") as sandbox:
        try:
            result = await run(sandbox, "data = b'x' * (4 * 1024**3)\nprint(len(data))")
        except SandboxError as exc:  # docker: the OOM killer ends the container
            assert "memory" in str(exc)
            assert not sandbox.alive
        else:
            assert result.error and result.error.startswith("MemoryError")
            assert result.stdout == ""
            assert (await run(sandbox, "print('alive')")).stdout == "alive\n"
    await assert_healthy(sandboxes)


async def test_an_endless_loop_is_killed_at_the_cell_time_limit(sandboxes: SandboxFactory) -> None:
    sandbox = await sandboxes.create("")
    result = await run(sandbox, "while True:\n    pass", timeout=1.5)
    assert result.timed_out
    assert "1.5 s" in (result.error or "")
    assert not sandbox.alive
    with pytest.raises(SandboxError):
        await run(sandbox, "print(1)")
    if isinstance(sandbox, ProcessSandbox):
        with pytest.raises(ProcessLookupError):
            os.kill(sandbox.pid, 0)
    await assert_healthy(sandboxes)


async def test_filling_the_disk_stops_at_the_cap(sandboxes: SandboxFactory) -> None:
    code = """
import os
written = 0
try:
    for n in range(10_000):
        with open(f'fill-{n}.bin', 'wb') as f:
            for _ in range(8):
                f.write(b'\\0' * 1024 * 1024)
                written += 1
except OSError as exc:
    print('stopped after', written, 'MB:', exc.strerror)
"""
    async with await sandboxes.create("") as sandbox:
        result = await run(sandbox, code, timeout=30)
        assert result.stdout.startswith("stopped after"), result
        assert int(result.stdout.split()[2]) <= 64
        # The sandbox is still usable after its disk filled up.
        assert (await run(sandbox, "print('alive')")).stdout == "alive\n"
    await assert_healthy(sandboxes)


async def test_printing_100_mb_is_cut_to_the_output_limit(sandboxes: SandboxFactory) -> None:
    async with await sandboxes.create("") as sandbox:
        result = await run(sandbox, "for _ in range(100):\n    print('y' * 1_000_000)", timeout=60)
    assert len(result.stdout) < 20_200
    assert result.truncated_chars > 99_000_000
    assert "characters cut" in result.stdout
    await assert_healthy(sandboxes)


async def test_no_background_process_outlives_the_job(sandboxes: SandboxFactory) -> None:
    marker = f"tinychat-leftover-{uuid.uuid4().hex}"
    code = f"""
import os, subprocess, sys, time
sleeper = [sys.executable, '-c', 'import time; time.sleep(300)', {marker!r}]
subprocess.Popen(sleeper, start_new_session=True, stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:  # a classic daemon: new session, then fork again
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, sleeper)
    os._exit(0)
time.sleep(0.5)
print('started')
"""
    async with await sandboxes.create("") as sandbox:
        result = await run(sandbox, code)
        assert result.stdout == "started\n", result
        assert len(await wait_until_gone(marker, within=0)) >= 1  # they did start
    assert await wait_until_gone(marker) == []
    await assert_healthy(sandboxes)
