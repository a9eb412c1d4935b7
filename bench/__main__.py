"""`python -m bench` (the body of `make bench`): every benchmark suite, one after another.

    python -m bench                 chat, then image_lag and sandbox when present
    python -m bench --quick         smaller numbers, for a look in a minute
    python -m bench --only chat     one suite

Each suite is a module `bench/<name>.py` with `async def main() -> dict` that prints its own
table (and may take `quick`). A suite whose module is missing or does not import is skipped
with a note; a suite that fails its targets makes the exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

SUITES = ("chat", "reasoning", "image_lag", "sandbox", "ui_render", "rlm_long")

SuiteMain = Callable[..., Awaitable[dict[str, Any]]]


def load_suite(name: str) -> SuiteMain | str:
    """The suite's `main`, or the reason it cannot run."""
    module_name = f"bench.{name}"
    if importlib.util.find_spec(module_name) is None:
        return "not written yet"
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        return f"does not import: {type(exc).__name__}: {exc}"
    suite_main: Callable[..., Awaitable[dict[str, Any]]] | None = getattr(module, "main", None)
    if suite_main is None or not inspect.iscoroutinefunction(suite_main):
        return "has no `async def main() -> dict`"
    return suite_main


async def run_suite(name: str, suite_main: SuiteMain, quick: bool) -> dict[str, Any]:
    accepts_quick = "quick" in inspect.signature(suite_main).parameters
    result = await (suite_main(quick=quick) if accepts_quick else suite_main())
    return result if isinstance(result, dict) else {"result": result}


def suite_passed(result: dict[str, Any]) -> bool:
    return result.get("passed", True) is not False


async def run_all(names: list[str], quick: bool) -> bool:
    all_passed = True
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        suite_main = load_suite(name)
        if isinstance(suite_main, str):
            print(f"skipped: bench/{name}.py {suite_main}", flush=True)
            continue
        try:
            result = await run_suite(name, suite_main, quick)
        except Exception:
            traceback.print_exc()
            print(f"{name}: FAILED to run", flush=True)
            all_passed = False
            continue
        passed = suite_passed(result)
        all_passed &= passed
        print(f"{name}: {'PASS' if passed else 'FAIL'}", flush=True)
    return all_passed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="TinyChat's benchmarks.")
    parser.add_argument("--quick", action="store_true", help="smaller numbers, quicker")
    parser.add_argument("--only", choices=SUITES, action="append", help="run only this suite (repeatable)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.only or list(SUITES)
    return 0 if asyncio.run(run_all(names, args.quick)) else 1


if __name__ == "__main__":
    sys.exit(main())
