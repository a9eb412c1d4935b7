"""The load client counts what arrived, and turns every kind of failure into an error."""

from __future__ import annotations

import json

import pytest

from bench.fake_upstream import FakeUpstream, Script
from bench.loadgen import LoadSpec, StreamReader, run_load
from bench.runtime import free_port, percentile

pytestmark = pytest.mark.timeout(20)

OPENAI_BODY = {"model": "m", "messages": [], "stream": True}


def tinychat_stream(deltas: int) -> bytes:
    events = [json.dumps({"content": " Zqv"}) for _ in range(deltas)]
    events.append(json.dumps({"done": True, "finish_reason": "stop", "usage": None}, separators=(",", ":")))
    return b"".join(b"data: " + e.encode() + b"\n\n" for e in events)


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 11, 64])
def test_deltas_split_across_reads_are_counted_once(piece: int) -> None:
    raw = tinychat_stream(7)
    reader = StreamReader("tinychat", started=0.0)
    for start in range(0, len(raw), piece):
        reader.feed(raw[start : start + piece])
    outcome = reader.finish(expected_deltas=7)
    assert outcome.error is None
    assert outcome.deltas == 7
    assert outcome.ttft is not None


def test_stream_without_done_is_cut_off() -> None:
    reader = StreamReader("tinychat", started=0.0)
    reader.feed(tinychat_stream(3).rsplit(b"data: ", 1)[0])
    assert reader.finish(expected_deltas=3).error == "cut_off"


def test_error_event_is_an_error_even_when_done_follows() -> None:
    reader = StreamReader("tinychat", started=0.0)
    reader.feed(b'data: {"error":"The upstream failed.","code":"upstream_error"}\n\n')
    reader.feed(b'data: {"done":true,"finish_reason":"error","usage":null}\n\n')
    outcome = reader.finish(expected_deltas=0)
    assert outcome.error == "error_event"
    assert "upstream_error" in outcome.detail


def test_missing_deltas_are_an_error() -> None:
    reader = StreamReader("tinychat", started=0.0)
    reader.feed(tinychat_stream(2))
    assert reader.finish(expected_deltas=3).error == "wrong_count"


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) is None


async def test_every_delta_of_every_stream_and_round_is_counted() -> None:
    fake = FakeUpstream(Script(chunks=5, interval=0.001))
    port = await fake.start()
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        spec = LoadSpec(url, OPENAI_BODY, "openai", 4, rounds=2, expected_deltas=5)
        result = await run_load(spec)
    finally:
        await fake.close()
    assert result["errors"] == 0, result["error_samples"]
    assert result["requests"] == 8
    assert result["deltas"] == 40
    assert result["ttft_ms"]["p50"] is not None


async def test_refused_connections_are_counted_as_errors_not_hangs() -> None:
    spec = LoadSpec(f"http://127.0.0.1:{free_port()}/v1/chat/completions", OPENAI_BODY, "openai", 3)
    result = await run_load(spec)
    assert result["errors"] == 3
    assert result["deltas"] == 0
    assert set(result["error_kinds"]) == {"ClientConnectorError"}
