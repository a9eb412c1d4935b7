"""RLM jobs that reach an answer: fake LLM → real chat-service → real rlm-service → sandbox."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest
from tinychat_rlm.app import CHAT_LOG

from tests.fakes.openai_upstream import Reply
from tests.rlm.conftest import MakeStack
from tests.rlm.harness import repl, sandbox_gone, steps
from tests.support.messages import user
from tests.support.polling import wait_until
from tests.support.sse import answer_text, assert_ends_with_one_done

pytestmark = pytest.mark.timeout(60)

USAGE_PER_CALL = 12  # the fake upstream's default usage: 5 prompt + 7 completion tokens


async def test_needle_in_a_2mb_context_is_found_by_code_that_searches_context(make_stack: MakeStack) -> None:
    rng = random.Random()
    needle = "".join(rng.choices(string.ascii_uppercase + string.digits, k=12))
    filler = "The quick brown fox jumps over the lazy dog. " * 10
    lines = [f"{i:06d} {filler}" for i in range(2 * 1024 * 1024 // len(filler))]
    lines.insert(rng.randrange(len(lines)), f"Note: the vault access code is {needle}.")
    document = "\n".join(lines)
    assert len(document) > 2 * 1024 * 1024

    stack, llm = await make_stack(
        [
            repl("print(type(context).__name__, len(context))"),
            repl(
                "import re\nfound = re.search(r'vault access code is (\\w+)', context)\nprint(found.group(1))"
            ),
            repl("FINAL('The vault access code is ' + found.group(1) + '.')"),
        ]
    )
    events = await stack.stream([user(document), user("What is the vault access code?")])

    assert answer_text(events) == f"The vault access code is {needle}."
    # The model saw the real output of its search, not the whole context.
    assert needle in llm.feedback(3)
    assert all(len(json_text(r)) < 100_000 for r in llm.root_requests)
    assert f"str {len(document)}" in llm.feedback(2)
    done = assert_ends_with_one_done(events)
    assert done["finish_reason"] == "stop"
    assert done["usage"]["total_tokens"] == 3 * USAGE_PER_CALL
    assert [e["status"] for e in events if "status" in e] == [
        "RLM iteration 1/6",
        "RLM iteration 2/6",
        "RLM iteration 3/6",
    ]
    await wait_until(lambda: sandbox_gone(stack.sandboxes.created[0]))


def json_text(request: dict) -> str:
    return "".join(m["content"] for m in request["messages"])


async def test_map_reduce_over_chunks_with_llm_query_batched_sums_sub_answers(make_stack: MakeStack) -> None:
    rng = random.Random()
    notes = [" ".join(rng.choice(["apple", "pear", "plum"]) for _ in range(50)) for _ in range(8)]
    expected = sum(note.split().count("apple") for note in notes)

    def count_apples(prompt: str) -> str:
        chunk = prompt.split("TEXT:", 1)[1]
        return str(chunk.split().count("apple"))

    stack, llm = await make_stack(
        [
            repl("print(len(context), [len(c) for c in context][:3])"),
            repl(
                "prompts = ['Count the word apple. TEXT:' + c.split(': ', 1)[1] for c in context]\n"
                "counts = llm_query_batched(prompts)\n"
                "total = sum(int(c) for c in counts)\n"
                "print(counts, total)"
            ),
            repl("FINAL(f'There are {total} apples.')"),
        ],
        subcall=count_apples,
        rlm_subcall_concurrency=3,
    )
    history = [
        user(note) if i % 2 == 0 else {"role": "assistant", "content": note} for i, note in enumerate(notes)
    ]
    events = await stack.stream([*history, user("How many apples are mentioned?")])

    assert answer_text(events) == f"There are {expected} apples."
    assert len(llm.subcall_prompts) == len(notes)
    subcalls = steps(events, "subcall")
    assert len(subcalls) == 1 and subcalls[0]["count"] == len(notes) and "ms" in subcalls[0]
    # Root turns and sub-calls are all counted.
    done = assert_ends_with_one_done(events)
    assert done["usage"]["total_tokens"] == (3 + len(notes)) * USAGE_PER_CALL
    assert done["usage"]["llm_calls"] == 3 + len(notes)


@pytest.mark.parametrize(
    "finishing_code",
    [
        "result = 'forty-two'\nFINAL(result)",
        "result = 'forty-two'\nFINAL_VAR('result')",
        "answer['content'] = 'forty-two'\nanswer['ready'] = True",
    ],
    ids=["FINAL", "FINAL_VAR", "answer-dict"],
)
async def test_each_finishing_form_in_code_sets_the_answer(
    make_stack: MakeStack, finishing_code: str
) -> None:
    stack, _llm = await make_stack([repl(finishing_code)])
    events = await stack.stream([user("What is six times seven, in words?")])
    assert answer_text(events) == "forty-two"
    assert assert_ends_with_one_done(events)["finish_reason"] == "stop"
    assert steps(events, "final")[0]["forced"] is False


async def test_final_written_in_prose_is_never_taken(make_stack: MakeStack) -> None:
    stack, llm = await make_stack(
        [
            "I am quite sure already. FINAL(wrong)\nFINAL_VAR(\"x\") and answer['ready'] = True",
            repl("FINAL('right')"),
        ]
    )
    events = await stack.stream([user("Which is it?")])
    assert answer_text(events) == "right"
    assert "nothing was taken as the answer" in llm.feedback(2)
    assert len(llm.root_requests) == 2


async def test_output_the_model_invents_after_its_code_block_is_ignored(make_stack: MakeStack) -> None:
    # A provider that ignores `stop`: the text after the block, even a FINAL, is prose.
    invented = repl("x = 6 * 7\nprint(x)") + "Output:\n```text\n41\n```\nSo FINAL(41)."
    stack, llm = await make_stack([invented, repl("FINAL(str(x))")], honour_stop=False)
    events = await stack.stream([user("Six times seven?")])
    assert answer_text(events) == "42"
    assert "42" in llm.feedback(2)
    assert llm.root_requests[0]["stop"] == ["\n```\n"]


async def test_generation_is_stopped_at_the_end_of_the_code_block(make_stack: MakeStack) -> None:
    stack, llm = await make_stack(
        [repl("print('real output')") + "REPL output:\n```text\ninvented\n```\n", repl("FINAL('done')")]
    )
    events = await stack.stream([user("Go.")])
    assert answer_text(events) == "done"
    reasoning = "".join(s.get("delta", "") for s in steps(events, "reasoning") if s["iteration"] == 1)
    assert "invented" not in reasoning and "invented" not in llm.feedback(2)
    assert "real output" in llm.feedback(2)


async def test_steps_trace_reasoning_code_and_output_with_timing(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([repl("print(21 * 2)", before="Compute it."), repl("FINAL('42')")])
    events = await stack.stream([user("21 * 2?")])
    reasoning = "".join(s.get("delta", "") for s in steps(events, "reasoning") if s["iteration"] == 1)
    assert reasoning.startswith("Compute it.\n```repl\nprint(21 * 2)")
    assert steps(events, "code")[0] == {"kind": "code", "iteration": 1, "code": "print(21 * 2)"}
    output = steps(events, "output")[0]
    assert output["stdout"] == "42\n" and isinstance(output["ms"], int)
    kinds = [e["rlm"]["kind"] for e in events if "rlm" in e]
    assert kinds.index("code") > kinds.index("reasoning") and kinds[-1] == "final"


async def test_hidden_thinking_sends_no_reasoning_steps(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([repl("FINAL('ok')")])
    events = await stack.stream([user("Hi")], show_rlm_thinking=False)
    assert answer_text(events) == "ok"
    assert steps(events, "reasoning") == []
    assert steps(events, "code")


async def test_errors_in_a_cell_go_back_to_the_model_readably(make_stack: MakeStack) -> None:
    stack, llm = await make_stack([repl("1 / 0"), repl("FINAL('recovered')")])
    events = await stack.stream([user("Try.")])
    assert answer_text(events) == "recovered"
    assert "ZeroDivisionError" in llm.feedback(2)
    assert steps(events, "output")[0]["error"].startswith("ZeroDivisionError")


async def test_an_oversized_subcall_prompt_is_refused_inside_the_repl_and_the_job_goes_on(
    make_stack: MakeStack,
) -> None:
    stack, llm = await make_stack(
        [
            repl("try:\n    llm_query('x' * 5000)\nexcept RuntimeError as exc:\n    print('refused:', exc)"),
            repl("FINAL('split it')"),
        ],
        rlm_max_subcall_chars=1000,
    )
    events = await stack.stream([user("Ask.")])
    assert answer_text(events) == "split it"
    assert llm.subcall_prompts == []
    assert "refused:" in llm.feedback(2) and "5,000 characters" in llm.feedback(2)


async def test_max_iterations_asks_once_for_a_best_answer_and_says_it_was_forced(
    make_stack: MakeStack,
) -> None:
    stack, llm = await make_stack(
        [repl("print(1)"), "Still thinking, no code.", "My best guess is 7."],
        rlm_max_iterations=2,
    )
    events = await stack.stream([user("Guess a number.")])
    answer = answer_text(events)
    assert answer.startswith("*(Best answer forced after 2 RLM turns") and answer.endswith(
        "My best guess is 7."
    )
    assert len(llm.root_requests) == 3
    assert "You have used all 2 turns" in llm.feedback(3)
    assert "stop" not in llm.root_requests[2]
    assert assert_ends_with_one_done(events)["finish_reason"] == "length"
    assert steps(events, "final")[0]["forced"] is True
    assert any("asking for a best answer" in e.get("status", "") for e in events)


async def test_the_system_prompt_of_the_conversation_becomes_instructions(make_stack: MakeStack) -> None:
    stack, llm = await make_stack([repl("FINAL('Bonjour')")])
    await stack.stream(
        [{"role": "system", "content": "Always answer in French."}, user("Say hello."), user("Now?")]
    )
    system = llm.root_requests[0]["messages"][0]["content"]
    assert "Always answer in French." in system
    assert "Say hello." in llm.root_requests[0]["messages"][1]["content"]  # the context preview


async def test_chat_log_records_the_code_that_ran_the_answer_and_usage(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    log_path = tmp_path / "chat.jsonl"
    stack, _llm = await make_stack([repl("x = 2 + 2"), repl("FINAL(x)")], chat_log=str(log_path))
    await stack.stream([user("2 + 2?")])
    await stack.app[CHAT_LOG].flush()
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["service"] == "rlm" and entry["outcome"] == "answered"
    assert entry["duration_ms"] >= 0
    assert entry["code"] == ["x = 2 + 2", "FINAL(x)"]
    assert entry["answer"] == "4" and entry["question"] == "2 + 2?"
    assert entry["usage"]["total_tokens"] == 2 * USAGE_PER_CALL


async def test_metrics_count_jobs_by_outcome_and_sandbox_starts_and_kills(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([repl("FINAL('a')"), repl("FINAL('b')")])
    await stack.stream([user("one")])
    await stack.stream([user("two")])
    assert stack.metric("tinychat_rlm_jobs_total", outcome="answered") == 2
    assert stack.metric("tinychat_rlm_sandbox_starts_total") == 2
    assert stack.metric("tinychat_rlm_sandbox_kills_total", reason="finished") == 2
    assert stack.metric("tinychat_rlm_tokens_in_use") == 0


async def test_a_reply_without_usage_still_ends_with_a_usage_summary(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([Reply(text=repl("FINAL('x')"), usage=None)])
    events = await stack.stream([user("Hi")])
    assert assert_ends_with_one_done(events)["usage"]["llm_calls"] == 1
