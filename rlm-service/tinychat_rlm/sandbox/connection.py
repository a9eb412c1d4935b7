"""The host side of the runner's JSON-lines protocol (see runner.py), shared by every backend.

`RunnerSandbox` holds everything about a running runner that does not depend on how it is
isolated: the handshake, cells with their time limit, llm_query round trips, and the rule
that a sandbox that timed out, was cancelled, or broke the protocol is killed at once.

Nothing the sandbox sends is trusted: cell code runs in the same process as the runner and can
write any line it likes to the protocol descriptor. So a line longer than MAX_LINE_BYTES ends
the job (it is never buffered whole), every field of a result is cut to its cap here, and a
message whose id was not asked for (a result for another cell, an llm_query out of sequence)
ends the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from abc import abstractmethod
from collections.abc import Coroutine
from typing import Any

from tinychat_common.errors import TinyChatError

from . import seccomp
from .base import CellResult, LlmQuery, Sandbox, SandboxError

log = logging.getLogger(__name__)

# The longest line the runner may send: a batch of llm_query prompts is the largest honest
# one (the runner refuses to send a bigger batch, so the cell gets a readable error instead).
MAX_LINE_BYTES = 8 * 1024 * 1024
# What a stream reader may hold before it stops reading from the sandbox.
READ_BUFFER_BYTES = MAX_LINE_BYTES
MAX_MESSAGE_BYTES = MAX_LINE_BYTES  # the former name, kept for callers
# How many llm_query lines the runner may have with the host at once (runner.py's
# QUERIES_IN_FLIGHT): llm_query_batched sends its next group while this one is answered.
QUERIES_IN_FLIGHT = 2
START_TIMEOUT = 20.0
# Caps of a result's fields (characters), whatever the runner claims.
MAX_FINAL_CHARS = 200_000
MAX_ERROR_CHARS = 2_000
MAX_VARIABLES = 200
MAX_VARIABLE_NAME_CHARS = 100
# The output markers a runner adds when it cuts (see runner.CappedText) fit in this slack.
OUTPUT_SLACK_CHARS = 100


class RunnerSandbox(Sandbox):
    """A sandbox whose runner is reached through an asyncio stream pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._dead = False
        self._busy = asyncio.Lock()
        self._next_cell = 0
        self._last_query = 0
        self._unanswered = 0  # llm_query lines whose reply is not yet written
        self.output_limit = 20_000

    # -- what a backend provides --------------------------------------------------------------

    @abstractmethod
    async def _terminate(self) -> None:
        """Kill everything the sandbox started and release its resources. Never raises."""

    async def _exit_reason(self) -> str:
        """Why the runner went away, for a person (e.g. 'killed: out of memory')."""
        return "the sandbox stopped"

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return not self._dead

    async def kill(self) -> None:
        if self._dead:
            return
        self._dead = True
        # The transport may already be gone; killing goes on regardless.
        with contextlib.suppress(Exception):
            self._writer.close()
        await asyncio.shield(self._terminate())

    async def start(self, context: str | list[str], *, output_limit: int, limits: dict[str, int]) -> None:
        """Send the context and wait for the runner to say it is ready."""
        self.output_limit = output_limit
        try:
            syscall_filter = _job_filter_hex()
        except SandboxError:
            await self.kill()
            raise
        init: dict[str, Any] = {
            "type": "init",
            "output_limit": output_limit,
            "max_line_bytes": MAX_LINE_BYTES,
            "limits": limits,
            # The runner installs it on itself before any cell runs, under every backend.
            "seccomp": syscall_filter,
        }
        names = getattr(context, "names", None)  # documents (tinychat_rlm.documents.Documents)
        if names is not None:
            init["names"] = names
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await self._send_init(init, context)
                reply = await self._receive()
        except BaseException as exc:
            reason = await self._exit_reason()
            await self.kill()
            if isinstance(exc, TimeoutError):
                raise SandboxError(f"the sandbox did not start within {START_TIMEOUT:.0f} s") from None
            if isinstance(exc, SandboxError):
                raise SandboxError(f"the sandbox did not start: {reason}") from None
            raise
        if reply.get("type") != "ready":
            await self.kill()
            raise SandboxError(f"the sandbox did not start: {reply.get('error') or 'unexpected reply'}")

    # -- cells --------------------------------------------------------------------------------

    async def execute(self, code: str, *, llm_query: LlmQuery, timeout: float) -> CellResult:
        if self._dead:
            raise SandboxError("the sandbox is no longer running")
        async with self._busy:
            try:
                return await self._run_cell(code, llm_query, timeout)
            except TimeoutError:
                await self.kill()
                return CellResult(
                    error=f"TimeoutError: the cell ran longer than {timeout:g} s and was stopped",
                    stderr=f"The cell ran longer than its {timeout:g} s limit; the sandbox was stopped.",
                    timed_out=True,
                )
            except SandboxError as exc:
                reason = await self._exit_reason()
                await self.kill()
                raise SandboxError(f"{exc} ({reason})") from None
            except BaseException:
                # Cancelled (the job ended or the client left) or a bug: never leave it running.
                await self.kill()
                raise

    async def _run_cell(self, code: str, llm_query: LlmQuery, timeout: float) -> CellResult:
        self._next_cell += 1
        cell_id = self._next_cell
        await self._send({"type": "exec", "id": cell_id, "code": code})
        # The budget counts the cell's own running time, not the time the LM takes to answer:
        # the clock runs only while no llm_query is being answered.
        budget = timeout
        answering: set[asyncio.Task[None]] = set()
        receiving = asyncio.ensure_future(self._receive())
        try:
            while True:
                started = time.monotonic()
                done, _ = await asyncio.wait(
                    {receiving, *answering},
                    timeout=None if answering else budget,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not answering:
                    budget -= time.monotonic() - started
                if not done:
                    raise TimeoutError
                for task in done - {receiving}:
                    answering.discard(task)
                    task.result()  # a reply that could not be sent ends the cell
                if receiving not in done:
                    continue
                message = receiving.result()
                kind = message.get("type")
                if kind == "llm_query":
                    answering.add(asyncio.create_task(self._answer_query(message, llm_query)))
                    receiving = asyncio.ensure_future(self._receive())
                elif kind == "result":
                    if message.get("id") != cell_id or self._unanswered:
                        raise SandboxError("the sandbox broke the protocol (a result not asked for)")
                    return _cell_result(message, self.output_limit)
                elif kind == "fatal":
                    error = _cut(str(message.get("error")), MAX_ERROR_CHARS)
                    raise SandboxError(f"the sandbox failed: {error}")
                else:
                    raise SandboxError(f"the sandbox broke the protocol (unexpected {_cut(repr(kind), 40)})")
        finally:
            pending = [task for task in (receiving, *answering) if not task.done()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _answer_query(self, message: dict[str, Any], llm_query: LlmQuery) -> Coroutine[Any, Any, None]:
        """Checks an llm_query line at once (its id is the next one, and the runner keeps no
        more than QUERIES_IN_FLIGHT with the host); the answer and reply follow as a task."""
        if message.get("id") != self._last_query + 1:
            raise SandboxError("the sandbox broke the protocol (an llm_query id out of sequence)")
        if self._unanswered >= QUERIES_IN_FLIGHT:
            raise SandboxError("the sandbox broke the protocol (too many llm_query lines at once)")
        self._last_query += 1
        self._unanswered += 1
        query_id = self._last_query

        async def answer_and_reply() -> None:
            answers = await self._answer(message, llm_query)
            # Counted as answered in the step that writes the reply: the runner may ask
            # again as soon as it reads it, before this task's drain returns.
            self._unanswered -= 1
            await self._send({"type": "llm_reply", "id": query_id, **answers})

        return answer_and_reply()

    async def _answer(self, message: dict[str, Any], llm_query: LlmQuery) -> dict[str, Any]:
        prompts = message.get("prompts")
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            raise SandboxError("the sandbox broke the protocol (llm_query without prompts)")
        rlm = message.get("rlm")
        try:
            answers = await (llm_query(prompts) if rlm is None else llm_query(prompts, rlm=rlm))
        except TinyChatError as exc:
            # The cell sees a RuntimeError it can handle; the job goes on.
            return {"error": exc.message}
        except Exception:
            log.exception("llm_query failed")
            return {"error": "the language model call failed"}
        if len(answers) != len(prompts):
            return {"error": "the language model returned the wrong number of answers"}
        return {"answers": [str(a) for a in answers]}

    # -- the wire -----------------------------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n"
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, RuntimeError, OSError) as exc:
            raise SandboxError("the sandbox closed its input") from exc

    async def _send_init(self, init: dict[str, Any], context: str | list[str]) -> None:
        """The init line, then (for a list of texts) the texts as raw UTF-8 in pieces: a
        60 MB context is never a second 60 MB string in this process, and the runner
        decodes it instead of parsing it as JSON."""
        try:
            if isinstance(context, str) and len(context) < RAW_CONTEXT_CHARS:
                self._writer.write(
                    json.dumps({**init, "context": context}, ensure_ascii=False).encode() + b"\n"
                )
            else:
                texts = [context] if isinstance(context, str) else context
                sizes = [_utf8_size(text) for text in texts]
                raw = sizes[0] if isinstance(context, str) else sizes
                line = json.dumps({**init, "context_bytes": raw}, ensure_ascii=False).encode() + b"\n"
                self._writer.write(line)
                for text in texts:
                    for start in range(0, len(text), INIT_PIECE_CHARS):
                        self._writer.write(_utf8(text[start : start + INIT_PIECE_CHARS]))
                        await self._writer.drain()
            await self._writer.drain()
        except (ConnectionError, RuntimeError, OSError) as exc:
            raise SandboxError("the sandbox closed its input") from exc

    async def _receive(self) -> dict[str, Any]:
        try:
            line = await self._reader.readline()
        except (ValueError, asyncio.LimitOverrunError):
            # Never read on: the rest of the line stays in the pipe until the sandbox is killed.
            raise SandboxError(
                f"the sandbox sent a message over the {MAX_LINE_BYTES // 1024**2} MB line limit"
            ) from None
        except (ConnectionError, OSError) as exc:
            raise SandboxError("the sandbox connection broke") from exc
        if not line.endswith(b"\n"):
            raise SandboxError("the sandbox stopped unexpectedly")
        try:
            message = json.loads(line)
        except ValueError:
            raise SandboxError("the sandbox sent a malformed message") from None
        if not isinstance(message, dict):
            raise SandboxError("the sandbox sent a malformed message")
        return message


@functools.cache
def _job_filter_hex() -> str:
    try:
        return seccomp.job_filter().hex()
    except OSError as exc:
        raise SandboxError(f"no syscall filter for this machine: {exc.strerror}") from None


INIT_PIECE_CHARS = 1 << 20
RAW_CONTEXT_CHARS = 1 << 16  # a str context shorter than this goes inside the init line


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "replace")


def _utf8_size(text: str) -> int:
    if text.isascii():
        return len(text)
    return sum(len(_utf8(text[i : i + INIT_PIECE_CHARS])) for i in range(0, len(text), INIT_PIECE_CHARS))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[… {len(text) - limit:,} characters cut …]"


def _cell_result(message: dict[str, Any], output_limit: int) -> CellResult:
    """The runner's result with every field checked and cut to its cap (the runner cuts too,
    but a forged line need not)."""

    def text(key: str, limit: int) -> str:
        value = message.get(key)
        return _cut(value, limit) if isinstance(value, str) else ""

    output_cap = output_limit + OUTPUT_SLACK_CHARS
    stdout, stderr = text("stdout", output_cap), text("stderr", output_cap)
    final = message.get("final")
    error = message.get("error")
    variables = message.get("variables")
    truncated = message.get("truncated_chars")
    names = (
        [v[:MAX_VARIABLE_NAME_CHARS] for v in variables[:MAX_VARIABLES] if isinstance(v, str)]
        if isinstance(variables, list)
        else []
    )
    return CellResult(
        stdout=stdout,
        stderr=stderr,
        final=_cut(final, MAX_FINAL_CHARS) if isinstance(final, str) else None,
        variables=names,
        error=_cut(error, MAX_ERROR_CHARS) if isinstance(error, str) else None,
        truncated_chars=truncated if isinstance(truncated, int) and 0 <= truncated < 2**53 else 0,
    )
