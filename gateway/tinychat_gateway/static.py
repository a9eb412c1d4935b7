"""The web UI's files, and its pinned libraries from web/node_modules.

App files are revalidated on every load (`no-cache` + ETag/Last-Modified, answered with
304 when unchanged), so a deploy shows at once. Libraries come only from an allow-list of
packages, with a year-long immutable cache: they change only when web/package.json does.

Text files go out precompressed (brotli or gzip, as the client accepts) from the copies
scripts/precompress-web.mjs writes under web/.compressed/ at install time. A copy is used only
when it is at least as new as its original, so an edited file is served as it is, never stale.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

APP_CACHE_CONTROL = "no-cache"
VENDOR_CACHE_CONTROL = "public, max-age=31536000, immutable"

# URL name under /vendor/ -> folder under web/node_modules/.
VENDOR_PACKAGES = {
    "marked": "marked",
    "highlight.js": "highlight.js",
    "@highlightjs/cdn-assets": "@highlightjs/cdn-assets",
    "katex": "katex",
    "dompurify": "dompurify",
    # PDF text extraction for attached documents, loaded only when a PDF is attached.
    "pdfjs-dist": "pdfjs-dist",
}

COMPRESSED_DIR = ".compressed"
MTIME_SLACK_SECONDS = 0.002
# Preferred first: brotli is smaller.
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
}

# Never served from web/ as app files.
HIDDEN_TOP_LEVEL = frozenset({"node_modules", "tests", "package.json", "package-lock.json"})


def safe_file(root: Path, relative: str) -> Path | None:
    """The file `relative` names inside `root`, or None: no '..', no hidden files, no
    symlink leading outside, no directories."""
    parts = [part for part in relative.split("/") if part]
    if any(part.startswith(".") or "\\" in part or "\x00" in part for part in parts):
        return None
    root = root.resolve()
    try:
        candidate = root.joinpath(*parts).resolve()
    except (OSError, ValueError):
        return None
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def app_file(web_dir: Path, tail: str) -> Path | None:
    tail = tail or "index.html"
    if tail.split("/", 1)[0] in HIDDEN_TOP_LEVEL:
        return None
    return safe_file(web_dir, tail)


def vendor_file(web_dir: Path, tail: str) -> Path | None:
    for name, folder in VENDOR_PACKAGES.items():
        if tail.startswith(name + "/"):
            return safe_file(web_dir / "node_modules" / folder, tail[len(name) + 1 :])
    return None


def content_type(path: Path) -> str | None:
    return CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]


def accepted_encodings(header: str) -> set[str]:
    accepted = set()
    for part in header.lower().split(","):
        name, _, params = part.strip().partition(";")
        if params.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            continue
        accepted.add(name.strip())
    return accepted


def compressed_copy(web_dir: Path, original: Path, accept_encoding: str) -> tuple[Path, str] | None:
    """The precompressed copy of `original` to send, with its encoding, or None."""
    web_root = web_dir.resolve()
    modules = web_root / "node_modules"
    if original.is_relative_to(modules):
        base = web_root / COMPRESSED_DIR / "vendor" / original.relative_to(modules)
    elif original.is_relative_to(web_root):
        base = web_root / COMPRESSED_DIR / "app" / original.relative_to(web_root)
    else:
        return None
    accepted = accepted_encodings(accept_encoding)
    try:
        made = original.stat().st_mtime
    except OSError:
        return None
    for encoding, suffix in ENCODINGS:
        if encoding not in accepted:
            continue
        candidate = base.with_name(base.name + suffix)
        try:
            # The copy carries its original's time, to the millisecond node can set.
            if candidate.stat().st_mtime >= made - MTIME_SLACK_SECONDS:
                return candidate, encoding
        except OSError:
            continue
    return None


def file_response(
    path: Path, cache_control: str, *, web_dir: Path | None = None, accept_encoding: str = ""
) -> web.FileResponse:
    # FileResponse adds ETag and Last-Modified and answers If-None-Match /
    # If-Modified-Since with 304.
    headers = {"Cache-Control": cache_control}
    kind = content_type(path)
    if kind:
        headers["Content-Type"] = kind
    if path.suffix in CONTENT_TYPES:
        headers["Vary"] = "Accept-Encoding"
    copy = compressed_copy(web_dir, path, accept_encoding) if web_dir is not None else None
    if copy is not None:
        headers["Content-Encoding"] = copy[1]
        return web.FileResponse(copy[0], headers=headers)
    return web.FileResponse(path, headers=headers)
