"""`model.init=auto`: each activation's own init, so the comparison isolates the activation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from actstudy.models.init import signal_gain
from tests.helpers import TINY, run_cli


@pytest.mark.parametrize(
    ("activation", "gain"),
    [
        (torch.nn.ReLU(), math.sqrt(2.0)),  # He et al. (2015)
        (torch.nn.LeakyReLU(0.2), math.sqrt(2.0 / (1 + 0.2**2))),
        (torch.nn.Identity(), 1.0),
    ],
)
def test_signal_gain_matches_the_closed_forms(activation, gain):
    assert signal_gain(activation) == pytest.approx(gain, rel=1e-3)


def test_auto_keeps_a_deep_relu_nets_gradient_which_pytorchs_default_loses(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["-m", *TINY, "model.width=32", "trainer.max_epochs=1", "activation=relu", "depth=8"]
    result = run_cli("actstudy.train", [*args, "model.init=auto,default"], cwd=tmp_path, uri=uri)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("actstudy").experiment_id
    at_init = {}
    for run in client.search_runs([experiment], "tags.`actstudy.kind` = 'job'"):
        history = client.get_metric_history(run.info.run_id, "grad/first_to_last")
        at_init[run.data.params["model.init"]] = next(m.value for m in history if m.step == 0)
    assert at_init["auto"] > 0.1 > at_init["default"], at_init
