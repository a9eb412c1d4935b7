"""A real Redis for tests: a redis-server started on a free loopback port (stoppable and
restartable mid-test, for the "Redis went away" cases), or the same in a container started
with testcontainers from a local image when Docker runs."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from typing import Protocol, Self

import redis.asyncio as redis

from tests.support.net import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_IMAGE_DEFAULT = "tinychat/redis:local"  # built by scripts/docker/build-base-images.sh


class Redis(Protocol):
    url: str

    async def stop(self) -> None:
        """Kill Redis now, as a crash would."""


async def wait_until_answering(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        for _ in range(200):
            try:
                if await client.ping():
                    return
            except Exception:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"Redis at {url} did not start")
    finally:
        await client.aclose()


class RedisServer:
    """`async with RedisServer() as server:` → `server.url`; `stop()` / `start()` at will."""

    def __init__(self, password: str = "") -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.password = password  # set: the server requires it, as in compose and Kubernetes
        self._dir = tempfile.mkdtemp(prefix="tinychat-redis-")
        self._process: asyncio.subprocess.Process | None = None

    @staticmethod
    def available() -> bool:
        return os.access(REDIS_SERVER, os.X_OK)

    async def start(self) -> Self:
        command = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self._dir,
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        self._process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        await wait_until_answering(
            self.url.replace("://", f"://:{self.password}@") if self.password else self.url
        )
        return self

    async def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            await asyncio.wait_for(self._process.wait(), 10)
            self._process = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


def container_redis_unavailable() -> str | None:
    """Why Redis cannot run under testcontainers here, or None when it can."""
    image = os.environ.get("REDIS_IMAGE", REDIS_IMAGE_DEFAULT)
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            client.ping()
            client.images.get(image)
        finally:
            client.close()
    except Exception as exc:
        return f"no docker engine or no local image {image} ({type(exc).__name__})"
    return None


class RedisInContainer:
    """Redis in a container from a local image (REDIS_IMAGE): nothing is pulled, and Ryuk,
    which would need pulling, stays off; the container is removed at the end."""

    def __init__(self) -> None:
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer

        testcontainers_config.ryuk_disabled = True
        image = os.environ.get("REDIS_IMAGE", REDIS_IMAGE_DEFAULT)
        self._container = DockerContainer(image).with_exposed_ports(6379)
        self.url = ""

    async def start(self) -> Self:
        await asyncio.to_thread(self._container.start)
        host = self._container.get_container_host_ip()
        port = await asyncio.to_thread(self._container.get_exposed_port, 6379)
        self.url = f"redis://{host}:{port}/0"
        await wait_until_answering(self.url)
        return self

    async def stop(self) -> None:
        await asyncio.to_thread(self._container.get_wrapped_container().kill)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self._container.stop)
