"""Fixtures and markers shared by every test: `tiny_sweep`, one real sweep per session; the tiers by folder
(`tests/e2e/` is marked slow, `tests/system/` system and slow), so `-m "not system and not slow"` is the
fast tier."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import TINY, Sweep, run_cli

TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder's tier."""
    for item in items:
        tier = item.path.relative_to(TESTS).parts[0]
        if tier == "system":
            item.add_marker(pytest.mark.system)
        if tier in ("system", "e2e"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """Return a finished 2 x 2 sweep (activation=sigmoid,relu depth=1,2) in a temporary store."""
    root = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    sweep_dir = root / "multirun"
    result = run_cli(
        "actstudy.train",
        ["-m", "activation=sigmoid,relu", "depth=1,2", *TINY, f"hydra.sweep.dir={sweep_dir}"],
        cwd=root,
        uri=uri,
        MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL="0.5",  # a tiny job lasts seconds: several samples each
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return Sweep(uri, sweep_dir, result, MlflowClient(uri))
