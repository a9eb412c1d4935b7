"""The sandbox interface: where LLM-written code runs, one sandbox per RLM job.

rlm-service speaks to a sandbox only through this interface; the backends (docker,
process) differ in how the runner is isolated, not in what it does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType

# Answers a batch of prompts, in order. `llm_query(p)` is a batch of one; `rlm_query(p)` is a
# batch of one with the keyword `rlm={"context": …, "names": …}` (a sub-RLM).
LlmQuery = Callable[..., Awaitable[list[str]]]

# Where a factory tells the person waiting what holds their job up ("all runners are busy");
# each RLM job's task sets it (jobs.py) to emit the job's status events. A context variable,
# so that create()'s signature stays the same for every backend. The callback must act at once:
# what it returns is dropped (jobs.py's queue put enqueues before returning its room future).
SANDBOX_PROGRESS: ContextVar[Callable[[str], object] | None] = ContextVar("sandbox_progress", default=None)


def report_progress(text: str) -> None:
    callback = SANDBOX_PROGRESS.get()
    if callback is not None:
        callback(text)


@dataclass
class CellResult:
    stdout: str = ""
    stderr: str = ""
    final: str | None = None  # set by FINAL(...), FINAL_VAR(...) or answer["ready"]
    variables: list[str] = field(default_factory=list)
    error: str | None = None  # a readable summary when the cell raised
    timed_out: bool = False  # the cell hit its time limit; the sandbox is dead afterwards
    truncated_chars: int = 0


class SandboxError(Exception):
    """The sandbox could not start, died, or broke the protocol."""


class Sandbox(ABC):
    @abstractmethod
    async def execute(self, code: str, *, llm_query: LlmQuery, timeout: float) -> CellResult:
        """Run one cell in the job's persistent namespace."""

    @abstractmethod
    async def kill(self) -> None:
        """Stop the sandbox and everything in it. Idempotent; never raises."""

    @property
    @abstractmethod
    def alive(self) -> bool: ...

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.kill()


class SandboxFactory(ABC):
    """One per rlm-service app (created in a cleanup_ctx)."""

    name: str

    @abstractmethod
    async def create(self, context: str | list[str]) -> Sandbox:
        """Start a sandbox whose namespace holds `context`; ready to execute."""

    async def check(self) -> None:
        """Raise SandboxError when sandboxes cannot be started right now (no engine, no image)."""

    async def reap_leftovers(self) -> int:
        """Remove sandboxes a crashed earlier run left behind; how many were removed."""
        return 0

    async def close(self) -> None:
        """Kill every sandbox still running."""


def per_process_limits(
    *, memory_bytes: int, cpu_seconds: int, disk_bytes: int, open_files: int
) -> dict[str, int]:
    """The rlimits the runner sets on each process of a job (the runner protocol's `limits`);
    what bounds the whole sandbox (a cgroup, a container) is the backend's own."""
    return {
        # Address space is not resident memory: Python maps more than it touches.
        "address_space": max(2 * memory_bytes, 256 * 1024**2),
        "cpu_seconds": cpu_seconds,
        "file_size": disk_bytes,
        "open_files": open_files,
        "nice": 10,
    }
