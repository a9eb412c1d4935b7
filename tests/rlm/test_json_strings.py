"""The chunked body splitter (tinychat_rlm.json_strings): whatever the chunking, the skeleton
plus the long strings are exactly the JSON that was sent, and bad JSON is refused."""

from __future__ import annotations

import json
import random

import pytest
from tinychat_rlm.json_strings import InvalidJson, JsonStringSplitter

JsonValue = str | int | list["JsonValue"] | dict[str, "JsonValue"]
PIECES = ("a", '"', "\\", "\n", "é", "\u2028", "😀", " ", "{", "}", '\\\\"', "x" * 40)


def split(body: bytes, chunk: int, long_bytes: int = 16) -> JsonValue:
    splitter = JsonStringSplitter(long_bytes)
    for start in range(0, len(body), chunk):
        splitter.feed(body[start : start + chunk])
    skeleton, strings = splitter.finish()
    where = {splitter.placeholder(index): text for index, text in enumerate(strings)}

    def put_back(value: JsonValue) -> JsonValue:
        if isinstance(value, str):
            return where.get(value, value)
        if isinstance(value, list):
            return [put_back(item) for item in value]
        if isinstance(value, dict):
            return {key: put_back(item) for key, item in value.items()}
        return value

    result: JsonValue = put_back(json.loads(skeleton))
    return result


def test_any_chunking_gives_back_exactly_the_strings_sent() -> None:
    rng = random.Random(17)
    for _ in range(2000):
        texts = [
            "".join(rng.choice(PIECES) for _ in range(rng.randrange(30))) for _ in range(rng.randrange(5))
        ]
        sent: JsonValue = {"texts": list[JsonValue](texts), "n": 1, 'k"\\': "z"}
        body = json.dumps(sent, ensure_ascii=rng.random() < 0.5).encode()
        assert split(body, rng.randint(1, 40)) == sent


def test_long_strings_leave_the_skeleton_small() -> None:
    sent = {"documents": [{"name": "a.txt", "text": "line\n" * 100_000}]}
    splitter = JsonStringSplitter()
    splitter.feed(json.dumps(sent).encode())
    skeleton, strings = splitter.finish()
    assert len(skeleton) < 200
    assert strings == ["line\n" * 100_000]


@pytest.mark.parametrize(
    "body",
    [
        b'{"text": "never ends',
        b'{"text": "' + b"a" * 40 + b'\xff"}',
        b'{"text": "' + b"a" * 40 + b'\x01"}',
        b'{"text": "' + b"a" * 40 + b'\\q"}',
    ],
    ids=["unterminated", "bad-utf8", "control-character", "bad-escape"],
)
def test_bad_json_in_a_long_string_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidJson):
        split(body, 7)
