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

import pytest

from tests.rlm.sandbox_fixtures import assert_rlm_off_and_no_code_runs, rlm_service_process

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
    await assert_rlm_off_and_no_code_runs(rlm_as_normal_user, shared_dir / "ran", "run as root")
