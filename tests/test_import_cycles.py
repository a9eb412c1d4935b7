"""The packages' imports, read with `ast` (nothing is imported): no module imports itself
back through a chain of others, no service imports another service, and common imports no
service. Every import counts, also one inside a function: a lazy import that dodges a cycle
is still the cycle. Only an import under `if TYPE_CHECKING:` is left out: it never runs."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVICES = frozenset({"tinychat_gateway", "tinychat_chat", "tinychat_image", "tinychat_rlm", "tinychat_demo"})
COMMON = "tinychat_common"


@dataclass(frozen=True)
class Module:
    name: str
    path: Path

    @property
    def package(self) -> str:
        """The dotted package relative imports start from."""
        return self.name if self.path.name == "__init__.py" else self.name.rpartition(".")[0]


def packages() -> dict[str, Path]:
    """Every `tinychat_*` package that sits in a folder with its own pyproject.toml."""
    found = {
        path.name: path
        for project in REPO.glob("*/pyproject.toml")
        for path in project.parent.glob("tinychat_*")
        if (path / "__init__.py").is_file()
    }
    assert SERVICES | {COMMON} <= found.keys(), sorted(found)
    return found


def modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for name, root in packages().items():
        for path in sorted(root.rglob("*.py")):
            parts = [name, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = Module(".".join(parts), path)
    return found


def imported_names(module: Module, known: dict[str, Module]) -> Iterator[tuple[str, int]]:
    """Every module this one imports, with the line. `from a import b` imports the module
    `a.b` when there is one, else the module `a` (b is a name in it)."""
    tree = ast.parse(module.path.read_text(), filename=str(module.path))
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule if submodule in known else base), node.lineno


def runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of `tree` but those under `if TYPE_CHECKING:` (imports for annotations)."""
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                pending.extend(child.orelse)
            else:
                pending.append(child)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_graph() -> dict[str, dict[str, int]]:
    """Module -> the package modules it imports -> the line of the first such import."""
    known = modules()
    graph: dict[str, dict[str, int]] = {}
    for name, module in known.items():
        edges: dict[str, int] = {}
        for target, line in imported_names(module, known):
            if target in known and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as the chain of modules that closes it, or None."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(name: str) -> list[str] | None:
        path.append(name)
        on_path.add(name)
        for target in sorted(graph[name]):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        on_path.discard(name)
        done.add(name)
        return None

    for start in sorted(graph):
        if start not in done and (cycle := visit(start)) is not None:
            return cycle
    return None


def top_package(name: str) -> str:
    return name.partition(".")[0]


def test_the_walk_sees_every_package_and_their_imports() -> None:
    graph = import_graph()
    assert {top_package(name) for name in graph} >= SERVICES | {COMMON}
    # The walk must see relative and in-function imports, or it proves nothing.
    assert "tinychat_rlm.app_keys" in graph["tinychat_rlm.handlers"]
    assert "tinychat_common.service" in graph["tinychat_rlm.app"]
    assert "tinychat_rlm.sandbox.process" in graph["tinychat_rlm.sandbox"]  # inside a function


def test_no_module_imports_itself_back_through_others() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_a_cycle_would_be_found() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 3}, "c": {"a": 7}, "d": {"a": 2}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}}) is None


def test_no_service_imports_another_service_and_common_imports_none() -> None:
    known = modules()
    crossings = [
        f"{known[name].path.relative_to(REPO)}:{line} imports {target}"
        for name, edges in import_graph().items()
        for target, line in edges.items()
        if top_package(target) in SERVICES
        and top_package(target) != top_package(name)
        and (top_package(name) in SERVICES or top_package(name) == COMMON)
    ]
    assert crossings == []
