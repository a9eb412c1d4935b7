"""`make run` as a normal user: the process sandbox cannot give a uid of its own and a cgroup
without root, so rlm-service run as an ordinary account reports RLM off with the reason, and
the code of an RLM request never runs (never a sandbox that is the user's own uid)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.rlm.sandbox_fixtures import rlm_service_process

NORMAL_UID = 65534

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(sys.platform != "linux", reason="Linux only"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start the service as another user"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)"),
]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder the normal user may write in, so a cell that ran would leave its mark."""
    path = Path(tempfile.mkdtemp(prefix="tinychat-normal-user-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def rlm_as_normal_user(shared_dir: Path) -> AsyncIterator[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(shared_dir),
        "RLM_SANDBOX": "process",
        "CHAT_SERVICE_URL": "http://127.0.0.1:9",
    }
    as_user = ["setpriv", f"--reuid={NORMAL_UID}", f"--regid={NORMAL_UID}", "--clear-groups"]
    async with rlm_service_process([*as_user, sys.executable, "-m", "tinychat_rlm"], env) as url:
        yield url


async def test_rlm_as_a_normal_user_is_off_with_the_reason_and_no_code_runs(
    rlm_as_normal_user: str, shared_dir: Path
) -> None:
    url = rlm_as_normal_user
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/v1/rlm/config") as answer:
            config = await answer.json()
        assert config["enabled"] is False
        assert "run as root" in config["problem"] and "RLM_SANDBOX=pool" in config["problem"]

        marker = shared_dir / "ran"
        code = f"open({str(marker)!r}, 'w').write('as the user')"
        body = {"rlm": True, "messages": [{"role": "user", "content": f"```repl\n{code}\n```"}]}
        async with session.post(url + "/v1/rlm/stream", json=body) as answer:
            error = await answer.json()
        assert answer.status == 503
        assert error["error"] == "sandbox_unavailable" and "run as root" in error["detail"]
    assert not marker.exists()
