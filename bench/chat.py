"""The chat benchmark: N concurrent streams straight to the fake upstream, then through
gateway -> chat-service, in the same run, and the ratios against the targets of issue 2.

    python -m bench --only chat        (or: python -m bench.chat [--quick])

The machine is shared and noisy, so every target is a ratio (or a difference) between the
two paths measured minutes apart in one run, never an absolute number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from bench.loadgen import LoadSpec
from bench.stack import MODEL, REPO, RESULTS, Stack, listen_overflows

LEVELS = (1, 100, 500)
# Requests per stream, one after another, in one load run.
FULL_ROUNDS = {1: 5, 100: 1, 500: 1}
QUICK_ROUNDS = {1: 3, 100: 1, 500: 1}
# Load runs per path, alternating direct and two-hop; each path keeps its best run, the
# one least disturbed by whatever else the machine was doing at the time.
FULL_REPEATS = {1: 2, 100: 3, 500: 3}
QUICK_REPEATS = {1: 1, 100: 1, 500: 1}
FULL_CHUNKS = 100
QUICK_CHUNKS = 30
INTERVAL = 0.02
WARMUP_STREAMS = 20
# /proc counts CPU time in 10 ms ticks, and one lone stream pays a whole loop wake-up per
# event: per-event CPU is shown only for runs with this many deltas.
MIN_DELTAS_FOR_CPU = 10_000
PROMPT = [{"role": "user", "content": "Say something long."}]
# At this level the table also shows two chained reference hops of each kind
# (bench/reference_hops.py): what two hops cost before any code of ours runs.
REFERENCE_LEVEL = 100
REFERENCE_PATHS = {"tcp_x2": "tcp", "aiohttp_x2": "aiohttp"}
PATH_LABELS = {"direct": "direct", "two_hop": "two-hop", "tcp_x2": "tcp x2", "aiohttp_x2": "aiohttp x2"}


class BenchError(RuntimeError):
    """The load client failed to run (not: the system under test answered with errors)."""


@dataclass
class Check:
    what: str
    target: str
    measured: str
    passed: bool


def direct_spec(stack: Stack, streams: int, rounds: int, chunks: int) -> LoadSpec:
    body = {"model": MODEL, "messages": PROMPT, "stream": True, "stream_options": {"include_usage": True}}
    return LoadSpec(stack.upstream_url, body, "openai", streams, rounds=rounds, expected_deltas=chunks)


def two_hop_spec(stack: Stack, streams: int, rounds: int, chunks: int) -> LoadSpec:
    body = {"model": MODEL, "messages": PROMPT}
    return LoadSpec(stack.gateway_url, body, "tinychat", streams, rounds=rounds, expected_deltas=chunks)


def reference_spec(stack: Stack, kind: str, streams: int, rounds: int, chunks: int) -> LoadSpec:
    spec = direct_spec(stack, streams, rounds, chunks)
    spec.url = stack.reference_url(kind)
    return spec


async def run_loadgen(spec: LoadSpec) -> dict[str, Any]:
    """Run the load client in its own process; it prints one JSON line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.loadgen",
        json.dumps(asdict(spec)),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0 or not out.strip():
        raise BenchError(f"load client exited with {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    summary: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return summary


async def measured_run(stack: Stack, spec: LoadSpec) -> dict[str, Any]:
    """One load run, with the CPU time each process of the stack spent on it: CPU per
    event is a cost that other work on a shared machine barely disturbs."""
    before, overflows_before = stack.cpu_seconds(), listen_overflows()
    result = await run_loadgen(spec)
    after = stack.cpu_seconds()
    result["listen_overflows"] = listen_overflows() - overflows_before
    result["cpu_s"] = {name: round(after[name] - before[name], 3) for name in after}
    deltas = result["deltas"] or 1
    result["cpu_us_per_event"] = {
        name: round(spent * 1e6 / deltas, 1) for name, spent in result["cpu_s"].items()
    }
    return result


def best_run(runs: list[dict[str, Any]], streams: int) -> dict[str, Any]:
    """Fewest errors first; then, for one stream (where only latency is judged) the lowest
    TTFT p50, otherwise the most events per second."""
    if streams == 1:
        return min(runs, key=lambda run: (run["errors"], run["ttft_ms"]["p50"] or float("inf")))
    return max(runs, key=lambda run: (-run["errors"], run["events_per_s"]))


async def measure_level(
    stack: Stack, streams: int, rounds: int, chunks: int, repeats: int = 1, *, references: bool = False
) -> dict[str, Any]:
    specs = {
        "direct": direct_spec(stack, streams, rounds, chunks),
        "two_hop": two_hop_spec(stack, streams, rounds, chunks),
    }
    if references:
        for path, kind in REFERENCE_PATHS.items():
            specs[path] = reference_spec(stack, kind, streams, rounds, chunks)
    runs: dict[str, list[dict[str, Any]]] = {path: [] for path in specs}
    for _ in range(repeats):
        # Interleaved, so that a disturbance on the machine hits every path alike.
        for path, spec in specs.items():
            runs[path].append(await measured_run(stack, spec))
    level: dict[str, Any] = {"streams": streams, "rounds": rounds, "repeats": repeats}
    for path, path_runs in runs.items():
        level[path] = best_run(path_runs, streams)
        level[f"{path}_all_events_per_s"] = [run["events_per_s"] for run in path_runs]
    return level


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def ttft_p50(side: dict[str, Any]) -> float | None:
    p50: float | None = side["ttft_ms"]["p50"]
    return p50


def evaluate(levels: dict[int, dict[str, Any]]) -> list[Check]:
    """The targets of issue 2, for the levels this run measured."""
    checks = []
    if 1 in levels:
        direct, two_hop = ttft_p50(levels[1]["direct"]), ttft_p50(levels[1]["two_hop"])
        ok = direct is not None and two_hop is not None and two_hop <= direct + 3.0
        checks.append(Check("1 stream", "TTFT p50 <= direct + 3 ms", f"{two_hop} vs {direct} ms", ok))
    if 100 in levels:
        level = levels[100]
        eps = ratio(level["two_hop"]["events_per_s"], level["direct"]["events_per_s"])
        checks.append(Check("100 streams", "events/s >= 0.95x direct", fmt_ratio(eps), (eps or 0) >= 0.95))
        ttft = ratio(ttft_p50(level["two_hop"]), ttft_p50(level["direct"]))
        checks.append(
            Check("100 streams", "TTFT p50 <= 1.5x direct", fmt_ratio(ttft), ttft is not None and ttft <= 1.5)
        )
    if 500 in levels:
        level = levels[500]
        eps = ratio(level["two_hop"]["events_per_s"], level["direct"]["events_per_s"])
        checks.append(Check("500 streams", "events/s >= 0.75x direct", fmt_ratio(eps), (eps or 0) >= 0.75))
        errors = level["two_hop"]["errors"]
        checks.append(Check("500 streams", "0 errors", str(errors), errors == 0))
    for streams, level in sorted(levels.items()):
        if streams in (1, 100, 500):
            continue
        errors = level["two_hop"]["errors"] + level["direct"]["errors"]
        checks.append(Check(f"{streams} streams", "0 errors", str(errors), errors == 0))
    return checks


def cpu_per_event(side: dict[str, Any], path: str) -> str:
    """Who burnt the CPU: on the direct path only the fake works; on the others, the two
    hops are what we measure."""
    spent = side.get("cpu_us_per_event", {})
    if side["deltas"] < MIN_DELTAS_FOR_CPU:
        return "-"
    kind = REFERENCE_PATHS.get(path)
    if kind is not None:
        labels = {f"{kind}-hop-2": "outer", f"{kind}-hop-1": "inner"}
    elif path == "direct":
        labels = {"fake-upstream": "fake"}
    else:
        labels = {"gateway": "gateway", "chat-service": "chat"}
    return " ".join(f"{label} {spent[name]:.0f}" for name, label in labels.items() if name in spent)


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def reference_lines(levels: dict[int, dict[str, Any]]) -> list[str]:
    """TTFT against direct for every path, at the level measured with reference hops."""
    lines = []
    for streams, level in sorted(levels.items()):
        if not all(path in level for path in REFERENCE_PATHS):
            continue
        direct = ttft_p50(level["direct"])
        parts = [
            f"{PATH_LABELS[path]} {fmt_ratio(ratio(ttft_p50(level[path]), direct))}"
            for path in (*REFERENCE_PATHS, "two_hop")
        ]
        lines.append(f"{streams} streams, TTFT p50 vs direct: " + ", ".join(parts))
    if lines:
        lines.append(
            "  (tcp x2: two byte-for-byte asyncio proxies; aiohttp x2: two minimal aiohttp relays;"
            " see bench/reference_hops.py)"
        )
    return lines


def table(levels: dict[int, dict[str, Any]], checks: list[Check], chunks: int, interval: float) -> str:
    lines = [
        f"chat: {chunks} deltas {interval * 1000:.0f} ms apart per answer; "
        "TTFT = request sent -> first content event",
        f"{'streams':>7}  {'path':<10} {'requests':>8} {'errors':>6} {'TTFT p50':>10} "
        f"{'TTFT p99':>10} {'stream p50':>10} {'events/s':>9} {'ratio':>6}  CPU µs/event",
    ]
    for streams, level in sorted(levels.items()):
        for key, label in PATH_LABELS.items():
            if key not in level:
                continue
            side = level[key]
            share = ratio(side["events_per_s"], level["direct"]["events_per_s"]) if key != "direct" else None
            lines.append(
                f"{streams:>7}  {label:<10} {side['requests']:>8} {side['errors']:>6} "
                f"{fmt_ms(side['ttft_ms']['p50']):>10} {fmt_ms(side['ttft_ms']['p99']):>10} "
                f"{fmt_ms(side.get('stream_ms', {}).get('p50')):>10} {side['events_per_s']:>9.0f} "
                f"{fmt_ratio(share) if share is not None else '':>6}  {cpu_per_event(side, key)}"
            )
            for sample in side.get("error_samples", [])[:2]:
                lines.append(f"{'':>18}! {sample}")
    lines.extend(reference_lines(levels))
    lines.append("targets (two-hop vs direct, same run):")
    for check in checks:
        verdict = "PASS" if check.passed else "FAIL"
        lines.append(f"  {verdict}  {check.what:<12} {check.target:<28} measured {check.measured}")
    return "\n".join(lines)


def host_facts() -> dict[str, Any]:
    try:
        import uvloop  # noqa: F401

        client_loop = "uvloop"
    except ImportError:
        client_loop = "asyncio"
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "client_loop": client_loop,
    }


def write_results(name: str, result: dict[str, Any]) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{name}-{stamp}.json"
    text = json.dumps(result, indent=2)
    path.write_text(text)
    (RESULTS / f"{name}-latest.json").write_text(text)
    return str(path)


async def warm_up(stack: Stack, chunks: int, references: bool = False) -> None:
    """First requests pay for imports, connection pools and caches: not what we measure."""
    await run_loadgen(direct_spec(stack, WARMUP_STREAMS, 1, chunks))
    await run_loadgen(two_hop_spec(stack, WARMUP_STREAMS, 1, chunks))
    if references:
        for kind in REFERENCE_PATHS.values():
            await run_loadgen(reference_spec(stack, kind, WARMUP_STREAMS, 1, chunks))


async def main(
    quick: bool = False,
    *,
    levels: tuple[int, ...] = LEVELS,
    chunks: int | None = None,
    interval: float = INTERVAL,
    rounds: int | None = None,
    repeats: int | None = None,
    warmup: bool = True,
    references: bool | None = None,
    reference_level: int = REFERENCE_LEVEL,
    write: bool = True,
    echo: bool = True,
) -> dict[str, Any]:
    chunks = chunks if chunks is not None else (QUICK_CHUNKS if quick else FULL_CHUNKS)
    rounds_for = QUICK_ROUNDS if quick else FULL_ROUNDS
    repeats_for = QUICK_REPEATS if quick else FULL_REPEATS
    measured: dict[int, dict[str, Any]] = {}
    facts = host_facts()
    references = (not quick and reference_level in levels) if references is None else references
    async with Stack(chunks=chunks, interval=interval, with_reference_hops=references) as stack:
        if warmup:
            await warm_up(stack, chunks, references)
        for streams in levels:
            level_rounds = rounds if rounds is not None else rounds_for.get(streams, 1)
            level_repeats = repeats if repeats is not None else repeats_for.get(streams, 1)
            measured[streams] = await measure_level(
                stack,
                streams,
                level_rounds,
                chunks,
                level_repeats,
                references=references and streams == reference_level,
            )
    facts["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    checks = evaluate(measured)
    result = {
        "suite": "chat",
        "quick": quick,
        "chunks": chunks,
        "interval_s": interval,
        "host": facts,
        "levels": {str(n): level for n, level in measured.items()},
        "checks": [asdict(check) for check in checks],
        "passed": all(check.passed for check in checks),
    }
    if echo:
        print(table(measured, checks, chunks, interval), flush=True)
    if write:
        result["written_to"] = write_results("chat", result)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chat", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_CHUNKS} deltas and fewer rounds")
    parser.add_argument("--streams", type=int, nargs="+", default=list(LEVELS), help="concurrency levels")
    parser.add_argument("--chunks", type=int, default=None, help="deltas per answer")
    parser.add_argument("--interval", type=float, default=INTERVAL, help="seconds between deltas")
    parser.add_argument("--rounds", type=int, default=None, help="requests per stream, one after another")
    parser.add_argument("--repeats", type=int, default=None, help="load runs per path; the best is kept")
    parser.add_argument(
        "--references",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"also measure reference hops at {REFERENCE_LEVEL} streams (default: unless --quick)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    levels = tuple(args.streams)
    outcome = asyncio.run(
        main(
            args.quick,
            levels=levels,
            chunks=args.chunks,
            interval=args.interval,
            rounds=args.rounds,
            repeats=args.repeats,
            references=args.references,
        )
    )
    sys.exit(0 if outcome["passed"] else 1)
