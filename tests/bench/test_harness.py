"""The benchmark and the load test run end to end, with tiny numbers, against the real
gateway and chat-service started as processes. No timing is asserted: only that every
stream is measured, complete and error-free, and that the figures are all there."""

from __future__ import annotations

import pytest

from bench import chat, load
from bench.__main__ import load_suite, suite_passed

pytestmark = pytest.mark.timeout(90)


async def test_chat_bench_measures_both_paths_end_to_end() -> None:
    result = await chat.main(
        levels=(2,), chunks=3, interval=0.005, rounds=2, warmup=False, write=False, echo=False
    )
    level = result["levels"]["2"]
    for path in ("direct", "two_hop"):
        side = level[path]
        assert side["errors"] == 0, side["error_samples"]
        assert side["requests"] == 4
        assert side["deltas"] == 12
        assert side["ttft_ms"]["p50"] is not None
        assert side["events_per_s"] > 0
    assert [(c["what"], c["passed"]) for c in result["checks"]] == [("2 streams", True)]
    assert result["passed"] is True


async def test_chat_bench_measures_reference_hops_next_to_the_services() -> None:
    result = await chat.main(
        levels=(2,),
        chunks=3,
        interval=0.005,
        rounds=1,
        references=True,
        reference_level=2,
        warmup=False,
        write=False,
        echo=False,
    )
    level = result["levels"]["2"]
    for path in ("direct", "two_hop", "tcp_x2", "aiohttp_x2"):
        assert level[path]["errors"] == 0, level[path]["error_samples"]
        assert level[path]["deltas"] == 6
    assert chat.reference_lines({2: level})[0].startswith("2 streams, TTFT p50 vs direct: tcp x2 ")


async def test_load_test_reports_errors_and_memory_of_each_service() -> None:
    result = await load.main(
        streams=3,
        seconds=0.3,
        warmup_seconds=0.2,
        chunks=3,
        interval=0.005,
        settle_seconds=0.1,
        write=False,
        echo=False,
    )
    assert result["run"]["errors"] == 0, result["run"]["error_samples"]
    assert result["run"]["requests"] >= 3
    assert set(result["memory"]) == {"gateway", "chat-service"}
    assert result["rss_samples_mib"][0]["gateway"] > 0
    for name in ("gateway", "chat-service"):
        assert result["rss_kib_before"][name] > 0
        assert result["rss_kib_after"][name] > 0


def test_checks_fail_when_two_hop_is_slower_than_the_targets() -> None:
    def side(ttft: float, eps: float, errors: int = 0) -> dict:
        return {"ttft_ms": {"p50": ttft, "p99": ttft}, "events_per_s": eps, "errors": errors}

    levels = {
        1: {"direct": side(1.0, 50), "two_hop": side(4.5, 50)},
        100: {"direct": side(10.0, 5000), "two_hop": side(16.0, 4700)},
        500: {"direct": side(50.0, 20000), "two_hop": side(60.0, 16000, errors=1)},
    }
    verdicts = [(c.what, c.target, c.passed) for c in chat.evaluate(levels)]
    assert verdicts == [
        ("1 stream", "TTFT p50 <= direct + 3 ms", False),
        ("100 streams", "events/s >= 0.95x direct", False),
        ("100 streams", "TTFT p50 <= 1.5x direct", False),
        ("500 streams", "events/s >= 0.75x direct", True),
        ("500 streams", "0 errors", False),
    ]


def test_missing_suite_is_skipped_with_a_reason() -> None:
    assert load_suite("no_such_suite") == "not written yet"
    assert suite_passed({"passed": False}) is False
    assert suite_passed({"table": "no verdict"}) is True


def test_cpu_column_names_the_processes_of_each_path() -> None:
    spent = {"fake-upstream": 20, "gateway": 60, "chat-service": 80, "tcp-hop-1": 21, "tcp-hop-2": 22}
    side = {"deltas": chat.MIN_DELTAS_FOR_CPU, "cpu_us_per_event": spent}
    assert chat.cpu_per_event(side, "direct") == "fake 20"
    assert chat.cpu_per_event(side, "two_hop") == "gateway 60 chat 80"
    assert chat.cpu_per_event(side, "tcp_x2") == "outer 22 inner 21"
    assert chat.cpu_per_event({**side, "deltas": 10}, "two_hop") == "-"
