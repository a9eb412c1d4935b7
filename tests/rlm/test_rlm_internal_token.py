"""With the internal token on, an RLM job goes gateway → rlm-service → chat-service, each hop
presenting the token; the sandbox never sees it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rlm.conftest import MakeStack
from tests.rlm.harness import repl, start_gateway, steps
from tests.support.internal import TEST_INTERNAL_TOKEN
from tests.support.messages import user
from tests.support.sse import answer_text, read_events

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def internal_token(monkeypatch: pytest.MonkeyPatch) -> str:
    # Set before the stack's services are built: every one of them reads it.
    monkeypatch.setenv("INTERNAL_TOKEN", TEST_INTERNAL_TOKEN)
    return TEST_INTERNAL_TOKEN


async def test_an_rlm_job_passes_the_token_on_every_hop_but_not_into_the_sandbox(
    internal_token: str, make_stack: MakeStack, tmp_path: Path
) -> None:
    seen = f"print(any(v == {internal_token!r} for v in os.environ.values()))"
    code = f"import os\n{seen}\nFINAL(llm_query('hi'))"
    stack, _llm = await make_stack([repl(code)], subcall=lambda prompt: "from chat-service")
    async with stack.client.post("/v1/rlm/stream", json={"messages": [user("x")]}) as response:
        assert response.status == 401
    gateway = await start_gateway(stack, str(tmp_path))
    body = {"messages": [user("go")], "rlm": True}
    async with gateway.post("/api/chat/stream", json=body) as response:
        events = await read_events(response)
    assert answer_text(events) == "from chat-service"
    assert steps(events, "output")[0]["stdout"] == "False\n"
