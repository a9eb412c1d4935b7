"""Browser fixtures: one Chromium and one running stack per session, a fresh context (empty
storage) per test, and a guard that fails any test in which the page raised a CSP
violation, logged a console error, opened a dialog or sent a request off the stack."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .stack import Stack

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("TINYCHAT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# Runs in the page before any of its scripts: records what the guard checks afterwards.
WATCH_SCRIPT = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.reportCspViolation(e.violatedDirective + " " + e.blockedURI);
});
"""


@dataclass
class PageWatch:
    base_url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    expected_console: list[str] = field(default_factory=list)

    def allow_console(self, fragment: str) -> None:
        """A console error this test provokes on purpose (e.g. a 4xx answer)."""
        self.expected_console.append(fragment)

    def unexpected_console(self) -> list[str]:
        return [e for e in self.console_errors if not any(f in e for f in self.expected_console)]


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    running = Stack(rlm_passcode="open-sesame").start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def viewport() -> dict[str, int]:
    return {"width": 1280, "height": 860}


@pytest.fixture
def color_scheme() -> str:
    return "light"


@pytest.fixture
def context(browser, stack: Stack, watch: PageWatch, viewport, color_scheme) -> Iterator[object]:
    stack.reset()
    ctx = browser.new_context(
        base_url=stack.url, viewport=viewport, color_scheme=color_scheme, accept_downloads=True
    )
    ctx.set_default_timeout(10_000)
    # A binding, not a page variable: violations survive reloads and navigation.
    ctx.expose_function("reportCspViolation", lambda text: watch.violations.append(text))
    ctx.add_init_script(WATCH_SCRIPT)
    yield ctx
    ctx.close()


@pytest.fixture
def watch(stack: Stack) -> PageWatch:
    return PageWatch(base_url=stack.url)


@pytest.fixture
def page(context, watch: PageWatch) -> Iterator[object]:
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and watch.console_errors.append(m.text))
    page.on("pageerror", lambda e: watch.page_errors.append(str(e)))

    def on_dialog(dialog) -> None:
        watch.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)

    def on_request(request) -> None:
        url = request.url
        if not (url.startswith(watch.base_url + "/") or url.startswith(("data:", "blob:"))):
            watch.foreign_requests.append(url)

    page.on("request", on_request)
    yield page
    assert watch.violations == [], f"CSP violations: {watch.violations}"
    assert watch.page_errors == [], f"uncaught errors: {watch.page_errors}"
    assert watch.unexpected_console() == [], f"console errors: {watch.unexpected_console()}"
    assert watch.dialogs == [], f"dialogs opened: {watch.dialogs}"
    assert watch.foreign_requests == [], f"requests off the stack: {watch.foreign_requests}"


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
