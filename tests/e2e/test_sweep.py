"""A real 2 x 2 multirun into a temporary store, read back through MLflow's client API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from actstudy.monitor.histogram_file import ARTIFACT_DIR, FILE_NAME, read_histograms
from tests.helpers import TINY, Sweep, run_cli, slowed_env

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
    # sweep-<its sweep id> (this sweep's folder is named multirun), with one "sweep-" at most (the default
    # folder's id starts with it: it was named "sweep-sweep-...")
    assert parent.info.run_name == f"sweep-{parent.data.tags['actstudy.sweep_id']}"
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
            "val/acc_best",
            "test_best/acc",
            "grad/first_to_last",
            f"grad/weight_rms/l{depth[1:]:0>2}",
        ):
            assert key in metrics, key
        history = tiny_sweep.client.get_metric_history(run.info.run_id, "grad/weight_rms/l01")
        assert history[0].step == 0  # the initialised network is always recorded
        local = tiny_sweep.client.download_artifacts(run.info.run_id, "config/config.yaml")
        assert yaml.safe_load(Path(local).read_text())["depth"] == int(depth[1:])
        local = tiny_sweep.client.download_artifacts(run.info.run_id, f"{ARTIFACT_DIR}/{FILE_NAME}")
        histograms = read_histograms(Path(local))  # the monitor's histograms, in the run
        assert histograms.steps[0] == 0 and len(histograms.layers) == int(depth[1:])


def test_sweep_report_is_attached_to_the_parent(tiny_sweep: Sweep):
    parent = next(r for r in tiny_sweep.runs() if r.data.tags.get("actstudy.kind") == "sweep")
    names = {a.path for a in tiny_sweep.client.list_artifacts(parent.info.run_id, "report")}
    assert "report/report.md" in names and "report/report.html" in names
    assert (tiny_sweep.sweep_dir / "report" / "report.md").exists()


def test_cli_from_another_directory_writes_into_the_configured_store(tmp_path: Path):
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    store = tmp_path / "store" / "mlflow.db"
    tracking = [
        f"tracking.uri=sqlite:///{store}",
        "tracking.experiment=elsewhere",
        "tracking.system_metrics=false",
    ]
    args = [*TINY, "trainer.max_epochs=1", *tracking]
    result = run_cli("actstudy.train", args, cwd=elsewhere, uri=None)
    assert result.returncode == 0, result.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("elsewhere").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert "mlflow.parentRunId" not in runs[0].data.tags  # a single run has no parent
    assert not [k for k in runs[0].data.metrics if k.startswith("system/")]  # tracking.system_metrics=false
    assert not (elsewhere / "mlruns").exists()


def test_report_table_matches_the_store_and_figures_are_pngs(tiny_sweep: Sweep):
    report_dir = tiny_sweep.sweep_dir / "report"
    lines = (report_dir / "report.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| run |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    rows = {}
    for line in lines[lines.index(header) + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(columns, cells, strict=True))
    kids = children(tiny_sweep)
    assert set(rows) == {r.info.run_name for r in kids}  # one row per child run
    for run in kids:
        row = rows[run.info.run_name]
        assert (
            row["activation"] == run.data.params["activation.name"]
            and row["depth"] == run.data.params["depth"]
        )
        shown = float(row["test acc"])  # 3 decimals: a tie such as 0.0625 may round either way
        assert shown == pytest.approx(run.data.metrics["test/acc"], abs=5e-4 + 1e-9)
        assert row["outcome"] == "completed"
    pngs = sorted(report_dir.glob("*.png"))
    assert {p.name for p in pngs} >= {
        "grad_by_layer.png",
        "grad_over_steps.png",
        "val_acc.png",
        "activations.png",
    }
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        with Image.open(png) as image:
            assert image.size[0] > 300 and image.size[1] > 200


def test_missing_dataset_stops_before_training_with_one_line(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["data=cifar10", f"data.root={tmp_path / 'nodata'}", "data.download=false"]
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=uri)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no traceback wall
    assert "cifar-10-python.tar.gz" in lines[0] and "data=shapes" in lines[0] and "nodata" in lines[0]
    assert not (tmp_path / "mlflow.db").exists()  # nothing was logged


# A Hydra app on actstudy's config whose jobs only record their overrides (in launch order), and whose
# sweep callback records what actstudy.jobs.sweep expects the sweep to launch.
_RECORD_SWEEP = """
import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback

from actstudy.paths import CONF_DIR
from actstudy.jobs.sweep import job_overrides, varying_keys


class Expect(Callback):
    def __init__(self, dry_run=False):  # the arguments of the callback it stands in for
        pass

    def on_multirun_start(self, config, **kwargs):
        expected = {"jobs": job_overrides(config), "varying": varying_keys(config)}
        Path("expected.json").write_text(json.dumps(expected))


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg):
    with open("launched.jsonl", "a") as out:
        out.write(json.dumps(list(HydraConfig.get().overrides.task)) + "\\n")


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize(
    ("overrides", "varying"),
    [
        (["activation=sigmoid,tanh", "depth=2,4", "model=mlp,cnn"], ["activation", "depth", "model"]),
        (["experiment=vanishing_gradient"], ["activation", "depth", "seed"]),  # the preset's sweeper.params
        (["depth=1,3", "experiment=vanishing_gradient", "seed=5"], ["activation", "depth"]),  # depth twice
        (
            ["experiment=vanishing_gradient", "depth=2"],
            ["activation", "seed"],
        ),  # the command fixes a swept key
        (["seed=range(0,3)", "optimizer.lr=choice(0.1,0.01)", "+data.extra=1"], ["seed", "optimizer.lr"]),
        (["activation=glob(s*)", "depth=2"], ["activation"]),  # a glob over the group's options
    ],
)
def test_job_overrides_are_the_jobs_hydra_launches(tmp_path: Path, overrides: list[str], varying: list[str]):
    (tmp_path / "record_sweep.py").write_text(_RECORD_SWEEP)
    hydra_args = [
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
        "hydra.callbacks.sweep_tracking._target_=record_sweep.Expect",
    ]
    result = run_cli("record_sweep", ["-m", "data=shapes", *overrides, *hydra_args], cwd=tmp_path, uri=None)
    assert result.returncode == 0, result.stderr[-3000:]
    launched = [json.loads(line) for line in (tmp_path / "launched.jsonl").read_text().splitlines()]
    expected = json.loads((tmp_path / "expected.json").read_text())
    assert len(launched) > 1 and expected["jobs"] == launched  # the same jobs, in the same order
    assert expected["varying"] == varying


def test_a_second_copy_of_a_running_sweep_stops_at_once_naming_the_first(tmp_path: Path):
    import socket
    import subprocess
    import sys
    import time

    from mlflow.tracking import MlflowClient

    from actstudy.jobs.sweep import SWEEP_FILE

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep_dir = tmp_path / "sweep"
    args = ["-m", *TINY, "activation=relu", "depth=1", "seed=0,1", f"hydra.sweep.dir={sweep_dir}"]
    # every step of the first copy sleeps until the second copy has been refused: a fast machine cannot
    # finish the first sweep before the second is tried
    env = {**slowed_env(tmp_path, 0.2), "MLFLOW_TRACKING_URI": uri}
    first = subprocess.Popen(
        [sys.executable, "-m", "actstudy.train", *args], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while not (sweep_dir / SWEEP_FILE).exists():  # the first copy holds the sweep and made its parent
        assert first.poll() is None and time.time() < deadline, first.stderr.read()
        time.sleep(0.1)
    assert first.poll() is None, first.stderr.read()[-3000:]
    second = run_cli("actstudy.train", args, cwd=tmp_path, uri=uri)
    (tmp_path / "slow").unlink()
    assert second.returncode == 2, second.stderr[-2000:]
    assert second.stderr.strip() == (
        f"actstudy: error: sweep 'sweep' is already running (pid {first.pid} on {socket.gethostname()}); "
        "wait for it or stop it first"
    )
    assert first.wait(timeout=300) == 0, first.stderr.read()[-3000:]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("actstudy").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("actstudy.kind") == "sweep"]
    assert parent.info.status == "FINISHED" and parent.data.tags["actstudy.pid"] == str(first.pid)
    assert len(runs) == 3  # the parent and its two jobs: the second copy made and ended nothing


def test_sigterm_during_the_report_ends_the_parent_interrupted_with_its_jobs_kept(tmp_path: Path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep_dir = tmp_path / "sweep"
    # sigmoid and relu: the report times their steps (seconds), which leaves time to send the signal
    args = [
        "-m",
        *TINY,
        "activation=sigmoid,relu",
        "depth=1",
        "model.width=32",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    proc = subprocess.Popen(
        [sys.executable, "-m", "actstudy.train", *args], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def jobs_done() -> bool:
        states = [json.loads(p.read_text()) for p in sweep_dir.glob("*/actstudy_run.json")]
        return len(states) == 2 and all(s["outcome"] == "completed" for s in states)

    deadline = time.time() + 300
    while not jobs_done():
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
        time.sleep(0.05)
    time.sleep(1.0)  # into the report
    assert proc.poll() is None, "the report ended before the signal: give it more to do"
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, stderr[-3000:]
    (line,) = [x for x in stderr.splitlines() if x.startswith("actstudy:")]
    assert "stopped during its report (signal 15); its jobs are recorded (2 completed)" in line
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("actstudy").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("actstudy.kind") == "sweep"]
    assert (parent.info.status, parent.data.tags["actstudy.outcome"]) == ("KILLED", "interrupted")
    assert parent.data.tags["actstudy.jobs"] == "2 completed"
    assert all(r.info.status == "FINISHED" for r in runs if r is not parent)


def test_a_sweep_that_cannot_start_stops_in_one_line_and_runs_no_job(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    from actstudy.jobs.sweep import SWEEP_FILE

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep_dir = tmp_path / "sweep"
    (sweep_dir / SWEEP_FILE).mkdir(parents=True)  # where the sweep writes its file: it cannot
    args = ["-m", *TINY, "activation=relu", "depth=1", "seed=0,1", f"hydra.sweep.dir={sweep_dir}"]
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=uri)
    assert result.returncode == 1, result.stderr[-3000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("actstudy: error:")]
    assert line.startswith("actstudy: error: the sweep could not start: IsADirectoryError: ")
    assert line.endswith("; no job was run") and "Traceback" not in result.stderr + result.stdout
    runs = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("actstudy").experiment_id])
    (parent,) = runs  # (was: a warning, then both jobs trained without a parent and the command exited 0)
    assert (parent.info.status, parent.data.tags["actstudy.outcome"]) == ("FAILED", "failed")
    assert parent.data.tags["actstudy.error"].startswith("the sweep could not start: IsADirectoryError")


def test_each_job_ends_with_one_line_of_where_the_sweep_is_and_the_libraries_chatter_is_in_the_log_only(
    tiny_sweep: Sweep,
):
    import re

    out = tiny_sweep.result.stdout + tiny_sweep.result.stderr
    lines = [line.split(" - ", 1)[1] for line in out.splitlines() if re.search(r" - job \d+/4 ", line)]
    pattern = (
        r"job (\d)/4 ((?:sigmoid|relu)-d[12]-s0): completed, test acc @best val (0\.\d{3}), "
        r"first/last grad \S+ @0, \S+ @end, [\d.]+ s; sweep: (\d) of 4 done(, about [\d.]+ s left)?; "
        r"log: (\S+/train\.log)$"
    )
    matched = [re.match(pattern, line) for line in lines]
    assert len(lines) == 4 and all(matched), lines
    assert [(m[1], m[4]) for m in matched] == [(str(i), str(i)) for i in range(1, 5)]  # in order, counted
    assert [bool(m[5]) for m in matched] == [True, True, True, False]  # an estimate until the last
    runs = {r.info.run_name: r for r in children(tiny_sweep)}
    for m in matched:
        assert m[3] == f"{runs[m[2]].data.metrics['test_best/acc']:.3f}"
        log = Path(m[6])
        log = log if log.is_absolute() else tiny_sweep.sweep_dir.parent / log  # relative to the command's cwd
        assert "metric points written to MLflow run" in log.read_text()  # kept in the job's log file
    for chatter in ("metric points written", "mlflow.system_metrics", "GPU available", "Restoring states"):
        assert chatter not in out, chatter
