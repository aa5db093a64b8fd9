"""The house's floors: imports point down app → rest_compat → schema → core, never up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What each floor must not import: the floors above it, and for the core any web or
# GraphQL framework, so the domain can be used and tested without HTTP.
FORBIDDEN = {
    "core": {"app", "rest_compat", "schema", "starlette", "strawberry", "graphql", "uvicorn"},
    "schema": {"app", "rest_compat"},
    "rest_compat": {"app"},
}


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports (absolute imports; relative ones stay inside)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("floor", sorted(FORBIDDEN))
def test_floor_imports_nothing_above_it(floor: str) -> None:
    offenders = sorted(
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / floor).rglob("*.py")
        for name in imported_packages(path) & FORBIDDEN[floor]
    )
    assert offenders == []


def test_imports_are_found_wherever_they_are_written(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import starlette.requests\n"
        "from schema.api import Schema\n"
        "from . import sibling\n"
        "def f():\n    from app import server\n"
        "if False:\n    import strawberry as s\n"
    )
    assert imported_packages(module) == {"starlette", "schema", "app", "strawberry"}
