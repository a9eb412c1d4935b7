"""Who may use TinyChat: AUTH_MODE none, password or header. Stateless, so any replica
serves any request.

- `password`: POST /api/auth/login with the password sets `tinychat_session`, a cookie
  holding `<payload>.<HMAC-SHA256 of it>` (the payload: a random session id and an
  expiry). Every replica verifies it with AUTH_SECRET; there is no session store. It is
  HttpOnly (no script reads it), SameSite=Strict (no other site's request carries it) and
  Secure when the page is https. AUTH_SECRET may be a comma list: the first signs, every
  one verifies, so a secret is rotated by putting the new one first and dropping the old
  one after AUTH_SESSION_HOURS. Wrong passwords are limited per client and globally.
- `header`: an authenticating proxy (oauth2-proxy, Authelia, ...) names the user in
  AUTH_USER_HEADER; the header is believed only from TRUSTED_PROXIES.

The identity (session id or user name) keys the rate limits and goes to the services in
X-TinyChat-User, for CHAT_LOG.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, Field
from tinychat_common.bodies import read_body
from tinychat_common.errors import RateLimited, Unauthorized, json_error
from tinychat_common.internal_auth import USER_HEADER

from .app_keys import AUTH
from .config import GatewaySettings
from .ratelimit import SlidingWindow, client_address, is_trusted_peer, limit_key

log = logging.getLogger(__name__)

COOKIE = "tinychat_session"
IDENTITY = web.RequestKey("tinychat_identity", str)
USER_HEADER_TO_SERVICES = USER_HEADER
GLOBAL = "*"
# Open without a login: the probes, the login page and its script, the login itself.
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/login", "/login.js", "/api/auth/login", "/api/auth/logout",
     "/api/auth/session", "/api/openapi.json", "/icons/favicon.svg"}
)  # fmt: skip
MAX_USER_CHARS = 256


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(max_length=4096, description="The password set in AUTH_PASSWORD.")


class OkResponse(BaseModel):
    ok: bool


class SessionResponse(BaseModel):
    mode: str = Field(description="none, password or header.")
    authenticated: bool
    user: str | None = None


class WrongPassword(Unauthorized):
    code = "invalid_password"
    default_message = "The password is wrong."


class LoginRequired(Unauthorized):
    code = "login_required"
    default_message = "Log in first (/login)."


class TooManyLoginFailures(RateLimited):
    code = "too_many_attempts"

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(f"Too many wrong passwords. Try again in {seconds} s.")
        self.retry_after = seconds  # sent as Retry-After (TinyChatError.to_response)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CookieSigner:
    def __init__(self, secrets_: list[str], lifetime_seconds: float) -> None:
        self._keys = [hashlib.sha256(s.encode()).digest() for s in secrets_]
        self.lifetime = lifetime_seconds

    def issue(self, now: float | None = None) -> tuple[str, str]:
        """A new cookie value and the session id inside it."""
        sid = secrets.token_urlsafe(12)
        expires = int((now or time.time()) + self.lifetime)
        payload = _b64(json.dumps({"sid": sid, "exp": expires}, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(self._keys[0], payload)}", sid

    def verify(self, value: str, now: float | None = None) -> str | None:
        """The session id of a valid, unexpired cookie; None otherwise."""
        payload, _, signature = value.partition(".")
        if not payload or not signature:
            return None
        if not any(hmac.compare_digest(self._sign(key, payload), signature) for key in self._keys):
            return None
        try:
            data = json.loads(_unb64(payload))
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        expires, sid = data.get("exp"), data.get("sid")
        if not isinstance(expires, int) or not isinstance(sid, str):
            return None
        if expires <= (now or time.time()):
            return None
        return sid

    @staticmethod
    def _sign(key: bytes, payload: str) -> str:
        return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


class Auth:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.mode = settings.auth_mode
        self.signer = CookieSigner(settings.auth_secrets or ["unused"], settings.auth_session_hours * 3600)
        self._password = hashlib.sha256(settings.auth_password.get_secret_value().encode()).digest()
        window = settings.auth_failure_window_seconds
        self.failures = SlidingWindow(settings.auth_max_failures, window)
        self.global_failures = SlidingWindow(settings.auth_global_max_failures, window)

    def identity(self, request: web.Request) -> str | None:
        """Who this request is from, or None when it has not proven it."""
        if self.mode == "password":
            sid = self.signer.verify(request.cookies.get(COOKIE, ""))
            return f"session:{sid}" if sid else None
        if self.mode == "header":
            if not is_trusted_peer(request, self.settings.trusted_proxies):
                return None
            user = request.headers.get(self.settings.auth_user_header, "").strip()
            return user[:MAX_USER_CHARS] if user else None
        return None

    def check_password(self, client: str, given: str) -> None:
        wait = max(self.failures.retry_after(client), self.global_failures.retry_after(GLOBAL))
        if wait > 0:
            raise TooManyLoginFailures(wait)
        if not hmac.compare_digest(
            hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest(), self._password
        ):
            self.failures.record(client)
            self.global_failures.record(GLOBAL)
            log.warning("wrong password from %s", client)
            raise WrongPassword()

    def secure_cookie(self, request: web.Request) -> bool:
        if self.settings.public_url.startswith("https://"):
            return True
        if is_trusted_peer(request, self.settings.trusted_proxies):
            return request.headers.get("X-Forwarded-Proto", "").lower() == "https"
        return request.secure


def is_page(request: web.Request) -> bool:
    return not request.path.startswith("/api/") and request.method in ("GET", "HEAD")


@web.middleware
async def require_identity(request: web.Request, handler: Handler) -> web.StreamResponse:
    auth = request.app[AUTH]
    identity = auth.identity(request)
    if identity is not None:
        request[IDENTITY] = identity
    elif request.path not in OPEN_PATHS and request.method != "OPTIONS":  # a preflight has no cookie
        if auth.mode == "password":
            if is_page(request):
                raise web.HTTPFound("/login")
            return LoginRequired().to_response()
        return json_error(
            401, "unauthorized", "This TinyChat is behind a sign-in proxy; open it through the proxy."
        )
    return await handler(request)


def request_identity(request: web.Request, settings: GatewaySettings) -> str:
    """What the limits count by: the signed-in identity, else the client's address (an
    IPv6 address by its /64, which one host usually holds whole)."""
    return request.get(IDENTITY) or limit_key(client_address(request, settings.trusted_proxies))


async def login(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    if auth.mode != "password":
        return json_error(404, "not_found", "Password login is off (AUTH_MODE is not password).")
    body = await read_body(request, LoginRequest)
    auth.check_password(limit_key(client_address(request, auth.settings.trusted_proxies)), body.password)
    value, _sid = auth.signer.issue()
    response = web.json_response({"ok": True})
    response.set_cookie(
        COOKIE,
        value,
        max_age=int(auth.signer.lifetime),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=auth.secure_cookie(request),
    )
    return response


async def logout(request: web.Request) -> web.Response:
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def session(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    identity = auth.identity(request)
    user = identity if auth.mode == "header" else None
    answer = SessionResponse(
        mode=auth.mode, authenticated=auth.mode == "none" or identity is not None, user=user
    )
    return web.json_response(answer.model_dump(), headers={"Cache-Control": "no-store"})


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TinyChat: log in</title>
<link rel="icon" href="/icons/favicon.svg" type="image/svg+xml">
<style>
body{font-family:system-ui,sans-serif;display:grid;place-items:center;min-height:100vh;margin:0;
  background:#f6f7f9;color:#111}
form{background:#fff;padding:2rem;border-radius:12px;box-shadow:0 2px 12px #0002;display:grid;
  gap:.8rem;min-width:18rem}
input,button{font:inherit;padding:.6rem;border-radius:8px;border:1px solid #bbb}
button{background:#1f5fd1;color:#fff;border:0;cursor:pointer}
#message{min-height:1.4em;color:#a40000;margin:0}
@media (prefers-color-scheme: dark){body{background:#15171a;color:#eee}form{background:#23262b}}
</style></head>
<body>
<form id="login" method="post" action="/api/auth/login">
  <h1>TinyChat</h1>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
  <button id="submit" type="submit">Log in</button>
  <button id="logout" type="button" hidden>Log out</button>
  <p id="message" role="alert"></p>
</form>
<script src="/login.js"></script>
</body></html>
"""

LOGIN_SCRIPT = """"use strict";
const form = document.getElementById("login");
const message = document.getElementById("message");
const logoutButton = document.getElementById("logout");
fetch("/api/auth/session").then((r) => r.json()).then((s) => {
  if (s.authenticated && s.mode === "password") {
    logoutButton.hidden = false;
    message.textContent = "You are logged in.";
  }
});
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  message.textContent = "";
  const password = document.getElementById("password").value;
  const response = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ password }),
  });
  if (response.ok) {
    window.location.assign("/");
    return;
  }
  const body = await response.json().catch(() => ({}));
  message.textContent = body.detail || "Login failed.";
});
logoutButton.addEventListener("click", async () => {
  await fetch("/api/auth/logout", { method: "POST" });
  logoutButton.hidden = true;
  message.textContent = "You are logged out.";
});
"""


async def login_page(request: web.Request) -> web.Response:
    return web.Response(text=LOGIN_PAGE, content_type="text/html", headers={"Cache-Control": "no-store"})


async def login_script(request: web.Request) -> web.Response:
    return web.Response(
        text=LOGIN_SCRIPT, content_type="text/javascript", headers={"Cache-Control": "no-cache"}
    )


def install_auth(app: web.Application, settings: GatewaySettings) -> None:
    app[AUTH] = Auth(settings)
    if settings.auth_mode != "none":
        # After the access guard (Host, Origin), before everything else.
        app.middlewares.insert(1, require_identity)
    app.router.add_post("/api/auth/login", login)
    app.router.add_post("/api/auth/logout", logout)
    app.router.add_get("/api/auth/session", session)
    app.router.add_get("/login", login_page)
    app.router.add_get("/login.js", login_script)
