"""The `process` backend (`make run` on Linux): the runner as a locked-down child process.

Every sandbox is started, with an empty environment, as

    sh (joins the sandbox's cgroup) → setpriv (a uid of its own, no groups, no capabilities)
        → bwrap (new user, network, pid, mount, ipc, uts and cgroup namespaces; seccomp) → python

- identity: a random uid far above any real account, one per sandbox, with no supplementary
  groups; inside its user namespace it is uid 1000 with no capabilities;
- file system: a read-only view of the Python runtime alone (the interpreter, its standard
  library and the shared libraries they load), a fresh /proc and minimal /dev, and a private
  size-capped tmpfs /tmp that is its working directory and vanishes with it. No project
  tree, no /etc, no /run, no host socket, no CHAT_LOG;
- network: its own namespace with only a loopback device that is down;
- processes: its own pid namespace (when the runner ends the kernel kills everything left in
  it, also a double-forked daemon) and its own cgroup, whose memory and pids limits hold for
  the whole sandbox, not per process; the cgroup is emptied and removed at the end;
- syscalls: the job filter of seccomp.py (no namespaces, mounts, ptrace, bpf, sockets, …).

This needs root (for the uid and the cgroup), bubblewrap, and a kernel that lets an
unprivileged uid make a user namespace. Where any of it is missing the backend does not run
code at all: `check()` names what is missing and RLM reports itself off (fail closed).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import seccomp
from .base import SandboxError, SandboxFactory, per_process_limits
from .cgroups import CgroupError, SandboxCgroup, cgroup_problem
from .connection import READ_BUFFER_BYTES, RunnerSandbox

log = logging.getLogger(__name__)

RUNNER_SOURCE = (Path(__file__).with_name("runner.py")).read_text(encoding="utf-8")
# Named on every sandbox's command line, so leftovers of a crashed service can be found.
MARKER = "tinychat-sandbox"
# Sandbox uids: far above any real account, one per sandbox.
UID_RANGE = (1_000_000_000, 2_000_000_000)
INNER_UID = 1000
USE_ANOTHER_BACKEND = "use RLM_SANDBOX=pool or RLM_SANDBOX=docker"

# Joins the cgroups named in $1 (colon-separated cgroup.procs files), then becomes the rest.
_ENTER_CGROUP = 'IFS=:; for procs in $1; do echo $$ > "$procs" || exit 97; done; shift; exec "$@"'


@dataclass(frozen=True)
class Isolation:
    """How sandboxes are started on this machine, found once. `problem` is why they cannot
    be (then nothing runs)."""

    mode: str  # "bubblewrap" | "none"
    python: str = ""
    view: tuple[str, ...] = ()  # bwrap arguments of the read-only runtime view
    problem: str | None = None
    tools: dict[str, str] = field(default_factory=dict)


class ProcessSandbox(RunnerSandbox):
    def __init__(self, process: asyncio.subprocess.Process, cgroup: SandboxCgroup) -> None:
        assert process.stdout is not None and process.stdin is not None
        super().__init__(process.stdout, process.stdin)
        self.process = process
        self.cgroup = cgroup
        self._stderr_tail: collections.deque[bytes] = collections.deque(maxlen=20)
        self._stderr_task = asyncio.create_task(self._collect_stderr())

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _collect_stderr(self) -> None:
        # Only start-up failures reach here: the runner points fd 2 at /dev/null once it runs.
        assert self.process.stderr is not None
        with contextlib.suppress(Exception):
            while chunk := await self.process.stderr.read(4096):
                self._stderr_tail.append(chunk[:500])

    async def _exit_reason(self) -> str:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                await self.process.wait()
        code = self.process.returncode
        if self.cgroup.out_of_memory():
            return "the sandbox was killed for going over its memory limit"
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
        await asyncio.to_thread(self.cgroup.kill_all)
        try:
            async with asyncio.timeout(10):
                await self.process.wait()
        except TimeoutError:
            log.error("sandbox process %d did not exit after SIGKILL", self.process.pid)
        self._stderr_task.cancel()
        await asyncio.to_thread(self.cgroup.remove)


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
    ) -> None:
        self.memory_bytes = memory_bytes
        self.processes = processes
        self.output_limit = output_limit
        self.disk_bytes = disk_bytes
        self.cpu_seconds = cpu_seconds
        self.open_files = open_files
        self._isolation: Isolation | None = None
        self._probe_lock = asyncio.Lock()
        self._live: set[ProcessSandbox] = set()

    @property
    def limits(self) -> dict[str, int]:
        """Per-process limits inside the sandbox; the cgroup holds the whole sandbox's."""
        return per_process_limits(
            memory_bytes=self.memory_bytes,
            cpu_seconds=self.cpu_seconds,
            disk_bytes=self.disk_bytes,
            open_files=self.open_files,
        )

    async def isolation(self) -> Isolation:
        async with self._probe_lock:
            if self._isolation is None:
                self._isolation = await probe_isolation_once()
                if self._isolation.problem:
                    log.warning("process sandbox unavailable: %s", self._isolation.problem)
                else:
                    log.info("process sandbox: bubblewrap, python %s", self._isolation.python)
        return self._isolation

    async def check(self) -> None:
        isolation = await self.isolation()
        if isolation.problem:
            raise SandboxError(isolation.problem)

    async def create(self, context: str | list[str]) -> ProcessSandbox:
        isolation = await self.isolation()
        if isolation.problem:  # fail closed: never a sandbox with less than its full isolation
            raise SandboxError(isolation.problem)
        uid = random.randrange(*UID_RANGE)
        try:
            cgroup = await asyncio.to_thread(
                SandboxCgroup.create, f"{MARKER}-{uid}", self.memory_bytes, self.processes
            )
        except CgroupError as exc:
            raise SandboxError(f"the sandbox could not start: {exc}") from None
        try:
            process, filter_fd = await _spawn(isolation, cgroup, uid, self.disk_bytes, RUNNER_SOURCE)
        except OSError as exc:
            await asyncio.to_thread(cgroup.remove)
            raise SandboxError(f"the sandbox could not start: {exc.strerror}") from None
        os.close(filter_fd)
        sandbox = ProcessSandbox(process, cgroup)
        self._live.add(sandbox)
        process_done = asyncio.ensure_future(process.wait())
        process_done.add_done_callback(lambda _: self._live.discard(sandbox))
        await sandbox.start(context, output_limit=self.output_limit, limits=self.limits)
        return sandbox

    async def reap_leftovers(self) -> int:
        return await asyncio.to_thread(kill_orphaned_sandboxes)

    async def close(self) -> None:
        await asyncio.gather(*(sandbox.kill() for sandbox in list(self._live)))


async def _spawn(
    isolation: Isolation, cgroup: SandboxCgroup, uid: int, disk_bytes: int, code: str
) -> tuple[asyncio.subprocess.Process, int]:
    """Start one sandbox; the caller closes the returned seccomp descriptor."""
    filter_fd = _filter_descriptor()
    tools = isolation.tools
    command = [
        tools["sh"], "-c", _ENTER_CGROUP, MARKER, ":".join(cgroup.procs_files),
        tools["setpriv"], f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
        "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--pdeathsig", "SIGKILL", "--",
        tools["bwrap"], "--unshare-all", "--uid", str(INNER_UID), "--gid", str(INNER_UID),
        "--hostname", "sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--clearenv", "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8",
        *isolation.view,
        "--proc", "/proc", "--dev", "/dev",
        "--size", str(disk_bytes), "--perms", "1777", "--tmpfs", "/tmp",
        "--symlink", "/tmp", "/var/tmp",
        "--remount-ro", "/",
        "--chdir", "/tmp",
        "--seccomp", str(filter_fd),
        isolation.python, "-I", "-S", "-c", code, MARKER,
    ]  # fmt: skip
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={},
            cwd="/",
            start_new_session=True,
            pass_fds=(filter_fd,),
            limit=READ_BUFFER_BYTES,
        )
    except BaseException:
        os.close(filter_fd)
        raise
    return process, filter_fd


def _filter_descriptor() -> int:
    """The job filter in an unlinked file, as bwrap --seccomp reads it."""
    with tempfile.TemporaryFile() as f:
        f.write(seccomp.job_filter())
        f.flush()
        f.seek(0)
        return os.dup(f.fileno())


# A cell of the probe: what must hold inside every sandbox before any job runs in it.
_PROBE = r"""
import json, os
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
devices = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
print(json.dumps({
    "uid": os.getuid(), "groups": os.getgroups(), "seccomp": status["Seccomp"].strip(),
    "capabilities": status["CapEff"].strip(), "devices": devices, "pid": os.getpid(),
    "root": sorted(os.listdir("/")), "writable_root": os.access("/", os.W_OK),
}))
"""


# What this machine can do does not change while the service runs: probed once per process.
_probed: list[Isolation] = []
_probing = asyncio.Lock()


async def probe_isolation_once() -> Isolation:
    async with _probing:
        if not _probed:
            _probed.append(await probe_isolation())
        return _probed[0]


async def probe_isolation(disk_bytes: int = 1024**2) -> Isolation:
    """Whether this machine can give a sandbox its full isolation: tried once, for real."""
    if sys.platform != "linux":
        return Isolation("none", problem=f"the process sandbox needs Linux; {USE_ANOTHER_BACKEND}")
    if os.geteuid() != 0:
        return Isolation(
            "none",
            problem="the process sandbox needs rlm-service to run as root (for a uid and a memory "
            f"cgroup of each sandbox's own); {USE_ANOTHER_BACKEND}",
        )
    tools = {name: shutil.which(name) or "" for name in ("sh", "setpriv", "bwrap", "ldd")}
    missing = [name for name in ("sh", "setpriv", "bwrap") if not tools[name]]
    if missing:
        return Isolation(
            "none",
            problem=f"the process sandbox needs {', '.join(missing)} (apt-get install bubblewrap "
            f"util-linux); {USE_ANOTHER_BACKEND}",
        )
    problem = await asyncio.to_thread(cgroup_problem)
    if problem:
        return Isolation("none", problem=f"the process sandbox needs {problem}; {USE_ANOTHER_BACKEND}")
    failures = []  # the sandbox's own failures first: they say more than a missing Python
    for python in python_candidates():
        if not _reachable_by_anyone(python):
            failures.append(f"{python} is not readable by an unprivileged uid")
            continue
        try:
            view = await runtime_view(python, tools["ldd"])
        except OSError as exc:
            failures.append(f"{python}: {exc}")
            continue
        candidate = Isolation("bubblewrap", python=view[0], view=tuple(view[1]), tools=tools)
        failure = await _probe(candidate, disk_bytes)
        if failure is None:
            return candidate
        failures.insert(0, failure)
    return Isolation("none", problem=_explain(failures[0] if failures else "no Python interpreter found"))


def _reachable_by_anyone(path: str) -> bool:
    """Whether a uid of no account can run `path` (a Python under /root cannot)."""
    real = os.path.realpath(path)
    parents = [p for p in Path(real).parents if str(p) != "/"]
    try:
        return os.stat(real).st_mode & 0o005 == 0o005 and all(os.stat(p).st_mode & 0o001 for p in parents)
    except OSError:
        return False


def _explain(failure: str) -> str:
    if "namespace" in failure or "uid map" in failure or "Operation not permitted" in failure:
        return f"the process sandbox needs user namespaces; this platform refuses them: {USE_ANOTHER_BACKEND}"
    return f"the process sandbox cannot start here ({failure}); {USE_ANOTHER_BACKEND}"


async def _probe(isolation: Isolation, disk_bytes: int) -> str | None:
    """None when a sandbox started and is isolated as promised; else what went wrong."""
    try:
        cgroup = await asyncio.to_thread(
            SandboxCgroup.create, f"{MARKER}-probe-{os.getpid()}", 64 * 1024**2, 8
        )
    except CgroupError as exc:
        return str(exc)
    try:
        process, filter_fd = await _spawn(isolation, cgroup, UID_RANGE[0], disk_bytes, _PROBE)
    except OSError as exc:
        await asyncio.to_thread(cgroup.remove)
        return exc.strerror or str(exc)
    os.close(filter_fd)
    try:
        async with asyncio.timeout(20):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        return "a test sandbox did not start within 20 s"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await asyncio.to_thread(cgroup.kill_all)
        await asyncio.to_thread(cgroup.remove)
    if process.returncode != 0:
        lines = stderr.decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else f"a test sandbox exited with code {process.returncode}"
    try:
        seen = json.loads(stdout)
    except ValueError:
        return "a test sandbox answered nonsense"
    expected = {
        "uid": INNER_UID,
        "groups": [],
        "seccomp": "2",
        "capabilities": "0000000000000000",
        "devices": ["lo"],
        "writable_root": False,
    }
    wrong = [key for key, value in expected.items() if seen.get(key) != value]
    return f"a test sandbox was not isolated ({', '.join(wrong)})" if wrong else None


async def runtime_view(python: str, ldd: str) -> tuple[str, list[str]]:
    """The interpreter's real path and the bwrap arguments that show the sandbox its runtime
    alone, read-only: the executable, its standard library, and the shared libraries they load."""
    process = await asyncio.create_subprocess_exec(
        python,
        "-I",
        "-S",
        "-c",
        "import json, os, sys, sysconfig\n"
        "print(json.dumps([os.path.realpath(sys.executable), sysconfig.get_path('stdlib'),"
        " sysconfig.get_path('platstdlib')]))",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={},
    )
    stdout, _ = await process.communicate()
    if process.returncode != 0:
        raise OSError(f"{python} does not run")
    executable, stdlib, platstdlib = json.loads(stdout)
    return executable, await asyncio.to_thread(_view_of, ldd, executable, stdlib, platstdlib)


def _view_of(ldd: str, executable: str, stdlib: str, platstdlib: str) -> list[str]:
    binaries = [executable]
    dynload = Path(platstdlib) / "lib-dynload"
    if dynload.is_dir():
        binaries += [str(p) for p in sorted(dynload.glob("*.so"))]
    files = {executable, *_shared_libraries(ldd, binaries)}
    return _bind_arguments(files, {os.path.realpath(stdlib), os.path.realpath(platstdlib)})


def _shared_libraries(ldd: str, binaries: list[str]) -> set[str]:
    """Every library path the loader looks up for `binaries` (as named and as resolved)."""
    import subprocess

    found: set[str] = set()
    for start in range(0, len(binaries), 64):
        done = subprocess.run(
            [ldd, *binaries[start : start + 64]], capture_output=True, text=True, env={}, check=False
        )
        for line in done.stdout.splitlines():
            for word in line.replace("=>", " ").split():
                if word.startswith("/") and os.path.exists(word):
                    found.add(word)
    return found


def _bind_arguments(files: set[str], dirs: set[str]) -> list[str]:
    """bwrap arguments for a read-only view of `files` (each file alone, the executable
    included, except shared libraries, whose directory is bound so the loader finds its
    neighbours) and `dirs`. Every symlink on the way to a file as the loader names it
    (/lib64 → usr/lib64, /usr/lib64/ld-linux… → ../lib/…) is made again inside."""
    links: dict[str, str] = {}
    bound_dirs = set(dirs)
    bound_files: set[str] = set()
    for path in files:
        real = _follow(path, links)
        if ".so" in os.path.basename(real):
            bound_dirs.add(os.path.dirname(real))
        else:
            bound_files.add(real)
    bound_dirs = {d for d in bound_dirs if not any(d.startswith(o + "/") for o in bound_dirs)}

    def inside_bound(path: str) -> bool:
        return any(path.startswith(d + "/") for d in bound_dirs)

    arguments: list[str] = []
    for directory in sorted(bound_dirs):
        arguments += ["--ro-bind", directory, directory]
    for path in sorted(f for f in bound_files if not inside_bound(f)):
        arguments += ["--ro-bind", path, path]
    for link, target in sorted(links.items()):
        if not inside_bound(link):
            arguments += ["--symlink", target, link]
    return arguments


def _follow(path: str, links: dict[str, str], depth: int = 0) -> str:
    """The real path of `path`, noting every symlink met on the way in `links`."""
    if depth > 40:
        raise OSError(f"too many symlinks resolving {path}")
    current = "/"
    parts = [p for p in path.split("/") if p]
    for index, part in enumerate(parts):
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            target = os.readlink(candidate)
            links[candidate] = target
            resolved = os.path.normpath(os.path.join(current, target))
            rest = "/".join(parts[index + 1 :])
            return _follow(os.path.join(resolved, rest) if rest else resolved, links, depth + 1)
        current = candidate
    return current


@functools.cache
def python_candidates() -> list[str]:
    """Interpreters for the runner, best first: the service's base Python (not a venv's
    wrapper, whose site-packages the sandbox must not see), then the system's."""
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
    """Kill sandboxes whose service died (their parent is gone, so init adopted them), and
    remove the cgroups they leave."""
    killed = 0
    if os.getpid() != 1:  # in a container the service is init: its sandboxes died with it
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
    SandboxCgroup.remove_unused(MARKER)
    return killed
