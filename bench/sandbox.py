"""How fast is the RLM sandbox? (`python -m bench --only sandbox`)

Measured in one run:
  baseline        a bare `python3 -I -S -c pass` child, started and reaped (what any
                  process sandbox costs at least on this machine);
  process ready   ProcessSandboxFactory.create(): namespaces, limits, runner, handshake;
  docker ready    DockerSandboxFactory.create(): container created, attached, started,
                  handshake (when a docker engine runs and the sandbox image exists);
  pool ready      PoolSandboxFactory.create() on an idle runner of the sandbox pool (a
                  runner container started here under the compose constraints): connect,
                  greeting, the runner forks the job child (limits, seccomp filter), handshake;
  pool clean-up   from the end of a job that left a file and a background process behind to
                  the runner greeting the next job as idle (it killed every process of the
                  job and wiped its scratch space meanwhile);
  cell            a trivial cell's round trip (`x = 1`) in a ready sandbox.
Targets (p50): process ready <= 50 ms, docker ready <= 500 ms, pool ready <= 20 ms,
pool clean-up <= 50 ms, cell <= 5 ms.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tinychat_rlm.sandbox import SandboxError, SandboxFactory
from tinychat_rlm.sandbox.docker import DockerSandboxFactory
from tinychat_rlm.sandbox.pool import PoolSandboxFactory
from tinychat_rlm.sandbox.process import ProcessSandboxFactory, python_candidates

from bench.runtime import percentile

TARGETS_MS = {
    "process ready": 50.0,
    "docker ready": 500.0,
    "pool ready": 20.0,
    "pool clean-up": 50.0,
    "process cell": 5.0,
    "docker cell": 5.0,
    "pool cell": 5.0,
}
# What a job leaves for the runner to clean up: a file and a process in a session of its own.
LEAVE_BEHIND = (
    "import subprocess, sys\n"
    "open('left-behind', 'w').write('x' * 100_000)\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)"
)


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


async def measure_pool(factory: PoolSandboxFactory, starts: int, cells: int) -> dict[str, list[float]]:
    (address,) = await factory.runners()
    await (await factory.create("")).kill()
    ready, cleanup = [], []
    for _ in range(starts):
        await asyncio.sleep(0.1)  # the runner is idle again (its clean-up takes milliseconds)
        started = time.perf_counter()
        sandbox = await factory.create("")
        ready.append((time.perf_counter() - started) * 1000)
        await sandbox.execute(LEAVE_BEHIND, llm_query=no_llm, timeout=10)
        ended = time.perf_counter()
        await sandbox.kill()
        while (claimed := await factory.claim(address)) is None:
            pass  # busy: still cleaning up
        cleanup.append((time.perf_counter() - ended) * 1000)
        claimed[1].close()
    await asyncio.sleep(0.1)
    async with await factory.create("") as warm:
        cell = await timed(lambda: warm.execute("x = 1", llm_query=no_llm, timeout=5), cells)
    await factory.close()
    return {"pool ready": ready, "pool clean-up": cleanup, "pool cell": cell}


def start_pool_runner() -> tuple[Any, str] | str:
    """One runner container (the image built from the repository, as the tests build it);
    (the runners' handle, its endpoint), or why it cannot run here."""
    try:
        import docker

        from tests.rlm.pool_runners import PoolRunners, build_pool_image

        client = docker.from_env(timeout=30)
        client.ping()
        build_pool_image(client)
        network = client.networks.create(f"tc-bench-pool-{os.getpid()}", driver="bridge", internal=True)
        network.reload()
        runners = PoolRunners(client, network, network.attrs["IPAM"]["Config"][0]["Gateway"])
        try:
            container = runners.start_runner(mem_limit="512m", memswap_limit="512m", pids_limit=64)
            runners.wait_listening(container)
        except BaseException:
            runners.remove_all()
            raise
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return runners, runners.endpoint(container)


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
    pool = await asyncio.to_thread(start_pool_runner)
    if isinstance(pool, str):
        skipped = "\n".join(filter(None, [skipped, f"pool: skipped ({pool})"]))
    else:
        runners, endpoint = pool
        try:
            measured |= await measure_pool(PoolSandboxFactory(endpoints=endpoint), starts, cells)
        finally:
            await asyncio.to_thread(runners.remove_all)

    rows = [row(name, samples) for name, samples in measured.items()]
    baseline = rows[0]["p50_ms"] or 1.0
    print(f"process isolation: {isolation}")
    print(f"{'measure':<18}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'target':>10}{'× bare':>8}  ok")
    for r in rows:
        target = f"{r['target_ms']:.0f}" if r["target_ms"] else "-"
        ratio = f"{r['p50_ms'] / baseline:.1f}" if r["name"].endswith(("ready", "clean-up")) else "-"
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
