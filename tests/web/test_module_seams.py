"""The front end's module seams, read from the import statements of web/js: the data modules
at its top (store, session, vaults, api; all but main.js) never reach into the views in ui/, and
every import names a file that exists (a renamed module leaves no stale import behind)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parents[2] / "web" / "js"
# `import {a, b} from "./x.js"`, `import x from "../y.js"`, `export {z} from "./w.js"`.
RELATIVE_IMPORT = re.compile(r'^\s*(?:import|export)\b[^"\']*?from\s*["\'](\.{1,2}/[^"\']+)', re.MULTILINE)
# Only the entry point wires the views to the data.
ENTRY_POINT = JS / "main.js"


def modules() -> list[Path]:
    return sorted(JS.rglob("*.js"))


def imports_of(module: Path) -> list[Path]:
    return [(module.parent / target).resolve() for target in RELATIVE_IMPORT.findall(module.read_text())]


def is_view(path: Path) -> bool:
    return path.is_relative_to(JS / "ui")


def data_modules() -> list[Path]:
    return [path for path in sorted(JS.glob("*.js")) if path != ENTRY_POINT]


def name(path: Path) -> str:
    return path.relative_to(JS).as_posix()


def test_the_modules_are_found() -> None:
    names = {path.relative_to(JS).as_posix() for path in modules()}
    assert {"main.js", "session.js", "store.js", "picture-vault.js", "ui/dom.js"} <= names


@pytest.mark.parametrize("module", modules(), ids=lambda path: path.relative_to(JS).as_posix())
def test_every_import_names_a_module_that_exists(module: Path) -> None:
    missing = [str(target.relative_to(JS.parent)) for target in imports_of(module) if not target.is_file()]
    assert missing == []


def test_no_data_module_imports_a_view() -> None:
    reaching = {name(m): [name(t) for t in imports_of(m) if is_view(t)] for m in data_modules()}
    assert {module: views for module, views in reaching.items() if views} == {}
    assert "session.js" in reaching and "store.js" in reaching
