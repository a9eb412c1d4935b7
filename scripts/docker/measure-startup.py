"""How long each service image takes from `docker run` to answering its readiness probe.

    .venv/bin/python scripts/docker/measure-startup.py [--tag e2e] [--runs 3]

Starts each image alone (read-only root, published on a random loopback port), polls the
probe every 10 ms and prints two medians over the runs: from the container's process start
(Docker's State.StartedAt) to ready, which is the service's own start-up, and from
`docker run` to ready, which adds Docker's container creation.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
import urllib.request
from datetime import datetime

IMAGES = {
    "gateway": (8000, "/readyz", {}),
    "chat-service": (8001, "/readyz", {}),
    "image-service": (8002, "/readyz", {}),
    "rlm-service": (8003, "/readyz", {"RLM_SANDBOX": "process"}),
    "demo-model": (8010, "/v1/models", {}),
}
DEADLINE_SECONDS = 20.0


def docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.strip()


def started_at(container: str) -> float:
    """The container's process start as a Unix time (Docker gives nanoseconds; keep micro)."""
    stamp = docker("inspect", "-f", "{{.State.StartedAt}}", container)
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{whole}.{fraction[:6]:0<6}+00:00").timestamp()


def seconds_to_ready(image: str, port: int, path: str, env: dict[str, str]) -> tuple[float, float]:
    env_args = [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]
    started = time.perf_counter()
    publish = f"127.0.0.1::{port}"
    container = docker("run", "-d", "--read-only", "--tmpfs", "/tmp", "-p", publish, *env_args, image)
    try:
        host_port = docker("port", container, str(port)).splitlines()[0].rsplit(":", 1)[1]
        while time.perf_counter() - started < DEADLINE_SECONDS:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{host_port}{path}", timeout=1) as answer:
                    if answer.status == 200:
                        ready_wall, since_run = time.time(), time.perf_counter() - started
                        return ready_wall - started_at(container), since_run
            except OSError:
                time.sleep(0.01)
        raise TimeoutError(f"{image} was not ready within {DEADLINE_SECONDS}s")
    finally:
        docker("rm", "-f", container)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="tinychat")
    parser.add_argument("--tag", default="latest")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for name, (port, path, env) in IMAGES.items():
        image = f"{args.prefix}/{name}:{args.tag}"
        runs = [seconds_to_ready(image, port, path, env) for _ in range(args.runs)]
        own_ms = statistics.median(own for own, _ in runs) * 1000
        run_ms = statistics.median(total for _, total in runs) * 1000
        size = int(docker("image", "inspect", "-f", "{{.Size}}", image)) / 1e6
        print(f"{name:14} start→ready {own_ms:5.0f} ms, run→ready {run_ms:5.0f} ms, size {size:4.0f} MB")


if __name__ == "__main__":
    main()
