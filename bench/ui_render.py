"""Does a 20,000-token answer stream smoothly in the browser? (`python -m bench --only ui_render`)

The real gateway and chat-service run as processes (bench.stack); a scripted fake OpenAI
upstream in this process streams one long answer — paragraphs, lists, code blocks, inline and
display math — as CHUNKS deltas CHUNK_DELAY apart. Debian's Chromium, driven by Playwright,
opens the UI, sends one message and records, inside the page:

  - every animation-frame interval (a requestAnimationFrame loop),
  - every long task (a PerformanceObserver for 'longtask'),
  - every re-render of the answer (a MutationObserver on its content), keyed by frame,
  - main-thread time in script, layout and style (the DevTools Performance domain).

The baseline is the same answer in the same run with markdown off (Settings → "Render
markdown" off: plain text), so every verdict is a ratio, never an absolute time. Each mode runs
ROUNDS times, alternating, in a fresh browser context.

Targets: frame-interval p99 with markdown at most P99_RATIO_TARGET times the baseline's; the
answer re-rendered at most once per animation frame; frames in the last quarter of the stream
(longest text) at most GROWTH_TARGET times as long, on average, as in the first quarter.

The suite also measures the first load (bytes over the wire, time to interactive), switching
to a 200-message conversation and typing in it: see bench/ui_load.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright
from playwright.async_api import Error as PlaywrightError

from bench import ui_load
from bench.chat import write_results
from bench.runtime import percentile
from bench.stack import MODEL, Stack
from tests.fakes.openai_upstream import FakeOpenAI, Reply

CHROMIUM = os.environ.get("TINYCHAT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
CHARS_PER_TOKEN = 4  # OpenAI's rule of thumb for English text
FULL = {"tokens": 20_000, "chunks": 2_000, "rounds": 2}
QUICK = {"tokens": 4_000, "chunks": 400, "rounds": 1}
CHUNK_DELAY = 0.002
ANSWER_TIMEOUT_S = 180.0
# Frame intervals come in whole frames (16.7 ms), so p99 moves in steps of one frame.
P99_RATIO_TARGET = 2.5
GROWTH_TARGET = 2.0
# Routes to a closed port: this suite needs neither image-service nor rlm-service.
NOWHERE = "http://127.0.0.1:9"

# Installed before the app's scripts. Nothing is recorded until `__uibench.start()`.
PROBE_SCRIPT = """
(() => {
  const bench = {running: false, frames: [], longTasks: [], renders: [], firstContentAt: null,
                 doneAt: null, startedAt: null, problem: null};
  let lastFrame = null;
  let finish;
  bench.finished = new Promise((resolve) => { finish = resolve; });
  new PerformanceObserver((list) => {
    if (!bench.running) return;
    for (const e of list.getEntries()) bench.longTasks.push([e.startTime, e.duration]);
  }).observe({type: "longtask"});
  function onFrame(ts) {
    if (!bench.running) return;
    if (lastFrame !== null) bench.frames.push([ts, ts - lastFrame]);
    lastFrame = ts;
    requestAnimationFrame(onFrame);
  }
  let sawStreaming = false;
  const observer = new MutationObserver((records) => {
    const answer = document.querySelector("li.message.assistant");
    if (!answer) return;
    const content = answer.querySelector(".message-content");
    const now = performance.now();
    sawStreaming ||= answer.classList.contains("streaming");
    if (records.some((r) => content.contains(r.target))) {
      // Every callback of one frame sees the same timeline time: renders are keyed by frame.
      // The stream's end renders once more outside a frame (the final state): only renders
      // while the answer streams are held to one per frame.
      if (answer.classList.contains("streaming")) bench.renders.push([now, document.timeline.currentTime]);
      if (bench.firstContentAt === null && content.textContent !== "") bench.firstContentAt = now;
    }
    if (sawStreaming && !answer.classList.contains("streaming") && bench.doneAt === null) {
      bench.doneAt = now;
      bench.problem = answer.querySelector(".message-problem")?.textContent || null;
      bench.running = false;
      observer.disconnect();
      finish();
    }
  });
  bench.start = () => {
    bench.running = true;
    bench.startedAt = performance.now();
    requestAnimationFrame(onFrame);
    observer.observe(document.getElementById("message-list"),
      {childList: true, subtree: true, characterData: true, attributes: true, attributeFilter: ["class"]});
  };
  bench.shown = () => {
    const content = document.querySelector("li.message.assistant .message-content");
    const stream = performance.getEntriesByType("resource").find((e) => e.name.endsWith("/api/chat/stream"));
    return {
      chars: content.textContent.length,
      plainText: content.querySelector(".plain-text")?.textContent.length ?? null,
      codeBlocks: content.querySelectorAll("pre.code-block").length,
      displayMath: content.querySelectorAll(".math-display .katex-display").length,
      inlineMath: content.querySelectorAll(".math-inline .katex").length,
      headings: content.querySelectorAll("h2").length,
      listItems: content.querySelectorAll("li").length,
      lastByteAt: stream ? stream.responseEnd : null,
    };
  };
  window.__uibench = bench;
})();
"""


class UiBenchError(RuntimeError):
    """The page could not be measured (the app did not start or the answer never ended)."""


@dataclass(frozen=True)
class Answer:
    text: str
    code_blocks: int
    display_math: int
    inline_math: int
    headings: int
    list_items: int


def long_answer(tokens: int) -> Answer:
    """A deterministic answer of about `tokens` tokens, shaped like a long technical reply."""
    parts: list[str] = []
    counts = {"code": 0, "display": 0, "inline": 0, "headings": 0, "items": 0}
    section = 0
    while sum(map(len, parts)) < tokens * CHARS_PER_TOKEN:
        section += 1
        parts.append(f"## Part {section}: the {section}th step\n\n")
        parts.append(
            f"In step {section} we look at the sum $a_{{{section}}} + b_{{{section}}}$ once more. "
            "The **important** point is that each term stays small, so the `total` never "
            f"overflows, even after {section * 17} rounds of the loop, and the reader can check "
            "it by hand with a pencil and a sheet of paper in a minute or two.\n\n"
        )
        parts.append(
            f"- the first case, where $x = {section}$ and nothing else changes\n"
            f"- the second case, with \\(y^2 = {section * section}\\) instead\n"
            "- the last case, which the proof below handles on its own\n\n"
        )
        counts["inline"] += 3
        counts["items"] += 3
        counts["headings"] += 1
        if section % 3 == 0:
            parts.append(f"$$\n\\sum_{{k=1}}^{{{section}}} k = \\frac{{{section}({section}+1)}}{{2}}\n$$\n\n")
            counts["display"] += 1
        if section % 5 == 0:
            parts.append(
                "```python\n"
                f"def step_{section}(values: list[int]) -> int:\n"
                '    """Add the values, checking each partial sum."""\n'
                "    total = 0\n"
                "    for value in values:\n"
                "        total += value\n"
                f"        assert total < {section * 1000}, total\n"
                "    return total\n"
                "```\n\n"
            )
            counts["code"] += 1
        parts.append(
            f"1. Write down the {section} terms.\n2. Add them in pairs.\n3. Compare with the formula.\n\n"
        )
        counts["items"] += 3
    return Answer(
        "".join(parts).rstrip() + "\n",
        counts["code"],
        counts["display"],
        counts["inline"],
        counts["headings"],
        counts["items"],
    )


def split_evenly(text: str, pieces: int) -> list[str]:
    size = len(text)
    return [text[size * i // pieces : size * (i + 1) // pieces] for i in range(pieces)]


class UiStack(Stack):
    """bench.stack's chat-service and gateway as processes, in front of a scripted fake
    upstream that lives in this process (the bench fake only streams one repeated word)."""

    def __init__(self, upstream_url: str) -> None:
        super().__init__()
        self.fake_url = upstream_url

    @property
    def web_url(self) -> str:
        return self.processes["gateway"].url

    async def start(self) -> None:
        chat = await self.spawn(
            "chat-service",
            ["-m", "tinychat_chat"],
            env={
                "OPENAI_API_URL": self.fake_url,
                "OPENAI_API_KEY": "bench-key",
                "DEFAULT_MODEL": MODEL,
                "AVAILABLE_MODELS": MODEL,
            },
        )
        await self.spawn(
            "gateway",
            ["-m", "tinychat_gateway"],
            env={"CHAT_SERVICE_URL": chat.url, "IMAGE_SERVICE_URL": NOWHERE, "RLM_SERVICE_URL": NOWHERE},
        )


async def open_app(browser: Browser, url: str, markdown: bool) -> tuple[Page, Any]:
    context = await browser.new_context(base_url=url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(30_000)
    await context.add_init_script(PROBE_SCRIPT)
    page = await context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda e: problems.append(str(e)))
    await page.goto("/")
    try:
        await page.wait_for_selector("#model-select option", state="attached")
    except PlaywrightError as exc:
        await context.close()
        raise UiBenchError(f"the app did not start: {problems or exc}") from None
    if not markdown:
        await page.click("#open-settings")
        await page.uncheck("#markdown-toggle")
        await page.click("#open-settings")
    cdp = await context.new_cdp_session(page)
    await cdp.send("Performance.enable")
    return page, cdp


async def main_thread_seconds(cdp: Any) -> dict[str, float]:
    metrics = {m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]}
    return {
        "task": metrics.get("TaskDuration", 0.0),
        "script": metrics.get("ScriptDuration", 0.0),
        "layout": metrics.get("LayoutDuration", 0.0) + metrics.get("RecalcStyleDuration", 0.0),
    }


async def measure_once(browser: Browser, url: str, markdown: bool) -> dict[str, Any]:
    page, cdp = await open_app(browser, url, markdown)
    try:
        before = await main_thread_seconds(cdp)
        await page.evaluate("window.__uibench.start()")
        await page.fill("#composer-input", "Explain the whole proof, step by step, at length.")
        await page.press("#composer-input", "Enter")
        # Awaiting the page's own promise: no polling, which would itself cost frames.
        await asyncio.wait_for(page.evaluate("window.__uibench.finished"), ANSWER_TIMEOUT_S)
        after = await main_thread_seconds(cdp)
        probe = await page.evaluate(
            "({...window.__uibench, finished: undefined, start: undefined, shown: undefined})"
        )
        shown = await page.evaluate("window.__uibench.shown()")
    finally:
        await page.context.close()
    return summarize(probe, shown, {k: after[k] - before[k] for k in before})


def in_window(samples: list[list[float]], start: float, end: float) -> list[list[float]]:
    return [s for s in samples if start <= s[0] <= end]


def quarter_busy_ms(long_tasks: list[list[float]], start: float, end: float) -> tuple[float, float]:
    """Long-task time in the first and in the last quarter of the stream."""
    quarter = (end - start) / 4
    first = sum(d for t, d in in_window(long_tasks, start, start + quarter))
    last = sum(d for t, d in in_window(long_tasks, end - quarter, end))
    return first, last


def quarter_frame_ms(frames: list[list[float]], start: float, end: float) -> tuple[float, float]:
    """Mean animation-frame interval in the first and in the last quarter of the stream.
    Some 70 frames each: a steadier measure of per-frame cost than a handful of long tasks."""
    quarter = (end - start) / 4
    first = [i for _, i in in_window(frames, start, start + quarter)]
    last = [i for _, i in in_window(frames, end - quarter, end)]
    return statistics.fmean(first) if first else 0.0, statistics.fmean(last) if last else 0.0


def summarize(probe: dict[str, Any], shown: dict[str, Any], busy: dict[str, float]) -> dict[str, Any]:
    start, end = probe["firstContentAt"], probe["doneAt"]
    renders = in_window(probe["renders"], start, end)
    # Frames from the one that showed the first token (renders carry their frame's time).
    first_frame = renders[0][1] if renders else start
    intervals = [i for _, i in in_window(probe["frames"], first_frame, end)]
    per_frame: dict[float, int] = {}
    for _, frame in renders:
        per_frame[frame] = per_frame.get(frame, 0) + 1
    long_tasks = in_window(probe["longTasks"], probe["startedAt"], end)
    first_q, last_q = quarter_busy_ms(long_tasks, start, end)
    first_frames, last_frames = quarter_frame_ms(
        in_window(probe["frames"], first_frame, end), first_frame, end
    )
    return {
        "frames": len(intervals),
        "frame_p50_ms": percentile(intervals, 0.50),
        "frame_p99_ms": percentile(intervals, 0.99),
        "frame_max_ms": max(intervals, default=None),
        "intervals": intervals,
        "long_tasks": len(long_tasks),
        "long_task_ms": sum(d for _, d in long_tasks),
        "long_task_first_quarter_ms": first_q,
        "long_task_last_quarter_ms": last_q,
        "frame_first_quarter_ms": first_frames,
        "frame_last_quarter_ms": last_frames,
        "renders": len(renders),
        "max_renders_in_a_frame": max(per_frame.values(), default=0),
        "first_token_to_rendered_s": (end - start) / 1000,
        "last_byte_to_rendered_ms": None if shown["lastByteAt"] is None else end - shown["lastByteAt"],
        "main_thread_s": busy,
        "shown": shown,
        "problem": probe["problem"],
    }


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure per mode from its rounds: frames pooled, the rest averaged per run."""
    intervals = [i for run in runs for i in run["intervals"]]

    def mean(key: str) -> float:
        return statistics.fmean(run[key] for run in runs)

    return {
        "rounds": len(runs),
        "frames_per_run": mean("frames"),
        "frame_p50_ms": percentile(intervals, 0.50),
        "frame_p99_ms": percentile(intervals, 0.99),
        "frame_max_ms": max(intervals, default=None),
        "long_tasks_per_run": mean("long_tasks"),
        "long_task_ms_per_run": mean("long_task_ms"),
        "long_task_first_quarter_ms": mean("long_task_first_quarter_ms"),
        "long_task_last_quarter_ms": mean("long_task_last_quarter_ms"),
        "frame_first_quarter_ms": mean("frame_first_quarter_ms"),
        "frame_last_quarter_ms": mean("frame_last_quarter_ms"),
        "renders_per_run": mean("renders"),
        "max_renders_in_a_frame": max(run["max_renders_in_a_frame"] for run in runs),
        "first_token_to_rendered_s": mean("first_token_to_rendered_s"),
        "last_byte_to_rendered_ms": statistics.fmean(run["last_byte_to_rendered_ms"] or 0.0 for run in runs),
        "main_thread_script_s": statistics.fmean(run["main_thread_s"]["script"] for run in runs),
        "main_thread_layout_s": statistics.fmean(run["main_thread_s"]["layout"] for run in runs),
        "main_thread_task_s": statistics.fmean(run["main_thread_s"]["task"] for run in runs),
        "runs": [{k: v for k, v in run.items() if k != "intervals"} for run in runs],
    }


def shows_whole_answer(run: dict[str, Any], answer: Answer, markdown: bool) -> bool:
    shown: dict[str, int] = run["shown"]
    if run["problem"]:
        return False
    if not markdown:
        return shown["plainText"] == len(answer.text)
    return (
        shown["codeBlocks"] == answer.code_blocks
        and shown["displayMath"] == answer.display_math
        and shown["inlineMath"] == answer.inline_math
        and shown["headings"] == answer.headings
        and shown["listItems"] == answer.list_items
    )


def growth(mode: dict[str, Any]) -> float:
    """The last quarter's mean frame interval over the first's: rendering that grew with the
    text would stretch the late frames."""
    last: float = mode["frame_last_quarter_ms"]
    first: float = mode["frame_first_quarter_ms"]
    return last / max(first, 1e-9)


def evaluate(plain: dict[str, Any], markdown: dict[str, Any], complete: bool) -> list[dict[str, Any]]:
    ratio = (markdown["frame_p99_ms"] or 0) / max(plain["frame_p99_ms"] or 0, 1e-9)
    renders_ok = (
        markdown["max_renders_in_a_frame"] <= 1 and markdown["renders_per_run"] <= markdown["frames_per_run"]
    )
    checks = [
        ("whole answer shown, both modes", "yes", "yes" if complete else "no", complete),
        (
            "frame p99, markdown / plain",
            f"<= {P99_RATIO_TARGET:g}",
            f"{ratio:.2f}",
            ratio <= P99_RATIO_TARGET,
        ),
        (
            "re-renders <= animation frames",
            "max 1 per frame",
            f"{markdown['renders_per_run']:.0f} renders / {markdown['frames_per_run']:.0f} frames, "
            f"max {markdown['max_renders_in_a_frame']} in one",
            renders_ok,
        ),
        (
            "frame interval, last / first quarter",
            f"<= {GROWTH_TARGET:g}",
            f"{growth(markdown):.2f}",
            growth(markdown) <= GROWTH_TARGET,
        ),
    ]
    return [{"what": w, "target": t, "measured": m, "passed": p} for w, t, m, p in checks]


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# (label, how one mode's results show in that row)
TABLE_ROWS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("frame interval p50 (ms)", lambda r: fmt(r["frame_p50_ms"])),
    ("frame interval p99 (ms)", lambda r: fmt(r["frame_p99_ms"])),
    ("frame interval max (ms)", lambda r: fmt(r["frame_max_ms"])),
    ("long tasks per answer", lambda r: fmt(r["long_tasks_per_run"], 0)),
    ("long-task total (ms)", lambda r: fmt(r["long_task_ms_per_run"], 0)),
    (
        "  first / last quarter (ms)",
        lambda r: f"{r['long_task_first_quarter_ms']:.0f} / {r['long_task_last_quarter_ms']:.0f}",
    ),
    (
        "frame mean, first / last quarter (ms)",
        lambda r: f"{r['frame_first_quarter_ms']:.1f} / {r['frame_last_quarter_ms']:.1f}",
    ),
    ("main thread: script (s)", lambda r: fmt(r["main_thread_script_s"], 2)),
    ("main thread: layout+style (s)", lambda r: fmt(r["main_thread_layout_s"], 2)),
    ("renders / frames", lambda r: f"{r['renders_per_run']:.0f} / {r['frames_per_run']:.0f}"),
    ("first token -> rendered (s)", lambda r: fmt(r["first_token_to_rendered_s"], 2)),
    ("last byte -> rendered (ms)", lambda r: fmt(r["last_byte_to_rendered_ms"])),
]


def table(plain: dict[str, Any], markdown: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    rows = [("", "plain (baseline)", "markdown")]
    rows += [(label, show(plain), show(markdown)) for label, show in TABLE_ROWS]
    lines = [f"{a:<31}{b:>18}{c:>14}" for a, b, c in rows]
    lines += [
        f"{'PASS' if c['passed'] else 'FAIL'}  {c['what']}: {c['measured']} (target {c['target']})"
        for c in checks
    ]
    return "\n".join(lines)


async def main(
    quick: bool = False,
    *,
    tokens: int | None = None,
    chunks: int | None = None,
    rounds: int | None = None,
    write: bool = True,
    echo: bool = True,
) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    tokens = tokens or sizes["tokens"]
    chunks = chunks or sizes["chunks"]
    rounds = rounds or sizes["rounds"]
    answer = long_answer(tokens)
    pieces = split_evenly(answer.text, chunks)
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    async with FakeOpenAI(models=[MODEL]) as fake:
        fake.respond_with(lambda body: Reply(chunks=pieces, chunk_delay=CHUNK_DELAY))
        async with UiStack(fake.url) as stack, async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                await measure_once(browser, stack.web_url, markdown=True)  # warm-up: caches, JIT
                for _ in range(rounds):
                    for with_markdown in (False, True):
                        runs[with_markdown].append(await measure_once(browser, stack.web_url, with_markdown))
                loading = await ui_load.measure(browser, stack.web_url)
            finally:
                await browser.close()
    plain, markdown = pooled(runs[False]), pooled(runs[True])
    complete = all(shows_whole_answer(run, answer, md) for md, mode in runs.items() for run in mode)
    checks = evaluate(plain, markdown, complete) + ui_load.checks(loading)
    result = {
        "suite": "ui_render",
        "quick": quick,
        "answer": {
            "tokens": tokens,
            "chars": len(answer.text),
            "chunks": chunks,
            "chunk_delay_s": CHUNK_DELAY,
        },
        "host": {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]},
        "plain": plain,
        "markdown": markdown,
        "loading": loading,
        "checks": checks,
        "passed": all(c["passed"] for c in checks),
    }
    if echo:
        print(
            f"{tokens:,} tokens ({len(answer.text):,} chars) in {chunks:,} deltas "
            f"{CHUNK_DELAY * 1000:g} ms apart, {rounds} round(s) per mode; "
            f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
            flush=True,
        )
        print(table(plain, markdown, checks), flush=True)
    if write:
        result["written_to"] = write_results("ui_render", result)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ui_render", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a shorter answer, one round")
    parser.add_argument("--tokens", type=int, default=None, help="answer length in tokens")
    parser.add_argument("--chunks", type=int, default=None, help="deltas the answer is streamed in")
    parser.add_argument("--rounds", type=int, default=None, help="runs per mode")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    outcome = asyncio.run(main(args.quick, tokens=args.tokens, chunks=args.chunks, rounds=args.rounds))
    sys.exit(0 if outcome["passed"] else 1)
