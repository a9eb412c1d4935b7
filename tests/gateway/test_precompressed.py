"""Static files go out precompressed: the copies scripts/precompress-web.mjs makes at install
time (brotli preferred, then gzip, as the client accepts), never a stale copy of an edited file."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

pytestmark = pytest.mark.timeout(60)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "precompress-web.mjs"
APP_JS = "export const words = [" + ", ".join(f'"word{i}"' for i in range(400)) + "];\n"


@pytest.fixture
def compressed_web(web_dir: Path) -> Path:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    (web_dir / "js" / "app.js").write_text(APP_JS)
    library = web_dir / "node_modules" / "marked" / "lib" / "marked.esm.js"
    library.write_text("export function marked() { return 1; }\n" * 100)
    subprocess.run(["node", str(SCRIPT), str(web_dir)], check=True, capture_output=True, timeout=60)
    return web_dir


async def raw_get(client: TestClient, path: str, encoding: str) -> tuple[int, dict[str, str], bytes]:
    async with client.session.get(
        client.make_url(path), headers={"Accept-Encoding": encoding}, auto_decompress=False
    ) as response:
        return response.status, dict(response.headers), await response.read()


async def test_brotli_then_gzip_then_plain_as_the_client_accepts(compressed_web, make_gateway) -> None:
    client = await make_gateway()
    status, headers, body = await raw_get(client, "/js/app.js", "gzip, deflate, br")
    assert status == 200 and headers["Content-Encoding"] == "br"
    assert headers["Content-Type"].startswith("text/javascript")
    assert "Accept-Encoding" in headers["Vary"] and headers["Cache-Control"] == "no-cache"
    assert len(body) < len(APP_JS) / 3

    status, headers, body = await raw_get(client, "/js/app.js", "gzip")
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body).decode() == APP_JS

    status, headers, body = await raw_get(client, "/js/app.js", "br;q=0, identity")
    assert "Content-Encoding" not in headers
    assert body.decode() == APP_JS


async def test_libraries_are_precompressed_and_cached_for_good(compressed_web, make_gateway) -> None:
    client = await make_gateway()
    status, headers, _body = await raw_get(client, "/vendor/marked/lib/marked.esm.js", "br")
    assert status == 200 and headers["Content-Encoding"] == "br"
    assert "immutable" in headers["Cache-Control"]


async def test_a_file_edited_after_compression_is_served_as_it_is(compressed_web, make_gateway) -> None:
    edited = compressed_web / "js" / "app.js"
    edited.write_text(APP_JS.replace("word1", "edited"))
    later = edited.stat().st_mtime + 5
    os.utime(edited, (later, later))
    client = await make_gateway()
    _status, headers, body = await raw_get(client, "/js/app.js", "br, gzip")
    assert "Content-Encoding" not in headers
    assert "edited" in body.decode()


async def test_the_compressed_copies_are_not_served_as_files(compressed_web, make_gateway) -> None:
    client = await make_gateway()
    async with client.session.get(client.make_url("/.compressed/app/js/app.js.br")) as response:
        assert response.status == 404
