"""The `pool` backend: each job takes an idle runner of the `sandbox` service (pool_runner.py).

RLM_SANDBOX_POOL names the runners as `host:port` (comma-separated for several); every
address a host resolves to is a runner, so `sandbox:8010` finds every replica that compose
(`--scale sandbox=N`) or a headless Kubernetes Service has. A runner greets a connection with
`idle` (the connection is now its job's) or `busy`; busy runners are skipped. When every
runner is busy the job waits, says so in a status event, and gives up after
RLM_SANDBOX_POOL_WAIT seconds with an error that says what to do.

No Docker socket, no privileges: the isolation is the runner container's (see pool_runner.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import time

from .base import SandboxError, SandboxFactory, per_process_limits, report_progress
from .connection import MAX_MESSAGE_BYTES, RunnerSandbox

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0
GREETING_TIMEOUT = 2.0
# /readyz and /v1/rlm/config wait for check(): every runner is asked at once, briefly.
CHECK_TIMEOUT = 1.5
Address = tuple[str, int]


def parse_endpoints(spec: str) -> list[Address]:
    """'sandbox:8010,other:8010' → [('sandbox', 8010), ('other', 8010)]."""
    endpoints = []
    for item in spec.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{item.strip()!r} is not host:port (e.g. sandbox:8010)")
        endpoints.append((host.strip("[]"), int(port)))
    return endpoints


class PoolSandbox(RunnerSandbox):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        address: Address,
        factory: PoolSandboxFactory,
    ) -> None:
        super().__init__(reader, writer)
        self.address = address
        self._factory = factory

    @property
    def runner(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    async def _exit_reason(self) -> str:
        return (
            f"the sandbox runner at {self.runner} closed the job's connection "
            "(the runner stopped, or the job went over a limit)"
        )

    async def _terminate(self) -> None:
        # Closing the connection ends the job: the runner kills every process of it and
        # wipes its scratch space before it takes the next one.
        self._factory._live.discard(self)
        with contextlib.suppress(Exception):
            self._writer.close()
            async with asyncio.timeout(2):
                await self._writer.wait_closed()


class PoolSandboxFactory(SandboxFactory):
    name = "pool"

    def __init__(
        self,
        *,
        endpoints: str = "sandbox:8010",
        wait: float = 30.0,
        memory_bytes: int = 512 * 1024**2,
        output_limit: int = 20_000,
        disk_bytes: int = 64 * 1024**2,
        cpu_seconds: int = 600,
        open_files: int = 64,
    ) -> None:
        self.spec = endpoints
        self.endpoints = parse_endpoints(endpoints)
        self.wait = wait
        self.memory_bytes = memory_bytes
        self.output_limit = output_limit
        self.disk_bytes = disk_bytes
        self.cpu_seconds = cpu_seconds
        self.open_files = open_files
        self._live: set[PoolSandbox] = set()

    @property
    def limits(self) -> dict[str, int]:
        # Per process; the runner container's own limits bound the whole sandbox.
        return per_process_limits(
            memory_bytes=self.memory_bytes,
            cpu_seconds=self.cpu_seconds,
            disk_bytes=self.disk_bytes,
            open_files=self.open_files,
        )

    async def runners(self) -> list[Address]:
        """Every address the endpoints resolve to now (runners come and go)."""
        loop = asyncio.get_running_loop()
        found: list[Address] = []
        problems = []
        for host, port in self.endpoints:
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                problems.append(f"{host}: {exc.strerror or exc}")
                continue
            for info in infos:
                address = (str(info[4][0]), port)
                if address not in found:
                    found.append(address)
        if not found:
            raise SandboxError(f"no sandbox runner found at {self.spec} ({'; '.join(problems)})")
        return found

    async def claim(self, address: Address) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Connect to one runner: its streams when it took us, None when it is busy.
        Raises OSError or TimeoutError when it does not answer."""
        async with asyncio.timeout(CONNECT_TIMEOUT):
            reader, writer = await asyncio.open_connection(*address, limit=MAX_MESSAGE_BYTES)
        try:
            async with asyncio.timeout(GREETING_TIMEOUT):
                line = await reader.readline()
            greeting = json.loads(line) if line.endswith(b"\n") else {}
        except BaseException:
            writer.close()
            raise
        if isinstance(greeting, dict) and greeting.get("type") == "idle":
            return reader, writer
        writer.close()
        if isinstance(greeting, dict) and greeting.get("type") == "busy":
            return None
        raise ConnectionError("closed the connection without a greeting (is rlm-service an allowed peer?)")

    async def create(self, context: str | list[str]) -> PoolSandbox:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        pause = 0.02
        waiting_since: float | None = None
        while True:
            runners = await self.runners()
            random.shuffle(runners)  # replicas of rlm-service spread over the pool
            busy, failures = 0, []
            for address in runners:
                try:
                    claimed = await self.claim(address)
                except (OSError, TimeoutError, ValueError) as exc:
                    failures.append(f"{address[0]}:{address[1]}: {_describe(exc)}")
                    continue
                if claimed is None:
                    busy += 1
                    continue
                if waiting_since is not None:
                    log.info("sandbox runner free after %.1f s of waiting", time.monotonic() - waiting_since)
                return await self._start(claimed, address, context)
            if not busy:
                raise SandboxError(f"no sandbox runner answers at {self.spec} ({'; '.join(failures)})")
            if loop.time() >= deadline:
                raise SandboxError(
                    f"all {busy} sandbox runner(s) stayed busy for {self.wait:g} s (RLM_SANDBOX_POOL_WAIT): "
                    "add runners (docker compose up --scale sandbox=N, or more replicas in Kubernetes) "
                    "or lower MAX_CONCURRENT_RLM"
                )
            if waiting_since is None:
                waiting_since = time.monotonic()
                report_progress(f"All {busy} code sandboxes are busy; waiting for one to free up…")
            await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
            pause = min(pause * 2, 0.5)

    async def _start(
        self,
        claimed: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        address: Address,
        context: str | list[str],
    ) -> PoolSandbox:
        sandbox = PoolSandbox(*claimed, address, self)
        self._live.add(sandbox)
        await sandbox.start(context, output_limit=self.output_limit, limits=self.limits)
        return sandbox

    async def check(self) -> None:
        """Ready when at least one runner answers (idle or busy); all are asked at once."""
        attempts = [asyncio.ensure_future(self._answers(address)) for address in await self.runners()]
        failures = []
        try:
            for attempt in asyncio.as_completed(attempts, timeout=CHECK_TIMEOUT):
                try:
                    await attempt
                except (OSError, TimeoutError, ValueError) as exc:
                    failures.append(str(exc))
                    continue
                return
        except TimeoutError:
            failures.append(f"no answer within {CHECK_TIMEOUT:g} s")
        finally:
            for attempt in attempts:
                attempt.cancel()
        raise SandboxError(f"no sandbox runner answers at {self.spec} ({'; '.join(failures)})")

    async def _answers(self, address: Address) -> None:
        try:
            claimed = await self.claim(address)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConnectionError(f"{address[0]}:{address[1]}: {_describe(exc)}") from None
        if claimed is not None:
            claimed[1].close()

    async def close(self) -> None:
        await asyncio.gather(*(sandbox.kill() for sandbox in list(self._live)))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
