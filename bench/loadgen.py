"""The load client: N concurrent streams from one lean process, results as one JSON line.

    python -m bench.loadgen '{"url": "...", "body": {...}, "protocol": "tinychat", "streams": 100}'

It runs in its own process so that its work is not mixed with the orchestrator's, and it
counts by scanning bytes (never JSON-parsing every event): a content delta is one
occurrence of `fake_upstream.MARKER`, the end of a stream is `[DONE]` (OpenAI) or
`"done":true` (TinyChat), an error is an `error` event. Time to first token is the time
from sending the request to the first read that holds a delta.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from bench.fake_upstream import MARKER
from bench.runtime import fast_event_loop, percentile, raise_fd_limit

Protocol = Literal["openai", "tinychat"]

END_MARKERS: dict[str, tuple[bytes, ...]] = {
    "openai": (b"data: [DONE]",),
    "tinychat": (b'"done":true', b'"done": true'),
}
ERROR_MARKERS: dict[str, tuple[bytes, ...]] = {
    "openai": (b'{"error":', b'{"error": '),
    "tinychat": (b'{"error":', b'{"error": '),
}
# Bytes kept from the previous read so a marker split across two reads is still seen.
TAIL = 24
MAX_ERROR_SAMPLES = 5


@dataclass
class LoadSpec:
    url: str
    body: dict[str, Any]
    protocol: Protocol
    streams: int
    rounds: int = 1  # requests per stream, one after another
    seconds: float = 0.0  # when > 0: each stream keeps asking until this much time passed
    expected_deltas: int = 0  # when > 0: an answer with another count is an error
    request_timeout: float = 60.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    ttft: float | None = None
    duration: float | None = None  # request sent -> stream ended
    deltas: int = 0
    error: str | None = None
    detail: str = ""


@dataclass
class Tally:
    requests: int = 0
    deltas: int = 0
    ttfts: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.requests += 1
        self.deltas += outcome.deltas
        if outcome.ttft is not None:
            self.ttfts.append(outcome.ttft)
        if outcome.duration is not None:
            self.durations.append(outcome.duration)
        if outcome.error:
            self.errors[outcome.error] += 1
            if len(self.samples) < MAX_ERROR_SAMPLES:
                self.samples.append(f"{outcome.error}: {outcome.detail}"[:300])


class StreamReader:
    """Counts deltas and notices the end and error markers in a stream of reads."""

    def __init__(self, protocol: Protocol, started: float) -> None:
        self.ends = END_MARKERS[protocol]
        self.errors = ERROR_MARKERS[protocol]
        self.started = started
        self.tail = b""
        self.outcome = Outcome()
        self.saw_end = False
        self.error_text = b""

    def feed(self, chunk: bytes) -> None:
        data = self.tail + chunk
        # The tail's own markers were counted with the previous read.
        found = data.count(MARKER) - self.tail.count(MARKER)
        if found:
            if self.outcome.ttft is None:
                self.outcome.ttft = time.perf_counter() - self.started
            self.outcome.deltas += found
        if not self.saw_end and any(end in data for end in self.ends):
            self.saw_end = True
        if not self.error_text:
            for marker in self.errors:
                at = data.find(marker)
                if at >= 0:
                    self.error_text = data[at : at + 200]
                    break
        self.tail = data[-TAIL:]

    def finish(self, expected_deltas: int) -> Outcome:
        outcome = self.outcome
        if self.error_text:
            outcome.error, outcome.detail = "error_event", self.error_text.decode(errors="replace")
        elif not self.saw_end:
            outcome.error, outcome.detail = "cut_off", "the stream closed without its end marker"
        elif expected_deltas and outcome.deltas != expected_deltas:
            outcome.error = "wrong_count"
            outcome.detail = f"{outcome.deltas} deltas, expected {expected_deltas}"
        return outcome


async def one_request(session: aiohttp.ClientSession, spec: LoadSpec, payload: bytes) -> Outcome:
    started = time.perf_counter()
    reader = StreamReader(spec.protocol, started)
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream", **spec.headers}
    try:
        async with asyncio.timeout(spec.request_timeout):
            async with session.post(spec.url, data=payload, headers=headers) as response:
                if response.status != 200:
                    text = (await response.read())[:200].decode(errors="replace")
                    return Outcome(error=f"http_{response.status}", detail=text)
                async for chunk in response.content.iter_any():
                    reader.feed(chunk)
    except TimeoutError:
        return Outcome(error="timeout", detail=f"no end within {spec.request_timeout}s")
    except (aiohttp.ClientError, OSError) as exc:
        return Outcome(error=type(exc).__name__, detail=str(exc))
    reader.outcome.duration = time.perf_counter() - started
    return reader.finish(spec.expected_deltas)


async def one_stream(session: aiohttp.ClientSession, spec: LoadSpec, payload: bytes, tally: Tally) -> None:
    if spec.seconds > 0:
        deadline = time.perf_counter() + spec.seconds
        while time.perf_counter() < deadline:
            tally.add(await one_request(session, spec, payload))
        return
    for _ in range(spec.rounds):
        tally.add(await one_request(session, spec, payload))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def summary(spec: LoadSpec, tally: Tally, elapsed: float, cpu: float) -> dict[str, Any]:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return {
        "streams": spec.streams,
        "requests": tally.requests,
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors),
        "error_samples": tally.samples,
        "deltas": tally.deltas,
        "elapsed_s": round(elapsed, 4),
        "events_per_s": round(tally.deltas / elapsed, 1) if elapsed > 0 else 0.0,
        "ttft_ms": {
            "p50": ms(percentile(tally.ttfts, 0.50)),
            "p99": ms(percentile(tally.ttfts, 0.99)),
            "max": ms(max(tally.ttfts, default=None)),
        },
        "stream_ms": {
            "p50": ms(percentile(tally.durations, 0.50)),
            "p99": ms(percentile(tally.durations, 0.99)),
        },
        "client_cpu_s": round(cpu, 3),
    }


def health_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/healthz"


async def warm_client(session: aiohttp.ClientSession, url: str) -> None:
    """One request before the clock starts, so the client's own first-use costs (lazy
    imports, resolver, parser set-up) are not counted against whichever path goes first."""
    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
        async with asyncio.timeout(5), session.get(health_url(url)) as response:
            await response.read()


async def run_load(spec: LoadSpec) -> dict[str, Any]:
    payload = json.dumps(spec.body).encode()
    tally = Tally()
    # No pool limit: every stream holds its own connection for its whole life.
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=None, connect=spec.request_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await warm_client(session, spec.url)
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(one_stream(session, spec, payload, tally) for _ in range(spec.streams)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds() - cpu_before
    return summary(spec, tally, elapsed, cpu)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m bench.loadgen '<LoadSpec as JSON>'")
    spec = LoadSpec(**json.loads(args[0]))
    raise_fd_limit()
    result = fast_event_loop(run_load(spec))
    result["spec"] = {k: v for k, v in asdict(spec).items() if k != "body"}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
