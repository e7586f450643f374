"""Lower layers never import higher ones: extractor < eval, feedback_ui < training < kvloop.

Read from the source with ``ast`` (nothing is imported), so an import inside a function, under
``TYPE_CHECKING`` or through ``importlib.import_module("...")`` counts as much as one at the top.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FORBIDDEN: dict[str, frozenset[str]] = {
    "extractor": frozenset({"eval", "training", "feedback_ui", "kvloop"}),
    "eval": frozenset({"training", "kvloop"}),
    "feedback_ui": frozenset({"training", "kvloop"}),
    "training": frozenset({"kvloop"}),
}


def imported_modules(source: str, filename: str = "<source>") -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source`` (relative ones skipped:
    they stay inside their package)."""
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                yield node.lineno, node.module
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and (getattr(node.func, "id", None) == "__import__"
                   or getattr(node.func, "attr", None) == "import_module")):
            yield node.lineno, node.args[0].value


def violations(package: str) -> list[str]:
    bad = []
    for path in sorted((REPO / package).rglob("*.py")):
        for line, mod in imported_modules(path.read_text(encoding="utf-8"), str(path)):
            if mod.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {mod}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_higher_layers(package: str) -> None:
    assert (REPO / package / "__init__.py").is_file()
    bad = violations(package)
    assert not bad, f"{package}/ may not import {sorted(FORBIDDEN[package])}:\n" + "\n".join(bad)


def test_import_finder_sees_every_form() -> None:
    src = """
import eval.metrics, os
from training.losses import x
from . import sibling
from .model import calibrate

def f():
    from kvloop import cli
    import importlib
    importlib.import_module("feedback_ui.service")
    __import__("eval")
"""
    assert sorted(m for _, m in imported_modules(src)) == [  # ast.walk is breadth-first
        "eval", "eval.metrics", "feedback_ui.service", "importlib", "kvloop", "os",
        "training.losses"]


PACKAGES = ("extractor", "eval", "feedback_ui", "training", "kvloop", "scripts")


def _sources() -> Iterator[tuple[Path, str]]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path, path.read_text(encoding="utf-8")


def test_only_the_cli_imports_its_commands() -> None:
    """The experiment harness and the benchmarks read the registries the commands read
    (``training.registry``, ``kvloop.compare.arms``), never the command layer."""
    allowed = (REPO / "kvloop" / "cli.py", REPO / "kvloop" / "commands")
    bad = [f"{path.relative_to(REPO)}:{line}" for path, src in _sources()
           for line, mod in imported_modules(src, str(path))
           if mod.startswith("kvloop.commands")
           and not any(path == a or a in path.parents for a in allowed)]
    assert not bad, "kvloop.commands imported outside the CLI:\n" + "\n".join(bad)


def test_no_private_name_is_imported_across_packages() -> None:
    """What another package needs is public (``eval.report.html_table``, not ``_table``)."""
    bad = [f"{path.relative_to(REPO)}:{node.lineno} {node.module}.{alias.name}"
           for path, src in _sources() for node in ast.walk(ast.parse(src, str(path)))
           if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
           and node.module.split(".")[0] != path.relative_to(REPO).parts[0]
           for alias in node.names
           if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not bad, "private names imported:\n" + "\n".join(bad)


def test_predictor_and_reward_model_do_not_import_each_other() -> None:
    """The reranking predictor needs the reward model; the reward model needs no predictor."""
    src = (REPO / "extractor" / "model" / "reward.py").read_text(encoding="utf-8")
    assert "extractor.model.predictor" not in {m for _, m in imported_modules(src)}
