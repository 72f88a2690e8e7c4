"""The trainer's architecture rules, checked on its source: one registry of model variants,
evaluation below training, no import cycles, no function-level imports of project modules
outside the command lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trainer.cli import app
from trainer.config import ConfigError, apply_overrides, tiny
from trainer.models.registry import CONTROLS, MODEL_NAMES, NO_CONTROL

ROOT = Path(__file__).resolve().parent.parent
TRAINER = ROOT / "trainer"
BLENDKIT = ROOT / "blendkit"
PACKAGES = ("blendkit", "trainer")  # the installed project: blendkit below trainer
SOURCES = sorted([*BLENDKIT.rglob("*.py"), *TRAINER.rglob("*.py"), ROOT / "cli.py"])
BENCH = sorted((ROOT / "bench").rglob("*.py"))
CLIS = {ROOT / "cli.py", TRAINER / "cli.py", TRAINER / "eval_cli.py"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SOURCES}


def string_constants(tree: ast.AST) -> list[ast.Constant]:
    """The string constants of code: docstrings left out (prose may name a model)."""
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


def test_model_names_and_control_kinds_are_spelled_only_in_the_registry():
    vocabulary = set(MODEL_NAMES) | (set(CONTROLS) - {NO_CONTROL})  # "none" is a common word
    allowed = {TRAINER / "models" / "registry.py", TRAINER / "paper.py"}  # paper: rows by model
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}"
        for path in [*SOURCES, *BENCH]
        if path not in allowed
        for node in string_constants(ast.parse(path.read_text()))
        if node.value in vocabulary
    ]
    assert found == []


def test_the_command_line_choices_come_from_the_registry():
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    assert f"one of {', '.join(MODEL_NAMES)}" in " ".join(result.output.split())
    for name in MODEL_NAMES:  # every registered variant is a valid model_name, and only those
        overrides = [f"model_name={name}"] + (["model.n_outputs=2"] if name == "c3_det" else [])
        assert apply_overrides(tiny(), overrides).model_name == name
    with pytest.raises(
        ConfigError, match=f"expected one of {list(MODEL_NAMES)}".replace("[", r"\[")
    ):
        apply_overrides(tiny(), ["model_name=c4"])


def _project_imports(tree: ast.Module, *, top_level: bool) -> list[tuple[int, str]]:
    """(line, module) of the project's imports (``blendkit``, ``trainer``) at module level
    (outside TYPE_CHECKING) or, with ``top_level=False``, inside functions."""
    found = []
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        inside_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        if top_level != isinstance(node, ast.Module) or (not top_level and not inside_function):
            continue
        for stmt in ast.walk(node) if not top_level else body:
            if isinstance(stmt, ast.ImportFrom) and _ours(stmt.module or "") and stmt.level == 0:
                found += [(stmt.lineno, _target(stmt.module, a.name)) for a in stmt.names]
            elif isinstance(stmt, ast.Import):
                found += [(stmt.lineno, a.name) for a in stmt.names if _ours(a.name)]
    return found


def _ours(module: str) -> bool:
    return module.split(".")[0] in PACKAGES


def _target(module: str, name: str) -> str:
    """``from trainer.eval import tables`` imports the module trainer.eval.tables."""
    return f"{module}.{name}" if f"{module}.{name}" in MODULES else module


def test_no_function_level_imports_of_project_modules_outside_the_command_lines():
    found = [
        f"{path.relative_to(ROOT)}:{line} {module}"
        for path in SOURCES
        if path not in CLIS
        for line, module in _project_imports(ast.parse(path.read_text()), top_level=False)
    ]
    assert found == []


def test_blendkit_imports_nothing_from_the_trainer():
    found = [
        f"{path.relative_to(ROOT)}:{line} {module}"
        for path in SOURCES
        if path == ROOT / "cli.py" or BLENDKIT in path.parents
        for top_level in (True, False)
        for line, module in _project_imports(ast.parse(path.read_text()), top_level=top_level)
        if module.startswith("trainer")
    ]
    assert found == []


def test_no_import_cycle_in_the_project():
    graph = {
        name: {m for _, m in _project_imports(ast.parse(path.read_text()), top_level=True)}
        for name, path in MODULES.items()
    }
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == "open":
                cycles.append([*path[path.index(dep) :], dep] if dep in path else [module, dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_evaluation_imports_nothing_from_the_training_loop():
    code = (
        "import sys, trainer.eval, trainer.eval_cli, trainer.eval.evaluation; "
        "print(sorted(m for m in sys.modules if m == 'trainer.train' or m.startswith("
        "('trainer.logger', 'trainer.train_state', 'trainer.distributed'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
