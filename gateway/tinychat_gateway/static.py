"""The web UI's files, and its pinned libraries from web/node_modules.

App files are revalidated on every load (`no-cache` + ETag/Last-Modified, answered with
304 when unchanged), so a deploy shows at once. Libraries come only from an allow-list of
packages, with a year-long immutable cache: they change only when web/package.json does.
"""

from __future__ import annotations

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


def file_response(path: Path, cache_control: str) -> web.FileResponse:
    # FileResponse adds ETag and Last-Modified and answers If-None-Match /
    # If-Modified-Since with 304.
    return web.FileResponse(path, headers={"Cache-Control": cache_control})
