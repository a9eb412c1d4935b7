"""The engine's pure parts: finding runnable code, mapping a conversation onto a job,
cutting outputs for the model, and the error family's two outside forms."""

from __future__ import annotations

import inspect

import pytest
from tinychat_common.errors import TinyChatError
from tinychat_common.models import ChatRequest
from tinychat_rlm import errors
from tinychat_rlm.codeblocks import code_blocks
from tinychat_rlm.engine import job_from_request
from tinychat_rlm.prompts import cell_output, first_message


def test_repl_and_python_blocks_run_and_others_do_not() -> None:
    reply = (
        "Plan.\n```repl\na = 1\n```\nthen\n```python\nb = 2\n```\n"
        "```text\nFINAL('no')\n```\n```\nplain = 3\n```\n```bash\nrm -rf /\n```\n"
    )
    assert code_blocks(reply) == ["a = 1", "b = 2"]


def test_an_unclosed_last_block_runs_when_generation_stopped_at_its_fence() -> None:
    # The stop sequence "\n```\n" is stripped by the API, so the closing fence is missing.
    assert code_blocks("Look:\n```repl\nprint(len(context))") == ["print(len(context))"]


def test_an_unclosed_block_cut_by_the_length_limit_does_not_run() -> None:
    assert code_blocks("```repl\nfor i in range(", ended_normally=False) == []


def test_final_in_prose_or_inline_code_is_not_code() -> None:
    assert code_blocks("The answer is FINAL(wrong), or `FINAL('x')`.") == []


def test_empty_blocks_are_skipped_and_indented_fences_are_found() -> None:
    assert code_blocks("```repl\n\n```\n  ```python\nx = 1\n  ```") == ["x = 1"]


def chat(*messages: tuple[str, str]) -> ChatRequest:
    return ChatRequest(messages=[{"role": r, "content": c} for r, c in messages], rlm=True)


def test_one_earlier_message_becomes_a_string_context() -> None:
    job = job_from_request(chat(("user", "DOC"), ("user", "Q?")))
    assert job.context == "DOC" and job.question == "Q?" and not job.question_is_context


def test_several_earlier_messages_become_a_list_with_roles() -> None:
    job = job_from_request(chat(("user", "a"), ("assistant", "b"), ("user", "c"), ("user", "Q?")))
    assert job.context == ["user: a", "assistant: b", "user: c"]


def test_a_lone_question_is_its_own_context() -> None:
    job = job_from_request(chat(("user", "Long text … what does it say?")))
    assert job.context == "Long text … what does it say?" and job.question_is_context


def test_system_messages_are_instructions_not_context() -> None:
    job = job_from_request(chat(("system", "Be brief."), ("user", "DOC"), ("user", "Q?")))
    assert job.instructions == "Be brief." and job.context == "DOC"


@pytest.mark.parametrize("last", [("assistant", "Hi"), ("user", "   ")])
def test_a_conversation_must_end_with_a_user_question(last: tuple[str, str]) -> None:
    with pytest.raises(errors.NoQuestion):
        job_from_request(chat(("user", "Hello"), last))


def test_the_first_message_never_carries_a_huge_question_whole() -> None:
    question = "x" * 50_000
    message = first_message(question, question, True)
    assert len(message) < 6_000
    assert "46,000 more characters not shown" in message


def test_cell_output_is_cut_to_the_budget_with_a_readable_marker() -> None:
    text = cell_output(
        index=1, stdout="y" * 20_000, stderr="", error=None, variables=["a"], output_chars=1_000
    )
    assert len(text) < 1_300
    assert "19,000 more characters not shown" in text and "Variables defined: a" in text


def test_silent_cells_say_so() -> None:
    text = cell_output(index=2, stdout="", stderr="", error=None, variables=[], output_chars=1_000)
    assert "(no output" in text


def error_classes() -> list[type[TinyChatError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, TinyChatError) and cls.__module__ == errors.__name__
    ]


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.__name__)
def test_every_error_has_a_json_form_and_an_event_form(cls: type[TinyChatError]) -> None:
    arguments = [1.5] if "seconds" in inspect.signature(cls.__init__).parameters else []
    error = cls(*arguments)
    assert error.to_json() == {"error": error.code, "detail": error.message}
    assert error.to_event().as_dict() == {"error": error.message, "code": error.code}
    assert 400 <= error.status < 600 and error.message.endswith((".", ")"))
