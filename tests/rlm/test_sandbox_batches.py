"""llm_query_batched over a large batch: it goes to the host in groups of bytes, two groups
with the host at once (the model always has the next group to work on), and the answers
come back in the order of the prompts whatever order the groups finish in. On every backend."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from tinychat_common.errors import UpstreamError
from tinychat_rlm.sandbox import SandboxFactory

from tests.rlm.sandbox_fixtures import (  # noqa: F401  (fixtures)
    docker_unavailable_fixture,
    process_unavailable_fixture,
    run,
    sandbox_backend_fixture,
    sandboxes_fixture,
)

pytestmark = pytest.mark.timeout(120)

# Ten prompts of 1 MB: three groups of at most 4 MB (runner.BATCH_MESSAGE_BYTES).
TEN_MEGABYTES = "prompts = [str(i) + ':' + 'x' * 1_000_000 for i in range(10)]\n"


async def test_the_next_group_is_sent_while_the_host_still_answers_the_last(
    sandboxes: SandboxFactory,
) -> None:
    groups: list[list[str]] = []
    second_group_arrived = asyncio.Event()
    overlapped: list[bool] = []

    async def model(prompts: list[str]) -> list[str]:
        groups.append([p.split(":")[0] for p in prompts])
        if len(groups) == 1:
            # A runner that waits for this answer before it sends the next group never
            # sends it: then this gives up (well past any honest wait) and the test fails.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60):
                    await second_group_arrived.wait()
            overlapped.append(second_group_arrived.is_set())
        else:
            second_group_arrived.set()
        return [p.split(":")[0] for p in prompts]

    code = TEN_MEGABYTES + "answers = llm_query_batched(prompts)\nprint(answers)"
    async with await sandboxes.create("") as sandbox:
        result = await sandbox.execute(code, llm_query=model, timeout=60)
    assert result.error is None, result.stderr
    assert overlapped == [True]
    assert [len(g) for g in groups] == [3, 3, 3, 1]
    assert result.stdout == str([str(i) for i in range(10)]) + "\n"


async def test_answers_keep_the_prompts_order_when_a_later_group_finishes_first(
    sandboxes: SandboxFactory,
) -> None:
    later_done = asyncio.Event()
    calls = 0

    async def model(prompts: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            async with asyncio.timeout(60):
                await later_done.wait()  # the first group answers after the second
        else:
            later_done.set()
        return [f"answer {p.split(':')[0]}" for p in prompts]

    code = TEN_MEGABYTES + "print(llm_query_batched(prompts))"
    async with await sandboxes.create("") as sandbox:
        result = await sandbox.execute(code, llm_query=model, timeout=60)
    assert result.stdout == str([f"answer {i}" for i in range(10)]) + "\n", result.stderr


async def test_a_batch_of_chinese_text_is_cut_by_bytes_to_fit_the_line_limit(
    sandboxes: SandboxFactory,
) -> None:
    # 1.5 million characters each, 4.5 MB of UTF-8: two of them in one line would be over
    # the 8 MB limit, though 3 million characters are under a 4 million character group.
    code = (
        "prompts = ['汉' * 1_500_000 + str(i) for i in range(3)]\nprint(llm_query_batched(prompts)[2][-3:])"
    )
    sizes: list[int] = []

    async def model(prompts: list[str]) -> list[str]:
        sizes.append(len(prompts))
        return [p[-2:] for p in prompts]

    async with await sandboxes.create("") as sandbox:
        result = await sandbox.execute(code, llm_query=model, timeout=60)
    assert result.error is None, result.stderr
    assert result.stdout == "汉2\n"
    assert sizes == [1, 1, 1]


async def test_a_failing_group_fails_the_batch_and_the_next_call_still_works(
    sandboxes: SandboxFactory,
) -> None:
    calls = 0

    async def model(prompts: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise UpstreamError("The model is overloaded.")
        return [p.upper() for p in prompts]

    code = (
        TEN_MEGABYTES
        + "try:\n    llm_query_batched(prompts)\nexcept RuntimeError as exc:\n    print('caught:', exc)\n"
        + "print(llm_query('still works'))"
    )
    async with await sandboxes.create("") as sandbox:
        result = await sandbox.execute(code, llm_query=model, timeout=60)
        assert result.stdout == "caught: llm_query failed: The model is overloaded.\nSTILL WORKS\n"
        assert calls <= 3  # the group in flight beside the failed one, then no more groups
        assert (await run(sandbox, "print(llm_query_batched(['a', 'b']))")).stdout == "['A', 'B']\n"
