"""A fast fake OpenAI-compatible chat API for benchmarks.

    python -m bench.fake_upstream --port 9000 --chunks 100 --interval 0.02

Every streamed answer is `--chunks` content deltas `--interval` seconds apart, in the real
OpenAI SSE wire format (a role chunk, the content chunks, a chunk with `finish_reason`, a
usage chunk with empty `choices`, then `data: [DONE]`), over HTTP/1.1 chunked encoding
with keep-alive. The first content delta goes out with the headers, so time to first token
measures the path, not the fake.

It must never be the bottleneck of what it measures, so it is a bare asyncio protocol (no
web framework): frames are encoded once per model and each tick of a stream is a single
`transport.write` scheduled with `call_later`. It is not the scriptable test fake
(tests/fakes/openai_upstream.py); it only knows how to stream quickly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

# Every content delta is this text; the load client counts deltas by counting MARKER in
# the raw bytes, which works whether a hop re-frames or merges deltas.
DELTA = " Zqv"
MARKER = DELTA.strip().encode()
DEFAULT_MODEL = "bench-model"
# This model answers like a reasoning model served without a reasoning parser: the first
# half of its deltas inside a leading `<think>` block, the second half the answer.
THINK_MODEL = "bench-think"
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024**2

STREAM_HEADERS = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
)


@dataclass(frozen=True)
class Script:
    chunks: int = 100
    interval: float = 0.02


@dataclass(frozen=True)
class EncodedStream:
    """One model's answer, already in wire form: each item is one HTTP chunk."""

    opening: bytes  # headers, role chunk and the first content delta
    delta: bytes
    closing: bytes  # finish chunk, usage chunk, [DONE] and the last-chunk marker
    switch: bytes = b""  # sent instead of `delta` as delta number `switch_at` (0 = opening's)
    switch_at: int = -1


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse_frame(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return b"data: " + text.encode() + b"\n\n"


def encode_stream(model: str, chunks: int) -> EncodedStream:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": int(time.time())}
    base["model"] = model

    def chunk(delta: dict[str, str], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return http_chunk(sse_frame({**base, "choices": [choice]}))

    usage = {"prompt_tokens": 10, "completion_tokens": chunks, "total_tokens": 10 + chunks}
    role = chunk({"role": "assistant", "content": ""})
    delta = chunk({"content": DELTA})
    closing = (
        chunk({}, "stop")
        + http_chunk(sse_frame({**base, "choices": [], "usage": usage}))
        + http_chunk(sse_frame("[DONE]"))
        + b"0\r\n\r\n"
    )
    if model == THINK_MODEL and chunks > 1:
        opening = STREAM_HEADERS + role + chunk({"content": "<think>" + DELTA})
        switch = chunk({"content": "</think>\n\n" + DELTA})
        return EncodedStream(opening, delta, closing, switch, chunks // 2)
    return EncodedStream(STREAM_HEADERS + role + (delta if chunks else b""), delta, closing)


def json_response(status: str, payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload).encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def whole_completion(model: str, chunks: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": DELTA * chunks}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": chunks, "total_tokens": 10 + chunks},
    }


class Request:
    """Just enough of an HTTP/1.1 request: method, path, headers and the body."""

    def __init__(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        self.method, self.path, _ = [*lines[0].split(" "), "", ""][:3]
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.body = b""

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def content_length(self) -> int:
        return int(self.headers.get("content-length") or 0)


def read_chunked_body(buffer: bytearray) -> tuple[bytes, int] | None:
    """The body of a chunked request and the bytes it used, or None if still incomplete."""
    body = bytearray()
    at = 0
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";")[0] or b"0", 16)
        start = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", line_end)
            return (bytes(body), trailer_end + 4) if trailer_end >= 0 else None
        if len(buffer) < start + size + 2:
            return None
        body += buffer[start : start + size]
        at = start + size + 2


class UpstreamProtocol(asyncio.Protocol):
    """One client connection: read a request, answer it, repeat (keep-alive)."""

    def __init__(self, server: FakeUpstream) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.request: Request | None = None
        self.streaming = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.streaming:
            self.server.disconnects += 1
        self.streaming = False
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.streaming:
            self.handle_buffered()

    def handle_buffered(self) -> None:
        while self.transport is not None and not self.streaming:
            request = self.take_request()
            if request is None:
                return
            self.answer(request)

    def take_request(self) -> Request | None:
        if self.request is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEADER_BYTES:
                    self.fail("431 Request Header Fields Too Large")
                return None
            self.request = Request(bytes(self.buffer[:end]))
            del self.buffer[: end + 4]
        request = self.request
        if request.chunked:
            taken = read_chunked_body(self.buffer)
            if taken is None:
                return None
            request.body, used = taken
        else:
            used = request.content_length
            if used > MAX_BODY_BYTES:
                self.fail("413 Payload Too Large")
                return None
            if len(self.buffer) < used:
                return None
            request.body = bytes(self.buffer[:used])
        del self.buffer[:used]
        self.request = None
        return request

    def fail(self, status: str) -> None:
        assert self.transport is not None
        self.transport.write(json_response(status, {"error": {"message": status, "type": "bench"}}))
        self.transport.close()

    def answer(self, request: Request) -> None:
        assert self.transport is not None
        self.server.requests += 1
        path = request.path.split("?", 1)[0]
        if request.method == "POST" and path.endswith("/chat/completions"):
            self.complete(request)
        elif request.method == "GET" and path.endswith("/models"):
            data = [{"id": DEFAULT_MODEL, "object": "model", "created": 0, "owned_by": "bench"}]
            self.transport.write(json_response("200 OK", {"object": "list", "data": data}))
        elif request.method == "GET" and path in ("/healthz", "/readyz"):
            self.transport.write(json_response("200 OK", {"status": "ready"}))
        else:
            self.transport.write(json_response("404 Not Found", {"error": {"message": "no such route"}}))

    def complete(self, request: Request) -> None:
        assert self.transport is not None
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            self.transport.write(json_response("400 Bad Request", {"error": {"message": "bad JSON"}}))
            return
        model = str(body.get("model") or DEFAULT_MODEL)
        chunks = self.server.script.chunks
        if not body.get("stream"):
            self.transport.write(json_response("200 OK", whole_completion(model, chunks)))
            return
        stream = self.server.encoded(model)
        self.streaming = True
        self.transport.write(stream.opening)
        self.schedule(stream, asyncio.get_running_loop().time(), sent=1)

    def schedule(self, stream: EncodedStream, started: float, sent: int) -> None:
        # Deltas are due at fixed times from the start, like a model generating at a
        # steady rate: a late tick (a busy loop) does not push back all later ones.
        due = started + sent * self.server.script.interval
        self.timer = asyncio.get_running_loop().call_at(due, self.tick, stream, started, sent)

    def tick(self, stream: EncodedStream, started: float, sent: int) -> None:
        self.timer = None
        if self.transport is None:
            return
        if sent < self.server.script.chunks:
            self.transport.write(stream.switch if sent == stream.switch_at else stream.delta)
            self.schedule(stream, started, sent + 1)
            return
        self.transport.write(stream.closing)
        self.streaming = False
        self.handle_buffered()


class FakeUpstream:
    """The server: a script, per-model encoded answers, and counters."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests = 0
        self.disconnects = 0
        self.connections: set[UpstreamProtocol] = set()
        self._encoded: dict[str, EncodedStream] = {}
        self._server: asyncio.Server | None = None

    def encoded(self, model: str) -> EncodedStream:
        stream = self._encoded.get(model)
        if stream is None:
            stream = self._encoded[model] = encode_stream(model, self.script.chunks)
        return stream

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: UpstreamProtocol(self), host, port, backlog=4096)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self.connections):
                if connection.transport is not None:
                    connection.transport.abort()
            await self._server.wait_closed()


async def serve_forever(host: str, port: int, script: Script) -> None:
    upstream = FakeUpstream(script)
    bound = await upstream.start(host, port)
    print(f"fake upstream on http://{host}:{bound}/v1", flush=True)
    await asyncio.Event().wait()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_upstream", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--chunks", type=int, default=100, help="content deltas per answer")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between deltas")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from bench.runtime import fast_event_loop, raise_fd_limit

    args = parse_args(argv)
    raise_fd_limit()
    script = Script(chunks=args.chunks, interval=args.interval)
    with contextlib.suppress(KeyboardInterrupt):
        fast_event_loop(serve_forever(args.host, args.port, script))


if __name__ == "__main__":
    main()
