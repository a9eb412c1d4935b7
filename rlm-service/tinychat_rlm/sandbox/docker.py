"""The `docker` backend: one container per RLM job, talked to through its attached stdio.

Each container runs RLM_SANDBOX_IMAGE (rlm-service/sandbox.Dockerfile) with no network, a
read-only root, a size-capped tmpfs /tmp, every capability dropped but the two the runner
needs to part into two unprivileged uids before any cell code runs (runner.leave_root),
no-new-privileges, and memory, CPU and process limits. It is labelled with the owning
replica, so a replica that crashed removes its leftovers when it starts again.

The docker SDK blocks, so every call runs in a thread; errors from docker are translated
into SandboxError in one place (`_docker_errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.types import Ulimit

from .base import SandboxError, SandboxFactory
from .connection import MAX_LINE_BYTES, READ_BUFFER_BYTES, RunnerSandbox

log = logging.getLogger(__name__)

LABEL = "tinychat.sandbox"
# What the attach stream may hold unread before the sandbox is cut off (two full lines).
ATTACH_BUFFER_BYTES = 2 * MAX_LINE_BYTES
_FRAME_CHUNK = 64 * 1024
OWNER_LABEL = "tinychat.owner"
# gVisor: host tasks (sentry threads, gofer, systrap stubs) allowed per guest process, and on top.
GVISOR_HOST_TASKS_PER_PROCESS = 32
GVISOR_HOST_TASKS = 1024
_STDOUT, _STDERR = 1, 2


@contextlib.contextmanager
def _docker_errors(image: str = "") -> Iterator[None]:
    """The one place where docker's errors become SandboxError."""
    try:
        yield
    except docker.errors.ImageNotFound:
        raise SandboxError(
            f"the sandbox image {image!r} is missing; build it with "
            f"`docker build -f rlm-service/sandbox.Dockerfile -t {image} .`"
        ) from None
    except docker.errors.APIError as exc:
        raise SandboxError(f"docker refused: {exc.explanation or exc}") from None
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise SandboxError(f"the docker engine is not reachable ({type(exc).__name__})") from None


class DockerSandbox(RunnerSandbox):
    def __init__(
        self,
        container: Container,
        attached: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        demux: asyncio.Task[None],
        factory: DockerSandboxFactory,
    ) -> None:
        super().__init__(reader, writer)
        self.container = container
        self._attached = attached  # docker's socket object; the stream reads its descriptor
        self._demux = demux
        self._factory = factory

    @property
    def container_id(self) -> str:
        return self.container.id or ""

    async def _exit_reason(self) -> str:
        def inspect() -> str:
            with contextlib.suppress(Exception):
                self.container.reload()
                state = self.container.attrs.get("State", {})
                if state.get("OOMKilled"):
                    return "the sandbox was killed for going over its memory limit"
                if not state.get("Running"):
                    return f"the sandbox exited with code {state.get('ExitCode')}"
            return "the sandbox stopped answering"

        return await asyncio.to_thread(inspect)

    async def _terminate(self) -> None:
        self._demux.cancel()
        await self._factory.remove(self.container)
        with contextlib.suppress(Exception):
            self._attached.close()


class DockerSandboxFactory(SandboxFactory):
    name = "docker"

    def __init__(
        self,
        *,
        image: str = "tinychat-sandbox:latest",
        memory: str = "512m",
        cpus: float = 1.0,
        pids: int = 64,
        output_limit: int = 20_000,
        disk: str = "64m",
        owner: str | None = None,
        runtime: str = "",
    ) -> None:
        self.image = image
        self.memory = memory
        self.cpus = cpus
        self.pids = pids
        self.output_limit = output_limit
        self.disk = disk
        self.owner = owner or socket.gethostname()
        self.runtime = runtime  # "" is docker's default (runc); "runsc" is gVisor
        self._client: docker.DockerClient | None = None
        self._live: dict[str, Container] = {}
        self._abandoned: set[asyncio.Future[None]] = set()

    # -- docker calls (blocking; run in threads) ----------------------------------------------

    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            with _docker_errors():
                self._client = docker.from_env(timeout=30)
        return self._client

    def _run_container(self) -> tuple[Container, Any]:
        client = self._docker()
        with _docker_errors(self.image):
            container = client.containers.create(
                self.image,
                stdin_open=True,
                # Not detached: the SDK then sets StdinOnce, so docker closes the runner's stdin
                # when rlm-service's attach connection closes (also when rlm-service dies) and
                # the runner ends. (No auto_remove: an OOM kill must stay readable until we ask.)
                detach=False,
                tty=False,
                network_mode="none",
                read_only=True,
                tmpfs={"/tmp": f"size={self.disk},mode=1777,nosuid,nodev,noexec"},
                # Root with only the two capabilities the runner needs to part itself and the
                # cell process into two unprivileged uids (runner.leave_root), which it does
                # before any cell code runs.
                user="0:0",
                working_dir="/tmp",
                cap_drop=["ALL"],
                cap_add=["SETUID", "SETGID"],
                security_opt=["no-new-privileges"],
                mem_limit=self.memory,
                memswap_limit=self.memory,  # no swap: the memory limit is the limit
                nano_cpus=int(self.cpus * 1e9),
                pids_limit=self.host_pids_limit(),
                ulimits=[Ulimit(name="nofile", soft=64, hard=64)],
                labels={LABEL: "1", OWNER_LABEL: self.owner},
                environment={},
                runtime=self.runtime or None,  # None: the engine's default runtime
            )
            self._live[container.id or ""] = container
            try:
                # Attached before start, so not a byte of the runner's output is missed.
                attached = container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
                container.start()
            except BaseException:
                self._remove_now(container)
                raise
        return container, attached

    def _remove_now(self, container: Container) -> None:
        self._live.pop(container.id or "", None)
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except Exception as exc:  # logged, not raised: killing must never fail the caller
            log.error("could not remove sandbox container %s: %s", (container.id or "")[:12], exc)

    def _remove_leftovers(self) -> int:
        """This owner's sandboxes (a crashed earlier run of this replica), and every sandbox
        that has exited, whoever started it: one whose rlm-service died ends by itself
        (StdinOnce) but stays behind as an exited container."""
        client = self._docker()
        with _docker_errors():
            mine = client.containers.list(
                all=True, filters={"label": [f"{LABEL}=1", f"{OWNER_LABEL}={self.owner}"]}
            )
            exited = client.containers.list(all=True, filters={"label": f"{LABEL}=1", "status": "exited"})
        leftovers = list({c.id: c for c in [*mine, *exited]}.values())
        for container in leftovers:
            self._remove_now(container)
        return len(leftovers)

    # -- the factory --------------------------------------------------------------------------

    async def create(self, context: str | list[str]) -> DockerSandbox:
        starting = asyncio.ensure_future(asyncio.to_thread(self._run_container))
        try:
            container, attached = await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The job ended while docker was still starting it: remove it once it exists.
            starting.add_done_callback(self._remove_abandoned)
            raise
        try:
            reader, writer, demux = await _open_streams(attached)
        except BaseException:
            await self.remove(container)
            raise
        sandbox = DockerSandbox(container, attached, reader, writer, demux, self)
        limits = {"open_files": 64, "file_size": 64 * 1024**2}
        if "runsc" in self.runtime:
            # gVisor's guest processes are not host processes, so the pids cgroup does not
            # count them; inside its kernel RLIMIT_NPROC does, and counts this sandbox alone.
            limits["processes"] = self.pids
        await sandbox.start(context, output_limit=self.output_limit, limits=limits)
        return sandbox

    def host_pids_limit(self) -> int:
        """The container's pids cgroup. Under gVisor it counts the sentry's own threads and
        stub processes, not the guest's processes (RLIMIT_NPROC limits those, in its kernel):
        they grow with every busy guest process, and a sentry that cannot make a thread dies
        with the whole sandbox (a fork bomb then ends the job instead of failing its forks).
        So it gets room for several per guest process, still a bound for the host."""
        if "runsc" in self.runtime:
            return self.pids * GVISOR_HOST_TASKS_PER_PROCESS + GVISOR_HOST_TASKS
        return self.pids

    def _remove_abandoned(self, starting: asyncio.Future[tuple[Container, Any]]) -> None:
        if starting.cancelled() or starting.exception() is not None:
            return
        container, attached = starting.result()
        with contextlib.suppress(Exception):
            attached.close()
        task = asyncio.ensure_future(self.remove(container))
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)

    async def remove(self, container: Container) -> None:
        await asyncio.to_thread(self._remove_now, container)

    async def reap_leftovers(self) -> int:
        removed = await asyncio.to_thread(self._remove_leftovers)
        if removed:
            log.warning("removed %d sandbox container(s) left behind by an earlier run", removed)
        return removed

    async def close(self) -> None:
        await asyncio.gather(*(self.remove(c) for c in list(self._live.values())))
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._client.close)

    async def check(self) -> None:
        await self.ping()

    async def ping(self) -> None:
        """Raise SandboxError unless the engine answers, the image exists and the runtime asked
        for is registered (never a silent fall back to the default runtime)."""

        def check() -> None:
            client = self._docker()
            with _docker_errors(self.image):
                client.ping()
                client.images.get(self.image)
                if self.runtime and self.runtime not in (client.info().get("Runtimes") or {}):
                    raise SandboxError(
                        f"the docker engine has no runtime {self.runtime!r} (RLM_SANDBOX_RUNTIME); "
                        "register it in /etc/docker/daemon.json and restart dockerd"
                    )

        await asyncio.to_thread(check)


async def _open_streams(
    attached: Any,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.Task[None]]:
    """Asyncio streams over the attach socket: writes go to the container's stdin as they
    are; reads carry docker's multiplexing frames, which a task unpacks into `stdout`."""
    raw = getattr(attached, "_sock", attached)
    raw.setblocking(False)
    muxed, writer = await asyncio.open_connection(sock=raw, limit=_FRAME_CHUNK)
    stdout = asyncio.StreamReader(limit=READ_BUFFER_BYTES)
    demux = asyncio.create_task(_demultiplex(muxed, stdout))
    return stdout, writer, demux


async def _demultiplex(muxed: asyncio.StreamReader, stdout: asyncio.StreamReader) -> None:
    """Each frame: 1 byte stream type, 3 zero bytes, 4 bytes big-endian length, payload.
    Read in chunks, and never more than the host has not consumed yet allows: the runner
    sends one message and waits for an answer, so a sandbox that keeps sending past two
    full lines unread is broken or hostile, and its stream ends with an error."""
    try:
        while True:
            header = await muxed.readexactly(8)
            remaining = int.from_bytes(header[4:8], "big")
            while remaining:
                chunk = await muxed.read(min(remaining, _FRAME_CHUNK))
                if not chunk:
                    raise asyncio.IncompleteReadError(b"", remaining)
                remaining -= len(chunk)
                if header[0] == _STDOUT:
                    stdout.feed_data(chunk)
                elif header[0] == _STDERR:
                    log.debug("sandbox stderr: %r", chunk[:500])
            if _unread(stdout) > ATTACH_BUFFER_BYTES:
                stdout.set_exception(ValueError("the sandbox sent more than it was asked for"))
                return
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        pass
    finally:
        stdout.feed_eof()


def _unread(reader: asyncio.StreamReader) -> int:
    return len(getattr(reader, "_buffer", b""))
