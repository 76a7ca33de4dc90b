"""The stage registry agrees with dvc.yaml: params keys, command-line paths and code deps."""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest
import yaml

from pipeline.registry import STAGES, stage

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _command(entry: dict) -> list[str]:
    words = shlex.split(" ".join(entry["cmd"].split()))
    if words[:3] != ["python", "-m", "pipeline"]:
        raise AssertionError(f"stage command {entry['cmd']!r} is not `python -m pipeline ...`")
    return words[3:]


def _module_file(name: str) -> Path | None:
    """The file of a `pipeline...` module, or None when `name` is not one."""
    base = ROOT / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    """Every `pipeline...` module the file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("pipeline"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipeline"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def _holds_code(path: Path) -> bool:
    """False for a package __init__ that is only a docstring and constants: importing it runs nothing."""
    body = ast.parse(path.read_text()).body
    return any(not isinstance(node, (ast.Expr, ast.Assign)) for node in body)


def import_closure(module: str) -> set[str]:
    """Repository-relative files of `module` and of every `pipeline` module it reaches."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        files = [_module_file(".".join(parts[:i])) for i in range(1, len(parts) + 1)]  # packages on the way run too
        for path in filter(None, files):
            if path not in seen:
                seen.add(path)
                todo.extend(_imports(path))
    return {p.relative_to(ROOT).as_posix() for p in seen if p.name != "__init__.py" or _holds_code(p)}


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


CASES = [(name, entry) for name, entry in DVC.items()]


@pytest.mark.parametrize(("name", "entry"), CASES, ids=[name for name, _ in CASES])
def test_dvc_stage_is_a_registered_stage_with_the_same_params(name, entry):
    registered = stage(_command(entry)[0])
    assert list(entry.get("params", [])) == list(registered.params), f"dvc.yaml {name}: params differ from the registry"


@pytest.mark.parametrize(("name", "entry"), CASES, ids=[name for name, _ in CASES])
def test_dvc_stage_passes_every_required_path(name, entry):
    words = _command(entry)
    registered = stage(words[0])
    given = {word[2:].replace("-", "_") for word in words if word.startswith("--")}
    required = {o.name for o in registered.options if o.required}
    assert required <= given, f"dvc.yaml {name} does not pass {sorted(required - given)}"
    known = {o.name for o in registered.options} | {"set", "params"}
    assert given <= known, f"dvc.yaml {name} passes options the command does not have: {sorted(given - known)}"


@pytest.mark.parametrize(("name", "entry"), CASES, ids=[name for name, _ in CASES])
def test_dvc_deps_cover_the_stage_import_closure(name, entry):
    registered = stage(_command(entry)[0])
    missing = sorted(p for p in import_closure(registered.module) if not _covered(p, entry.get("deps", [])))
    assert not missing, f"dvc.yaml {name}: deps miss code the stage imports: {missing}"


def test_every_registered_stage_runs_in_dvc_yaml():
    commands = {_command(entry)[0] for entry in DVC.values()}
    assert [s.command for s in STAGES if s.command not in commands] == []


def test_no_stage_imports_another_stage():
    for registered in STAGES:
        others = {s.module for s in STAGES} - {registered.module}
        reached = {p.removesuffix(".py").replace("/", ".") for p in import_closure(registered.module)}
        assert not reached & others, f"{registered.module} imports {sorted(reached & others)}"


def test_closure_follows_lazy_and_from_package_imports(tmp_path):
    closure = import_closure("pipeline.stages.train")
    assert "pipeline/model/distributed.py" in closure  # `from pipeline.model import distributed`
    assert "pipeline/core/constants.py" in closure  # reached through several modules
