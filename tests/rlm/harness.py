"""The RLM test stack: a scripted fake LLM (the fake OpenAI upstream answering from a
per-test script) behind the real chat-service, behind the real rlm-service with a real
sandbox backend; plus helpers to read streams and to check that sandboxes are gone."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from tinychat_chat.app import create_app as create_chat_app
from tinychat_common.metrics import METRICS
from tinychat_rlm.app import LIMITER
from tinychat_rlm.app import create_app as create_rlm_app
from tinychat_rlm.config import RlmSettings
from tinychat_rlm.sandbox import Sandbox, SandboxFactory, make_sandbox_factory

from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.support.chat_service import chat_settings_for
from tests.support.net import server_url
from tests.support.sse import read_events

ROOT_MARKER = "persistent Python REPL"  # in rlm-service's system prompt


def repl(code: str, before: str = "Let me look.") -> str:
    """A root-model turn: some prose, then one ```repl block, closed."""
    return f"{before}\n```repl\n{code.strip()}\n```\n"


class ScriptedLLM:
    """Answers the fake upstream: root-model turns from `turns`, in order, cut at the
    request's `stop` sequences as a real API does (unless `honour_stop` is off); each
    sub-call prompt by `subcall(prompt)`. Records what it was asked."""

    def __init__(
        self,
        fake: FakeOpenAI,
        turns: list[str | Reply],
        subcall: Callable[[str], str] = lambda prompt: "ok",
        *,
        honour_stop: bool = True,
    ) -> None:
        self.turns = list(turns)
        self.subcall = subcall
        self.honour_stop = honour_stop
        self.root_requests: list[dict[str, Any]] = []
        self.subcall_prompts: list[str] = []
        fake.respond_with(self.reply)

    def reply(self, body: dict[str, Any]) -> Reply:
        messages = body["messages"]
        if messages[0]["role"] == "system" and ROOT_MARKER in messages[0]["content"]:
            self.root_requests.append(body)
            turn = self.turns.pop(0) if self.turns else "The script has no more turns."
            if isinstance(turn, Reply):
                return turn
            return Reply(text=self._cut(turn, body.get("stop")))
        prompt = messages[-1]["content"]
        self.subcall_prompts.append(prompt)
        return Reply(text=self.subcall(prompt))

    def _cut(self, text: str, stop: list[str] | str | None) -> str:
        if not self.honour_stop or not stop:
            return text
        for sequence in [stop] if isinstance(stop, str) else stop:
            at = text.find(sequence)
            if at >= 0:
                text = text[:at]
        return text

    def feedback(self, turn: int) -> str:
        """The last message rlm-service sent with root request number `turn` (from 1)."""
        return self.root_requests[turn - 1]["messages"][-1]["content"]


class RecordingSandboxes(SandboxFactory):
    """The real backend, with a list of every sandbox it made (to check they are gone)."""

    def __init__(self, inner: SandboxFactory) -> None:
        self.inner = inner
        self.name = inner.name
        self.created: list[Sandbox] = []

    async def create(self, context: str | list[str]) -> Sandbox:
        sandbox = await self.inner.create(context)
        self.created.append(sandbox)
        return sandbox

    async def reap_leftovers(self) -> int:
        return await self.inner.reap_leftovers()

    async def check(self) -> None:
        await self.inner.check()

    async def close(self) -> None:
        await self.inner.close()


def docker_sandbox_unavailable(settings: RlmSettings) -> str | None:
    """Why the docker backend cannot run here, or None when it can."""
    if not shutil.which("docker") and not os.path.exists("/run/docker.sock"):
        return "no docker engine on this machine"
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            client.images.get(settings.rlm_sandbox_image)
        finally:
            client.close()
    except Exception as exc:
        return f"docker sandbox unavailable ({settings.rlm_sandbox_image}): {type(exc).__name__}: {exc}"
    return None


@dataclass
class RlmStack:
    fake: FakeOpenAI
    chat_url: str
    client: TestClient
    sandboxes: RecordingSandboxes
    settings: RlmSettings
    extra: list[Any] = field(default_factory=list)

    @property
    def app(self) -> Any:
        return self.client.server.app

    async def tokens_in_use(self) -> int:
        return await self.app[LIMITER].in_use()

    async def holds_tokens(self, count: int) -> bool:
        return await self.tokens_in_use() == count

    async def stream(self, messages: list[dict[str, Any]], **body: Any) -> list[dict[str, Any]]:
        async with self.client.post("/v1/rlm/stream", json={"messages": messages, **body}) as response:
            return await read_events(response)

    def metric(self, name: str, **labels: str) -> float:
        return self.app[METRICS].registry.get_sample_value(name, labels) or 0.0


async def start_chat_service(fake: FakeOpenAI) -> TestServer:
    settings = chat_settings_for(
        fake,
        openai_api_key="sk-test-rlm-secret",
        upstream_first_byte_timeout=10.0,
        upstream_idle_timeout=10.0,
    )
    server = TestServer(create_chat_app(settings))
    await server.start_server()  # with handler cancellation, like run_service
    return server


def rlm_settings(chat_url: str, backend: str, **overrides: Any) -> RlmSettings:
    values: dict[str, Any] = {
        "chat_service_url": chat_url,
        "rlm_sandbox": backend,
        "rlm_timeout": 30.0,
        "rlm_cell_timeout": 10.0,
        "rlm_max_iterations": 6,
        "chat_service_timeout": 15.0,
        "keepalive_seconds": 5.0,
    }
    values.update(overrides)
    return RlmSettings(**values)


async def start_rlm_service(settings: RlmSettings) -> tuple[TestClient, RecordingSandboxes]:
    # An owner of its own: starting this app must not reap other tests' containers.
    sandboxes = RecordingSandboxes(make_sandbox_factory(settings, owner=f"rlm-test-{uuid.uuid4().hex[:12]}"))
    server = TestServer(create_rlm_app(settings, sandboxes=sandboxes))
    client = TestClient(server)
    await client.start_server()
    return client, sandboxes


async def start_gateway(stack: RlmStack, web_dir: str, **overrides: Any) -> TestClient:
    """The real gateway in front of the stack's chat-service and rlm-service."""
    from tinychat_gateway.app import create_app as create_gateway_app
    from tinychat_gateway.config import GatewaySettings

    values: dict[str, Any] = {
        "chat_service_url": stack.chat_url,
        "rlm_service_url": server_url(stack.client.server),
        "image_service_url": "http://127.0.0.1:9",
        "web_dir": web_dir,
    }
    values.update(overrides)
    client = TestClient(TestServer(create_gateway_app(GatewaySettings(**values))))
    await client.start_server()
    stack.extra.append(client)
    return client


def steps(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["rlm"] for e in events if "rlm" in e and e["rlm"]["kind"] == kind]


async def sandbox_gone(sandbox: Sandbox) -> bool:
    """Killed, and nothing of it left on the machine (process or container)."""
    if sandbox.alive:
        return False
    pid = getattr(sandbox, "pid", None)
    if pid is not None and _process_exists(pid):
        return False
    container = getattr(sandbox, "container_id", None) or getattr(sandbox, "container_name", None)
    if container:
        return not await asyncio.to_thread(_container_exists, container)
    return True


def _process_exists(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def _container_exists(name: str) -> bool:
    import docker

    client = docker.from_env(timeout=5)
    try:
        client.containers.get(name)
        return True
    except docker.errors.NotFound:
        return False
    finally:
        client.close()
