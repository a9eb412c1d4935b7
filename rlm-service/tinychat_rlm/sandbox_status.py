"""Whether RLM can run here: the sandbox backend's last known problem, re-checked now and then."""

from __future__ import annotations

import logging
import time

from .sandbox.base import SandboxError, SandboxFactory

log = logging.getLogger(__name__)


class SandboxStatus:
    """Whether sandboxes can be started (a docker engine may be missing or unreachable).
    Re-checked at most every RECHECK_SECONDS, so RLM comes back by itself once it is fixed."""

    RECHECK_SECONDS = 30.0

    def __init__(self, factory: SandboxFactory) -> None:
        self.factory = factory
        self.problem: str | None = None
        self._checked_at = float("-inf")

    def record(self, problem: str | None) -> None:
        if problem and problem != self.problem:
            log.warning("RLM is unavailable until this is fixed: %s", problem)
        self.problem = problem
        self._checked_at = time.monotonic()

    async def current_problem(self) -> str | None:
        if time.monotonic() - self._checked_at >= self.RECHECK_SECONDS:
            try:
                await self.factory.check()
            except SandboxError as exc:
                self.record(str(exc))
            else:
                self.record(None)
        return self.problem
