"""A real 2 x 2 multirun into a temporary store, read back through MLflow's client API."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import TINY, Sweep, run_cli

EXPECTED_NAMES = {f"{a}-d{d}-s0" for a in ("sigmoid", "relu") for d in (1, 2)}


def children(sweep: Sweep) -> list:
    return [r for r in sweep.runs() if r.data.tags.get("actstudy.kind") == "job"]


def test_one_parent_and_four_finished_children(tiny_sweep: Sweep):
    runs = tiny_sweep.runs()
    parents = [r for r in runs if r.data.tags.get("actstudy.kind") == "sweep"]
    assert len(parents) == 1 and len(runs) == 5
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["actstudy.outcome"] == "completed"
    kids = children(tiny_sweep)
    assert {r.info.status for r in kids} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in kids} == {parent.info.run_id}
    assert {r.data.tags["actstudy.sweep_id"] for r in kids} == {parent.data.tags["actstudy.sweep_id"]}
    assert {r.info.run_name.split("_")[0] for r in kids} == EXPECTED_NAMES
    assert len({r.info.run_name for r in kids}) == 4


def test_children_carry_params_tags_metrics_and_config(tiny_sweep: Sweep):
    for run in children(tiny_sweep):
        params, tags, metrics = run.data.params, run.data.tags, run.data.metrics
        activation, depth = run.info.run_name.split("_")[0].split("-")[:2]
        assert params["activation.name"] == activation and params["depth"] == depth[1:]
        assert params["model.width"] == "8" and params["optimizer.lr"] == "0.1" and params["seed"] == "0"
        assert tags["actstudy.outcome"] == "completed"
        assert tags["git.commit"] and f"depth={depth[1:]}" in tags["actstudy.overrides"]
        for key in (
            "train/loss",
            "val/acc",
            "test/acc",
            "grad/first_to_last",
            f"grad/weight_rms/l{depth[1:]:0>2}",
        ):
            assert key in metrics, key
        history = tiny_sweep.client.get_metric_history(run.info.run_id, "grad/weight_rms/l01")
        assert history[0].step == 0  # the initialised network is always recorded
        local = tiny_sweep.client.download_artifacts(run.info.run_id, "config/config.yaml")
        assert yaml.safe_load(Path(local).read_text())["depth"] == int(depth[1:])


def test_sweep_report_is_attached_to_the_parent(tiny_sweep: Sweep):
    parent = next(r for r in tiny_sweep.runs() if r.data.tags.get("actstudy.kind") == "sweep")
    names = {a.path for a in tiny_sweep.client.list_artifacts(parent.info.run_id, "report")}
    assert "report/report.md" in names and "report/report.html" in names
    assert (tiny_sweep.sweep_dir / "report" / "report.md").exists()


def test_cli_from_another_directory_writes_into_the_configured_store(tmp_path: Path):
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    store = tmp_path / "store" / "mlflow.db"
    args = [*TINY, "trainer.max_epochs=1", f"tracking.uri=sqlite:///{store}", "tracking.experiment=elsewhere"]
    result = run_cli("actstudy.train", args, cwd=elsewhere, uri=None)
    assert result.returncode == 0, result.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("elsewhere").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert "mlflow.parentRunId" not in runs[0].data.tags  # a single run has no parent
    assert not (elsewhere / "mlruns").exists()
