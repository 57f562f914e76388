"""The package map's layers (actstudy/__init__.py): a package imports only from the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from actstudy.paths import PROJECT_ROOT

SRC = PROJECT_ROOT / "src" / "actstudy"
# Lowest first. The vocabulary modules (VOCABULARY) sit below them all.
LAYERS = ["models", "config", "processes", "data", "monitor", "training", "tracking", "report", "jobs", "cli"]
VOCABULARY = {"errors", "paths", "metric_names", "outcomes", "credentials", "logs"}
# Training, the monitor, data and models know nothing of the record or the report.
FORBIDDEN = {package: {"tracking", "report"} for package in ("training", "monitor", "data", "models")}


def _nodes(tree: ast.AST):
    """Yield every node of `tree` but those under `if TYPE_CHECKING:` (imports for type hints only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in [child, *_nodes(child)])
            continue
        yield node
        yield from _nodes(node)


def imported_packages(path: Path) -> set[str]:
    """Return the actstudy top-level names a module imports at run time, lazily in functions included."""
    names: set[str] = set()
    for node in _nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "actstudy":
            parts = node.module.split(".")
            if len(parts) > 1:
                names.add(parts[1])
            else:  # from actstudy import x, y
                names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("actstudy."))
    return names


@pytest.mark.parametrize("package", LAYERS)
def test_a_package_imports_only_from_the_layers_below_it(package):
    below = set(LAYERS[: LAYERS.index(package)]) | VOCABULARY | {package}
    wrong = {}
    for path in sorted((SRC / package).rglob("*.py")):
        upward = imported_packages(path) - below
        if upward:
            wrong[str(path.relative_to(SRC))] = sorted(upward)
    assert not wrong, f"imports from a higher layer: {wrong}"


def test_training_monitor_data_and_models_never_import_the_record_or_the_report():
    for package, forbidden in FORBIDDEN.items():
        for path in (SRC / package).rglob("*.py"):
            assert not imported_packages(path) & forbidden, path


def test_the_vocabulary_imports_no_package():
    for name in VOCABULARY:
        assert not imported_packages(SRC / f"{name}.py") - VOCABULARY, name


def test_every_activation_file_has_its_own_colour():
    """conf/activation/ says which activations exist; the report's colours must cover them all."""
    from actstudy.paths import CONF_DIR
    from actstudy.report.style import ACTIVATION_COLORS

    files = sorted(p.stem for p in (CONF_DIR / "activation").glob("*.yaml"))
    assert sorted(ACTIVATION_COLORS) == files
    assert len(set(ACTIVATION_COLORS.values())) == len(files)
