"""The host side of the runner's JSON-lines protocol (see runner.py), shared by both backends.

`RunnerSandbox` holds everything about a running runner that does not depend on how it is
isolated: the handshake, cells with their time limit, llm_query round trips, and the rule
that a sandbox that timed out, was cancelled, or broke the protocol is killed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from abc import abstractmethod
from typing import Any

from tinychat_common.errors import TinyChatError

from .base import CellResult, LlmQuery, Sandbox, SandboxError

log = logging.getLogger("tinychat.rlm.sandbox")

# The longest line the runner may send (an llm_query over a large slice of the context).
MAX_MESSAGE_BYTES = 128 * 1024 * 1024
START_TIMEOUT = 20.0


class RunnerSandbox(Sandbox):
    """A sandbox whose runner is reached through an asyncio stream pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._dead = False
        self._busy = asyncio.Lock()
        self._next_cell = 0

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
        init: dict[str, Any] = {"type": "init", "output_limit": output_limit, "limits": limits}
        names = getattr(context, "names", None)  # documents (rlm_service.documents.Documents)
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
        # The budget counts the cell's own running time, not the time the LM takes to answer.
        budget = timeout
        while True:
            started = time.monotonic()
            async with asyncio.timeout(budget):
                message = await self._receive()
            budget -= time.monotonic() - started
            kind = message.get("type")
            if kind == "llm_query":
                answers = await self._answer(message, llm_query)
                await self._send({"type": "llm_reply", "id": message.get("id"), **answers})
            elif kind == "result" and message.get("id") == cell_id:
                return _cell_result(message)
            elif kind == "fatal":
                raise SandboxError(f"the sandbox failed: {message.get('error')}")
            else:
                raise SandboxError(f"the sandbox broke the protocol (unexpected {kind!r})")

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
        except (ValueError, asyncio.LimitOverrunError) as exc:
            raise SandboxError("the sandbox sent a message over the size limit") from exc
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


INIT_PIECE_CHARS = 1 << 20
RAW_CONTEXT_CHARS = 1 << 16  # a str context shorter than this goes inside the init line


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "replace")


def _utf8_size(text: str) -> int:
    if text.isascii():
        return len(text)
    return sum(len(_utf8(text[i : i + INIT_PIECE_CHARS])) for i in range(0, len(text), INIT_PIECE_CHARS))


def _cell_result(message: dict[str, Any]) -> CellResult:
    def text(key: str) -> str:
        value = message.get(key)
        return value if isinstance(value, str) else ""

    final = message.get("final")
    error = message.get("error")
    variables = message.get("variables")
    truncated = message.get("truncated_chars")
    return CellResult(
        stdout=text("stdout"),
        stderr=text("stderr"),
        final=final if isinstance(final, str) else None,
        variables=[v for v in variables if isinstance(v, str)] if isinstance(variables, list) else [],
        error=error if isinstance(error, str) else None,
        truncated_chars=truncated if isinstance(truncated, int) else 0,
    )
