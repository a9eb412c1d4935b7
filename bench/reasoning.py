"""The reasoning benchmark: does splitting a leading `<think>` block out of the answer slow
the relay? 100 concurrent streams through gateway -> chat-service, half of them answers
whose first half is a `<think>` block (relayed as `reasoning` events), half plain answers,
interleaved in the same run.

    python -m bench --only reasoning        (or: python -m bench.reasoning [--quick])
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import asdict
from typing import Any

from bench.chat import Check, fmt_ms, fmt_ratio, host_facts, measured_run, ratio, run_loadgen, write_results
from bench.fake_upstream import THINK_MODEL
from bench.loadgen import LoadSpec
from bench.stack import MODEL, Stack

STREAMS = 100
CHUNKS = 100
QUICK_CHUNKS = 30
INTERVAL = 0.02
FULL_REPEATS = 4
QUICK_REPEATS = 1
TARGET = 0.95  # think answers' events/s at least 95% of plain answers'
PROMPT = [{"role": "user", "content": "Think, then answer at length."}]


def spec(stack: Stack, model: str, streams: int, chunks: int) -> LoadSpec:
    body = {"model": model, "messages": PROMPT}
    return LoadSpec(stack.gateway_url, body, "tinychat", streams, rounds=1, expected_deltas=chunks)


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return max(runs, key=lambda run: (-run["errors"], run["events_per_s"]))


def table(sides: dict[str, dict[str, Any]], check: Check, chunks: int) -> str:
    lines = [
        f"reasoning: {STREAMS} streams through gateway -> chat-service, {chunks} deltas "
        f"{INTERVAL * 1000:.0f} ms apart; think = the first half inside a leading <think> block",
        f"{'answers':<8} {'requests':>8} {'errors':>6} {'TTFT p50':>10} {'TTFT p99':>10} "
        f"{'events/s':>9}  all runs",
    ]
    for name, side in sides.items():
        runs = ", ".join(f"{e:.0f}" for e in side["all_events_per_s"])
        lines.append(
            f"{name:<8} {side['requests']:>8} {side['errors']:>6} {fmt_ms(side['ttft_ms']['p50']):>10} "
            f"{fmt_ms(side['ttft_ms']['p99']):>10} {side['events_per_s']:>9.0f}  {runs}"
        )
    verdict = "PASS" if check.passed else "FAIL"
    lines.append(f"  {verdict}  {check.what:<12} {check.target:<34} measured {check.measured}")
    return "\n".join(lines)


async def main(quick: bool = False, *, write: bool = True, echo: bool = True) -> dict[str, Any]:
    chunks = QUICK_CHUNKS if quick else CHUNKS
    repeats = QUICK_REPEATS if quick else FULL_REPEATS
    models = {"plain": MODEL, "think": THINK_MODEL}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in models}
    facts = host_facts()
    async with Stack(chunks=chunks, interval=INTERVAL, with_reference_hops=False) as stack:
        for model in models.values():
            await run_loadgen(spec(stack, model, 20, chunks))  # warm-up
        for repeat in range(repeats):
            # Interleaved, and in alternating order (plain, think; think, plain; …): a
            # disturbance, or whatever a run leaves behind for the next, hits both alike.
            order = list(models.items()) if repeat % 2 == 0 else list(reversed(models.items()))
            for name, model in order:
                runs[name].append(await measured_run(stack, spec(stack, model, STREAMS, chunks)))
    sides = {
        name: {**best(r), "all_events_per_s": [x["events_per_s"] for x in r]} for name, r in runs.items()
    }
    share = ratio(sides["think"]["events_per_s"], sides["plain"]["events_per_s"])
    errors = sides["think"]["errors"] + sides["plain"]["errors"]
    check = Check(
        f"{STREAMS} streams",
        f"think events/s >= {TARGET:.2f}x plain, 0 errors",
        f"{fmt_ratio(share)}, {errors} errors",
        (share or 0) >= TARGET and errors == 0,
    )
    result = {
        "suite": "reasoning",
        "quick": quick,
        "chunks": chunks,
        "host": facts,
        "sides": sides,
        "checks": [asdict(check)],
        "passed": check.passed,
    }
    if echo:
        print(table(sides, check, chunks), flush=True)
    if write:
        result["written_to"] = write_results("reasoning", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.reasoning", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_CHUNKS} deltas, one run per side")
    outcome = asyncio.run(main(parser.parse_args().quick))
    sys.exit(0 if outcome["passed"] else 1)
