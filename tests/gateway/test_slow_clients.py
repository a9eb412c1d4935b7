"""Slow clients, as slowloris sends them: a request head trickled byte by byte, a body
trickled for minutes, a hundred idle connections from one address. Each is cut off with
408 (or refused) in bounded time, by the runner every service is served with."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from tinychat_chat.app import create_app as create_chat_app
from tinychat_common.service import make_runner
from tinychat_gateway.app import create_app as create_gateway_app

from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.fakes.tinychat_service import FakeService
from tests.support.chat_service import chat_settings_for
from tests.support.messages import chat_body

pytestmark = pytest.mark.timeout(60)

Serve = Callable[..., Any]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serve an app as run_service does (make_runner); returns its port."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application, settings: Any) -> int:
        runner = make_runner(app, settings)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    yield start
    for runner in runners:
        await runner.cleanup()


async def answer_of(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sends until it closes, within `seconds`."""
    async with asyncio.timeout(seconds):
        return await reader.read()


async def trickle(writer: asyncio.StreamWriter, data: bytes, every: float) -> None:
    for i in range(len(data)):
        if writer.is_closing():
            return
        writer.write(data[i : i + 1])
        try:
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(every)


@pytest.fixture
def gateway_app(gateway_settings: Callable[..., Any]) -> Callable[..., tuple[web.Application, Any]]:
    def make(**overrides: Any) -> tuple[web.Application, Any]:
        settings = gateway_settings(**overrides)
        return create_gateway_app(settings), settings

    return make


@pytest.mark.parametrize("service", ["gateway", "chat-service"])
async def test_a_trickled_request_head_gets_408_within_the_deadline(
    serve: Serve, gateway_app, fake_openai: FakeOpenAI, service: str
) -> None:
    if service == "gateway":
        app, settings = gateway_app(request_header_timeout=1.0)
    else:
        settings = chat_settings_for(fake_openai, request_header_timeout=1.0)
        app = create_chat_app(settings)
    port = await serve(app, settings)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"POST /v1/chat/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 500 + b"\r\n\r\n"
    sending = asyncio.create_task(trickle(writer, head, 0.05))
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await answer_of(reader, 15)  # 10x what it needs on a busy machine
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert loop.time() - started < 10
    sending.cancel()
    writer.close()


async def test_a_connection_that_sends_nothing_gets_408(serve: Serve, gateway_app) -> None:
    app, settings = gateway_app(request_header_timeout=0.5)
    port = await serve(app, settings)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert (await answer_of(reader, 10)).startswith(b"HTTP/1.1 408")
    writer.close()


async def test_a_trickled_20mb_body_gets_408_and_reaches_no_service(
    serve: Serve, gateway_app, rlm_service: FakeService
) -> None:
    app, settings = gateway_app(request_body_timeout=1.0)
    port = await serve(app, settings)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /api/chat/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 20000000\r\n\r\n" + b'{"messages": [{"role": "user", "content": "'
    )
    sending = asyncio.create_task(trickle(writer, b"x" * 100_000, 0.01))
    async with asyncio.timeout(15):
        answer = await reader.readuntil(b"\r\n\r\n")
        answer += await reader.read(200)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert b"request_timeout" in answer
    assert rlm_service.history == []
    sending.cancel()
    writer.close()


async def test_connections_per_client_are_capped_but_not_for_trusted_proxies(
    serve: Serve, gateway_app
) -> None:
    app, settings = gateway_app(max_connections_per_client=3, request_header_timeout=30)
    port = await serve(app, settings)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert (await answer_of(reader, 10)).startswith(b"HTTP/1.1 429")
    writer.close()
    # One of the three leaves: a new one is welcome again.
    held.pop()[1].close()
    await asyncio.sleep(0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert (await answer_of(reader, 10)).startswith(b"HTTP/1.1 200")
    for _, w in held:
        w.close()

    app, settings = gateway_app(max_connections_per_client=2, trusted_proxies="127.0.0.1/32")
    port = await serve(app, settings)
    many = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
    reader, writer = many[-1]
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert (await answer_of(reader, 10)).startswith(b"HTTP/1.1 200")
    for _, w in many:
        w.close()


async def test_a_long_answer_is_not_cut_by_the_request_deadlines(
    serve: Serve, gateway_app, fake_openai: FakeOpenAI
) -> None:
    import aiohttp

    fake_openai.enqueue(Reply(text=" ".join(["word"] * 30), chunk_delay=0.1))  # 3 s of streaming
    app, settings = gateway_app(request_header_timeout=0.5, request_body_timeout=0.5)
    port = await serve(app, settings)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{port}/api/chat/stream", json=chat_body()) as response,
    ):
        body = await response.read()
    assert response.status == 200 and b'"done":true' in body
