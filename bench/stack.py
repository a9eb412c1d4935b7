"""The system under test as real processes: the fast fake upstream, chat-service and the
gateway, each on a free loopback port, started in order and waited for on /readyz.

    async with Stack(chunks=100, interval=0.02) as stack:
        stack.gateway_url, stack.upstream_url, stack.rss_kib("chat-service")

Each process writes its output to a log file under bench/results/logs/ (a pipe nobody reads
would fill up and stall the service). On exit every process gets SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Self

import aiohttp

from bench.fake_upstream import THINK_MODEL
from bench.runtime import free_port, raise_fd_limit

# Shared with the tests' isolated environment (bench already uses tests' fakes).
from tests.support.env import SERVICE_ENV_PREFIXES

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
LOGS = RESULTS / "logs"
MODEL = "bench-model"
# The OpenAI chat endpoint on the fake upstream (and on the reference hops in front of it).
CHAT_PATH = "/v1/chat/completions"
READY_TIMEOUT = 30.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT = 10.0


class StackError(RuntimeError):
    """A process of the stack did not start or stopped early."""


@dataclass
class Process:
    name: str
    port: int
    proc: asyncio.subprocess.Process
    log_path: Path
    log_file: IO[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def clean_environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_ENV_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc/<pid>/status (VmRSS, in KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise StackError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def listen_overflows() -> int:
    """How many connections the kernel dropped because a listen queue was full, machine
    wide (TcpExt ListenOverflows): a burst of connects larger than a server's accept
    backlog shows up here, and as seconds of extra latency (SYN retries)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        if header.startswith("TcpExt:"):
            fields = dict(zip(header.split()[1:], values.split()[1:], strict=False))
            return int(fields.get("ListenOverflows", 0))
    return 0


class Stack:
    def __init__(
        self,
        chunks: int = 100,
        interval: float = 0.02,
        env: dict[str, str] | None = None,
        *,
        with_gateway: bool = True,
        with_reference_hops: bool = False,
    ) -> None:
        self.chunks = chunks
        self.with_gateway = with_gateway
        self.with_reference_hops = with_reference_hops
        self.interval = interval
        self.extra_env = env or {}
        self.processes: dict[str, Process] = {}
        self.run_id = time.strftime("%Y%m%d-%H%M%S")

    @property
    def upstream_url(self) -> str:
        """The fake's chat completions endpoint: what a direct client calls."""
        return self.processes["fake-upstream"].url + CHAT_PATH

    @property
    def chat_url(self) -> str:
        """chat-service's internal stream endpoint: one hop, for telling the hops apart."""
        return self.processes["chat-service"].url + "/v1/chat/stream"

    @property
    def gateway_url(self) -> str:
        return self.processes["gateway"].url + "/api/chat/stream"

    def reference_url(self, kind: str) -> str:
        """The outer of two chained reference hops (bench.reference_hops) of this kind."""
        return self.processes[f"{kind}-hop-2"].url + CHAT_PATH

    def pid(self, name: str) -> int:
        return self.processes[name].proc.pid

    def rss_kib(self, name: str) -> int:
        return rss_kib(self.pid(name))

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by each process of the stack."""
        return {name: cpu_seconds(p.proc.pid) for name, p in self.processes.items()}

    async def __aenter__(self) -> Self:
        raise_fd_limit()
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        fake = await self.spawn(
            "fake-upstream",
            ["-m", "bench.fake_upstream", "--chunks", str(self.chunks), "--interval", str(self.interval)],
            port_arg=True,
        )
        chat = await self.spawn(
            "chat-service",
            ["-m", "tinychat_chat"],
            env={
                "OPENAI_API_URL": fake.url + "/v1",
                "OPENAI_API_KEY": "bench-key",
                "DEFAULT_MODEL": MODEL,
                "AVAILABLE_MODELS": f"{MODEL},{THINK_MODEL}",
            },
        )
        if self.with_gateway:
            await self.spawn("gateway", ["-m", "tinychat_gateway"], env={"CHAT_SERVICE_URL": chat.url})
        if self.with_reference_hops:
            await self.spawn_reference_hops(fake)

    async def spawn_reference_hops(self, fake: Process) -> None:
        """Two chained hops of each reference kind in front of the fake upstream."""
        for kind in ("tcp", "aiohttp"):
            target = f"127.0.0.1:{fake.port}" if kind == "tcp" else fake.url + CHAT_PATH
            for hop in (1, 2):
                args = ["-m", "bench.reference_hops", kind, "--target", target]
                process = await self.spawn(f"{kind}-hop-{hop}", args, port_arg=True)
                target = f"127.0.0.1:{process.port}" if kind == "tcp" else process.url + CHAT_PATH

    async def spawn(
        self, name: str, args: list[str], *, env: dict[str, str] | None = None, port_arg: bool = False
    ) -> Process:
        port = free_port()
        LOGS.mkdir(parents=True, exist_ok=True)
        log_path = LOGS / f"{self.run_id}-{name}.log"
        log_file = log_path.open("wb")
        settings = {"HOST": "127.0.0.1", "PORT": str(port), "SHUTDOWN_GRACE_SECONDS": "1"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            *(["--port", str(port)] if port_arg else []),
            cwd=REPO,
            env=clean_environment({**settings, **(env or {}), **self.extra_env}),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
        process = Process(name, port, proc, log_path, log_file)
        self.processes[name] = process
        await wait_ready(process)
        return process

    async def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            await stop_process(process)


async def wait_ready(process: Process) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer yet"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if process.proc.returncode is not None:
                raise StackError(
                    f"{process.name} exited with {process.proc.returncode}:\n{process.log_tail()}"
                )
            try:
                async with session.get(process.url + "/readyz") as response:
                    if response.status == 200:
                        return
                    last = f"/readyz answered {response.status}: {(await response.text())[:200]}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.1)
    raise StackError(f"{process.name} not ready after {READY_TIMEOUT:.0f}s ({last}):\n{process.log_tail()}")


async def stop_process(process: Process) -> None:
    proc = process.proc
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    process.log_file.close()
