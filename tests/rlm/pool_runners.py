"""Runner containers of the sandbox pool, for the tests (RLM_SANDBOX=pool).

The pool image is built here from rlm-service/sandbox-pool.Dockerfile and the repository's
runner files (never stale), and each runner is started the way compose.yaml starts the
`sandbox` service: on an internal network (no egress), user 10002, read-only root, all
capabilities dropped, no-new-privileges, Docker's default seccomp profile, a tmpfs /tmp,
and memory, CPU and process limits for the whole container. The tests play rlm-service from
the host, whose address on that network is the one allowed peer.

Skipped, with the reason, where no docker engine or no local Python base image exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
# Per worktree (RLM_TEST_POOL_IMAGE), like sandbox_fixtures.TEST_IMAGE.
POOL_TEST_IMAGE = os.environ.get("RLM_TEST_POOL_IMAGE", "tinychat/sandbox:test")
BASE_IMAGES = ("tinychat/python-base:local", "python:3.11-slim")
PORT = 8010
RUNNERS = 3  # a depth-3 RLM job holds three sandboxes at once
SANDBOX_FILES = ("runner.py", "pool_runner.py", "seccomp.py")
LABEL = "tinychat.test-pool"


def build_pool_image(client: Any) -> None:
    base = next((b for b in BASE_IMAGES if _has_image(client, b)), None)
    if base is None:
        wanted = " or ".join(BASE_IMAGES)
        raise RuntimeError(f"no local Python base image ({wanted}); run scripts/docker/build-base-images.sh")
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        tar.add(REPO / "rlm-service/sandbox-pool.Dockerfile", arcname="Dockerfile")
        for name in SANDBOX_FILES:
            path = REPO / "rlm-service/tinychat_rlm/sandbox" / name
            if path.exists():
                tar.add(path, arcname=f"rlm-service/tinychat_rlm/sandbox/{name}")
    context.seek(0)
    client.images.build(
        fileobj=context, custom_context=True, tag=POOL_TEST_IMAGE, buildargs={"PYTHON_IMAGE": base}, rm=True
    )


def _has_image(client: Any, name: str) -> bool:
    try:
        client.images.get(name)
    except Exception:
        return False
    return True


@dataclass
class PoolRunners:
    client: Any
    network: Any
    gateway: str  # the host's address on the runners' network: the allowed peer
    containers: list[Any] = field(default_factory=list)

    def start_runner(self, **overrides: Any) -> Any:
        """One more runner, as compose's `sandbox` service runs it."""
        environment = {"SANDBOX_ALLOWED_PEERS": self.gateway, **overrides.pop("environment", {})}
        options: dict[str, Any] = {
            "detach": True,
            "name": f"tc-pool-runner-{uuid.uuid4().hex[:10]}",
            "network": self.network.name,
            "user": "10002:10002",
            "read_only": True,
            "tmpfs": {"/tmp": "size=16m,mode=1777,nosuid,nodev"},
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "mem_limit": "256m",
            "memswap_limit": "256m",
            "nano_cpus": 1_000_000_000,
            "pids_limit": 32,
            "environment": environment,
            "labels": {LABEL: "1"},
        }
        container = self.client.containers.run(POOL_TEST_IMAGE, **{**options, **overrides})
        self.containers.append(container)
        container.reload()
        return container

    def address(self, container: Any) -> str:
        container.reload()
        address: str = container.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"]
        return address

    def endpoint(self, container: Any) -> str:
        return f"{self.address(container)}:{PORT}"

    @property
    def runners(self) -> list[Any]:
        return self.containers[:RUNNERS]

    @property
    def endpoints(self) -> str:
        return ",".join(self.endpoint(c) for c in self.runners)

    def processes(self, container: Any) -> list[str]:
        """Every process in the runner's container, as the host sees it (docker top)."""
        return [
            " ".join(row[7:])
            for row in container.top(ps_args="-eo pid,ppid,user,stat,vsz,rss,tty,args")["Processes"]
        ]

    async def all_idle(self, within: float = 10.0) -> bool:
        """Every runner is back to its server alone (nothing of a job left running)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            counts = [len(await asyncio.to_thread(self.processes, c)) for c in self.runners]
            if all(count == 1 for count in counts):
                return True
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.1)

    def wait_listening(self, container: Any, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while container.exec_run(["python3", "-I", "/sandbox/pool_runner.py", "--check"]).exit_code != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"runner {container.name} did not listen: {container.logs()[-500:]!r}")
            time.sleep(0.1)

    def remove_all(self) -> None:
        for container in self.containers:
            with contextlib.suppress(Exception):
                container.remove(force=True)
        with contextlib.suppress(Exception):
            self.network.remove()


@pytest.fixture(scope="session", name="pool_runners")
def pool_runners_fixture() -> Iterator[PoolRunners]:
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        pytest.skip(f"no docker engine running ({type(exc).__name__})")
    try:
        build_pool_image(client)
    except Exception as exc:
        client.close()
        pytest.skip(f"could not build the sandbox pool image: {exc}")
    network = client.networks.create(f"tc-pool-test-{uuid.uuid4().hex[:10]}", driver="bridge", internal=True)
    network.reload()
    gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
    pool = PoolRunners(client, network, gateway)
    try:
        for _ in range(RUNNERS):
            pool.start_runner()
        for container in pool.runners:
            pool.wait_listening(container)
        yield pool
    finally:
        pool.remove_all()
        client.close()
