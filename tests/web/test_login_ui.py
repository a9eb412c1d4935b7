"""AUTH_MODE=password in real Chromium: the login page, the HttpOnly SameSite=Strict cookie,
logout, an expired cookie, and a form on another site posting to TinyChat."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tinychat_gateway.auth import COOKIE, CookieSigner

from .helpers import open_app
from .stack import Stack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

PASSWORD = "browser test passphrase"
SECRET = "browser-cookie-secret-0123456789abc"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """This module's own stack, with the login on (the other browser tests run without)."""
    running = Stack(auth_mode="password", auth_password=PASSWORD, auth_secret=SECRET).start()
    yield running
    running.stop()


def log_in(page, password: str = PASSWORD) -> None:
    page.goto("/")
    page.wait_for_url("**/login")
    page.fill("#password", password)
    page.click("#submit")


def test_login_with_the_password_opens_the_app_with_a_strict_httponly_cookie(page, context) -> None:
    log_in(page)
    page.wait_for_url(lambda url: not url.endswith("/login"))
    open_app(page)
    cookie = next(c for c in context.cookies() if c["name"] == COOKIE)
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["expires"] > time.time() + 3600
    assert COOKIE not in page.evaluate("document.cookie")  # no script can read it


def test_a_wrong_password_says_so_and_stays_on_the_login(page, watch) -> None:
    watch.allow_console("401")
    log_in(page, "not the password")
    page.wait_for_selector("#message:has-text('wrong')")
    assert page.url.endswith("/login")


def test_logout_ends_the_session(page, context) -> None:
    log_in(page)
    page.wait_for_url(lambda url: not url.endswith("/login"))
    open_app(page)
    page.goto("/login")
    page.click("#logout")
    page.wait_for_selector("#message:has-text('logged out')")
    assert not [c for c in context.cookies() if c["name"] == COOKIE]
    page.goto("/")
    page.wait_for_url("**/login")


def test_an_expired_cookie_leads_back_to_the_login(page, context, watch, stack: Stack) -> None:
    watch.allow_console("401")
    expired, _ = CookieSigner([SECRET], 3600).issue(now=time.time() - 7200)
    context.add_cookies([{"name": COOKIE, "value": expired, "url": stack.url}])
    page.goto("/")
    page.wait_for_url("**/login")
    status = page.evaluate("fetch('/api/config').then(r => r.status)")
    assert status == 401


class EvilSite:
    """A second origin (http://localhost:<port>, another site than 127.0.0.1) whose page
    posts a form to TinyChat the moment it loads."""

    def __init__(self, target: str) -> None:
        body = (
            "<!doctype html><title>cute cats</title>"
            f'<form id="f" method="POST" action="{target}/api/chat/stream" enctype="text/plain">'
            '<input name=\'{"messages":[{"role":"user","content":"run","x":"\' value=\'"}],"rlm":true}\'>'
            "</form><script>document.getElementById('f').submit()</script>"
        ).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_form_posted_from_another_site_is_refused_even_when_logged_in(context, stack: Stack) -> None:
    page = context.new_page()
    log_in(page)
    page.wait_for_url(lambda url: not url.endswith("/login"))
    requests_before = len(stack.run(lambda: list(stack.downstream.requests)))
    evil = EvilSite(stack.url)
    try:
        with page.expect_response(lambda r: r.url.endswith("/api/chat/stream")) as posted:
            page.goto(evil.url)
        assert posted.value.status == 403  # refused for its Origin before anything else
        assert "cross_site" in posted.value.text()
    finally:
        evil.close()
        page.close()
    assert len(stack.run(lambda: list(stack.downstream.requests))) == requests_before
