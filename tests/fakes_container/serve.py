"""Serve one of the test fakes (tests/fakes/) on 0.0.0.0 inside a container, for the
end-to-end run of the compose stack:

    python -m tests.fakes_container.serve llm --port 9000
    python -m tests.fakes_container.serve swarmui --port 7801

The fakes are the same classes the unit tests start on loopback; only the address differs.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import web

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import FakeServer
from tests.fakes.swarmui import FakeSwarmUI
from tests.fakes_container.llm_script import respond

E2E_MODELS = ["e2e-model", "e2e-helper"]


def build_fake(kind: str) -> FakeServer:
    if kind == "llm":
        fake = FakeOpenAI(models=E2E_MODELS)
        fake.respond_with(respond)
        return fake
    return FakeSwarmUI()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def serve(kind: str, port: int) -> None:
    fake = build_fake(kind)
    fake.app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(fake.app, handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    fake.port = port
    print(f"fake {kind} listening on :{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["llm", "swarmui"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.kind, args.port))


if __name__ == "__main__":
    main()
