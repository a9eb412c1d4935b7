"""The browser UI's load and long-chat figures, part of the ui_render suite:

  - first load: bytes over the wire (every response's encoded size, headers included, from the
    DevTools Network domain) for a fresh browser with no cache and no service worker, against
    the same files' decoded size (the baseline: what the load cost uncompressed); and time to
    interactive (navigation start to the app ready for input: the model list filled in);
  - switching to a conversation of 200 messages (a click in the sidebar to the next painted
    frame), against switching to a 2-message one;
  - typing latency in it (a key press to the next painted frame), against an empty chat.
Every figure is taken in the same run as its baseline, in a fresh context each.
"""

from __future__ import annotations

import statistics
from typing import Any

from playwright.async_api import Browser

from bench.runtime import percentile

FIRST_LOAD_TARGET_KB = 450
SWITCH_TARGET_MS = 150
SWITCH_ROUNDS = 7
TYPED = "How does the proof in the third answer handle the edge case?"

READY_PROBE = """
window.__ready = new Promise((resolve) => {
  const check = () => document.querySelector('#model-select option') && resolve(performance.now());
  new MutationObserver(check).observe(document, {childList: true, subtree: true});
});
"""

TYPING_PROBE = """() => {
  const box = document.getElementById('composer-input');
  window.__typing = [];
  box.addEventListener('keydown', (e) => {
    const t0 = e.timeStamp;
    requestAnimationFrame(() => setTimeout(() => window.__typing.push(performance.now() - t0), 0));
  });
}"""

STORE = """list => {
  for (const c of list) localStorage.setItem('tinychat.conversation.' + c.id, JSON.stringify(c));
  localStorage.setItem('tinychat.lastConversation', 'c-short');
}"""

SWITCH = """async (id) => {
  const link = document.querySelector(`.conversation-item[data-id="${id}"] .conversation-link`);
  const t0 = performance.now();
  link.click();
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  return {ms: performance.now() - t0, shown: document.querySelectorAll('li.message').length};
}"""


def conversation(cid: str, title: str, pairs: int) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for i in range(pairs):
        messages.append(
            {"id": f"{cid}-q{i}", "role": "user", "content": f"Question {i}: why does step {i} hold?"}
        )
        answer = (
            f"## Step {i}\n\nBecause the **sum** of the first {i} terms is $\\frac{{n(n+1)}}{{2}}$, "
            "and each term is small.\n\n- one point\n- another point\n\n"
            "```python\ndef step(values):\n    return sum(values)\n```\n"
        )
        messages.append({"id": f"{cid}-a{i}", "role": "assistant", "content": answer, "state": "done"})
    now = 1_760_000_000_000
    for n, message in enumerate(messages):
        message["createdAt"] = now + n
    return {
        "id": cid,
        "title": title,
        "titleSetByUser": True,
        "createdAt": now,
        "updatedAt": now + (pairs if cid == "c-long" else 0),
        "systemPrompt": "",
        "model": None,
        "temperature": None,
        "markdown": True,
        "rlm": False,
        "messages": messages,
    }


async def first_load(browser: Browser, url: str) -> dict[str, Any]:
    context = await browser.new_context(
        base_url=url, viewport={"width": 1280, "height": 860}, service_workers="block"
    )
    try:
        await context.add_init_script(READY_PROBE)
        page = await context.new_page()
        cdp = await context.new_cdp_session(page)
        await cdp.send("Network.enable")
        await cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        wire: dict[str, float] = {}
        cdp.on("Network.loadingFinished", lambda e: wire.__setitem__(e["requestId"], e["encodedDataLength"]))
        await page.goto("/")
        ready_ms = await page.evaluate("window.__ready")
        await page.wait_for_load_state("networkidle")
        decoded = await page.evaluate(
            "performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))"
            ".reduce((sum, e) => sum + e.decodedBodySize, 0)"
        )
        files = await page.evaluate("performance.getEntriesByType('resource').length + 1")
    finally:
        await context.close()
    return {"wire_bytes": sum(wire.values()), "decoded_bytes": decoded, "files": files, "ready_ms": ready_ms}


async def long_chat(browser: Browser, url: str) -> dict[str, Any]:
    context = await browser.new_context(base_url=url, viewport={"width": 1280, "height": 860})
    try:
        page = await context.new_page()
        await page.goto("/")
        await page.wait_for_selector("#model-select option", state="attached")
        stored = [
            conversation("c-long", "Two hundred messages", 100),
            conversation("c-short", "Two messages", 1),
        ]
        await page.evaluate(STORE, stored)
        await page.reload()
        await page.wait_for_selector(".conversation-item[data-id='c-long']")
        await page.wait_for_timeout(2000)  # the renderer's idle warm-up
        long_ms, short_ms = [], []
        for _ in range(SWITCH_ROUNDS):
            to_long = await page.evaluate(SWITCH, "c-long")
            to_short = await page.evaluate(SWITCH, "c-short")
            if to_long["shown"] != 200 or to_short["shown"] != 2:
                raise RuntimeError(f"switching showed {to_long['shown']} and {to_short['shown']} messages")
            long_ms.append(to_long["ms"])
            short_ms.append(to_short["ms"])
        typing_long = await typing_latency(page, "c-long")
        await page.click("#new-chat")
        typing_empty = await typing_latency(page, None)
    finally:
        await context.close()
    return {
        "switch_long_ms": statistics.median(long_ms[1:]),
        "switch_short_ms": statistics.median(short_ms[1:]),
        "switch_long_all_ms": [round(x, 1) for x in long_ms],
        "typing_long": typing_long,
        "typing_empty": typing_empty,
    }


async def typing_latency(page: Any, conversation_id: str | None) -> dict[str, float | None]:
    if conversation_id:
        await page.evaluate(SWITCH, conversation_id)
    await page.evaluate(TYPING_PROBE)
    await page.click("#composer-input")
    await page.keyboard.type(TYPED, delay=30)
    samples = await page.evaluate("window.__typing")
    await page.fill("#composer-input", "")
    return {"p50_ms": percentile(samples, 0.5), "p95_ms": percentile(samples, 0.95), "keys": len(samples)}


async def measure(browser: Browser, url: str) -> dict[str, Any]:
    load = await first_load(browser, url)
    chat = await long_chat(browser, url)
    return {"first_load": load, "long_chat": chat}


def checks(figures: dict[str, Any]) -> list[dict[str, Any]]:
    load, chat = figures["first_load"], figures["long_chat"]
    wire_kb = load["wire_bytes"] / 1024
    ratio = load["wire_bytes"] / max(load["decoded_bytes"], 1)
    switch_ratio = chat["switch_long_ms"] / max(chat["switch_short_ms"], 1e-9)
    typing_ratio = (chat["typing_long"]["p95_ms"] or 0) / max(chat["typing_empty"]["p95_ms"] or 0, 1e-9)
    decoded_kb = load["decoded_bytes"] / 1024
    rows = [
        (
            "first load over the wire",
            f"<= {FIRST_LOAD_TARGET_KB} KB",
            f"{wire_kb:.0f} KB in {load['files']} files ({ratio:.2f} of {decoded_kb:.0f} KB uncompressed); "
            f"interactive after {load['ready_ms']:.0f} ms",
            wire_kb <= FIRST_LOAD_TARGET_KB,
        ),
        (
            "switch to a 200-message conversation",
            f"<= {SWITCH_TARGET_MS} ms",
            f"{chat['switch_long_ms']:.0f} ms "
            f"({switch_ratio:.1f}x a 2-message one, {chat['switch_short_ms']:.1f} ms)",
            chat["switch_long_ms"] <= SWITCH_TARGET_MS,
        ),
        (
            "typing latency in it, p95",
            "reported",
            f"{chat['typing_long']['p95_ms']:.1f} ms (p50 {chat['typing_long']['p50_ms']:.1f}); "
            f"empty chat p95 {chat['typing_empty']['p95_ms']:.1f} ms, ratio {typing_ratio:.2f}",
            True,
        ),
    ]
    return [{"what": w, "target": t, "measured": m, "passed": p} for w, t, m, p in rows]
