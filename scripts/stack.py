"""Run the whole TinyChat stack in the foreground: `make run`.

Starts chat-service, image-service, rlm-service and the gateway as child processes (and the
built-in demo model when no OPENAI_API_URL is set), prefixes their logs, waits until every
one is ready, and stops them all on Ctrl-C or when any of them dies.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import urllib.request
from dataclasses import dataclass, field

DEMO_MODEL = "tinychat-demo"
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


@dataclass
class Child:
    name: str
    module: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None

    @property
    def ready_url(self) -> str:
        path = "/v1/models" if self.module == "tinychat_demo" else "/readyz"
        return f"http://127.0.0.1:{self.port}{path}"


def plan_children(environ: dict[str, str]) -> tuple[list[Child], bool]:
    """What to start, and whether the demo model stands in for a real LLM API."""
    gateway_port = int(environ.get("PORT", "8000"))
    chat_port = int(environ.get("CHAT_SERVICE_PORT", "8001"))
    image_port = int(environ.get("IMAGE_SERVICE_PORT", "8002"))
    rlm_port = int(environ.get("RLM_SERVICE_PORT", "8003"))
    demo_port = int(environ.get("DEMO_PORT", "8010"))
    use_demo = not environ.get("OPENAI_API_URL")

    children: list[Child] = []
    chat_env: dict[str, str] = {}
    if use_demo:
        children.append(Child("demo", "tinychat_demo", demo_port, {"DEMO_PORT": str(demo_port)}))
        chat_env = {
            "OPENAI_API_URL": f"http://127.0.0.1:{demo_port}/v1",
            "DEFAULT_MODEL": environ.get("DEFAULT_MODEL", DEMO_MODEL),
            "AVAILABLE_MODELS": environ.get("AVAILABLE_MODELS", DEMO_MODEL),
        }
    chat_url = f"http://127.0.0.1:{chat_port}"
    children += [
        Child("chat", "chat_service", chat_port, chat_env),
        Child("image", "image_service", image_port),
        Child(
            "rlm",
            "rlm_service",
            rlm_port,
            {"CHAT_SERVICE_URL": chat_url, "RLM_SANDBOX": environ.get("RLM_SANDBOX", "process")},
        ),
        Child(
            "gateway",
            "tinychat_gateway",
            gateway_port,
            {
                "CHAT_SERVICE_URL": chat_url,
                "IMAGE_SERVICE_URL": f"http://127.0.0.1:{image_port}",
                "RLM_SERVICE_URL": f"http://127.0.0.1:{rlm_port}",
            },
        ),
    ]
    for child in children:
        # Every service reads PORT; each child gets its own.
        child.env["PORT"] = str(child.port)
        # Only the gateway listens beyond this machine (HOST, default 0.0.0.0).
        child.env["HOST"] = environ.get("HOST", "0.0.0.0") if child.name == "gateway" else "127.0.0.1"
    return children, use_demo


async def relay_output(child: Child) -> None:
    assert child.process is not None and child.process.stdout is not None
    prefix = f"{child.name:>7} | ".encode()
    async for line in child.process.stdout:
        sys.stdout.buffer.write(prefix + line)
        sys.stdout.flush()


def is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


async def wait_ready(child: Child) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_SECONDS
    while not await asyncio.to_thread(is_ready, child.ready_url):
        if child.process is not None and child.process.returncode is not None:
            raise RuntimeError(f"{child.name} exited with status {child.process.returncode}")
        if loop.time() > deadline:
            raise RuntimeError(f"{child.name} was not ready within {READY_TIMEOUT_SECONDS:.0f}s")
        await asyncio.sleep(0.05)


async def start(child: Child) -> None:
    child.process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        child.module,
        env={**os.environ, **child.env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us; we pass it on in order.
    )


async def stop_all(children: list[Child]) -> None:
    running = [c for c in children if c.process and c.process.returncode is None]
    for child in reversed(running):
        child.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    try:
        async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
            await asyncio.gather(*(c.process.wait() for c in running))  # type: ignore[union-attr]
    except TimeoutError:
        for child in running:
            if child.process.returncode is None:  # type: ignore[union-attr]
                child.process.kill()  # type: ignore[union-attr]


def banner(children: list[Child], use_demo: bool) -> str:
    gateway = children[-1]
    lines = ["", f"  TinyChat is ready: http://localhost:{gateway.port}", ""]
    if use_demo:
        lines += [
            "  No OPENAI_API_URL is set, so the built-in demo model answers (a canned reply).",
            "  For a real model: OPENAI_API_URL=https://host/v1 OPENAI_API_KEY=... make run",
            "",
        ]
    lines.append("  Press Ctrl-C to stop.")
    return "\n".join(lines) + "\n"


async def main() -> int:
    children, use_demo = plan_children(dict(os.environ))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    relays = []
    status = 0
    try:
        for child in children:
            await start(child)
            relays.append(asyncio.create_task(relay_output(child)))
        await asyncio.gather(*(wait_ready(c) for c in children))
        print(banner(children, use_demo), flush=True)
        exits = [asyncio.create_task(c.process.wait()) for c in children]  # type: ignore[union-attr]
        stopper = asyncio.create_task(stop.wait())
        finished, _ = await asyncio.wait([*exits, stopper], return_when=asyncio.FIRST_COMPLETED)
        if stopper not in finished:
            dead = next(c for c in children if c.process and c.process.returncode is not None)
            print(f"{dead.name} stopped (status {dead.process.returncode}); stopping the rest.")  # type: ignore[union-attr]
            status = 1
        stopper.cancel()
    except RuntimeError as exc:
        print(f"TinyChat could not start: {exc}", file=sys.stderr)
        status = 1
    finally:
        await stop_all(children)
        await asyncio.gather(*relays, return_exceptions=True)
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
