"""One logger naming scheme in every package: `logging.getLogger(__name__)`, so a log line's
`logger` field names the module that wrote it (read with `ast`, nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def package_files() -> list[Path]:
    return sorted(
        path
        for project in REPO.glob("*/pyproject.toml")
        for package in project.parent.glob("tinychat_*")
        for path in package.rglob("*.py")
    )


def module_loggers(path: Path) -> list[tuple[int, str]]:
    """The module-level `name = logging.getLogger(...)` lines, with what they pass."""
    found = []
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr == "getLogger"
        ):
            found.append((node.lineno, ast.unparse(node.value.args[0]) if node.value.args else ""))
    return found


def test_every_module_logger_is_named_after_its_module() -> None:
    files = package_files()
    loggers = {path: module_loggers(path) for path in files}
    assert sum(len(found) for found in loggers.values()) >= 10  # the walk found the loggers
    misnamed = [
        f"{path.relative_to(REPO)}:{line} getLogger({given})"
        for path, found in loggers.items()
        for line, given in found
        if given != "__name__"
    ]
    assert misnamed == []
