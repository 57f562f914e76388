"""The best-validation checkpoint: recorded at every validation and tested after training."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import TINY, run_cli


@pytest.mark.parametrize("every_n_steps", ["null", "1000"])  # 1000: more than the run has (8 steps)
def test_best_checkpoint_is_tested_whatever_the_step_checkpoints(tmp_path: Path, every_n_steps: str):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*TINY, "trainer.max_epochs=2", f"trainer.checkpoint_every_n_steps={every_n_steps}"]
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=uri)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("actstudy").experiment_id])[0]
    val = [m.value for m in client.get_metric_history(run.info.run_id, "val/acc")]
    assert len(val) == 2 and run.data.metrics["val/acc_best"] == pytest.approx(max(val))
    assert 0 <= run.data.metrics["test_best/acc"] <= 1 and "test/acc" in run.data.metrics
