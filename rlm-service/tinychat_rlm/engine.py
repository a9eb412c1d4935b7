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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tinychat_common.events import Content, Event, RlmStep, Status
from tinychat_common.models import ChatRequest
from tinychat_common.models import Message as ChatMessage

from . import prompts
from .chat_client import ChatClient, Message, StreamedReply, Usage
from .codeblocks import STOP, code_blocks
from .documents import CONVERSATION_NAME, Documents, context_chars
from .errors import CellTimeout, NoQuestion, SandboxFailed, SubcallRefused
from .recursion import Budget, BudgetSpent, Recursion, best_effort
from .sandbox.base import CellResult, Sandbox, SandboxError, SandboxFactory

# Returns None, or an awaitable that is done when the client has room for more (backpressure).
Emit = Callable[[Event], Awaitable[None] | None]

PREVIEW_CHARS = 300  # of each sub-call prompt and answer in `subcall` steps


@dataclass
class RlmJob:
    """What one request asks: the question, the material it is asked about, and how.

    `context` is let go (replaced by "") once the job's sandbox holds it and the model's
    first messages are written: of a 60 MB context, the sandbox keeps the only copy."""

    question: str
    context: str | list[str]
    question_is_context: bool
    instructions: str = ""
    show_thinking: bool = True
    model: str | None = None
    temperature: float | None = None
    user: str | None = None  # the signed-in identity the gateway passed on, for the audit line
    context_chars: int = field(init=False)
    document_names: list[str] | None = field(init=False)

    def __post_init__(self) -> None:
        self.context_chars = context_chars(self.context)
        self.document_names = getattr(self.context, "names", None)

    def release_context(self) -> None:
        self.context = ""


@dataclass(frozen=True)
class EngineLimits:
    max_iterations: int
    cell_timeout: float
    output_chars: int
    max_subcall_chars: int
    subcall_concurrency: int
    max_subcalls: int
    max_depth: int = 1
    budget_tokens: int = 0  # 0: no limit
    budget_seconds: float = 0.0


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
    - with `documents` (attached files), `context` is the list of them: each item a str
      with its `.name`; earlier messages, if any, follow as one more document named
      "conversation" ("role: text" paragraphs).
    Images are not part of an RLM job; only text is used.
    """
    *earlier, last = request.messages
    if last.role != "user" or not last.content.strip():
        raise NoQuestion()
    instructions = "\n\n".join(m.content for m in earlier if m.role == "system" and m.content.strip())
    material = [m for m in earlier if m.role != "system" and m.content]
    context: str | list[str]
    if request.documents:
        context = _documents_context(request, material)
    elif not material:
        context = last.content
    elif len(material) == 1:
        context = material[0].content
    else:
        context = [f"{m.role}: {m.content}" for m in material]
    return RlmJob(
        question=last.content,
        context=context,
        question_is_context=not material and not request.documents,
        instructions=instructions,
        show_thinking=request.show_rlm_thinking,
        model=request.model,
        temperature=request.temperature,
    )


def _documents_context(request: ChatRequest, material: list[ChatMessage]) -> Documents:
    documents = request.documents or []
    texts = [d.text for d in documents]
    names = [d.name for d in documents]
    if material:
        texts.append("\n\n".join(f"{m.role}: {m.content}" for m in material))
        names.append(CONVERSATION_NAME)
    # The request's copies go: the job's context is now the only one in this process.
    request.documents = None
    return Documents(texts, names)


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
        recursion: Recursion | None = None,
    ) -> None:
        self._chat = chat
        self._sandboxes = sandboxes
        self._limits = limits
        self._watch = watch or SandboxWatch()
        self.recursion = recursion or Recursion()

    async def run(self, job: RlmJob, emit: Emit, record: JobRecord) -> None:
        """Run the job to its answer, emitting events; `record` fills in as it goes."""
        budget = Budget(self._limits.budget_tokens, self._limits.budget_seconds, record.usage)
        level = _Level(self, record, budget, emit)
        await level.run_in_sandbox(job, depth=1, branch="")

    async def _sandbox(self, context: str | list[str]) -> Sandbox:
        try:
            sandbox = await self._sandboxes.create(context)
        except SandboxError as exc:
            raise SandboxFailed(f"The code sandbox could not start: {exc}") from None
        self._watch.started()
        return sandbox


@dataclass
class _Level:
    """What every level of one job shares: the engine, the record, the budget, the stream."""

    engine: Engine
    record: JobRecord
    budget: Budget
    emit: Emit
    branches: int = 0

    async def run_in_sandbox(self, job: RlmJob, *, depth: int, branch: str) -> _JobLoop:
        """One loop with a sandbox of its own, killed however the loop ends. The sandbox
        starts while the model writes the first turn: only the first cell waits for it."""
        starting = asyncio.create_task(self.engine._sandbox(job.context))
        end = "error"
        try:
            loop = _JobLoop(self, starting, job, depth=depth, branch=branch)
            job.release_context()
            await loop.run()
            end = "finished"
            return loop
        except asyncio.CancelledError:
            end = "cancelled"
            starting.cancel()  # a sandbox cancelled while it starts kills itself
            raise
        finally:
            sandbox = await _started(starting)
            if sandbox is not None:
                await sandbox.kill()
                self.engine._watch.killed(end)


async def _started(starting: asyncio.Task[Sandbox]) -> Sandbox | None:
    """The sandbox once its start is over, to be killed; None if it did not start. Waiting
    for it (a failed model call is no reason to leave a sandbox half started) stops it
    when the wait itself is cancelled."""
    if not starting.done():
        try:
            await asyncio.wait([starting])
        except asyncio.CancelledError:
            starting.cancel()
            raise
    if starting.cancelled() or starting.exception() is not None:
        return None
    return starting.result()


class _JobLoop:
    """The turns of one level of a job (the root, or a sub-RLM); lives as long as it does."""

    def __init__(
        self, level: _Level, sandbox: asyncio.Task[Sandbox], job: RlmJob, *, depth: int, branch: str
    ) -> None:
        self.level = level
        self.chat = level.engine._chat
        self.sandbox = sandbox  # still starting, maybe: awaited by the first cell
        self.limits = level.engine._limits
        self.job = job
        self.record = level.record
        self.budget = level.budget
        self.depth = depth
        self.branch = branch  # "" for the root, "1", "1.2", … for sub-RLMs
        self.usage = Usage()  # this level's own calls (the record sums every level)
        self.answer: str | None = None
        self.outcome = "running"
        self.last_output = ""
        self.subcall_gate = asyncio.Semaphore(self.limits.subcall_concurrency)
        self.iteration = 0
        self.transcript: list[Message] = [
            {"role": "system", "content": self._system_prompt()},
            {
                "role": "user",
                "content": prompts.first_message(job.question, job.context, job.question_is_context)
                + self._budget_note(),
            },
        ]

    @property
    def is_root(self) -> bool:
        return self.depth == 1

    @property
    def may_recurse(self) -> bool:
        return self.depth < self.limits.max_depth

    def _system_prompt(self) -> str:
        return prompts.system_prompt(
            context=self.job.context,
            max_prompt_chars=self.limits.max_subcall_chars,
            output_chars=self.limits.output_chars,
            max_iterations=self.limits.max_iterations,
            instructions=self.job.instructions,
            recursion=self.may_recurse,
        )

    def _budget_note(self) -> str:
        left = self.budget.left_text()
        return f"\n\n{left}" if left else ""

    async def run(self) -> None:
        try:
            await self._turns()
        except BudgetSpent as spent:
            self._finish(best_effort(spent.reason, self.last_output), "budget")

    async def _turns(self) -> None:
        total = self.limits.max_iterations
        for self.iteration in range(1, total + 1):
            if self.is_root:
                self.record.iterations = self.iteration
                await _room(self.emit(Status(f"RLM iteration {self.iteration}/{total}")))
            self.budget.check()
            reply = await self._root_turn()
            self.transcript.append({"role": "assistant", "content": reply.text})
            cut = reply.finish_reason == "length"
            blocks = code_blocks(reply.text, ended_normally=not cut)
            if not blocks:
                nudge = prompts.no_code(self.iteration, total, self.job.question, cut=cut)
                self.transcript.append({"role": "user", "content": nudge + self._budget_note()})
                continue
            outputs: list[str] = []
            for index, code in enumerate(blocks, start=1):
                result = await self._run_cell(code)
                outputs.append(self._describe(index, result))
                if result.stdout.strip():
                    self.last_output = result.stdout
                if result.final is not None:
                    self._finish(result.final, "answered")
                    return
            self.budget.check()
            self.transcript.append(
                {
                    "role": "user",
                    "content": prompts.turn_feedback(outputs, self.iteration, total, self.job.question)
                    + self._budget_note(),
                }
            )
        self.budget.check()
        await self._force_answer()

    def emit(self, event: Event) -> Awaitable[None] | None:
        return self.level.emit(event)

    def _spend(self, usage: dict[str, Any] | None) -> dict[str, int]:
        """Count one model call at this level and in the job's total."""
        self.usage.add(usage)
        self.record.usage.add(usage)
        return _tokens(usage or {})

    async def _root_turn(self, *, stop: list[str] | None = STOP) -> StreamedReply:
        reply = StreamedReply()
        started = time.perf_counter()
        async with self.budget.time_limit():
            async for piece in self.chat.stream(self.transcript, reply, stop=stop):
                if self.job.show_thinking:
                    await _room(self._step("reasoning", delta=piece))
        tokens = self._spend(reply.usage)
        if self.job.show_thinking:
            self._step(
                "reasoning",
                done=True,
                ms=_ms_since(started),
                finish_reason=reply.finish_reason,
                usage=tokens,
            )
        return reply

    async def _run_cell(self, code: str) -> CellResult:
        sandbox = await self.sandbox  # started beside the first turn; there by the first cell
        self.record.cells.append(code)
        self._step("code", code=code)
        started = time.perf_counter()
        try:
            result = await sandbox.execute(code, llm_query=self._subcalls, timeout=self.limits.cell_timeout)
        except SandboxError as exc:
            raise SandboxFailed(f"The code sandbox failed: {exc}") from None
        if result.timed_out:
            raise CellTimeout(self.limits.cell_timeout)
        await _room(
            self._step(
                "output",
                stdout=result.stdout,
                stderr=result.stderr,
                error=result.error,
                final=result.final is not None,
                truncated_chars=result.truncated_chars,
                ms=_ms_since(started),
            )
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

    async def _subcalls(self, batch: list[str], rlm: Any = None) -> list[str]:
        """The sandbox's llm_query / llm_query_batched / rlm_query: checked, bounded, concurrent."""
        spent = self.budget.spent()
        if spent is not None:
            raise SubcallRefused(f"{spent}: no more model calls; finish with what you have")
        if rlm is not None:
            return [await self._sub_rlm(batch, rlm)]
        return await self._llm_subcalls(batch)

    async def _llm_subcalls(self, batch: list[str]) -> list[str]:
        self._check_subcalls(batch)
        self.record.subcalls += len(batch)
        started = time.perf_counter()
        before = self.usage.as_dict()
        try:
            async with self.budget.time_limit():
                answers = await asyncio.gather(*(self._one_subcall(prompt) for prompt in batch))
        except BudgetSpent as spent:
            raise SubcallRefused(f"{spent.reason}: no more model calls; finish with what you have") from None
        self._step(
            "subcall",
            count=len(batch),
            prompts=[_preview(p) for p in batch],
            answers=[_preview(a) for a in answers],
            ms=_ms_since(started),
            usage=_difference(self.usage.as_dict(), before),
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
        self._spend(usage)
        return text

    async def _sub_rlm(self, batch: list[str], rlm: Any) -> str:
        """rlm_query(prompt, context): a sub-RLM one level down, or at the deepest level a
        plain llm_query of the prompt followed by the context."""
        prompt, context = _sub_rlm_request(batch, rlm)
        if not self.may_recurse:
            flat = prompt if context is None else f"{prompt}\n\n{_as_text(context)}"
            return (await self._llm_subcalls([flat]))[0]
        limit = self.limits.max_subcalls
        if self.record.subcalls + 1 > limit:
            raise SubcallRefused(f"this job may make at most {limit} sub-calls, sub-RLMs included")
        self.record.subcalls += 1
        self.level.branches += 1
        branch = f"{self.branch}.{self.level.branches}".lstrip(".")
        job = RlmJob(
            question=prompt,
            context=prompt if context is None else context,
            question_is_context=context is None,
            show_thinking=self.job.show_thinking,
        )
        started = time.perf_counter()
        self._step("subrlm", phase="start", branch=branch, prompt=_preview(prompt))
        async with self.level.engine.recursion.token():
            child = await self.level.run_in_sandbox(job, depth=self.depth + 1, branch=branch)
        answer = child.answer or ""
        self._step(
            "subrlm",
            phase="end",
            branch=branch,
            outcome=child.outcome,
            answer=_preview(answer),
            iterations=child.iteration,
            ms=_ms_since(started),
            usage=child.usage.as_dict(),
        )
        return answer

    async def _force_answer(self) -> None:
        total = self.limits.max_iterations
        if self.is_root:
            self.emit(Status(f"RLM reached {total} iterations; asking for a best answer"))
        self.transcript.append({"role": "user", "content": prompts.force_answer(total, self.job.question)})
        reply = await self._root_turn(stop=None)
        self._finish(prompts.forced_note(total) + reply.text.strip(), "forced")

    def _finish(self, answer: str, outcome: str) -> None:
        self.answer = answer
        self.outcome = outcome
        self._step("final", forced=outcome != "answered", outcome=outcome, iterations=self.iteration)
        if self.is_root:
            self.record.answer = answer
            self.record.outcome = outcome
            self.emit(Content(answer))

    def _step(self, kind: str, **details: Any) -> Awaitable[None] | None:
        where = {"depth": self.depth, "branch": self.branch} if not self.is_root else {}
        if "delta" not in details and kind != "code":
            # When the step ended, in ms since the job started: with `ms` a timeline can be
            # drawn (a code step is the start of its output step).
            where["t"] = round((time.monotonic() - self.budget.started) * 1000)
        return self.emit(RlmStep({"kind": kind, "iteration": self.iteration, **where, **details}))


async def _room(waiting: Awaitable[None] | None) -> None:
    """Wait until the client has room for more events (None: the emitter does not say)."""
    if waiting is not None:
        await waiting


def _sub_rlm_request(batch: list[str], rlm: Any) -> tuple[str, str | list[str] | None]:
    """The prompt and context of an rlm_query, checked (nothing the sandbox sends is trusted)."""
    if len(batch) != 1 or not isinstance(rlm, dict):
        raise SubcallRefused("rlm_query takes one prompt")
    context = rlm.get("context")
    names = rlm.get("names")
    if context is None or isinstance(context, str):
        return batch[0], context
    if not isinstance(context, list) or not all(isinstance(c, str) for c in context):
        raise SubcallRefused("rlm_query(context=...) takes a str or a list of str")
    if isinstance(names, list) and len(names) == len(context) and all(isinstance(n, str) for n in names):
        return batch[0], Documents(context, [n[:255] for n in names])
    return batch[0], context


def _as_text(context: str | list[str]) -> str:
    return context if isinstance(context, str) else "\n\n".join(context)


def _tokens(usage: dict[str, Any]) -> dict[str, int]:
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _difference(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before.get(key, 0) for key in after}


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"
