"""The sandbox pool in the compose stack as users get it (RLM_SANDBOX=pool; scripts/e2e.sh
runs two runners): hostile cells, written by the fake root model
(tests/fakes_container/llm_script.py ATTACKS), go browser API → gateway → rlm-service → a
runner container (non-root, read-only, no capabilities, Docker's default seccomp profile),
and report what each attempt got. Every attempt fails and the stack stays healthy.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import PROJECT, containers, stream_chat
from tests.fakes_container.llm_script import ATTACK_MARKER, SUBCALL_ANSWER

pytestmark = pytest.mark.e2e

PASSCODE_HEADER = "X-RLM-Passcode"
PASSCODE = os.environ.get("E2E_RLM_PASSCODE", "e2e-passcode")


def inspect(service: str) -> list[dict[str, Any]]:
    ids = containers(f"com.docker.compose.project={PROJECT}", f"com.docker.compose.service={service}")
    assert ids, f"no running {service} container"
    done = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(done.stdout)


def address(container: dict[str, Any], network: str) -> str:
    return container["NetworkSettings"]["Networks"][f"{PROJECT}_{network}"]["IPAddress"]


async def attack(http: aiohttp.ClientSession, name: str, given: dict[str, Any]) -> dict[str, Any]:
    question = f"{ATTACK_MARKER}{name} {json.dumps(given)}"
    passcode = PASSCODE
    answer = await stream_chat(
        http,
        {"messages": [{"role": "user", "content": question}], "rlm": True},
        headers={PASSCODE_HEADER: passcode},
    )
    assert answer.status == 200, answer.events
    assert not answer.of("error"), answer.events
    return json.loads(answer.text)


def runner_starts() -> dict[str, tuple[str, int]]:
    return {c["Id"]: (c["State"]["StartedAt"], c["RestartCount"]) for c in inspect("sandbox")}


async def test_job_code_reaches_no_address_and_cannot_touch_its_runner(http: aiohttp.ClientSession) -> None:
    runners = inspect("sandbox")
    assert len(runners) >= 2, "scripts/e2e.sh runs two runners"
    targets = [(address(r, "sandbox"), 8010) for r in runners]
    targets.append((address(inspect("rlm-service")[0], "sandbox"), 8003))
    targets += [
        (address(inspect(name)[0], "backend"), port)
        for name, port in (("redis", 6379), ("chat-service", 8001))
    ]
    targets.append(("127.0.0.1", 8010))
    before = runner_starts()

    report = await attack(http, "probe", {"targets": targets})

    for host, port in targets:
        assert report[f"connect {host}:{port}"] == "failed: PermissionError", report
    assert report["resolve rlm-service"].startswith("failed"), report
    for name in ("read /proc/1/environ", "read /proc/1/mem", "list /proc/1/fd"):
        assert report[name] == "failed: PermissionError", (name, report)
    for name in ("unshare user namespace", "ptrace the runner"):
        assert report[name] == "failed: PermissionError", (name, report)
    assert report["write outside the scratch space"].startswith("failed"), report
    status = report["status"]
    assert status["Uid"].split()[0] == "10002"
    assert status["CapEff"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1" and status["Seccomp"].startswith("2")
    # The signals it sent PID 1 changed nothing: the same runners, never restarted.
    assert runner_starts() == before


async def test_nothing_a_job_leaves_is_there_for_the_next_job_on_that_runner(
    http: aiohttp.ClientSession,
) -> None:
    left = await attack(http, "leave", {})
    for _ in range(16):  # a job lands on a random free runner: look until one meets it again
        found = await attack(http, "look", {})
        if found["runner"] == left["runner"]:
            break
    else:
        pytest.fail(f"no job met runner {left['runner']} again")
    assert (found["tmp"], found["shm"], found["ipc"], found["processes"]) == ([], [], [], []), found


async def test_after_the_attacks_rlm_still_answers(http: aiohttp.ClientSession) -> None:
    answer = await stream_chat(
        http,
        {"messages": [{"role": "user", "content": "compute the digest"}], "rlm": True},
        headers={PASSCODE_HEADER: PASSCODE},
    )
    assert not answer.of("error"), answer.events
    assert f"helper={SUBCALL_ANSWER}" in answer.text
    async with http.get("/api/health") as response:
        assert (await response.json())["status"] == "ok"
