"""The shared SSE encoder and decoder, and the typed events they carry."""

from __future__ import annotations

import json

import pytest
from tinychat_common import events as ev
from tinychat_common.sse import KEEPALIVE, SSEDecoder, SSELineTooLong, encode, encode_many

ALL_EVENTS = [
    ev.Content("héllo\nworld ✓"),
    ev.Status("Generating image… 40%"),
    ev.ImageResult("data:image/png;base64,AAAA", "a cat", "Here it is"),
    ev.RlmStep({"iteration": 1, "code": "print(1)", "output": "1\n"}),
    ev.Error("The model API failed.", "upstream_error"),
    ev.Done("stop", {"total_tokens": 3}),
    ev.Done("error", None),
]


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_survives_encode_decode_from_dict(event):
    decoded = SSEDecoder().feed(encode(event))
    assert len(decoded) == 1
    assert ev.from_dict(json.loads(decoded[0])) == event


def test_an_event_is_one_data_line_and_a_blank_line():
    frame = encode(ev.Content("a\nb"))
    assert frame == b'data: {"content":"a\\nb"}\n\n'


def test_encode_many_is_the_frames_in_order():
    assert encode_many(ALL_EVENTS[:2]) == encode(ALL_EVENTS[0]) + encode(ALL_EVENTS[1])


def test_from_dict_refuses_what_is_not_an_event():
    with pytest.raises(ValueError):
        ev.from_dict({"surprise": 1})


def test_decoder_handles_any_split_of_the_bytes():
    stream = encode_many(ALL_EVENTS)
    for size in (1, 2, 3, 5, 64):
        decoder = SSEDecoder()
        payloads = []
        for i in range(0, len(stream), size):
            payloads += decoder.feed(stream[i : i + size])
        payloads += decoder.close()
        assert [ev.from_dict(json.loads(p)) for p in payloads] == ALL_EVENTS


@pytest.mark.parametrize("newline", [b"\r\n", b"\r", b"\n"])
def test_decoder_accepts_every_line_ending(newline):
    stream = b"data: one" + newline + newline + b"data: two" + newline + newline
    decoder = SSEDecoder()
    # A CR at the very end might be half of a CRLF still in flight: close() settles it.
    assert decoder.feed(stream) + decoder.close() == ["one", "two"]


def test_a_crlf_split_between_reads_is_one_line_ending():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.feed(b"\n\r\n") == ["x"]


def test_comments_and_keepalives_are_skipped_and_data_lines_join():
    stream = KEEPALIVE + b": note\ndata: a\ndata:b\nevent: x\n\n"
    assert SSEDecoder().feed(stream) == ["a\nb"]


def test_close_returns_an_event_missing_its_blank_line():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: last") == []
    assert decoder.close() == ["last"]


def test_a_multibyte_character_split_across_reads_is_kept():
    data = "data: ✓\n\n".encode()
    decoder = SSEDecoder()
    assert decoder.feed(data[:7]) == []
    assert decoder.feed(data[7:]) == ["✓"]


def _frames_for_differential_test() -> list[bytes]:
    return [
        b'data: {"content":"a"}\n\n',
        "data: ✓ ünïcode\n\n".encode(),
        b": keepalive\n\n",
        b"data: one\ndata: two\n\n",
        b"event: x\ndata: y\n\n",
        b"data:no-space\n\n",
        b"data: crlf\r\n\r\n",
        b"\n\n",
        b"data: bad \xff byte\n\n",
        b"data: [DONE]\n\n",
    ]


def test_whole_frame_reads_decode_exactly_like_byte_by_byte_reads():
    # Whole-frame reads take a quicker path than split reads; both must agree on every
    # kind of frame, however the frames are grouped into reads.
    import random

    frames = _frames_for_differential_test()
    rng = random.Random(7)
    for _ in range(300):
        picked = [rng.choice(frames) for _ in range(rng.randint(1, 8))]
        stream = b"".join(picked)
        one_byte = SSEDecoder()
        expected = [p for i in range(len(stream)) for p in one_byte.feed(stream[i : i + 1])]
        expected += one_byte.close()
        grouped = SSEDecoder()
        got = []
        at = 0
        while at < len(picked):
            take = rng.randint(1, 3)
            got += grouped.feed(b"".join(picked[at : at + take]))
            at += take
        got += grouped.close()
        assert got == expected, stream


def test_a_long_line_in_small_reads_decodes_in_linear_time():
    # 8 MiB in 4 KiB reads: the old decoder re-scanned and re-joined the whole unfinished
    # line on every read (about 8 GiB of copying, minutes of CPU); linear takes milliseconds,
    # so the 30 s bound below is far beyond what a linear decoder needs on a busy machine.
    import time

    payload = "x" * (8 * 1024 * 1024)
    stream = ("data: " + payload + "\n\n").encode()
    decoder = SSEDecoder()
    started = time.process_time()
    events = []
    for i in range(0, len(stream), 4096):
        events += decoder.feed(stream[i : i + 4096])
    assert time.process_time() - started < 30
    assert events == [payload]


def test_a_line_past_the_cap_is_refused_as_it_grows():
    decoder = SSEDecoder(max_line_chars=1000)
    decoder.feed(b"data: " + b"x" * 900)
    with pytest.raises(SSELineTooLong):
        decoder.feed(b"x" * 200)


def test_an_event_of_many_lines_past_the_cap_is_refused():
    decoder = SSEDecoder(max_line_chars=1000)
    with pytest.raises(SSELineTooLong):
        decoder.feed(b"data: " + b"x" * 100 + b"\n" * 1 + (b"data: " + b"y" * 100 + b"\n") * 20)


def test_a_whole_frame_past_the_cap_is_refused():
    with pytest.raises(SSELineTooLong):
        SSEDecoder(max_line_chars=100).feed(b"data: " + b"z" * 200 + b"\n\n")


def test_crlf_split_between_reads_is_one_line_ending():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == ["a"]
    assert decoder.feed(b"\ndata: b\n\n") == ["b"]
