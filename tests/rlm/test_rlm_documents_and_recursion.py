"""Documents as the job's context, rlm_query sub-RLMs, and the job's budgets: fake LLM →
real chat-service → real rlm-service → real sandboxes (one per level)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fakes.openai_upstream import Reply
from tests.rlm.conftest import MakeStack
from tests.rlm.harness import ROOT_MARKER, RlmStack, repl, sandbox_gone, start_gateway, steps
from tests.support.messages import user
from tests.support.polling import wait_until
from tests.support.sse import EventReader, answer_text, assert_ends_with_one_done, read_events

pytestmark = pytest.mark.timeout(90)

USAGE_PER_CALL = 12  # the fake upstream's default usage
WEB_DIR = str(Path(__file__).resolve().parents[2] / "web")

LIST_DOCUMENTS = repl(
    "for doc in context:\n"
    "    print(type(doc).__name__, doc.name, len(doc), doc[:12])\n"
    "FINAL(', '.join(doc.name for doc in context))"
)


def documents_body(question: str, documents: list[dict[str, str]], **extra: object) -> dict[str, object]:
    return {"messages": [user(question)], "documents": documents, **extra}


async def stream_body(stack: RlmStack, body: dict[str, object]) -> list[dict]:
    async with stack.client.post("/v1/rlm/stream", json=body) as response:
        assert response.status == 200, await response.text()
        return await read_events(response)


async def all_sandboxes_gone(stack: RlmStack) -> bool:
    return all([await sandbox_gone(s) for s in stack.sandboxes.created])


async def test_documents_become_a_list_of_named_strings_in_context(make_stack: MakeStack) -> None:
    stack, llm = await make_stack([LIST_DOCUMENTS])
    documents = [
        {"name": "notes.md", "text": "# Notes\nThe meeting is on Tuesday."},
        {"name": "data.csv", "text": "city,people\nOslo,709000\n"},
    ]
    events = await stream_body(stack, documents_body("Which files?", documents))

    assert answer_text(events) == "notes.md, data.csv"
    output = steps(events, "output")[0]["stdout"]
    assert "Document notes.md 34 # Notes\nThe \n" in output
    assert "Document data.csv 24 city,people\n" in output
    # The model is told what the documents are, by name and size, without their text.
    first = llm.root_requests[0]["messages"][1]["content"]
    assert "'notes.md': 34 characters" in first and "'data.csv': 24 characters" in first
    assert "Tuesday" not in first
    assert ".name" in llm.root_requests[0]["messages"][0]["content"]


async def test_earlier_messages_follow_the_documents_as_a_conversation_document(
    make_stack: MakeStack,
) -> None:
    stack, _llm = await make_stack([repl("FINAL(context[-1].name + '|' + context[-1])")])
    body = {
        "messages": [user("The code word is heron."), {"role": "assistant", "content": "Noted."}, user("Go")],
        "documents": [{"name": "a.txt", "text": "alpha"}],
    }
    events = await stream_body(stack, body)
    assert answer_text(events) == "conversation|user: The code word is heron.\n\nassistant: Noted."


async def test_a_20mb_document_through_the_gateway_reaches_the_sandbox_whole(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack(
        [repl("doc = context[0]\nFINAL(f'{doc.name} {len(doc)} {doc[-6:]}')")],
        rlm_max_request_bytes=40 * 1024 * 1024,
    )
    gateway = await start_gateway(stack, WEB_DIR, rlm_max_request_bytes=40 * 1024 * 1024)
    text = ("line of a big log file ü\n" * (20 * 1024 * 1024 // 25)) + "THEEND"
    body = documents_body("How long?", [{"name": "big.log", "text": text}], rlm=True)
    async with gateway.post("/api/chat/stream", json=body) as response:
        assert response.status == 200, await response.text()
        events = await read_events(response)
    assert answer_text(events) == f"big.log {len(text)} THEEND"


async def test_long_texts_arrive_exactly_and_a_long_file_name_is_refused_readably(
    make_stack: MakeStack,
) -> None:
    stack, _llm = await make_stack(
        [repl("FINAL(str([len(d) for d in context]) + context[0][-9:] + context[1][:5])")]
    )
    first = 'quote " and \\ backslash \n é 😀 ' * 10_000 + "the end."
    second = "\x1f\t" + "z" * 200_000
    events = await stream_body(
        stack, documents_body("Sizes?", [{"name": "a", "text": first}, {"name": "b", "text": second}])
    )
    assert answer_text(events) == f"{[len(first), len(second)]}{first[-9:]}{second[:5]}"

    body = documents_body("Hi", [{"name": "n" * 100_000, "text": "x"}])
    async with stack.client.post("/v1/rlm/stream", json=body) as response:
        assert response.status == 400
        assert "documents.0.name" in (await response.json())["detail"]
    async with stack.client.post(
        "/v1/rlm/stream", data=b'{"messages": [{"role": "user", "content": "' + b"a" * 100_000
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_json"


async def test_the_gateway_refuses_documents_without_rlm_and_big_chats(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([])
    gateway = await start_gateway(stack, WEB_DIR, max_request_bytes=1024 * 1024)
    body = documents_body("Hi", [{"name": "a.txt", "text": "x"}])
    async with gateway.post("/api/chat/stream", json=body) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "documents_need_rlm"
    big = {"messages": [user("x" * (2 * 1024 * 1024))]}
    async with gateway.post("/api/chat/stream", json=big) as response:
        assert response.status == 413
        assert "RLM" in (await response.json())["detail"]


async def test_rlm_service_refuses_a_body_over_its_limit_readably(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([], rlm_max_request_bytes=1024 * 1024)
    body = documents_body("Hi", [{"name": "a.txt", "text": "x" * (2 * 1024 * 1024)}])
    async with stack.client.post("/v1/rlm/stream", json=body) as response:
        assert response.status == 413
        assert "RLM_MAX_REQUEST_BYTES" in (await response.json())["detail"]
    assert not stack.sandboxes.created


async def test_depth_two_runs_a_sub_rlm_in_its_own_sandbox_with_its_own_branch(make_stack: MakeStack) -> None:
    stack, llm = await make_stack(
        [
            repl(
                "sub = rlm_query('Find the colour.', context=['red green', 'the colour is teal'])\nprint(sub)"
            ),
            repl("FINAL(context[1].split()[-1] if isinstance(context, list) else 'no')"),
            repl("FINAL('The sub-RLM said: ' + sub)"),
        ],
        rlm_max_depth=2,
    )
    events = await stream_body(stack, documents_body("What colour?", [{"name": "a.txt", "text": "zzz"}]))

    assert answer_text(events) == "The sub-RLM said: teal"
    assert len(stack.sandboxes.created) == 2
    subrlm = steps(events, "subrlm")
    assert [s["phase"] for s in subrlm] == ["start", "end"]
    assert subrlm[1]["branch"] == "1" and subrlm[1]["outcome"] == "answered"
    assert subrlm[1]["usage"]["total_tokens"] == USAGE_PER_CALL
    child_steps = [e["rlm"] for e in events if "rlm" in e and e["rlm"].get("depth") == 2]
    assert {s["kind"] for s in child_steps} >= {"code", "output", "final"}
    assert all(s["branch"] == "1" for s in child_steps)
    # The sub-RLM's own system prompt offers no further rlm_query: it is at the last level.
    assert "rlm_query" in llm.root_requests[0]["messages"][0]["content"]
    assert "rlm_query" not in llm.root_requests[1]["messages"][0]["content"]
    # Usage sums every level: two root turns and one sub-RLM turn.
    assert assert_ends_with_one_done(events)["usage"]["total_tokens"] == 3 * USAGE_PER_CALL
    await wait_until(lambda: all_sandboxes_gone(stack))
    assert await stack.holds_tokens(0)


async def test_at_depth_one_rlm_query_is_a_plain_llm_query(make_stack: MakeStack) -> None:
    stack, llm = await make_stack(
        [repl("FINAL(rlm_query('Say hi.', context='to Ada'))")], lambda prompt: f"echo: {prompt}"
    )
    events = await stream_body(stack, {"messages": [user("Go")]})
    assert answer_text(events) == "echo: Say hi.\n\nto Ada"
    assert len(stack.sandboxes.created) == 1
    assert llm.subcall_prompts == ["Say hi.\n\nto Ada"]


async def test_the_root_is_told_what_is_left_of_its_budget(make_stack: MakeStack) -> None:
    stack, llm = await make_stack(
        [repl("print(1)"), repl("FINAL('ok')")], rlm_budget_tokens=1000, rlm_budget_seconds=600
    )
    events = await stream_body(stack, {"messages": [user("Go")]})
    assert answer_text(events) == "ok"
    assert "Budget left for the whole job: 1,000 tokens, " in llm.root_requests[0]["messages"][1]["content"]
    assert "Budget left for the whole job: 988 tokens, " in llm.feedback(2)


async def test_depth_two_with_a_token_budget_that_runs_out_answers_a_marked_best_effort(
    make_stack: MakeStack,
) -> None:
    never_finishes = repl("print('still counting', len(context))")
    stack, _llm = await make_stack(
        [
            repl("found = rlm_query('Count the words.', context='one two three')\nprint('sub:', found)"),
            *[never_finishes] * 10,
        ],
        rlm_max_depth=2,
        rlm_budget_tokens=3 * USAGE_PER_CALL,
        rlm_max_iterations=10,
    )
    started = time.monotonic()
    events = await stream_body(stack, {"messages": [user("How many words?")]})

    assert time.monotonic() - started < 60
    answer = answer_text(events)
    assert answer.startswith("*(Best effort: the job's token budget of 36 is spent (36 used)")
    # The sub-RLM's own best effort (its last output) reached the root, which shows it.
    assert "sub: *(Best effort:" in answer and "still counting 13" in answer
    subrlm_end = next(s for s in steps(events, "subrlm") if s["phase"] == "end")
    assert subrlm_end["outcome"] == "budget"
    finals = steps(events, "final")
    assert [f["outcome"] for f in finals] == ["budget", "budget"]
    done = assert_ends_with_one_done(events)
    assert done["finish_reason"] == "length"
    assert done["usage"]["total_tokens"] == 3 * USAGE_PER_CALL
    await wait_until(lambda: all_sandboxes_gone(stack))
    assert await stack.holds_tokens(0)
    assert stack.metric("tinychat_rlm_jobs_total", outcome="budget") == 1


async def test_a_time_budget_stops_a_slow_sub_call_and_answers_a_best_effort(make_stack: MakeStack) -> None:
    stack, llm = await make_stack(
        [repl("print('before')\nprint(llm_query('slow?'))")], rlm_budget_seconds=2.0, rlm_max_depth=2
    )
    slow = Reply(text="late", first_byte_delay=30.0)
    original = llm.reply
    llm_reply = lambda body: slow if ROOT_MARKER not in body["messages"][0]["content"] else original(body)  # noqa: E731
    stack.fake.respond_with(llm_reply)
    started = time.monotonic()
    events = await stream_body(stack, {"messages": [user("Go")]})
    assert time.monotonic() - started < 20
    answer = answer_text(events)
    assert answer.startswith("*(Best effort: the job's time budget of 2 s is spent")
    assert "before" in answer
    assert assert_ends_with_one_done(events)["finish_reason"] == "length"
    await wait_until(lambda: all_sandboxes_gone(stack))


async def test_a_cancelled_parent_kills_every_child_sandbox_and_gives_every_token_back(
    make_stack: MakeStack,
) -> None:
    stack, _llm = await make_stack(
        [
            repl("rlm_query('Go deeper.', context='abc')"),
            repl("rlm_query('And deeper.', context='def')"),
            repl("import time\ntime.sleep(60)"),
        ],
        rlm_max_depth=3,
        rlm_cell_timeout=120,
        rlm_timeout=120,
    )
    async with stack.client.post("/v1/rlm/stream", json={"messages": [user("Go")]}) as response:
        reader = EventReader(response, seconds=30)
        await reader.until(lambda e: "rlm" in e and e["rlm"].get("depth") == 3 and e["rlm"]["kind"] == "code")
        assert len(stack.sandboxes.created) == 3
        assert await stack.holds_tokens(3)  # the root's and one per sub-RLM
    # The client went away: every level is cancelled.
    await wait_until(lambda: all_sandboxes_gone(stack), seconds=20)
    await wait_until(lambda: stack.holds_tokens(0))
    assert stack.metric("tinychat_rlm_jobs_total", outcome="cancelled") == 1


async def test_a_sub_rlm_without_a_free_slot_is_an_error_the_cell_can_handle(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack(
        [
            repl(
                "try:\n    rlm_query('x')\nexcept RuntimeError as exc:\n    FINAL(str(exc))",
            )
        ],
        rlm_max_depth=2,
        max_concurrent_rlm=1,
    )
    events = await stream_body(stack, {"messages": [user("Go")]})
    assert "no RLM slot is free" in answer_text(events)
    assert len(stack.sandboxes.created) == 1
