"""`make run`: every TinyChat service in the foreground, stopped together on Ctrl-C.

With no OPENAI_API_URL set, the built-in demo model starts too and chat-service points at
it, so a first run shows a working chat with no configuration at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import secrets
import signal
import sys
import time
import urllib.request
from dataclasses import dataclass

from tinychat_common.redact import without_credentials

DEMO_MODEL = "tinychat-demo"
READY_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class Part:
    name: str
    package: str
    port: int


def plan(env: dict[str, str]) -> tuple[list[Part], dict[str, str], bool]:
    """The processes to start, the environment they share, and whether the demo is used."""
    gateway_port = int(env.get("PORT", "8000"))
    demo_port = int(env.get("DEMO_PORT", "8010"))
    parts = [
        Part("chat-service", "tinychat_chat", 8001),
        Part("image-service", "tinychat_image", 8002),
        Part("rlm-service", "tinychat_rlm", 8003),
        Part("gateway", "tinychat_gateway", gateway_port),
    ]
    shared = {
        "CHAT_SERVICE_URL": "http://127.0.0.1:8001",
        "IMAGE_SERVICE_URL": "http://127.0.0.1:8002",
        "RLM_SERVICE_URL": "http://127.0.0.1:8003",
        "RLM_SANDBOX": "process",  # no Docker needed for a first run
        "SHUTDOWN_GRACE_SECONDS": "2",  # Ctrl-C should not wait 20 s for open streams
        # A new token per start: only the processes started here hold it.
        "INTERNAL_TOKEN": secrets.token_urlsafe(32),
    }
    use_demo = not env.get("OPENAI_API_URL")
    merged = {**shared, **env}  # what the user set wins
    if use_demo:
        parts.insert(0, Part("demo-model", "tinychat_demo", demo_port))
        merged.update(
            OPENAI_API_URL=f"http://127.0.0.1:{demo_port}/v1",
            DEFAULT_MODEL=DEMO_MODEL,
            AVAILABLE_MODELS=DEMO_MODEL,
        )
    return [p for p in parts if runnable(p.package)], merged, use_demo


# What every service may see of the environment besides its own settings.
PROCESS_VARIABLES = frozenset(
    {"PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV"}
    | {"SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}
    | {"http_proxy", "https_proxy", "no_proxy", "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"}
)
SETTINGS_CLASSES = {
    "tinychat_chat": "tinychat_chat.config:ChatSettings",
    "tinychat_image": "tinychat_image.config:ImageSettings",
    "tinychat_rlm": "tinychat_rlm.config:RlmSettings",
    "tinychat_gateway": "tinychat_gateway.config:GatewaySettings",
    "tinychat_demo": "tinychat_demo.config:DemoSettings",
}


def settings_names(package: str) -> frozenset[str]:
    """The environment variables a service reads: its settings class's fields, upper case."""
    module_name, _, class_name = SETTINGS_CLASSES[package].partition(":")
    import importlib

    settings = getattr(importlib.import_module(module_name), class_name)
    return frozenset(name.upper() for name in settings.model_fields)


def environment_for(package: str, env: dict[str, str]) -> dict[str, str]:
    """Only what `package` reads: rlm-service never holds OPENAI_API_KEY, the gateway no
    provider key, and so on."""
    wanted = settings_names(package)
    return {k: v for k, v in env.items() if k in PROCESS_VARIABLES or k.upper() in wanted}


def runnable(package: str) -> bool:
    try:
        return importlib.util.find_spec(f"{package}.__main__") is not None
    except ModuleNotFoundError:
        return False


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            status: int = response.status  # urlopen's answer is untyped (HTTPResponse here)
            return status == 200
    except OSError:
        return False


async def wait_until_ready(parts: list[Part], children: dict[str, asyncio.subprocess.Process]) -> None:
    deadline = time.monotonic() + READY_WAIT_SECONDS
    waiting = list(parts)
    while waiting:
        for part in list(waiting):
            if children[part.name].returncode is not None:
                raise RuntimeError(
                    f"{part.name} exited during start-up (code {children[part.name].returncode})"
                )
            if await asyncio.to_thread(ready, part.port):
                waiting.remove(part)
        if waiting and time.monotonic() > deadline:
            raise RuntimeError("not ready after 30 s: " + ", ".join(p.name for p in waiting))
        if waiting:
            await asyncio.sleep(0.2)


def banner(gateway_port: int, use_demo: bool, skipped: list[str]) -> str:
    lines = ["", f"  TinyChat is running: http://localhost:{gateway_port}", ""]
    if use_demo:
        lines += [
            "  Answers come from the built-in demo model (no OPENAI_API_URL is set).",
            "  For a real model: OPENAI_API_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-... make run",
        ]
    else:
        lines.append(f"  Model API: {without_credentials(os.environ.get('OPENAI_API_URL', ''))}")
    if skipped:
        lines.append("  Not started (not installed yet): " + ", ".join(skipped))
    lines += ["  Press Ctrl-C to stop everything.", ""]
    return "\n".join(lines)


async def stop_all(children: dict[str, asyncio.subprocess.Process]) -> None:
    for child in children.values():
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
    for name, child in children.items():
        try:
            await asyncio.wait_for(child.wait(), timeout=10)
        except TimeoutError:
            print(f"{name} did not stop in 10 s; killing it", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()


async def run() -> int:
    parts, env, use_demo = plan(dict(os.environ))
    all_names = {"chat-service", "image-service", "rlm-service", "gateway"}
    skipped = sorted(all_names - {p.name for p in parts})
    children: dict[str, asyncio.subprocess.Process] = {}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for part in parts:
            child_env = {**environment_for(part.package, env), "PORT": str(part.port)}
            if part.package != "tinychat_gateway":
                # Only the gateway is meant to be reached from other machines.
                child_env["HOST"] = "127.0.0.1"
            children[part.name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", part.package, env=child_env, start_new_session=True
            )
        await wait_until_ready(parts, children)
        print(banner(int(env.get("PORT", "8000")), use_demo, skipped), flush=True)
        exits = [asyncio.create_task(child.wait()) for child in children.values()]
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([stopper, *exits], return_when=asyncio.FIRST_COMPLETED)
        for name, child in children.items():
            if child.returncode is not None and not stop.is_set():
                print(
                    f"{name} stopped unexpectedly (code {child.returncode}); stopping the rest",
                    file=sys.stderr,
                )
                return 1
        return 0
    except RuntimeError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping TinyChat…", file=sys.stderr)
        await stop_all(children)


def main() -> None:
    sys.exit(asyncio.run(run()))
