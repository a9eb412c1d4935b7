"""Bearer tokens between the services: chat, image and rlm-service answer their APIs only
to a caller that presents INTERNAL_TOKEN (the gateway, and rlm-service for chat).

Without it, anything on the backend network (a pod, a compromised container) could call
`POST /v1/chat/complete` and spend the API credit outside every limit the gateway sets.
The probes stay open: the orchestrator calls them without credentials, and they reveal
nothing.

The token comes from INTERNAL_TOKEN or from the file INTERNAL_TOKEN_FILE (a Kubernetes
Secret or a compose volume written at first start). It is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import json_error

log = logging.getLogger(__name__)

INTERNAL_TOKEN = web.AppKey("tinychat_internal_token_digest", bytes)
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Shorter than this is guessable; `make run` and compose generate 43 characters.
MIN_TOKEN_LENGTH = 16
# The signed-in user, as the gateway passes it on to the services (they log it).
USER_HEADER = "X-TinyChat-User"


def digest(token: str) -> bytes:
    # Comparing digests keeps the token's length out of the timing too.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def bearer_headers(token: str) -> dict[str, str]:
    """What a caller sends: nothing when no token is configured."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def presented_token(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


@web.middleware
async def require_internal_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in OPEN_PATHS:
        return await handler(request)
    given = presented_token(request)
    if given is None or not hmac.compare_digest(digest(given), request.app[INTERNAL_TOKEN]):
        return json_error(
            401,
            "unauthorized",
            "This internal API needs the service token (Authorization: Bearer <INTERNAL_TOKEN>).",
            headers={"WWW-Authenticate": 'Bearer realm="tinychat-internal"'},
        )
    return await handler(request)


def install_internal_auth(app: web.Application, token: str) -> None:
    """Require `token` on every route but the probes; no-op when it is empty (the service
    then refuses to start beyond loopback, see check_internal_token)."""
    if not token:
        return
    app[INTERNAL_TOKEN] = digest(token)
    app.middlewares.insert(0, require_internal_token)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_internal_token(token: str, host: str, service: str) -> str | None:
    """Why an internal service must not start (None = it may): without a token it would
    answer anyone who can reach it, so it may only listen on loopback."""
    if token and len(token) < MIN_TOKEN_LENGTH:
        return f"INTERNAL_TOKEN is shorter than {MIN_TOKEN_LENGTH} characters: use a random one"
    if not token and not is_loopback(host):
        return (
            f"INTERNAL_TOKEN is not set: {service} would answer anyone who can reach {host}. "
            "Set INTERNAL_TOKEN (or INTERNAL_TOKEN_FILE) to the token its callers share, or HOST=127.0.0.1"
        )
    return None
