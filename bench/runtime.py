"""Small process-level helpers every bench process uses."""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import socket
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one: 1,000 streams need ~2,000 sockets per
    hop. Children started afterwards inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
    return soft


def fast_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop when it is installed: the load client and the fake upstream
    must spend as little CPU as possible, since they share the machine with what they
    measure. The services pick their own loop (tinychat_common.service.run_service)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def free_port() -> int:
    """A loopback port nobody is listening on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least `fraction` of all values
    at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    # round() first: 0.99 * 100 is 98.99999999999999 in binary floating point.
    rank = max(1, math.ceil(round(fraction * len(ordered), 9)))
    return ordered[min(rank, len(ordered)) - 1]
