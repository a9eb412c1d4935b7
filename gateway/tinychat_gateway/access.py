"""Who may talk to the gateway at all, decided before any handler runs.

- `Host` must be one of the allowed names: a DNS-rebinding page (evil.example resolving to
  127.0.0.1) reaches the gateway with `Host: evil.example` and is refused.
- An API call or a form post from another site is refused: its `Origin` (or, without
  one, `Sec-Fetch-Site: cross-site`) must be the gateway's own origin, PUBLIC_URL's, or
  in ALLOWED_ORIGINS. Requests without either header (curl, scripts) are not from a
  browser page and pass.
- A POST to the API must be `application/json`: the content types a page may send across
  sites without a preflight (form encodings, text/plain) are refused with 415.

Probes (/healthz, /readyz, /metrics) are exempt from the Host check: Kubernetes and
Prometheus call them by pod address.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler
from tinychat_common.errors import json_error
from tinychat_common.service import PROBE_PATHS

from .app_keys import ACCESS_RULES
from .config import GatewaySettings

JSON_TYPES = frozenset({"application/json"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AccessRules:
    def __init__(self, settings: GatewaySettings) -> None:
        self.hosts = settings.host_names
        self.origins = frozenset(o.lower() for o in settings.allowed_origins) | (
            {settings.public_origin} if settings.public_origin else set()
        )

    def host_allowed(self, host_header: str) -> bool:
        if self.hosts is None:
            return True
        return host_name(host_header) in self.hosts

    def origin_allowed(self, origin: str, host_header: str) -> bool:
        origin = origin.lower().rstrip("/")
        if origin in self.origins:
            return True
        # The gateway's own origin, by either scheme: behind a TLS proxy the page is https
        # while the gateway sees http. Host was checked already, so this is an allowed name.
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc == host_header.lower()


def host_name(host_header: str) -> str:
    """`Host` without its port, lower case, IPv6 brackets removed."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_guarded(request: web.Request) -> bool:
    """The API, and anything that changes state (login, logout, future form targets)."""
    return request.path.startswith("/api/") or request.method not in SAFE_METHODS


@web.middleware
async def access_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    rules = request.app[ACCESS_RULES]
    host = request.headers.get("Host", "")
    if request.path not in PROBE_PATHS and not rules.host_allowed(host):
        return json_error(
            403, "host_not_allowed", "This host name is not served here (set ALLOWED_HOSTS or PUBLIC_URL)."
        )
    if is_guarded(request):
        origin = request.headers.get("Origin")
        if origin is not None:
            if not rules.origin_allowed(origin, host):
                return json_error(403, "cross_site", "Requests from other sites are not allowed.")
        elif request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
            return json_error(403, "cross_site", "Requests from other sites are not allowed.")
        if request.method == "POST" and request.path.startswith("/api/") and not _is_json(request):
            return json_error(
                415, "unsupported_media_type", "The body must be JSON (Content-Type: application/json)."
            )
    return await handler(request)


def _is_json(request: web.Request) -> bool:
    # A POST with no body carries nothing to forge (POST /api/rlm/validate with the
    # passcode in its header). aiohttp's content_type is the bare media type, lower case.
    return not request.body_exists or request.content_type in JSON_TYPES


def install_access_guard(app: web.Application, settings: GatewaySettings) -> None:
    app[ACCESS_RULES] = AccessRules(settings)
    app.middlewares.insert(0, access_guard)
