"""A cgroup per process sandbox: memory and process limits for the WHOLE sandbox (RLIMIT_AS
and RLIMIT_NPROC are per process or per uid, so four forks could hold four times the memory),
a reliable way to kill everything in it, and an OOM record to tell the user why it died.

Works with cgroup v1 (a `memory` and a `pids` hierarchy) and v2 (one unified tree, where the
sandboxes sit under /sys/fs/cgroup/tinychat-sandboxes so that no cgroup with processes of its
own needs controllers for its children). Needs root.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
V2_PARENT = "tinychat-sandboxes"


class CgroupError(Exception):
    """A cgroup could not be made or configured."""


def _version() -> str:
    if (ROOT / "cgroup.controllers").exists():
        return "v2"
    if (ROOT / "memory" / "cgroup.procs").exists() and (ROOT / "pids" / "cgroup.procs").exists():
        return "v1"
    return ""


def _parents() -> list[Path]:
    version = _version()
    if version == "v1":
        return [ROOT / "memory", ROOT / "pids"]
    if version == "v2":
        return [ROOT / V2_PARENT]
    return []


def cgroup_problem() -> str | None:
    """None when sandbox cgroups with memory and pids limits can be made here; else what is
    missing, for a person."""
    if not _parents():
        return "a memory and a pids cgroup controller (/sys/fs/cgroup)"
    try:
        probe = SandboxCgroup.create(f"tinychat-sandbox-check-{uuid.uuid4().hex[:8]}", 64 * 1024**2, 8)
    except CgroupError as exc:
        return f"a writable memory and pids cgroup ({exc})"
    probe.remove()
    return None


class SandboxCgroup:
    def __init__(self, dirs: list[Path], version: str) -> None:
        self.dirs = dirs
        self.version = version

    @classmethod
    def create(cls, name: str, memory_bytes: int, processes: int) -> SandboxCgroup:
        version = _version()
        if not version:
            raise CgroupError("no cgroup memory and pids controllers are mounted")
        try:
            if version == "v2":
                cls._prepare_v2_parent()
            dirs = [parent / name for parent in _parents()]
            for directory in dirs:
                directory.mkdir(exist_ok=True)
            group = cls(dirs, version)
            group._limit(memory_bytes, processes)
        except OSError as exc:
            with contextlib.suppress(Exception):
                cls([parent / name for parent in _parents()], version).remove()
            raise CgroupError(f"{exc.filename or 'cgroup'}: {exc.strerror}") from None
        return group

    @staticmethod
    def _prepare_v2_parent() -> None:
        parent = ROOT / V2_PARENT
        parent.mkdir(exist_ok=True)
        for directory in (ROOT, parent):
            enabled = (directory / "cgroup.subtree_control").read_text().split()
            if not {"memory", "pids"} <= set(enabled):
                (directory / "cgroup.subtree_control").write_text("+memory +pids")

    def _limit(self, memory_bytes: int, processes: int) -> None:
        if self.version == "v2":
            (directory,) = self.dirs
            (directory / "memory.max").write_text(str(memory_bytes))
            with contextlib.suppress(FileNotFoundError):
                (directory / "memory.swap.max").write_text("0")
            (directory / "pids.max").write_text(str(processes))
            return
        memory, pids = self.dirs
        (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
        with contextlib.suppress(FileNotFoundError):  # swap accounting off: nothing to cap
            (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
        (pids / "pids.max").write_text(str(processes))

    @property
    def procs_files(self) -> list[str]:
        return [str(directory / "cgroup.procs") for directory in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for directory in self.dirs:
            with contextlib.suppress(OSError):
                found |= {int(p) for p in (directory / "cgroup.procs").read_text().split()}
        return found

    def kill_all(self, within: float = 5.0) -> None:
        """SIGKILL every process in the sandbox, until none is left (a fork may race one)."""
        deadline = time.monotonic() + within
        while (pids := self.pids()) and time.monotonic() < deadline:
            if self.version == "v2":
                with contextlib.suppress(OSError):
                    (self.dirs[0] / "cgroup.kill").write_text("1")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def out_of_memory(self) -> bool:
        name = "memory.events" if self.version == "v2" else "memory.oom_control"
        with contextlib.suppress(OSError, ValueError):
            for line in (self.dirs[0] / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        return False

    def remove(self) -> None:
        self.kill_all()
        for directory in self.dirs:
            for _ in range(100):  # a killed process leaves its cgroup a moment later
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)

    @staticmethod
    def remove_unused(prefix: str, older_than: float = 120.0) -> None:
        """Empty sandbox cgroups a crashed service left behind. Only old ones: another
        service's sandbox may have made its cgroup a moment ago and not joined it yet."""
        now = time.time()
        for parent in _parents():
            with contextlib.suppress(OSError):
                for directory in parent.iterdir():
                    if directory.is_dir() and directory.name.startswith(prefix):
                        with contextlib.suppress(OSError):
                            if directory.stat().st_mtime > now - older_than:
                                continue
                            if not (directory / "cgroup.procs").read_text().split():
                                directory.rmdir()
