"""Imports point downwards only (DESIGN.md's layers): a foundation never imports the domain, the
domain never imports a face."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "warroom"
FOUNDATIONS = ("config", "errors", "catalog", "repository", "storage", "codec", "redact", "locks")
DOMAIN = ("workflow", "database", "deployment", "scheduler", "retention", "sources", "cleanup")
FACES = ("cli", "api", "web")


def _layer_of(module: str) -> str:
    return module.removeprefix("warroom.").split(".")[0]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.startswith("warroom.")}


def _modules(top: str) -> list[Path]:
    single = PACKAGE / f"{top}.py"
    return [single] if single.exists() else sorted((PACKAGE / top).rglob("*.py"))


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        (FOUNDATIONS, DOMAIN + FACES + ("app", "services")),
        (DOMAIN, FACES + ("app",)),
    ],
    ids=["foundations", "domain"],
)
def test_imports_point_downwards(layer: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    upward = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for top in layer
        for path in _modules(top)
        for name in _imports(path)
        if _layer_of(name) in forbidden
    ]
    assert upward == []
