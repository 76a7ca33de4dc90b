"""The pipeline uses libraries through their public APIs; where none exists, a comment says so."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def private_uses(source: str) -> list[tuple[int, str]]:
    """(line, expression) of `obj._name` on anything but self/cls, and imports from `_private` modules."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__":
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append((node.lineno, f"from {node.module} import ..."))
    return found


def test_finder_sees_the_kinds_of_private_use():
    source = "from torchvision.transforms.v2._utils import query_size\nx = model._orig_mod\ny = self._own\n"
    assert [line for line, _ in private_uses(source)] == [1, 2]


def test_private_uses_are_explained_where_no_public_api_exists():
    unexplained = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        lines = path.read_text().splitlines()
        for line, expression in private_uses(path.read_text()):
            context = " ".join(lines[max(0, line - 5) : line]).lower()
            if "no public" not in context:
                unexplained.append(f"{path.relative_to(ROOT)}:{line}: {expression}")
    assert unexplained == []
