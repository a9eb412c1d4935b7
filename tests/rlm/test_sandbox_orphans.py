"""A docker sandbox does not outlive an rlm-service that dies without removing it: it stops
by itself, and the next rlm-service to start removes it, whatever its owner."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import uuid

import pytest
from tinychat_rlm.sandbox.docker import LABEL, OWNER_LABEL

from tests.rlm.sandbox_fixtures import (  # noqa: F401  (fixtures)
    TEST_IMAGE,
    _containers_of,
    docker_unavailable_fixture,
    make_factory,
)

pytestmark = pytest.mark.docker

# A process that starts a sandbox and dies at once, as a crashed rlm-service would: no
# kill(), no removal, just its connections closing.
ORPHANING_PROCESS = textwrap.dedent(
    """
    import asyncio, os, sys
    from tinychat_rlm.sandbox.docker import DockerSandboxFactory

    async def main():
        image, owner = sys.argv[1], sys.argv[2]
        factory = DockerSandboxFactory(image=image, owner=owner, memory="256m", pids=32, disk="16m")
        sandbox = await factory.create("context")
        print("started", flush=True)
        os._exit(0)

    asyncio.run(main())
    """
)


async def test_a_sandbox_whose_owner_died_stops_and_is_reaped(docker_unavailable: str | None) -> None:
    if docker_unavailable:
        pytest.skip(docker_unavailable)
    owner = f"tests-orphan-{uuid.uuid4().hex[:12]}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ORPHANING_PROCESS,
        TEST_IMAGE,
        owner,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate()
    assert b"started" in stdout, stderr.decode()

    async with asyncio.timeout(20):
        while await asyncio.to_thread(running_containers_of, owner):
            await asyncio.sleep(0.25)

    another_replica = make_factory("docker")
    try:
        await another_replica.reap_leftovers()
    finally:
        await another_replica.close()
    assert await asyncio.to_thread(_containers_of, owner) == []


def running_containers_of(owner: str) -> list[str]:
    import docker

    client = docker.from_env(timeout=10)
    try:
        labels = [f"{LABEL}=1", f"{OWNER_LABEL}={owner}"]
        return [c.id for c in client.containers.list(filters={"label": labels, "status": "running"})]
    finally:
        client.close()
