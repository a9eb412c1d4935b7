"""The web UI: app files revalidated on each load, libraries cached for good, nothing else
served, and the security headers on every answer."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from tests.gateway.conftest import INDEX_HTML

pytestmark = pytest.mark.timeout(20)


async def test_index_is_served_at_root_with_csp_and_no_cache(gateway: aiohttp.ClientSession) -> None:
    async with gateway.get("/") as response:
        assert response.status == 200
        assert await response.text() == INDEX_HTML
        headers = response.headers
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-cache"
    assert headers["ETag"] and headers["Last-Modified"]
    csp = headers["Content-Security-Policy"]
    script_src = next(part for part in csp.split(";") if part.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


async def test_unchanged_app_file_revalidates_with_304(gateway: aiohttp.ClientSession) -> None:
    first = await gateway.get("/js/main.js")
    assert first.status == 200
    assert "javascript" in first.headers["Content-Type"]
    etag = first.headers["ETag"]
    again = await gateway.get("/js/main.js", headers={"If-None-Match": etag})
    assert again.status == 304
    since = await gateway.get("/js/main.js", headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status == 304


async def test_allowed_libraries_are_served_with_immutable_cache(gateway: aiohttp.ClientSession) -> None:
    for path in ("/vendor/marked/lib/marked.esm.js", "/vendor/@highlightjs/cdn-assets/highlight.min.js"):
        async with gateway.get(path) as response:
            assert response.status == 200, path
            assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert "Content-Security-Policy" in response.headers


@pytest.mark.parametrize(
    "path",
    [
        "/vendor/left-pad/index.js",
        "/node_modules/marked/lib/marked.esm.js",
        "/.env",
        "/package.json",
        "/js/missing.js",
        "/js/",
        "/vendor/marked/../left-pad/index.js",
        "/vendor/marked/%2e%2e/%2e%2e/package.json",
        "/vendor/marked/..%2f..%2f..%2foutside.txt",
        "/js/../../outside.txt",
        "/%2e%2e/outside.txt",
        "/js/..%2f..%2foutside.txt",
    ],
)
async def test_files_outside_the_app_and_allow_list_are_404(gateway: TestClient, path: str) -> None:
    # Sent as written: no client-side clean-up of dot segments or escapes.
    url = URL(str(gateway.make_url("")).rstrip("/") + path, encoded=True)
    async with aiohttp.ClientSession() as raw, raw.get(url) as response:
        assert response.status == 404
        body = await response.text()
    assert "not for the web" not in body and "module.exports" not in body and "SECRET" not in body


async def test_unknown_api_path_is_a_json_404(gateway: aiohttp.ClientSession) -> None:
    async with gateway.get("/api/nothing-here") as response:
        assert response.status == 404
        assert (await response.json())["error"] == "not_found"


async def test_streams_carry_the_security_headers_too(gateway: aiohttp.ClientSession) -> None:
    async with gateway.post(
        "/api/chat/stream", json={"messages": [{"role": "user", "content": "/image"}]}
    ) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        assert "Content-Security-Policy" in r.headers
        await r.read()
