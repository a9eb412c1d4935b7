"""Fail closed: rlm-service under a seccomp filter that refuses unshare/setns (what Kubernetes'
RuntimeDefault and Docker's default profile do) reports RLM off with the reason, in its own
/v1/rlm/config and /readyz and in the gateway's /api/config and /api/health, and an RLM
request gets a readable error: no cell ever runs unisolated."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sys
import textwrap
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from tinychat_rlm.sandbox import seccomp

from tests.rlm.sandbox_fixtures import REPO, assert_rlm_off_and_no_code_runs, rlm_service_process

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(sys.platform != "linux", reason="Linux only")]


def namespace_refusing_filter() -> bytes:
    """unshare, setns and clone with any CLONE_NEW* flag answer EPERM; clone3 ENOSYS."""
    machine = seccomp._machine()
    numbers = seccomp._REFUSED[machine]
    prog = seccomp._Program()
    prog.load(seccomp._OFFSET_ARCH)
    prog.jump(seccomp._JEQ_K, seccomp._AUDIT_ARCH[machine], if_false="allow")
    prog.load(seccomp._OFFSET_NR)
    prog.jump(seccomp._JEQ_K, seccomp._CLONE3, if_true="enosys")
    prog.jump(seccomp._JEQ_K, numbers["unshare"], if_true="eperm")
    prog.jump(seccomp._JEQ_K, numbers["setns"], if_true="eperm")
    prog.jump(seccomp._JEQ_K, seccomp._CLONE[machine], if_false="allow")
    prog.load(seccomp._OFFSET_ARG0_LOW)
    prog.jump(seccomp._JSET_K, seccomp._CLONE_NEW_FLAGS, if_true="eperm")
    prog.label("allow")
    prog.ret(seccomp._RET_ALLOW)
    prog.label("eperm")
    prog.ret(seccomp._RET_ERRNO | errno.EPERM)
    prog.label("enosys")
    prog.ret(seccomp._RET_ERRNO | errno.ENOSYS)
    return prog.assemble()


# Installs the filter on itself (inherited by every child: bwrap, python), then serves.
RLM_UNDER_FILTER = textwrap.dedent(
    """
    import sys
    from tinychat_rlm.sandbox import seccomp
    seccomp._install(bytes.fromhex(sys.argv[1]))
    from tinychat_rlm.__main__ import main
    main()
    """
)


@pytest.fixture
async def rlm_under_filter() -> AsyncIterator[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "RLM_SANDBOX": "process",
        "CHAT_SERVICE_URL": "http://127.0.0.1:9",
    }
    command = [sys.executable, "-c", RLM_UNDER_FILTER, namespace_refusing_filter().hex()]
    async with rlm_service_process(command, env) as url:
        yield url


async def test_the_filter_really_refuses_namespaces() -> None:
    code = (
        "import ctypes, sys\nfrom tinychat_rlm.sandbox import seccomp\n"
        "seccomp._install(bytes.fromhex(sys.argv[1]))\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.unshare(0x10000000), ctypes.get_errno())"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, namespace_refusing_filter().hex(), stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await process.communicate()
    assert stdout.split() == [b"-1", b"1"]


async def test_rlm_is_off_with_the_reason_and_no_code_runs(rlm_under_filter: str, tmp_path) -> None:
    url = rlm_under_filter
    config = await assert_rlm_off_and_no_code_runs(url, tmp_path / "ran", "user namespaces")
    assert "\n" not in config["problem"]
    async with aiohttp.ClientSession() as session, session.get(url + "/readyz") as answer:
        ready = await answer.json()
    assert answer.status == 200  # chat goes on; only RLM is off
    assert ready["rlm"] == "unavailable" and "user namespaces" in ready["unavailable"]

    # The gateway says so too, in /api/config and /api/health.
    from tinychat_gateway.app import create_app as create_gateway_app
    from tinychat_gateway.config import GatewaySettings

    settings = GatewaySettings(
        chat_service_url="http://127.0.0.1:9",
        image_service_url="http://127.0.0.1:9",
        rlm_service_url=url,
        web_dir=str(REPO / "web"),
    )
    gateway = TestClient(TestServer(create_gateway_app(settings)))
    await gateway.start_server()
    try:
        public = await (await gateway.get("/api/config")).json()
        health = await (await gateway.get("/api/health")).json()
    finally:
        await gateway.close()
    assert public["rlm"]["enabled"] is False
    assert "user namespaces" in public["rlm"]["reason"]
    assert "user namespaces" in health["services"]["rlm"]["unavailable"]
    assert json.dumps(public)  # plain JSON for the browser
