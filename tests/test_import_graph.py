"""The package's modules import each other without cycles (module-level
imports; those inside functions and under TYPE_CHECKING are deferred on
purpose): a cycle makes import order matter and a moved module break."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dedupe_at_scale

ROOT = Path(dedupe_at_scale.__file__).parent
PACKAGE = "dedupe_at_scale"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path, name: str) -> set[str]:
    """Modules of the package imported at module level (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith(PACKAGE))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if module.startswith(PACKAGE):
                    found.add(module)
                    # `from pkg import mod` imports the submodule too
                    found.update(f"{module}.{a.name}" for a in node.names)

    visit(tree.body)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {
        name: {m for m in top_level_imports(path, name) if m in modules and m != name}
        for name, path in modules.items()
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            # A package's __init__ importing its own submodules is not a cycle
            # through the package: Python finishes the submodule first.
            if state.get(nxt) == 1:
                if node.startswith(nxt + "."):
                    continue
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := walk(node)):
            return cycle
    return None


def test_no_import_cycles():
    edges = graph()
    assert sum(len(e) for e in edges.values()) > 100  # the parser sees the imports
    assert "dedupe_at_scale.kernels.minhash" in edges["dedupe_at_scale.stages.minhash"]
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def all_imports(path: Path) -> set[str]:
    """Every module of the package `path` imports, under TYPE_CHECKING or in
    a function too: a layer rule holds for the types as well."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith(PACKAGE)}


# Who may not import whom: storage and files (io/) and the per-document
# stages know nothing of each other (job/ and cli/ join them), and the numba
# kernels import only kernels.
FORBIDDEN = [("io", "stages"), ("stages", "io")] + [
    ("kernels", layer) for layer in ("io", "stages", "steps", "job", "cli", "config", "sections")
]


@pytest.mark.parametrize("importer, imported", FORBIDDEN)
def test_layers_import_one_way(importer, imported):
    crossings = [
        f"{module_name(path)} imports {target}"
        for path in (ROOT / importer).rglob("*.py")
        for target in sorted(all_imports(path))
        if target == f"{PACKAGE}.{imported}" or target.startswith(f"{PACKAGE}.{imported}.")
    ]
    assert crossings == []


def test_the_layer_check_sees_imports_under_type_checking():
    assert "dedupe_at_scale.config" in all_imports(ROOT / "stages" / "langid.py")


MAX_LINES = 400


def test_no_module_is_over_400_lines_but_the_numba_kernels():
    """A module a newcomer reads fits one sitting; the numba kernels, whose
    loops read best whole, are the exception."""
    long = [
        f"{path.relative_to(ROOT)}: {n} lines"
        for path in sorted(ROOT.rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > MAX_LINES
        and "import numba" not in path.read_text()
    ]
    assert long == []
