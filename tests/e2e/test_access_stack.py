"""The compose stack as exposed users run it (AUTH_MODE=password, internal tokens and a Redis
password generated at first start): a container on the backend network that does not hold
the token gets 401 from every service and NOAUTH from Redis; the gateway wants a login.

Run by scripts/e2e.sh in the "full" phase.
"""

from __future__ import annotations

import json
import subprocess

import aiohttp
import pytest

from tests.e2e.conftest import AUTH_PASSWORD, BASE_URL, PROJECT

pytestmark = pytest.mark.e2e

# What a pod or a compromised container next to the services would try.
PROBE = r"""
import json, socket, urllib.error, urllib.request
calls = [
    ("POST", "http://chat-service:8001/v1/chat/complete", {"messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "http://chat-service:8001/v1/chat/stream", {"messages": [{"role": "user", "content": "hi"}]}),
    ("GET", "http://chat-service:8001/v1/models", None),
    ("POST", "http://image-service:8002/v1/images/stream", {"prompt": "a cat"}),
    ("GET", "http://image-service:8002/v1/images/config", None),
    ("POST", "http://rlm-service:8003/v1/rlm/stream", {"messages": [{"role": "user", "content": "hi"}]}),
    ("GET", "http://rlm-service:8003/v1/rlm/config", None),
]
result = {}
for method, url, body in calls:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "Authorization": "Bearer guessed-token-guessed-token"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            result[url] = answer.status
    except urllib.error.HTTPError as error:
        result[url] = error.code
with socket.create_connection(("redis", 6379), timeout=5) as redis:
    redis.sendall(b"PING\r\n")
    result["redis"] = redis.recv(100).decode().strip()
print(json.dumps(result))
"""


def image_of(service: str) -> str:
    project = f"label=com.docker.compose.project={PROJECT}"
    name = f"label=com.docker.compose.service={service}"
    command = ["docker", "ps", "--filter", project, "--filter", name, "--format", "{{.Image}}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=20, check=True).stdout.split()[0]


def test_a_container_on_the_backend_network_without_the_token_gets_401_everywhere() -> None:
    command = [
        "docker", "run", "--rm", "--network", f"{PROJECT}_backend", "--read-only", "--cap-drop", "ALL",
        "--entrypoint", "python", image_of("chat-service"), "-c", PROBE,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    redis = result.pop("redis")
    assert set(result.values()) == {401}, result
    assert redis.startswith("-NOAUTH"), redis


@pytest.mark.skipif(not AUTH_PASSWORD, reason="the stack runs without AUTH_MODE=password")
async def test_the_gateway_wants_a_login_and_a_cross_site_post_is_refused() -> None:
    async with aiohttp.ClientSession(base_url=BASE_URL) as anonymous:
        async with anonymous.post("/api/chat/stream", json={"messages": []}) as response:
            assert response.status == 401
        async with anonymous.get("/", allow_redirects=False) as response:
            assert response.status == 302
        async with anonymous.post("/api/auth/login", json={"password": AUTH_PASSWORD}) as response:
            assert response.status == 200
        evil = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
        async with anonymous.post("/api/chat/stream", data="{}", headers=evil) as response:
            assert response.status == 403
        async with anonymous.get("/api/config", headers={"Host": "rebound.evil.example"}) as response:
            assert response.status == 403
