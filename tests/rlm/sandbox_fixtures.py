"""Fixtures for the sandbox tests: a factory per backend, with small limits (this machine
is shared), and checks that a sandbox left nothing running.

The docker backend runs against an image built here from the repository's runner (so it is
never stale); it is skipped, with the reason, when no engine runs. The pool backend runs
against runner containers started here from the pool image (also built from the repository),
under the constraints compose and Kubernetes' restricted profile give them: non-root,
read-only root, no capabilities, no-new-privileges, Docker's default seccomp profile, and
memory, CPU and process limits (see tests/rlm/pool_runners.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import tarfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tinychat_rlm.sandbox import CellResult, Sandbox, SandboxFactory
from tinychat_rlm.sandbox.docker import LABEL, OWNER_LABEL, DockerSandboxFactory
from tinychat_rlm.sandbox.pool import PoolSandboxFactory
from tinychat_rlm.sandbox.process import ProcessSandboxFactory

from tests.support.net import free_port
from tests.support.polling import wait_until_serving

REPO = Path(__file__).resolve().parents[2]
# Per worktree (RLM_TEST_SANDBOX_IMAGE), so parallel checkouts do not test each other's runner.
TEST_IMAGE = os.environ.get("RLM_TEST_SANDBOX_IMAGE", "tinychat-sandbox:test")
BASE_IMAGES = ("tinychat/python-base:local", "python:3.11-slim")
SMALL_MEMORY = 256 * 1024**2
SMALL_PIDS = 32


def _build_test_image() -> str | None:
    """Build TEST_IMAGE from sandbox.Dockerfile and runner.py alone; the reason if we cannot."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:
        return f"no docker engine running ({type(exc).__name__})"
    try:
        base = next((b for b in BASE_IMAGES if _has_image(client, b)), None)
        if base is None:
            wanted = " or ".join(BASE_IMAGES)
            return f"no local Python base image ({wanted}); run scripts/docker/build-base-images.sh"
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            tar.add(REPO / "rlm-service/sandbox.Dockerfile", arcname="Dockerfile")
            tar.add(
                REPO / "rlm-service/tinychat_rlm/sandbox/runner.py",
                arcname="rlm-service/tinychat_rlm/sandbox/runner.py",
            )
        context.seek(0)
        client.images.build(
            fileobj=context, custom_context=True, tag=TEST_IMAGE, buildargs={"PYTHON_IMAGE": base}, rm=True
        )
    except Exception as exc:
        return f"could not build the sandbox image: {exc}"
    finally:
        client.close()
    return None


def _has_image(client: object, name: str) -> bool:
    try:
        client.images.get(name)  # type: ignore[attr-defined]
    except Exception:
        return False
    return True


@pytest.fixture(scope="session", name="docker_unavailable")
def docker_unavailable_fixture() -> str | None:
    return _build_test_image()


def process_sandbox_unavailable() -> str | None:
    """Why the process backend cannot run here (not root, no bubblewrap, …), or None. In CI it
    must run, so there the tests fail instead of skipping."""
    if os.environ.get("CI"):
        return None
    from tinychat_rlm.sandbox.process import probe_isolation

    return asyncio.run(probe_isolation()).problem


@pytest.fixture(scope="session", name="process_unavailable")
def process_unavailable_fixture() -> str | None:
    return process_sandbox_unavailable()


def _runsc_unavailable() -> str | None:
    try:
        import docker

        client = docker.from_env(timeout=10)
        try:
            runtimes = client.info().get("Runtimes") or {}
        finally:
            client.close()
    except Exception as exc:
        return f"no docker engine running ({type(exc).__name__})"
    if "runsc" not in runtimes:
        return "the docker engine has no runsc runtime (scripts/docker/start-dockerd.sh registers it)"
    return None


@pytest.fixture(
    name="sandbox_backend",
    params=[
        "process",
        pytest.param("docker", marks=pytest.mark.docker),
        pytest.param("docker-runsc", marks=pytest.mark.docker),
        pytest.param("pool", marks=pytest.mark.docker),
    ],
)
def sandbox_backend_fixture(request: pytest.FixtureRequest) -> str:
    if request.param == "process" and (reason := request.getfixturevalue("process_unavailable")):
        pytest.skip(reason)
    if request.param.startswith("docker"):
        reason = request.getfixturevalue("docker_unavailable")
        if request.param == "docker-runsc":
            reason = reason or _runsc_unavailable()
        if reason:
            pytest.skip(reason)
    return request.param


def make_factory(backend: str, **overrides: object) -> SandboxFactory:
    if backend.startswith("docker"):
        options: dict = {"image": TEST_IMAGE, "memory": "256m", "pids": SMALL_PIDS, "disk": "16m"}
        options["runtime"] = "runsc" if backend == "docker-runsc" else ""
        options["owner"] = f"tests-{uuid.uuid4().hex[:12]}"
        return DockerSandboxFactory(**{**options, **overrides})
    if backend == "pool":  # overrides name the runners: endpoints=pool_runners.endpoints
        options = {"memory_bytes": SMALL_MEMORY, "disk_bytes": 16 * 1024**2, "wait": 5.0}
        return PoolSandboxFactory(**{**options, **overrides})
    options = {
        "memory_bytes": SMALL_MEMORY,
        "processes": SMALL_PIDS,
        "disk_bytes": 16 * 1024**2,
        "cpu_seconds": 60,
    }
    return ProcessSandboxFactory(**{**options, **overrides})


@pytest.fixture(name="sandboxes")
async def sandboxes_fixture(
    sandbox_backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[SandboxFactory]:
    pool = request.getfixturevalue("pool_runners") if sandbox_backend == "pool" else None
    factory = make_factory(sandbox_backend, **({"endpoints": pool.endpoints} if pool else {}))
    yield factory
    await factory.close()
    if pool is not None:
        assert await pool.all_idle(), "a runner was still busy after its job ended"
    if isinstance(factory, DockerSandboxFactory):
        assert await asyncio.to_thread(_containers_of, factory.owner) == [], "sandbox containers left behind"


def _containers_of(owner: str) -> list[str]:
    import docker

    client = docker.from_env(timeout=10)
    try:
        found = client.containers.list(all=True, filters={"label": [f"{LABEL}=1", f"{OWNER_LABEL}={owner}"]})
        return [c.id for c in found]
    finally:
        client.close()


async def answer_upper(prompts: list[str]) -> list[str]:
    """A stand-in language model: answers each prompt with it in upper case."""
    return [p.upper() for p in prompts]


async def run(sandbox: Sandbox, code: str, timeout: float = 20.0) -> CellResult:
    return await sandbox.execute(code, llm_query=answer_upper, timeout=timeout)


async def assert_healthy(factory: SandboxFactory) -> None:
    """The factory still gives working sandboxes, so the service is unharmed."""
    async with asyncio.timeout(30):
        sandbox = await factory.create("still fine")
        try:
            result = await run(sandbox, "print(context, 6 * 7)")
        finally:
            await sandbox.kill()
    assert result.stdout == "still fine 42\n"


def processes_with(marker: str) -> list[int]:
    """Host pids whose command line holds `marker` (sandbox processes are visible to the host,
    whichever backend started them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def wait_until_gone(marker: str, within: float = 10.0) -> list[int]:
    """Polls until no process holds `marker`; returns what is left after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (left := processes_with(marker)) and loop.time() < deadline:
        await asyncio.sleep(0.1)
    return left


@contextlib.asynccontextmanager
async def rlm_service_process(command: list[str], env: dict[str, str]) -> AsyncIterator[str]:
    """rlm-service started by `command` (its environment `env` plus a free PORT on loopback),
    as its URL once /healthz answers; stopped on exit."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *command, env={**env, "PORT": str(port), "HOST": "127.0.0.1"}, cwd=REPO
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_serving(url + "/healthz", process, f"rlm-service ({command[0]})", 60)
        yield url
    finally:
        process.terminate()
        await process.wait()


async def assert_rlm_off_and_no_code_runs(url: str, marker: Path, reason: str) -> dict[str, Any]:
    """rlm-service at `url` says RLM is off, giving `reason` and a way out (the pool), and
    refuses a job (503) whose code would write `marker`, before any code runs. Its config."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/v1/rlm/config") as answer:
            config: dict[str, Any] = await answer.json()
        assert config["enabled"] is False
        assert reason in config["problem"] and "RLM_SANDBOX=pool" in config["problem"]

        code = f"open({str(marker)!r}, 'w').write('ran')"
        body = {"rlm": True, "messages": [{"role": "user", "content": f"```repl\n{code}\n```"}]}
        async with session.post(url + "/v1/rlm/stream", json=body) as answer:
            error = await answer.json()
        assert answer.status == 503
        assert error["error"] == "sandbox_unavailable" and reason in error["detail"]
    assert not await asyncio.to_thread(marker.exists)
    return config
