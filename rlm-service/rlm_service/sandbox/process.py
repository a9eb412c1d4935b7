"""The `process` backend: the runner as a locked-down child process.

Each sandbox is a new session (so its whole process group can be killed) with an empty
environment and resource limits (address space, CPU seconds, file size, open files,
processes). Where the kernel allows it, it also gets its own namespaces:

- network: only a loopback device that is down, so no connection leaves the sandbox;
- pid: it sees only its own processes, and when its first process dies the kernel kills
  every process left in it (a cell's `setsid` cannot outlive the sandbox);
- mount: a private size-capped tmpfs on /tmp, /var/tmp and /dev/shm, which is its working
  directory and the only place it can write; it vanishes with the sandbox.

As root, the runner then drops to a uid of its own (one per sandbox, so process limits
and file permissions separate sandboxes from each other and from the service) with no
capabilities. Not as root, a user namespace does the same for an unprivileged service.
Which of these works is probed once; without namespaces the backend still runs, with a
logged warning, relying on resource limits alone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .base import SandboxError, SandboxFactory
from .connection import MAX_MESSAGE_BYTES, RunnerSandbox

log = logging.getLogger("tinychat.rlm.sandbox")

RUNNER_SOURCE = (Path(__file__).with_name("runner.py")).read_text(encoding="utf-8")
# Named on every sandbox's command line, so leftovers of a crashed service can be found.
MARKER = "tinychat-sandbox"
# Sandbox uids as root: far above any real account, one per sandbox.
UID_RANGE = (1_000_000_000, 2_000_000_000)

# Mounts the private tmpfs, then becomes the runner without privileges.
# $1 tmpfs size in bytes, $2 uid ("" to keep the namespace's own), $3 python, $4 runner source.
_JAIL_SCRIPT = r"""
set -e
mount -t tmpfs -o "size=$1,mode=1777,nosuid,nodev" tinychat-sandbox /tmp
for dir in /var/tmp /dev/shm; do
    if [ -d "$dir" ]; then mount --bind /tmp "$dir"; fi
done
cd /tmp
if [ -n "$2" ]; then
    exec setpriv --reuid="$2" --regid="$2" --clear-groups --bounding-set=-all --inh-caps=-all \
        --no-new-privs --pdeathsig SIGKILL -- "$3" -I -S -c "$4" tinychat-sandbox
fi
exec setpriv --bounding-set=-all --inh-caps=-all --no-new-privs --pdeathsig SIGKILL -- \
    "$3" -I -S -c "$4" tinychat-sandbox
"""
_NAMESPACES = [
    "--net",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount",
    "--mount-proc",
    "--propagation",
    "private",
]


@functools.cache
def _dies_with_parent() -> list[str]:
    """A prefix that makes the kernel SIGKILL the sandbox when the service that started it
    dies (SIGKILL, OOM), instead of leaving it running with no one to stop it. The jail
    script sets the same again after its uid change, which clears a death signal."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "SIGKILL", "--"] if setpriv else []


@dataclass(frozen=True)
class Isolation:
    """How sandboxes are started on this machine: the result of the probe."""

    mode: str  # "namespaces-as-root" | "user-namespaces" | "none"
    python: str
    unshare: str = ""
    shell: str = ""

    def command(self, *, disk_bytes: int, uid: int | None, code: str) -> list[str]:
        if self.mode == "none":
            return [*_dies_with_parent(), self.python, "-I", "-S", "-c", code, MARKER]
        prefix = [
            *_dies_with_parent(),
            self.unshare,
            *(["--user", "--map-root-user"] if self.mode == "user-namespaces" else []),
        ]
        return [
            *prefix,
            *_NAMESPACES,
            self.shell,
            "-c",
            _JAIL_SCRIPT,
            MARKER,
            str(disk_bytes),
            "" if uid is None else str(uid),
            self.python,
            code,
        ]


class ProcessSandbox(RunnerSandbox):
    def __init__(self, process: asyncio.subprocess.Process, workdir: str | None) -> None:
        assert process.stdout is not None and process.stdin is not None
        super().__init__(process.stdout, process.stdin)
        self.process = process
        self._workdir = workdir
        self._stderr_tail: collections.deque[bytes] = collections.deque(maxlen=20)
        self._stderr_task = asyncio.create_task(self._collect_stderr())

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _collect_stderr(self) -> None:
        # Only start-up failures reach here: the runner points fd 2 at /dev/null once it runs.
        assert self.process.stderr is not None
        with contextlib.suppress(Exception):
            async for line in self.process.stderr:
                self._stderr_tail.append(line[:500])

    async def _exit_reason(self) -> str:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                await self.process.wait()
        code = self.process.returncode
        if code is None:
            return "the sandbox stopped answering"
        if code in (-signal.SIGKILL, 128 + signal.SIGKILL, 137):
            return "the sandbox was killed, e.g. for going over its memory or process limit"
        detail = b"".join(self._stderr_tail).decode("utf-8", "replace").strip().splitlines()
        last = f": {detail[-1]}" if detail else ""
        return f"the sandbox exited with code {code}{last}"

    async def _terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        try:
            async with asyncio.timeout(10):
                await self.process.wait()
        except TimeoutError:
            log.error("sandbox process %d did not exit after SIGKILL", self.process.pid)
        self._stderr_task.cancel()
        if self._workdir:
            await asyncio.to_thread(shutil.rmtree, self._workdir, True)


class ProcessSandboxFactory(SandboxFactory):
    name = "process"

    def __init__(
        self,
        *,
        memory_bytes: int = 512 * 1024**2,
        processes: int = 64,
        output_limit: int = 20_000,
        disk_bytes: int = 64 * 1024**2,
        cpu_seconds: int = 600,
        open_files: int = 64,
        require_isolation: bool = False,
    ) -> None:
        self.memory_bytes = memory_bytes
        self.processes = processes
        self.output_limit = output_limit
        self.disk_bytes = disk_bytes
        self.cpu_seconds = cpu_seconds
        self.open_files = open_files
        self.require_isolation = require_isolation
        self._isolation: Isolation | None = None
        self._probe_lock = asyncio.Lock()
        self._live: set[ProcessSandbox] = set()

    @property
    def limits(self) -> dict[str, int]:
        return {
            # Address space is not resident memory: Python maps more than it touches.
            "address_space": max(2 * self.memory_bytes, 256 * 1024**2),
            "cpu_seconds": self.cpu_seconds,
            "file_size": self.disk_bytes,
            "open_files": self.open_files,
            "processes": self.processes,
            "nice": 10,
        }

    async def isolation(self) -> Isolation:
        async with self._probe_lock:
            if self._isolation is None:
                self._isolation = await probe_isolation()
                if self._isolation.mode == "none":
                    if self.require_isolation:
                        raise SandboxError("the process sandbox needs namespaces, which this kernel refuses")
                    log.warning(
                        "process sandbox: no namespaces available (unshare refused); sandboxes run "
                        "with resource limits only, sharing the network and file system of rlm-service"
                    )
                else:
                    log.info(
                        "process sandbox: isolation %s, python %s",
                        self._isolation.mode,
                        self._isolation.python,
                    )
        return self._isolation

    async def create(self, context: str | list[str]) -> ProcessSandbox:
        isolation = await self.isolation()
        as_root = os.geteuid() == 0
        uid = random.randrange(*UID_RANGE) if as_root and isolation.mode != "user-namespaces" else None
        workdir = None
        drop_to: dict[str, object] = {}
        if isolation.mode == "none":
            workdir = tempfile.mkdtemp(prefix="tinychat-sandbox-")
            if uid is not None:
                # Without namespaces, root's code would run as root: never; a uid of its own.
                os.chown(workdir, uid, uid)
                drop_to = {"user": uid, "group": uid, "extra_groups": []}
        command = isolation.command(disk_bytes=self.disk_bytes, uid=uid, code=RUNNER_SOURCE)
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                **drop_to,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={},
                cwd=workdir or "/",
                start_new_session=True,
                limit=MAX_MESSAGE_BYTES,
            )
        except OSError as exc:
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            raise SandboxError(f"the sandbox could not start: {exc.strerror}") from None
        sandbox = ProcessSandbox(process, workdir)
        self._live.add(sandbox)
        process_done = asyncio.ensure_future(process.wait())
        process_done.add_done_callback(lambda _: self._live.discard(sandbox))
        await sandbox.start(context, output_limit=self.output_limit, limits=self.limits)
        return sandbox

    async def reap_leftovers(self) -> int:
        return await asyncio.to_thread(kill_orphaned_sandboxes)

    async def close(self) -> None:
        await asyncio.gather(*(sandbox.kill() for sandbox in list(self._live)))


async def probe_isolation() -> Isolation:
    """The strongest way of starting a sandbox that works here; tried once at start."""
    unshare, shell = shutil.which("unshare"), shutil.which("sh")
    pythons = python_candidates()
    candidates: list[Isolation] = []
    if unshare and shell and shutil.which("setpriv") and shutil.which("mount"):
        if os.geteuid() == 0:
            candidates += [Isolation("namespaces-as-root", p, unshare, shell) for p in pythons]
        candidates += [Isolation("user-namespaces", p, unshare, shell) for p in pythons]
    for candidate in candidates:
        if await _starts(candidate):
            return candidate
    return Isolation("none", pythons[0])


async def _starts(isolation: Isolation) -> bool:
    uid = UID_RANGE[0] if isolation.mode == "namespaces-as-root" else None
    # Only a loopback device in sight means the network namespace took (no traffic is sent).
    # An interpreter the sandbox uid may not fully read can start with another Python's
    # standard library; only one whose library lies under its own prefix is taken.
    probe = (
        "import json, os, resource, socket, sys\n"
        "home = os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))\n"
        "if not os.path.realpath(os.__file__).startswith(home + os.sep): raise SystemExit(4)\n"
        "raise SystemExit(0 if [n for _, n in socket.if_nameindex()] == ['lo'] else 3)"
    )
    command = isolation.command(disk_bytes=1024**2, uid=uid, code=probe)
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={},
            cwd="/",
            start_new_session=True,
        )
    except OSError:
        return False
    try:
        async with asyncio.timeout(10):
            return await process.wait() == 0
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return False


def python_candidates() -> list[str]:
    """Interpreters for the runner, best first. As root the sandbox's own uid must be able
    to run it, which a Python under /root cannot offer, so system ones follow."""
    seen: list[str] = []
    for path in (
        getattr(sys, "_base_executable", ""),
        sys.executable,
        "/usr/bin/python3",
        "/usr/local/bin/python3",
    ):
        if path and os.access(path, os.X_OK) and os.path.realpath(path) not in map(os.path.realpath, seen):
            seen.append(path)
    return seen or [sys.executable]


def kill_orphaned_sandboxes() -> int:
    """Kill sandboxes whose service died (their parent is gone, so init adopted them)."""
    if os.getpid() == 1:
        return 0  # in a container the service is init: its sandboxes died with the last one
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if MARKER.encode() not in arguments:
            continue
        # stat: "pid (comm) state ppid pgrp …"; comm may hold spaces, so split after ')'.
        fields = stat.rsplit(")", 1)[1].split()
        parent, group = int(fields[1]), int(fields[2])
        if parent == 1 and group == int(entry.name):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
                killed += 1
    return killed
