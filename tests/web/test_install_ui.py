"""Installable and quick: a web app manifest, a service worker whose shell opens with the
network cut (and which never caches the API), and static files served precompressed."""

from __future__ import annotations

import json

import pytest

from tests.fakes.openai_upstream import Reply

from .helpers import open_app, send, wait_for_answers

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

SHELL = ["/", "/js/main.js", "/js/ui/chat.js", "/vendor/katex/dist/katex.mjs"]
CACHED = """async () => {
  const cache = await caches.open((await caches.keys())[0]);
  return (await cache.keys()).map(r => new URL(r.url).pathname);
}"""


def test_the_manifest_makes_the_app_installable(page, stack):
    open_app(page)
    href = page.locator("link[rel=manifest]").get_attribute("href")
    manifest = page.evaluate("href => fetch(href).then(r => r.json())", href)
    assert manifest["name"] == "TinyChat" and manifest["start_url"] == "/"
    assert manifest["display"] == "standalone" and manifest["icons"]


def test_the_shell_opens_offline_from_the_service_worker(page, context, stack, watch):
    for fragment in ("ERR_INTERNET_DISCONNECTED", "Failed to fetch", "Failed to load resource"):
        watch.allow_console(fragment)
    stack.run(lambda: stack.upstream.enqueue(Reply(text="Kept for offline reading")))
    open_app(page)
    send(page, "Before the network goes")
    wait_for_answers(page, 1)
    page.wait_for_function(
        "() => navigator.serviceWorker.controller !== null || navigator.serviceWorker.ready"
    )
    page.evaluate("() => navigator.serviceWorker.ready")
    page.wait_for_function(
        f"async shell => {{ const paths = await ({CACHED})(); return shell.every(p => paths.includes(p)); }}",
        arg=SHELL,
        polling=200,
    )
    cached = page.evaluate(CACHED)
    assert not [p for p in cached if p.startswith("/api/")], cached

    stack.run(stack.access_log.clear)
    context.set_offline(True)
    try:
        page.reload()
        page.locator("#composer-input").wait_for()
        page.locator("li.message", has_text="Kept for offline reading").wait_for()
        page.locator(".toast.error", has_text="configuration").wait_for()
        assert stack.run(lambda: list(stack.access_log)) == [], "the shell came from the network"
    finally:
        context.set_offline(False)


def test_first_load_is_served_precompressed(page, stack):
    open_app(page)
    entries = page.evaluate(
        """() => performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))
        .filter(e => !e.name.includes('/api/'))
        .map(e => ({name: new URL(e.name).pathname, body: e.decodedBodySize, wire: e.encodedBodySize}))"""
    )
    katex = next(e for e in entries if e["name"].endswith("katex.mjs"))
    assert katex["wire"] < katex["body"] / 3, json.dumps(katex)
    total_wire = sum(e["wire"] for e in entries)
    assert total_wire < 450 * 1024, total_wire
