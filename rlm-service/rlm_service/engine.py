"""The Recursive Language Model loop: one job, from question to final answer.

Each turn the root model (through chat-service, streamed, stopped at the end of its code
block) writes a ```repl block; the block runs in the job's sandbox, where `context` holds
the conversation; its output goes back to the model, cut to size. The answer is final only
when code sets it (FINAL, FINAL_VAR, answer["ready"]). When the turns run out, the model is
asked once for a best answer, which is marked as forced.

The engine emits typed events through a callback (all but `done`: the caller sends that once
the sandbox is gone) and fills in a `JobRecord` (for CHAT_LOG, metrics and the usage). It
raises TinyChatErrors; the caller turns them into an error event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tinychat_common.events import Content, Event, RlmStep, Status
from tinychat_common.models import ChatRequest

from . import prompts
from .chat_client import ChatClient, Message, StreamedReply, Usage
from .codeblocks import STOP, code_blocks
from .errors import CellTimeout, NoQuestion, SandboxFailed, SubcallRefused
from .sandbox.base import CellResult, Sandbox, SandboxError, SandboxFactory

Emit = Callable[[Event], None]

PREVIEW_CHARS = 300  # of each sub-call prompt and answer in `subcall` steps


@dataclass(frozen=True)
class RlmJob:
    """What one request asks: the question, the material it is asked about, and how."""

    question: str
    context: str | list[str]
    question_is_context: bool
    instructions: str = ""
    show_thinking: bool = True
    model: str | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class EngineLimits:
    max_iterations: int
    cell_timeout: float
    output_chars: int
    max_subcall_chars: int
    subcall_concurrency: int
    max_subcalls: int


@dataclass
class JobRecord:
    """What a job did, for the audit log and the metrics."""

    outcome: str = "running"
    iterations: int = 0
    cells: list[str] = field(default_factory=list)
    subcalls: int = 0
    answer: str | None = None
    usage: Usage = field(default_factory=Usage)


def job_from_request(request: ChatRequest) -> RlmJob:
    """The documented mapping of a conversation onto an RLM job:

    - the last message must be the user's: it is the question;
    - system messages are instructions for the final answer (added to our system prompt);
    - the other earlier messages are `context`: one message → that message's text (a str);
      several → a list of strings, "role: text" each, in order;
    - no earlier messages → `context` is the question's own text (a long document pasted
      together with its question).
    Images are not part of an RLM job; only text is used.
    """
    *earlier, last = request.messages
    if last.role != "user" or not last.content.strip():
        raise NoQuestion()
    instructions = "\n\n".join(m.content for m in earlier if m.role == "system" and m.content.strip())
    material = [m for m in earlier if m.role != "system" and m.content]
    context: str | list[str]
    if not material:
        context = last.content
    elif len(material) == 1:
        context = material[0].content
    else:
        context = [f"{m.role}: {m.content}" for m in material]
    return RlmJob(
        question=last.content,
        context=context,
        question_is_context=not material,
        instructions=instructions,
        show_thinking=request.show_rlm_thinking,
        model=request.model,
        temperature=request.temperature,
    )


class SandboxWatch:
    """The hooks the metrics need around a sandbox's life."""

    def started(self) -> None: ...

    def killed(self, reason: str) -> None: ...


class Engine:
    def __init__(
        self,
        *,
        chat: ChatClient,
        sandboxes: SandboxFactory,
        limits: EngineLimits,
        watch: SandboxWatch | None = None,
    ) -> None:
        self._chat = chat
        self._sandboxes = sandboxes
        self._limits = limits
        self._watch = watch or SandboxWatch()

    async def run(self, job: RlmJob, emit: Emit, record: JobRecord) -> None:
        """Run the job to its answer, emitting events; `record` fills in as it goes."""
        try:
            sandbox = await self._sandboxes.create(job.context)
        except SandboxError as exc:
            raise SandboxFailed(f"The code sandbox could not start: {exc}") from None
        self._watch.started()
        end = "error"
        try:
            await _JobLoop(self._chat, sandbox, self._limits, job, emit, record).run()
            end = "finished"
        except asyncio.CancelledError:
            end = "cancelled"
            raise
        finally:
            await sandbox.kill()
            self._watch.killed(end)


class _JobLoop:
    """The turns of one job; lives as long as the job."""

    def __init__(
        self,
        chat: ChatClient,
        sandbox: Sandbox,
        limits: EngineLimits,
        job: RlmJob,
        emit: Emit,
        record: JobRecord,
    ) -> None:
        self.chat = chat
        self.sandbox = sandbox
        self.limits = limits
        self.job = job
        self.emit = emit
        self.record = record
        self.subcall_gate = asyncio.Semaphore(limits.subcall_concurrency)
        self.iteration = 0
        self.transcript: list[Message] = [
            {"role": "system", "content": self._system_prompt()},
            {
                "role": "user",
                "content": prompts.first_message(job.question, job.context, job.question_is_context),
            },
        ]

    def _system_prompt(self) -> str:
        return prompts.system_prompt(
            context=self.job.context,
            max_prompt_chars=self.limits.max_subcall_chars,
            output_chars=self.limits.output_chars,
            max_iterations=self.limits.max_iterations,
            instructions=self.job.instructions,
        )

    async def run(self) -> None:
        total = self.limits.max_iterations
        for self.iteration in range(1, total + 1):
            self.record.iterations = self.iteration
            self.emit(Status(f"RLM iteration {self.iteration}/{total}"))
            reply = await self._root_turn()
            self.transcript.append({"role": "assistant", "content": reply.text})
            cut = reply.finish_reason == "length"
            blocks = code_blocks(reply.text, ended_normally=not cut)
            if not blocks:
                nudge = prompts.no_code(self.iteration, total, self.job.question, cut=cut)
                self.transcript.append({"role": "user", "content": nudge})
                continue
            outputs: list[str] = []
            for index, code in enumerate(blocks, start=1):
                result = await self._run_cell(code)
                outputs.append(self._describe(index, result))
                if result.final is not None:
                    self._finish(result.final, "answered")
                    return
            self.transcript.append(
                {
                    "role": "user",
                    "content": prompts.turn_feedback(outputs, self.iteration, total, self.job.question),
                }
            )
        await self._force_answer()

    async def _root_turn(self, *, stop: list[str] | None = STOP) -> StreamedReply:
        reply = StreamedReply()
        started = time.perf_counter()
        async for piece in self.chat.stream(self.transcript, reply, stop=stop):
            if self.job.show_thinking:
                self._step("reasoning", delta=piece)
        self.record.usage.add(reply.usage)
        if self.job.show_thinking:
            self._step("reasoning", done=True, ms=_ms_since(started), finish_reason=reply.finish_reason)
        return reply

    async def _run_cell(self, code: str) -> CellResult:
        self.record.cells.append(code)
        self._step("code", code=code)
        started = time.perf_counter()
        try:
            result = await self.sandbox.execute(
                code, llm_query=self._subcalls, timeout=self.limits.cell_timeout
            )
        except SandboxError as exc:
            raise SandboxFailed(f"The code sandbox failed: {exc}") from None
        if result.timed_out:
            raise CellTimeout(self.limits.cell_timeout)
        self._step(
            "output",
            stdout=result.stdout,
            stderr=result.stderr,
            error=result.error,
            final=result.final is not None,
            truncated_chars=result.truncated_chars,
            ms=_ms_since(started),
        )
        return result

    def _describe(self, index: int, result: CellResult) -> str:
        return prompts.cell_output(
            index=index,
            stdout=result.stdout,
            stderr=result.stderr,
            error=result.error,
            variables=result.variables,
            output_chars=self.limits.output_chars,
        )

    async def _subcalls(self, batch: list[str]) -> list[str]:
        """The sandbox's llm_query / llm_query_batched: checked, bounded, concurrent."""
        self._check_subcalls(batch)
        self.record.subcalls += len(batch)
        started = time.perf_counter()
        answers = await asyncio.gather(*(self._one_subcall(prompt) for prompt in batch))
        self._step(
            "subcall",
            count=len(batch),
            prompts=[_preview(p) for p in batch],
            answers=[_preview(a) for a in answers],
            ms=_ms_since(started),
        )
        return answers

    def _check_subcalls(self, batch: list[str]) -> None:
        limits = self.limits
        if self.record.subcalls + len(batch) > limits.max_subcalls:
            raise SubcallRefused(
                f"this job may make at most {limits.max_subcalls} sub-calls "
                f"({self.record.subcalls} made, {len(batch)} more asked); combine prompts"
            )
        for position, prompt in enumerate(batch):
            if len(prompt) > limits.max_subcall_chars:
                raise SubcallRefused(
                    f"prompt {position} has {len(prompt):,} characters; the limit is "
                    f"{limits.max_subcall_chars:,}: split it into smaller chunks"
                )

    async def _one_subcall(self, prompt: str) -> str:
        async with self.subcall_gate:
            text, usage = await self.chat.complete([{"role": "user", "content": prompt}])
        self.record.usage.add(usage)
        return text

    async def _force_answer(self) -> None:
        total = self.limits.max_iterations
        self.emit(Status(f"RLM reached {total} iterations; asking for a best answer"))
        self.transcript.append({"role": "user", "content": prompts.force_answer(total, self.job.question)})
        reply = await self._root_turn(stop=None)
        self._finish(prompts.forced_note(total) + reply.text.strip(), "forced")

    def _finish(self, answer: str, outcome: str) -> None:
        self.record.answer = answer
        self.record.outcome = outcome
        self._step("final", forced=outcome == "forced", iterations=self.iteration)
        self.emit(Content(answer))

    def _step(self, kind: str, **details: Any) -> None:
        self.emit(RlmStep({"kind": kind, "iteration": self.iteration, **details}))


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"
