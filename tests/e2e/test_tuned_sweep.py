"""Real tiny sweeps with a tuned learning rate, and the quick start's preset, into temporary stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from actstudy.config import identity
from actstudy.paths import CONF_DIR
from tests.helpers import TINY, run_cli

LRS = ("0.01", "0.5")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[MlflowClient, Path, str]:
    """Return a client on the store, the sweep folder and the parent run id of a tiny tuned sweep."""
    root = tmp_path_factory.mktemp("tuned")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    args = ["-m", "activation=tanh,relu", "depth=2", f"optimizer.lr={','.join(LRS)}", *TINY]
    args += ["report.tune=[optimizer.lr]", "tracking.system_metrics=false", f"hydra.sweep.dir={root / 'm'}"]
    result = run_cli("actstudy.train", args, cwd=root, uri=uri)
    assert result.returncode == 0, result.stderr[-4000:]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("actstudy").experiment_id
    parent = client.search_runs([exp], "tags.`actstudy.kind` = 'sweep'")[0]
    return client, root / "m", parent.info.run_id


def test_the_tuned_keys_are_the_parents_not_the_jobs_identity(tuned):
    client, sweep_dir, parent = tuned
    assert client.get_run(parent).data.tags["actstudy.tune"] == "optimizer.lr"
    runs = client.search_runs([client.get_run(parent).info.experiment_id], "tags.`actstudy.kind` = 'job'")
    assert len(runs) == 4 and {r.data.params["optimizer.lr"] for r in runs} == set(LRS)
    for run in runs:  # the same job untuned has the same fingerprint: its folder and run are found again
        folder = Path(run.data.tags["actstudy.output_dir"])
        config = yaml.safe_load((folder / ".hydra" / "config.yaml").read_text())
        assert config["report"]["tune"] == ["optimizer.lr"]
        config["report"]["tune"] = []
        assert identity.job_fingerprint(config) == run.data.tags["actstudy.fingerprint"]


def test_the_report_picks_per_setting_and_every_claim_row_carries_the_pick(tuned):
    client, sweep_dir, parent = tuned
    report = sweep_dir / "report"
    claims = json.loads((report / "claims.json").read_text())
    assert claims and all(row["tuned"]["optimizer.lr"] in (0.01, 0.5) for row in claims)
    text = (report / "report.md").read_text()
    assert "## Tuned selection" in text and "sensitivity.png" in text
    assert (report / "sensitivity.png").exists()
    section = text.split("## Tuned selection")[1].split("\n## ")[0]
    assert section.count("✓") == 2  # one pick per activation
    note = client.get_run(parent).data.tags["mlflow.note.content"]
    assert "Tuned comparison: optimizer.lr picked per setting" in note


def test_the_report_command_re_reports_with_or_without_tuning(tuned, tmp_path: Path):
    client, _, parent = tuned
    uri = client.tracking_uri
    for tune, expect_tuned in (("", False), ("optimizer.lr", True)):
        out = tmp_path / f"report-{tune or 'none'}"
        args = ["--sweep", parent, "--tune", tune, "--out", str(out), "--no-log-artifacts"]
        result = run_cli("actstudy.report", args, cwd=tmp_path, uri=uri)
        assert result.returncode == 0, result.stderr
        rows = json.loads((out / "claims.json").read_text())
        assert all(bool(row["tuned"]) == expect_tuned for row in rows)
        assert ("## Tuned selection" in (out / "report.md").read_text()) == expect_tuned
    result = run_cli("actstudy.report", ["--sweep", parent, "--tune", "optimizer.lrr"], cwd=tmp_path, uri=uri)
    assert result.returncode == 2 and "--tune optimizer.lrr: no run of the sweep has" in result.stderr


def test_bad_tuned_keys_stop_the_sweep_before_anything_runs(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for value, says in (("[optimizer.lrr]", "did you mean optimizer.lr?"), ("[seed]", "cannot tune 'seed'")):
        args = ["-m", "depth=1,2", *TINY, f"report.tune={value}", f"hydra.sweep.dir={tmp_path / 'm'}"]
        result = run_cli("actstudy.train", args, cwd=tmp_path, uri=uri)
        assert result.returncode == 2 and says in result.stderr, result.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "m").exists()


def test_the_quick_start_trains_each_activation_at_its_measured_learning_rate(tmp_path: Path):
    """The README's quick start, tiny: no run diverges, each activation trains at its file's sgd_lr, and
    the claims it exists for are tested (their verdicts at full size are in docs/results.md)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["-m", "experiment=quick_start", "activation=sigmoid,tanh,relu", "depth=2,4", *TINY]
    args += ["tracking.system_metrics=false", f"hydra.sweep.dir={tmp_path / 'm'}"]
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=uri)
    assert result.returncode == 0, result.stderr[-4000:]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("actstudy").experiment_id],
                              "tags.`actstudy.kind` = 'job'")  # fmt: skip
    assert len(runs) == 6 and {r.data.tags["actstudy.outcome"] for r in runs} == {"completed"}
    for r in runs:
        name = r.data.params["activation.name"]
        stated = yaml.safe_load((CONF_DIR / "activation" / f"{name}.yaml").read_text())["sgd_lr"]
        assert float(r.data.params["optimizer.lr"]) == stated and r.data.params["data.name"] == "shapes"
    claims = {row["key"]: row for row in json.loads((tmp_path / "m" / "report" / "claims.json").read_text())}
    for key in ("sigmoid_decay_step0", "tanh_within_10x", "relu_within_10x", "deeper_sigmoid_worse",
                "deep_tanh_trains", "deep_relu_trains"):  # fmt: skip
        assert key in claims, sorted(claims)
    assert "1 seed, 32 test images" in claims["deeper_sigmoid_worse"]["measured"]
