"""The host's side of the runner protocol trusts no line, even from a runner that is itself
compromised: a real process that speaks the protocol and then forges (cell code can no longer
reach the channel, see the escape battery, so a hostile runner stands in for a broken sandbox).
Every backend's host side is connection.RunnerSandbox, which these tests drive."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import pytest
from tinychat_rlm.sandbox import SandboxError
from tinychat_rlm.sandbox.connection import READ_BUFFER_BYTES, RunnerSandbox

from tests.rlm.sandbox_fixtures import run

pytestmark = pytest.mark.timeout(60)

# Handshakes like runner.py, then answers the first exec with whatever argv[1] says.
HOSTILE_RUNNER = r"""
import json, sys, time
out = sys.stdout.buffer
def send(data):
    out.write(data)
    out.flush()
sys.stdin.buffer.readline()  # init
send(b'{"type": "ready"}\n')
sys.stdin.buffer.readline()  # exec 1
kind = sys.argv[1]
if kind == 'huge-result':
    send(json.dumps({'type': 'result', 'id': 1, 'stdout': 'x' * 1_500_000, 'stderr': 'y' * 1_500_000,
                     'final': 'z' * 1_500_000, 'variables': ['v' * 1000] * 1000,
                     'truncated_chars': -5, 'error': 'e' * 500_000}).encode() + b'\n')
elif kind == '60-mb-line':
    send(b'{"type": "result", "id": 1, "stdout": "' + b'x' * 60_000_000 + b'"}\n')
elif kind == 'result-for-another-cell':
    send(b'{"type": "result", "id": 7, "stdout": "for a cell never sent"}\n')
elif kind == 'query-out-of-sequence':
    send(b'{"type": "llm_query", "id": 99, "prompts": ["out of sequence"]}\n')
elif kind == 'three-queries-at-once':
    for number in (1, 2, 3):
        send(b'{"type": "llm_query", "id": %d, "prompts": ["q"]}\n' % number)
elif kind == 'a-result-while-a-query-waits':
    send(b'{"type": "llm_query", "id": 1, "prompts": ["q"]}\n')
    send(b'{"type": "result", "id": 1, "stdout": "done early"}\n')
elif kind == 'a-reply-from-the-sandbox':
    send(b'{"type": "llm_reply", "id": 1, "answers": ["a reply from the sandbox"]}\n')
time.sleep(30)
"""


class HostileSandbox(RunnerSandbox):
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None and process.stdin is not None
        super().__init__(process.stdout, process.stdin)
        self.process = process

    async def _terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()


async def hostile_sandbox(kind: str) -> HostileSandbox:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-c", HOSTILE_RUNNER, kind,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=READ_BUFFER_BYTES,
    )  # fmt: skip
    sandbox = HostileSandbox(process)
    await sandbox.start("", output_limit=20_000, limits={})
    return sandbox


async def test_every_field_of_a_forged_result_is_cut_to_its_cap() -> None:
    async with await hostile_sandbox("huge-result") as sandbox:
        result = await run(sandbox, "print('anything')")
    assert len(result.stdout) < 20_200 and len(result.stderr) < 20_200
    assert result.final is not None and len(result.final) < 201_000
    assert len(result.variables) <= 200 and all(len(v) <= 100 for v in result.variables)
    assert result.truncated_chars == 0
    assert result.error is not None and len(result.error) < 2_100


async def test_a_60_mb_line_ends_the_job_with_a_clear_error() -> None:
    sandbox = await hostile_sandbox("60-mb-line")
    with pytest.raises(SandboxError, match="line limit"):
        await run(sandbox, "print('anything')", timeout=30)
    assert not sandbox.alive


@pytest.mark.parametrize(
    "kind", ["result-for-another-cell", "query-out-of-sequence", "a-reply-from-the-sandbox"]
)
async def test_an_id_not_asked_for_ends_the_job(kind: str) -> None:
    sandbox = await hostile_sandbox(kind)
    with pytest.raises(SandboxError, match="protocol"):
        await run(sandbox, "print('anything')")
    assert not sandbox.alive


@pytest.mark.parametrize("kind", ["three-queries-at-once", "a-result-while-a-query-waits"])
async def test_more_unanswered_queries_than_the_runner_may_send_end_the_job(kind: str) -> None:
    async def never_answers(prompts: list[str]) -> list[str]:
        await asyncio.Event().wait()  # so every query the runner sends stays unanswered
        return prompts

    sandbox = await hostile_sandbox(kind)
    with pytest.raises(SandboxError, match="protocol"):
        await sandbox.execute("print('anything')", llm_query=never_answers, timeout=20)
    assert not sandbox.alive
