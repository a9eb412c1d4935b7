"""The main RLM flows end to end: gateway → rlm-service → chat-service → fake LLM, with the
job's code in a real sandbox, and the passcode checked at the gateway."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.rlm.conftest import MakeStack
from tests.rlm.harness import RlmStack, repl, sandbox_gone, start_gateway, steps
from tests.support.messages import user
from tests.support.polling import wait_until
from tests.support.sse import EventReader, answer_text, assert_ends_with_one_done, is_code_step, read_events

pytestmark = pytest.mark.timeout(60)

PASSCODE = "open sesame 42"


@pytest.fixture
def web_dir(tmp_path: Path) -> str:
    (tmp_path / "index.html").write_text("<!doctype html><title>TinyChat</title>\n")
    return str(tmp_path)


async def gateway_for(stack: RlmStack, web_dir: str) -> TestClient:
    return await start_gateway(stack, web_dir, rlm_passcode=PASSCODE)


def rlm_body(*messages: dict, **extra: object) -> dict:
    return {"messages": list(messages), "rlm": True, **extra}


async def post(gateway: TestClient, body: dict) -> list[dict]:
    headers = {"X-RLM-Passcode": PASSCODE}
    async with gateway.post("/api/chat/stream", json=body, headers=headers) as response:
        return await read_events(response)


async def test_needle_in_2mb_through_the_gateway(make_stack: MakeStack, web_dir: str) -> None:
    needle = "".join(random.choices(string.ascii_lowercase, k=16))
    lines = [f"line {i}: nothing to see here, move along please" for i in range(44_000)]
    lines.insert(random.randrange(len(lines)), f"line X: the password is {needle}")
    document = "\n".join(lines)
    assert len(document) > 2_000_000
    stack, _llm = await make_stack(
        [
            repl("import re\npw = re.search(r'password is (\\w+)', context).group(1)\nprint(pw)"),
            repl("FINAL(pw)"),
        ]
    )
    gateway = await gateway_for(stack, web_dir)
    events = await post(gateway, rlm_body(user(document), user("What is the password?")))
    assert answer_text(events) == needle
    assert steps(events, "output")[0]["stdout"] == needle + "\n"
    assert assert_ends_with_one_done(events)["usage"]["llm_calls"] == 2


async def test_map_reduce_through_the_gateway(make_stack: MakeStack, web_dir: str) -> None:
    parts = [f"Chapter {i}: " + "word " * random.randint(5, 40) for i in range(6)]
    document = "\n".join(parts)

    def count_words(prompt: str) -> str:
        return str(prompt.split("\n", 1)[1].count("word"))

    stack, llm = await make_stack(
        [
            repl(
                "chunks = context.split('\\n')\n"
                "counts = llm_query_batched(['Count the words:\\n' + c for c in chunks])\n"
                "FINAL(sum(map(int, counts)))"
            )
        ],
        subcall=count_words,
    )
    gateway = await gateway_for(stack, web_dir)
    events = await post(gateway, rlm_body(user(document), user("How many times does 'word' occur?")))
    assert answer_text(events) == str(document.count("word"))
    assert len(llm.subcall_prompts) == len(parts)


@pytest.mark.parametrize(
    "code",
    [
        "FINAL('yes')",
        "reply = 'yes'\nFINAL_VAR('reply')",
        "answer['content'] = 'yes'\nanswer['ready'] = True",
    ],
    ids=["FINAL", "FINAL_VAR", "answer-dict"],
)
async def test_each_finishing_form_through_the_gateway(
    make_stack: MakeStack, web_dir: str, code: str
) -> None:
    stack, _llm = await make_stack(["FINAL('no') is what I would say.", repl(code)])
    gateway = await gateway_for(stack, web_dir)
    events = await post(gateway, rlm_body(user("Well?")))
    assert answer_text(events) == "yes"
    assert [e["status"] for e in events if "status" in e] == ["RLM iteration 1/6", "RLM iteration 2/6"]


async def test_forced_answer_and_timeouts_through_the_gateway(make_stack: MakeStack, web_dir: str) -> None:
    stack, _llm = await make_stack(
        [repl("x = 1"), "Best I can do.", repl("import time\ntime.sleep(10)")],
        rlm_max_iterations=1,
        rlm_cell_timeout=1,
    )
    gateway = await gateway_for(stack, web_dir)
    forced = await post(gateway, rlm_body(user("Anything?")))
    assert "Best answer forced after 1 RLM turns" in answer_text(forced)
    assert assert_ends_with_one_done(forced)["finish_reason"] == "length"
    timed_out = await post(gateway, rlm_body(user("Sleep?")))
    assert [e["code"] for e in timed_out if "error" in e] == ["cell_timeout"]
    assert_ends_with_one_done(timed_out)
    await wait_until(lambda: sandbox_gone(stack.sandboxes.created[1]))


async def test_leaving_the_gateway_kills_the_sandbox_and_frees_the_token(
    make_stack: MakeStack, web_dir: str
) -> None:
    stack, _llm = await make_stack([repl("import time\ntime.sleep(30)")], rlm_cell_timeout=60)
    gateway = await gateway_for(stack, web_dir)
    response = await gateway.post(
        "/api/chat/stream", json=rlm_body(user("Wait.")), headers={"X-RLM-Passcode": PASSCODE}
    )
    await EventReader(response, seconds=15).until(is_code_step)
    response.close()
    await wait_until(lambda: sandbox_gone(stack.sandboxes.created[0]))
    await wait_until(lambda: stack.holds_tokens(0))


async def test_a_wrong_passcode_never_reaches_rlm_service(make_stack: MakeStack, web_dir: str) -> None:
    stack, llm = await make_stack([repl("FINAL('secret')")])
    gateway = await gateway_for(stack, web_dir)
    response = await gateway.post(
        "/api/chat/stream", json=rlm_body(user("Hi")), headers={"X-RLM-Passcode": "wrong"}
    )
    assert response.status == 401
    assert stack.sandboxes.created == [] and llm.root_requests == []
