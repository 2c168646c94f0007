"""The layers of DESIGN.md, checked on the source: no upward import, no cycle, no private
reach across packages.

Every ``import`` statement counts, wherever it stands: at module level, inside a
function (a lazy import is still a dependency) or under ``if TYPE_CHECKING:`` (a typing
import still ties two modules together). The table below is DESIGN.md's "depends on"
column; the bottom layer (``errors``, ``_atomic``, ``data``, ``schema`` and the package
root, which holds only the version and lazy public names) may be imported by anyone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "cytosafe"

BOTTOM = {"", "errors", "_atomic", "data", "schema"}
ANALYSIS = {
    "io",
    "curves",
    "hazard",
    "reference",
    "assays",
    "aop",
    "translate",
    "clinical",
    "quantification",
}
FACES = {"report", "store", "workflows", "cli", "web"}

#: What each top-level package may import besides the bottom layer (DESIGN.md, "Layers").
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "_atomic": {"errors"},
    "data": {"errors"},
    "schema": {"errors", "data"},
    "": {"errors"},
    "io": set(),
    "curves": set(),
    "assays": set(),
    "clinical": set(),
    "quantification": {"io", "curves"},
    "hazard": {"curves"},
    "translate": {"curves"},
    "reference": {"hazard", "assays", "curves"},
    "aop": {"hazard", "clinical", "assays", "reference", "curves"},
    "report": ANALYSIS,
    "store": set(),
    "workflows": ANALYSIS | {"report", "store"},
    "web": ANALYSIS | {"report", "store", "workflows"},
    "cli": ANALYSIS | {"report", "store", "workflows", "web"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.relative_to(PACKAGE).parts:
            continue  # Alembic scripts are loaded by Alembic, not imported
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The cytosafe modules ``name`` imports (submodules resolved where they exist)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets = [
                f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module
                for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target not in MODULES and "." in target:
                target = target.rpartition(".")[0]
            if target in MODULES and target != name:
                found.add(target)
    return found


GRAPH = nx.DiGraph()
for _name, _path in MODULES.items():
    GRAPH.add_node(_name)
    for _target in _imports(_name, _path):
        GRAPH.add_edge(_name, _target)


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_graph_sees_the_package():
    # Guards the test itself: a parser that found nothing would pass everything below.
    assert len(MODULES) > 100
    assert GRAPH.has_edge("cytosafe.cli.quantify", "cytosafe.cli._common")
    assert GRAPH.has_edge("cytosafe.workflows.analysis", "cytosafe.hazard.pipeline")
    assert GRAPH.number_of_edges() > 300


def test_every_top_level_package_is_placed_in_a_layer():
    tops = {_top(m) for m in MODULES}
    assert tops <= set(ALLOWED), sorted(tops - set(ALLOWED))


def test_no_import_reaches_up_a_layer():
    upward = sorted(
        f"{a} -> {b}"
        for a, b in GRAPH.edges
        if _top(a) != _top(b) and _top(b) not in BOTTOM | ALLOWED[_top(a)]
    )
    assert not upward, "imports against the layers of DESIGN.md:\n" + "\n".join(upward)


@pytest.mark.parametrize("package", sorted(ANALYSIS))
def test_analysis_packages_import_no_face(package):
    faces = sorted(f"{a} -> {b}" for a, b in GRAPH.edges if _top(a) == package and _top(b) in FACES)
    assert not faces


def test_no_import_cycle():
    cycles = [" -> ".join([*c, c[0]]) for c in nx.simple_cycles(GRAPH)]
    assert not cycles, "import cycles:\n" + "\n".join(sorted(cycles))


def test_no_private_module_is_imported_from_another_package():
    private = sorted(
        f"{a} -> {b}"
        for a, b in GRAPH.edges
        if _top(a) != _top(b) and any(p.startswith("_") for p in b.split(".")[2:])
    )
    assert not private, "private modules used across packages:\n" + "\n".join(private)
