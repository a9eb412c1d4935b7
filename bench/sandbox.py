"""How fast is the RLM sandbox? (`python -m bench --only sandbox`)

Measured in one run:
  baseline        a bare `python3 -I -S -c pass` child, started and reaped (what any
                  process sandbox costs at least on this machine);
  process ready   ProcessSandboxFactory.create(): namespaces, limits, runner, handshake;
  docker ready    DockerSandboxFactory.create(): container created, attached, started,
                  handshake (when a docker engine runs and the sandbox image exists);
  cell            a trivial cell's round trip (`x = 1`) in a ready sandbox.
Targets (p50): process ready <= 50 ms, docker ready <= 500 ms, cell <= 5 ms.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rlm_service.sandbox import SandboxError, SandboxFactory
from rlm_service.sandbox.docker import DockerSandboxFactory
from rlm_service.sandbox.process import ProcessSandboxFactory, python_candidates

from bench.runtime import percentile

TARGETS_MS = {"process ready": 50.0, "docker ready": 500.0, "process cell": 5.0, "docker cell": 5.0}


async def no_llm(prompts: list[str]) -> list[str]:
    return ["" for _ in prompts]


async def timed(action: Callable[[], Awaitable[Any]], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        await action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def bare_python() -> None:
    process = await asyncio.create_subprocess_exec(python_candidates()[0], "-I", "-S", "-c", "pass", env={})
    await process.wait()


async def measure_backend(
    name: str, factory: SandboxFactory, starts: int, cells: int
) -> dict[str, list[float]]:
    # The probe (process) or the page cache (docker) is paid once, before measuring.
    await (await factory.create("")).kill()
    ready = []
    for _ in range(starts):
        started = time.perf_counter()
        sandbox = await factory.create("")
        ready.append((time.perf_counter() - started) * 1000)
        await sandbox.kill()  # not part of "ready": a job's end does not delay its answer
    async with await factory.create("") as sandbox:
        cell = await timed(lambda: sandbox.execute("x = 1", llm_query=no_llm, timeout=5), cells)
    await factory.close()
    return {f"{name} ready": ready, f"{name} cell": cell}


async def docker_factory() -> DockerSandboxFactory | str:
    image = os.environ.get("RLM_SANDBOX_IMAGE", "tinychat-sandbox:latest")
    factory = DockerSandboxFactory(image=image, owner=f"bench-{os.getpid()}")
    try:
        await factory.ping()
    except SandboxError as exc:
        return str(exc)
    return factory


def row(name: str, samples: list[float]) -> dict[str, Any]:
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    target = TARGETS_MS.get(name)
    return {
        "name": name,
        "n": len(samples),
        "p50_ms": round(p50 or 0, 2),
        "p99_ms": round(p99 or 0, 2),
        "target_ms": target,
        "passed": target is None or (p50 is not None and p50 <= target),
    }


async def main(quick: bool = False) -> dict[str, Any]:
    starts, cells = (5, 100) if quick else (30, 1000)
    measured: dict[str, list[float]] = {"baseline python": await timed(bare_python, starts)}
    process = ProcessSandboxFactory()
    measured |= await measure_backend("process", process, starts, cells)
    isolation = (await process.isolation()).mode
    docker = await docker_factory()
    if isinstance(docker, str):
        skipped = f"docker: skipped ({docker})"
    else:
        skipped = ""
        measured |= await measure_backend("docker", docker, max(3, starts // 3), cells)

    rows = [row(name, samples) for name, samples in measured.items()]
    baseline = rows[0]["p50_ms"] or 1.0
    print(f"process isolation: {isolation}")
    print(f"{'measure':<18}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'target':>10}{'× bare':>8}  ok")
    for r in rows:
        target = f"{r['target_ms']:.0f}" if r["target_ms"] else "-"
        ratio = f"{r['p50_ms'] / baseline:.1f}" if r["name"].endswith("ready") else "-"
        print(
            f"{r['name']:<18}{r['n']:>6}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}{target:>10}{ratio:>8}  "
            f"{'yes' if r['passed'] else 'NO'}"
        )
    if skipped:
        print(skipped)
    return {
        "isolation": isolation,
        "rows": rows,
        "skipped": skipped,
        "passed": all(r["passed"] for r in rows),
    }


if __name__ == "__main__":
    asyncio.run(main())
