"""What recursion needs besides the loop itself: the job's budget, and where a sub-RLM
gets its concurrency token and its sandbox.

`rlm_query(prompt, context=None)` in a cell starts a sub-RLM: a loop like the root's, with
its own sandbox (holding `context`, or the prompt itself when no context is given) and its
own branch of the trace, up to RLM_MAX_DEPTH levels (the root is level 1; at the last level
`rlm_query` is a plain `llm_query`). Every level spends from one budget per job
(RLM_BUDGET_TOKENS, RLM_BUDGET_SECONDS). When it is spent no more model calls start: each
level answers with what it has, marked as a best effort, and the root's answer says so.

Each sub-RLM holds a concurrency token (MAX_CONCURRENT_RLM counts sandboxes) from before
its sandbox starts until after it is killed, also when its parent is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from tinychat_common.errors import Busy
from tinychat_common.limiter import ConcurrencyLimiter, slot

from .chat_client import Usage
from .errors import SubcallRefused


class BudgetSpent(Exception):
    """The job's token or time budget ran out; carries the readable reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Budget:
    """One per job, shared by every level. 0 means no limit."""

    tokens: int
    seconds: float
    usage: Usage  # the whole job's usage, every level summed
    started: float = field(default_factory=time.monotonic)

    def tokens_used(self) -> int:
        return self.usage.prompt_tokens + self.usage.completion_tokens

    def seconds_left(self) -> float | None:
        if not self.seconds:
            return None
        return self.seconds - (time.monotonic() - self.started)

    def spent(self) -> str | None:
        """Why no more model calls may start, or None while there is budget left."""
        if self.tokens and self.tokens_used() >= self.tokens:
            return f"the job's token budget of {self.tokens:,} is spent ({self.tokens_used():,} used)"
        left = self.seconds_left()
        if left is not None and left <= 0:
            return f"the job's time budget of {self.seconds:g} s is spent"
        return None

    def check(self) -> None:
        reason = self.spent()
        if reason is not None:
            raise BudgetSpent(reason)

    def left_text(self) -> str:
        """What the model is told, e.g. 'Budget left: 41,200 tokens, 37 s.' ('' unlimited)."""
        parts = []
        if self.tokens:
            parts.append(f"{max(0, self.tokens - self.tokens_used()):,} tokens")
        left = self.seconds_left()
        if left is not None:
            parts.append(f"{max(0.0, left):.0f} s")
        return f"Budget left for the whole job: {', '.join(parts)}." if parts else ""

    @contextlib.asynccontextmanager
    async def time_limit(self) -> AsyncIterator[None]:
        """Stop what runs inside when the time budget runs out (BudgetSpent)."""
        left = self.seconds_left()
        if left is None:
            yield
            return
        self.check()
        try:
            async with asyncio.timeout(left) as deadline:
                yield
        except TimeoutError:
            if deadline.expired():
                raise BudgetSpent(f"the job's time budget of {self.seconds:g} s is spent") from None
            raise


@dataclass
class Recursion:
    """How deep a job may go and where sub-RLMs get their tokens."""

    max_depth: int = 1
    limiter: ConcurrencyLimiter | None = None
    # Called with a token the limiter lost (Redis went away): the whole job must stop.
    on_token_lost: Callable[[str], None] | None = None

    @contextlib.asynccontextmanager
    async def token(self) -> AsyncIterator[None]:
        """A concurrency token for one sub-RLM, given back however the sub-RLM ends."""
        if self.limiter is None:
            yield
            return
        async with slot(self.limiter, on_busy=refuse_subcall) as token:
            if self.on_token_lost is not None:
                self.limiter.on_lost(token, self.on_token_lost)
            yield


def refuse_subcall(busy: Busy) -> None:
    """No token for a sub-RLM: the cell is told so and can fall back to llm_query."""
    raise SubcallRefused(
        f"no RLM slot is free for a sub-RLM ({busy.message}); use llm_query instead"
    ) from None


BEST_EFFORT_NOTE = (
    "*(Best effort: {reason}, so the work stopped before code gave a final answer. "
    "Below is what it had found so far; it is not a checked answer.)*\n\n"
)
NOTHING_YET = "(Nothing had been found yet.)"


def best_effort(reason: str, found: str) -> str:
    return BEST_EFFORT_NOTE.format(reason=reason) + (found.strip() or NOTHING_YET)
