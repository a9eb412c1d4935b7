"""The load test (the body of `make load`): many concurrent streams through gateway ->
chat-service against the fake upstream for a while, then two verdicts:

- no errors: every stream ended with `done`, carried every delta, and no `error` event;
- no leak: each service's resident memory after the run is within 20% of before, where
  "before" is read after a warm-up of the same shape (same concurrency, --warmup-seconds):
  pools, caches and the allocator's arenas have grown to their working size by then, so
  what is left is growth that would not stop. RSS is also sampled every few seconds during
  the run, so a leak shows as a climb, not just as one number.

    python -m bench.load                        1,000 streams for 60 s
    python -m bench.load --streams 200 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import Any

from bench.chat import PROMPT, run_loadgen, write_results
from bench.loadgen import LoadSpec
from bench.stack import MODEL, Stack

SERVICES = ("gateway", "chat-service")
SETTLE_SECONDS = 3.0
SAMPLE_EVERY_SECONDS = 5.0


def load_spec(stack: Stack, streams: int, chunks: int, *, seconds: float = 0.0, rounds: int = 1) -> LoadSpec:
    return LoadSpec(
        stack.gateway_url,
        {"model": MODEL, "messages": PROMPT},
        "tinychat",
        streams,
        rounds=rounds,
        seconds=seconds,
        expected_deltas=chunks,
        request_timeout=180.0,
    )


def memory(stack: Stack) -> dict[str, int]:
    return {name: stack.rss_kib(name) for name in (*SERVICES, "fake-upstream")}


async def sample_memory(stack: Stack, samples: list[dict[str, float]], every: float) -> None:
    """Append each service's RSS (MiB) every `every` seconds until cancelled."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        sample = {name: round(kib / 1024, 1) for name, kib in memory(stack).items() if name in SERVICES}
        samples.append({"t": round(loop.time() - started, 1), **sample})
        await asyncio.sleep(every)


async def run_sampled(
    stack: Stack, spec: LoadSpec, every: float
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    samples: list[dict[str, float]] = []
    sampler = asyncio.create_task(sample_memory(stack, samples, every))
    try:
        return await run_loadgen(spec), samples
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler


def memory_verdicts(before: dict[str, int], after: dict[str, int], max_growth: float) -> dict[str, Any]:
    verdicts = {}
    for name in SERVICES:
        growth = (after[name] - before[name]) / before[name]
        verdicts[name] = {
            "rss_before_mib": round(before[name] / 1024, 1),
            "rss_after_mib": round(after[name] / 1024, 1),
            "growth": round(growth, 4),
            "passed": growth <= max_growth,
        }
    return verdicts


def report(result: dict[str, Any]) -> str:
    run = result["run"]
    lines = [
        f"load: {result['streams']} concurrent streams for {result['seconds']:.0f} s through "
        f"gateway -> chat-service ({result['chunks']} deltas {result['interval_s'] * 1000:.0f} ms apart)",
        f"  requests {run['requests']}, errors {run['errors']} {run['error_kinds'] or ''}".rstrip(),
        f"  events/s {run['events_per_s']:.0f}, TTFT p50 {run['ttft_ms']['p50']} ms, "
        f"p99 {run['ttft_ms']['p99']} ms",
    ]
    for sample in run["error_samples"][:3]:
        lines.append(f"  ! {sample}")
    for name in SERVICES:
        series = " ".join(f"{sample[name]:.0f}" for sample in result["rss_samples_mib"])
        lines.append(f"  {name} RSS MiB every {SAMPLE_EVERY_SECONDS:.0f} s during the run: {series}")
    for name, verdict in result["memory"].items():
        lines.append(
            f"  {'PASS' if verdict['passed'] else 'FAIL'}  {name:<13} RSS {verdict['rss_before_mib']} MiB"
            f" -> {verdict['rss_after_mib']} MiB ({verdict['growth'] * 100:+.1f}%, limit "
            f"+{result['max_growth'] * 100:.0f}%)"
        )
    lines.append(f"  {'PASS' if run['errors'] == 0 else 'FAIL'}  0 errors")
    return "\n".join(lines)


async def main(
    quick: bool = False,
    *,
    streams: int = 1000,
    seconds: float = 60.0,
    chunks: int = 100,
    interval: float = 0.02,
    warmup_seconds: float = 20.0,
    max_growth: float = 0.20,
    settle_seconds: float = SETTLE_SECONDS,
    write: bool = True,
    echo: bool = True,
) -> dict[str, Any]:
    if quick:
        streams, seconds, warmup_seconds = min(streams, 200), min(seconds, 10.0), min(warmup_seconds, 5.0)
    async with Stack(chunks=chunks, interval=interval) as stack:
        warmup = await run_loadgen(load_spec(stack, streams, chunks, seconds=warmup_seconds))
        await asyncio.sleep(settle_seconds)
        before = memory(stack)
        run, samples = await run_sampled(
            stack, load_spec(stack, streams, chunks, seconds=seconds), SAMPLE_EVERY_SECONDS
        )
        await asyncio.sleep(settle_seconds)
        after = memory(stack)
    verdicts = memory_verdicts(before, after, max_growth)
    result = {
        "suite": "load",
        "streams": streams,
        "seconds": seconds,
        "chunks": chunks,
        "interval_s": interval,
        "max_growth": max_growth,
        "warmup_seconds": warmup_seconds,
        "warmup_errors": warmup["errors"],
        "run": run,
        "rss_samples_mib": samples,
        "rss_kib_before": before,
        "rss_kib_after": after,
        "memory": verdicts,
        "passed": run["errors"] == 0 and all(v["passed"] for v in verdicts.values()),
    }
    if echo:
        print(report(result), flush=True)
    if write:
        result["written_to"] = write_results("load", result)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streams (default 1000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to keep them going (60)")
    parser.add_argument("--chunks", type=int, default=100, help="deltas per answer (100)")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between deltas (0.02)")
    parser.add_argument(
        "--warmup-seconds", type=float, default=20.0, help="same load before 'before' is read (20)"
    )
    parser.add_argument("--max-growth", type=float, default=0.20, help="allowed RSS growth (0.20 = 20%%)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    outcome = asyncio.run(
        main(
            streams=args.streams,
            seconds=args.seconds,
            chunks=args.chunks,
            interval=args.interval,
            warmup_seconds=args.warmup_seconds,
            max_growth=args.max_growth,
        )
    )
    sys.exit(0 if outcome["passed"] else 1)
