"""Blanking secrets out of text that came from a provider before it goes anywhere else.

A provider's error message may quote the key it was given: whole, shortened
(`sk-AUDIT...-KEY`), or only its head or tail. Exact replacement of the configured key
misses all but the first, so the text is also scrubbed of anything shaped like a key: a
known key prefix followed by key characters (with any `...`/`***` elision), a `Bearer`
credential, a long run of key characters, and every fragment of a configured secret long
enough to identify it.

A URL's own `user:password@` part is the other kind of secret here: `without_credentials`
and `url_origin` are the one way a configured URL is shown in logs and messages, and
`url_credentials` the one way its credentials are read out (to send them as a header).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

MASK = "[redacted]"
# A fragment of a known secret this long is scrubbed wherever it shows.
MIN_FRAGMENT = 6

# The `user:password` (or lone token) between a URL's `://` and its `@host`.
_URL_USERINFO = r"(?<=://)[^/\s@]+(?=@)"
_KEY_CHARS = r"[A-Za-z0-9_\-]"
_ELIDED = r"(?:[A-Za-z0-9_\-]|\.{2,}|\*+|…)"
_KEY_SHAPES = re.compile(
    "|".join(
        [
            # Vendor key prefixes: OpenAI sk-/sess-, Anthropic sk-ant-, Groq gsk_, xAI xai-,
            # Hugging Face hf_, Replicate r8_, GitHub ghp_/gho_, Google AIza, AWS AKIA, Slack xox*-.
            rf"\b(?:sk|pk|rk|sess|gsk|xai|hf|r8|ghp|gho|ghs|key|api[_-]?key)[-_]{_ELIDED}{{3,}}",
            rf"\bAIza{_KEY_CHARS}{{10,}}",
            r"\bAKIA[A-Z0-9]{12,}",
            rf"\bxox[abposr]-{_ELIDED}{{6,}}",
            # Credentials in an Authorization header or a URL.
            r"(?i:\bbearer\s+)\S{4,}",
            r"(?i:\bbasic\s+)[A-Za-z0-9+/=]{8,}",
            _URL_USERINFO,
            # Anything long enough and random enough to be a token: 32+ key characters with
            # a digit and a letter in them.
            rf"\b(?=[A-Za-z_\-]*[0-9])(?=[0-9_\-]*[A-Za-z]){_KEY_CHARS}{{32,}}",
        ]
    )
)


class Scrubber:
    """Scrubs text of the secrets given once (compiled then) and of every key shape."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        secrets = sorted({s for s in known if s}, key=len, reverse=True)
        fragments: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_FRAGMENT * 2:
                fragments.update(secret[i : i + MIN_FRAGMENT] for i in range(len(secret) - MIN_FRAGMENT + 1))
        self._exact = secrets
        # Any run of MIN_FRAGMENT characters of a secret (its head, its tail, its middle),
        # and whatever key characters follow it.
        self._fragments = (
            re.compile("(?:" + "|".join(re.escape(f) for f in sorted(fragments)) + r")\S*")
            if fragments
            else None
        )

    def __call__(self, text: str) -> str:
        for secret in self._exact:
            text = text.replace(secret, MASK)
        if self._fragments is not None:
            text = self._fragments.sub(MASK, text)
        return _KEY_SHAPES.sub(MASK, text)


def scrub_secrets(text: str, known: Iterable[str] = ()) -> str:
    """`text` with every secret in `known` (and its fragments) and every key-shaped
    string replaced by MASK."""
    return Scrubber(known)(text)


def without_credentials(url: str) -> str:
    """The URL without any `user:password@` part: safe for logs and error messages."""
    parts = urlsplit(url)
    return parts._replace(netloc=_host_and_port(parts.netloc)).geturl()


def url_origin(url: str) -> str:
    """`scheme://host[:port]` of a URL: no credentials, and no path or query (a signed
    download link carries its token there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{_host_and_port(parts.netloc)}"


def url_credentials(url: str) -> tuple[str, str]:
    """The user and password a URL carries (percent-decoded), empty where it has none."""
    parts = urlsplit(url)
    return unquote(parts.username or ""), unquote(parts.password or "")


def _host_and_port(netloc: str) -> str:
    # The last `@` ends the userinfo, as urlsplit reads it; an IPv6 host keeps its brackets.
    return netloc.rpartition("@")[2]
