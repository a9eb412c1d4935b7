"""The browser render benchmark runs end to end with a tiny answer: the real gateway and
chat-service, Chromium, both modes. No timing is asserted: only that the harness sees the
whole answer rendered, counts frames and renders, and reports every figure."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("playwright.async_api")

from bench import ui_render
from bench.__main__ import SUITES, load_suite

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(not Path(ui_render.CHROMIUM).exists(), reason="no Chromium"),
]


async def test_ui_render_bench_measures_both_modes_of_one_streamed_answer() -> None:
    result = await ui_render.main(tokens=400, chunks=40, rounds=1, write=False, echo=False)
    whole_answer = result["checks"][0]
    assert whole_answer["passed"], result["markdown"]["runs"][0]["shown"]
    for mode in ("plain", "markdown"):
        figures = result[mode]
        assert figures["frames_per_run"] > 0
        assert figures["renders_per_run"] > 0
        assert figures["max_renders_in_a_frame"] == 1
        assert figures["frame_p50_ms"] is not None
        assert figures["runs"][0]["problem"] is None
    assert [c["what"] for c in result["checks"]] == [
        "whole answer shown, both modes",
        "frame p99, markdown / plain",
        "re-renders <= animation frames",
        "frame interval, last / first quarter",
        "first load over the wire",
        "switch to a 200-message conversation",
        "typing latency in it, p95",
    ]
    load, chat = result["loading"]["first_load"], result["loading"]["long_chat"]
    assert 0 < load["wire_bytes"] < load["decoded_bytes"] and load["ready_ms"] > 0
    assert chat["switch_long_ms"] > 0 and chat["typing_long"]["keys"] > 0


def test_long_answer_has_the_requested_size_and_every_kind_of_block() -> None:
    answer = ui_render.long_answer(20_000)
    assert 20_000 * 4 <= len(answer.text) < 20_000 * 4 + 2_000
    assert answer.code_blocks >= 10 and answer.display_math >= 20 and answer.inline_math >= 100
    assert answer.text.count("```") == 2 * answer.code_blocks
    pieces = ui_render.split_evenly(answer.text, 2_000)
    assert len(pieces) == 2_000 and "".join(pieces) == answer.text


def test_ui_render_is_a_suite_of_make_bench() -> None:
    assert "ui_render" in SUITES
    assert callable(load_suite("ui_render"))
