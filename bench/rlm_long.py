"""RLM over long documents, through the real stack (`python -m bench --only rlm_long`).

Processes: a scripted RLM model (bench/rlm_model.py: peeks at `context`, chunks it, fans
out llm_query_batched, aggregates, answers) → chat-service → rlm-service (process sandbox)
→ gateway. Tasks over synthetic documents at 1, 8 and 32 MB of context (8 documents each):

  niah    S-NIAH style: one line in one document holds an agent's access code;
  count   OOLONG style: how many of the records are about one topic (every chunk counts).

Each answer is checked (BENCH_RLM_SIZES=32 runs one size). For each job it reports:
  wall      the request's start to `done`, measured by the client, through the gateway;
  model     the model's own time: the same job's calls made directly to the model
            (root turns one after another, each batch of sub-calls with the same
            concurrency) — the floor;
  sandbox   time in cells minus the sub-calls they waited for;
  subcalls  time the cells waited for their sub-calls (through rlm-service and chat-service);
  relay     the rest: upload, parsing, sandbox start, relaying the trace and answer;
  overhead  wall − model, as a share of wall (target ≤ 10 % at 32 MB);
  peak      rlm-service's peak resident memory during the job (VmHWM, reset before each
            job through /proc/<pid>/clear_refs), and as a multiple of the context size
            (target ≤ 4× at 32 MB); the gateway's peak is shown beside it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench import rlm_model
from bench.stack import MODEL, Stack

MB = 1024 * 1024
DOCUMENTS = 8
TOPICS = ("billing", "shipping", "returns", "warranty", "accounts")
SUBCALL_CONCURRENCY = 8
TARGET_OVERHEAD = 0.10
TARGET_MEMORY_RATIO = 4.0
TARGET_SIZE_MB = 32
SERVICES = ("gateway", "rlm-service", "chat-service")


@dataclass(frozen=True)
class Task:
    kind: str
    question: str
    documents: list[dict[str, str]]
    expected: str
    chars: int


def filler_line(rng: random.Random, index: int) -> str:
    words = " ".join(rng.choice(("log", "entry", "system", "value", "noted", "ok")) for _ in range(10))
    return f"{index:08d} {words}\n"


def niah_task(size: int, rng: random.Random) -> Task:
    agent = "".join(rng.choices(string.ascii_uppercase, k=6))
    code = "".join(rng.choices(string.ascii_uppercase + string.digits, k=10))
    per_doc = size // DOCUMENTS
    hidden_in = rng.randrange(DOCUMENTS)
    documents = []
    for number in range(DOCUMENTS):
        lines: list[str] = []
        length = 0
        while length < per_doc:
            line = filler_line(rng, len(lines))
            lines.append(line)
            length += len(line)
        if number == hidden_in:
            lines.insert(rng.randrange(len(lines)), f"Note: agent {agent}'s access code is {code}.\n")
        documents.append({"name": f"log-{number}.txt", "text": "".join(lines)})
    question = f"What is the access code of agent {agent}?"
    return Task("niah", question, documents, code, sum(len(d["text"]) for d in documents))


def count_task(size: int, rng: random.Random) -> Task:
    topic = rng.choice(TOPICS)
    per_doc = size // DOCUMENTS
    expected = 0
    documents = []
    for number in range(DOCUMENTS):
        lines: list[str] = []
        length = 0
        while length < per_doc:
            chosen = rng.choice(TOPICS)
            expected += chosen == topic
            line = f"Record {len(lines):07d}: user {rng.randrange(10**6):06d} asked about {chosen}.\n"
            lines.append(line)
            length += len(line)
        documents.append({"name": f"tickets-{number}.csv", "text": "".join(lines)})
    question = f"How many records are about {topic}?"
    return Task("count", question, documents, str(expected), sum(len(d["text"]) for d in documents))


def chunk_prompts(task: Task) -> list[str]:
    """The sub-call prompts the scripted model's code makes (the same chunking)."""
    if task.kind == "niah":
        agent = rlm_model.NEEDLE_QUESTION.search(task.question).group(1)  # type: ignore[union-attr]
        head = rlm_model.NEEDLE_TASK.format(agent=agent)
    else:
        topic = rlm_model.COUNT_QUESTION.search(task.question).group(1)  # type: ignore[union-attr]
        head = rlm_model.COUNT_TASK.format(topic=topic)
    prompts = []
    for document in task.documents:
        doc = document["text"]
        start = 0
        while start < len(doc):
            end = min(len(doc), start + rlm_model.CHUNK_CHARS)
            if end < len(doc):
                cut = doc.rfind("\n", start, end)
                end = cut + 1 if cut > start else end
            prompts.append(head + "\n\n" + doc[start:end])
            start = end
    return prompts


class RlmBenchStack(Stack):
    """Scripted model, chat-service, rlm-service and gateway as processes."""

    async def start(self) -> None:
        model = await self.spawn("rlm-model", ["-m", "bench.rlm_model"], port_arg=True)
        chat = await self.spawn(
            "chat-service",
            ["-m", "tinychat_chat"],
            env={
                "OPENAI_API_URL": model.url + "/v1",
                "OPENAI_API_KEY": "bench-key",
                "DEFAULT_MODEL": MODEL,
                "AVAILABLE_MODELS": MODEL,
                "MAX_MESSAGE_LENGTH": str(rlm_model.CHUNK_CHARS + 4096),
            },
        )
        rlm = await self.spawn(
            "rlm-service",
            ["-m", "tinychat_rlm"],
            env={
                "CHAT_SERVICE_URL": chat.url,
                "RLM_SANDBOX": "process",
                "RLM_SANDBOX_MEMORY": "1g",
                "RLM_TIMEOUT": "600",
                "RLM_CELL_TIMEOUT": "120",
                "RLM_MAX_SUBCALLS": "1000",
                "RLM_MAX_SUBCALL_CHARS": str(rlm_model.CHUNK_CHARS + 4096),
                "RLM_SUBCALL_CONCURRENCY": str(SUBCALL_CONCURRENCY),
            },
        )
        await self.spawn(
            "gateway",
            ["-m", "tinychat_gateway"],
            env={
                "CHAT_SERVICE_URL": chat.url,
                "RLM_SERVICE_URL": rlm.url,
                "IMAGE_SERVICE_URL": "http://127.0.0.1:9",
                "RATE_LIMIT_RLM": "0",
            },
        )

    def reset_peak(self, name: str) -> None:
        Path(f"/proc/{self.pid(name)}/clear_refs").write_text("5")

    def peak_kib(self, name: str) -> int:
        for line in Path(f"/proc/{self.pid(name)}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0


async def run_job(session: aiohttp.ClientSession, url: str, task: Task) -> tuple[float, list[dict[str, Any]]]:
    body = json.dumps(
        {"messages": [{"role": "user", "content": task.question}], "rlm": True, "documents": task.documents}
    ).encode()
    started = time.perf_counter()
    events = []
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {(await response.text())[:300]}")
        async for line in response.content:
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
    return time.perf_counter() - started, events


async def direct_floor(session: aiohttp.ClientSession, model_url: str, task: Task, root_turns: int) -> float:
    """The job's model calls made straight to the model: its own time, plus one HTTP hop."""
    url = model_url + "/v1/chat/completions"
    root_messages = [
        {"role": "system", "content": rlm_model.ROOT_MARKER},
        {"role": "user", "content": task.question},
    ]
    root = {"model": MODEL, "messages": root_messages}
    # Cut before the clock starts: chunking is the cell's work, not the model's.
    prompts = chunk_prompts(task)
    started = time.perf_counter()
    for _ in range(root_turns):
        async with session.post(url, json=root) as response:
            await response.read()
    gate = asyncio.Semaphore(SUBCALL_CONCURRENCY)

    async def one(prompt: str) -> None:
        async with (
            gate,
            session.post(url, json={"model": MODEL, "messages": [{"role": "user", "content": prompt}]}) as r,
        ):
            await r.read()

    await asyncio.gather(*(one(p) for p in prompts))
    return time.perf_counter() - started


def breakdown(events: list[dict[str, Any]]) -> dict[str, float]:
    steps = [e["rlm"] for e in events if "rlm" in e]
    cells = sum(s.get("ms", 0) for s in steps if s["kind"] == "output") / 1000
    # Groups of one batch are answered side by side: the time covered, not the sum.
    subcalls = covered_seconds([(s["t"] - s["ms"], s["t"]) for s in steps if s["kind"] == "subcall"])
    root = sum(s.get("ms", 0) for s in steps if s["kind"] == "reasoning" and s.get("done")) / 1000
    turns = sum(1 for s in steps if s["kind"] == "reasoning" and s.get("done"))
    return {"root": root, "sandbox": cells - subcalls, "subcalls": subcalls, "turns": turns}


def covered_seconds(spans: list[tuple[int, int]]) -> float:
    """How long at least one of the spans (start and end in ms) was running."""
    covered, reach = 0, None
    for start, end in sorted(spans):
        if reach is None or start > reach:
            covered += end - start
            reach = end
        elif end > reach:
            covered += end - reach
            reach = end
    return covered / 1000


def answer_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["content"] for e in events if "content" in e).strip()


async def measure(stack: RlmBenchStack, session: aiohttp.ClientSession, task: Task) -> dict[str, Any]:
    stack.reset_peak("rlm-service")
    stack.reset_peak("gateway")
    idle = stack.rss_kib("rlm-service")
    cpu_before = stack.cpu_seconds()
    wall, events = await run_job(session, stack.gateway_url, task)
    cpu_after = stack.cpu_seconds()
    peak = stack.peak_kib("rlm-service")
    gateway_peak = stack.peak_kib("gateway")
    parts = breakdown(events)
    floor = await direct_floor(session, stack.processes["rlm-model"].url, task, int(parts["turns"]))
    answer = answer_of(events)
    mb = task.chars / MB
    overhead = max(0.0, wall - floor) / wall
    return {
        "task": task.kind,
        "mb": round(mb, 1),
        "correct": answer == task.expected,
        "answer": answer[:60],
        "expected": task.expected,
        "wall": wall,
        "model": floor,
        "sandbox": parts["sandbox"],
        "subcalls": parts["subcalls"],
        "relay": max(0.0, wall - parts["root"] - parts["sandbox"] - parts["subcalls"]),
        "overhead": overhead,
        "peak_mb": peak / 1024,
        "idle_mb": idle / 1024,
        "memory_ratio": peak / 1024 / mb,
        "gateway_peak_mb": gateway_peak / 1024,
        # CPU the services spent on the job (the sandbox's runner is rlm-service's child,
        # counted apart): what the machinery costs, whatever else the machine is doing.
        "cpu": {name: round(cpu_after[name] - cpu_before[name], 2) for name in SERVICES},
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'task':<6}{'MB':>5}{'ok':>4}{'wall s':>8}{'model s':>9}{'sandbox':>9}{'subcalls':>9}"
        f"{'relay':>7}{'ovh %':>7}{'peak MB':>9}{'× ctx':>7}{'idle MB':>9}{'gw MB':>7}  CPU s gw/rlm/chat"
    )
    for r in rows:
        print(
            f"{r['task']:<6}{r['mb']:>5.0f}{'yes' if r['correct'] else 'NO':>4}{r['wall']:>8.2f}"
            f"{r['model']:>9.2f}{r['sandbox']:>9.2f}{r['subcalls']:>9.2f}{r['relay']:>7.2f}"
            f"{r['overhead'] * 100:>7.1f}{r['peak_mb']:>9.0f}{r['memory_ratio']:>7.2f}"
            f"{r['idle_mb']:>9.0f}{r['gateway_peak_mb']:>7.0f}  "
            + "/".join(f"{r['cpu'][name]:.2f}" for name in SERVICES)
        )


def chosen_sizes(quick: bool) -> tuple[int, ...]:
    """BENCH_RLM_SIZES="32" (MB, comma-separated) runs only those sizes."""
    given = os.environ.get("BENCH_RLM_SIZES", "").strip()
    if given:
        return tuple(int(size) for size in given.split(","))
    return (1, 8) if quick else (1, 8, TARGET_SIZE_MB)


async def main(quick: bool = False) -> dict[str, Any]:
    sizes = chosen_sizes(quick)
    rng = random.Random(17)
    rows = []
    timeout = aiohttp.ClientTimeout(total=900)
    async with RlmBenchStack() as stack, aiohttp.ClientSession(timeout=timeout) as session:
        # The first job pays the sandbox backend's one-time probe; it is not measured.
        await run_job(session, stack.gateway_url, niah_task(64 * 1024, rng))
        for size in sizes:
            for make in (niah_task, count_task):
                task = make(size * MB, rng)
                rows.append(await measure(stack, session, task))
                del task
    print(
        f"model time declared: {rlm_model.ROOT_SECONDS} s per root turn, {rlm_model.SUBCALL_SECONDS} s + "
        f"{rlm_model.SUBCALL_CHARS_PER_SECOND:,} chars/s per sub-call; {SUBCALL_CONCURRENCY} at once"
    )
    print_table(rows)
    at_target = [r for r in rows if r["mb"] >= TARGET_SIZE_MB * 0.9] or rows
    checks = {
        "0 wrong answers": all(r["correct"] for r in rows),
        f"overhead <= {TARGET_OVERHEAD:.0%} at the largest size": all(
            r["overhead"] <= TARGET_OVERHEAD for r in at_target
        ),
        f"rlm-service peak <= {TARGET_MEMORY_RATIO:g}x context at the largest size": all(
            r["memory_ratio"] <= TARGET_MEMORY_RATIO for r in at_target
        ),
    }
    for name, ok in checks.items():
        print(f"{'yes' if ok else 'NO '} {name}")
    return {"rows": rows, "checks": checks, "passed": all(checks.values())}


if __name__ == "__main__":
    asyncio.run(main())
