"""Bad input on the real command line: one line, exit 2, before any data is generated and before any run
exists (the config's own checks, in process, are tests/unit/config/test_config.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("depth=0", "depth=0: must be >= 1"),
        ("depth=abc", "depth='abc': must be an integer"),
        ("optimizer.lr=-1", "optimizer.lr=-1.0: must be a positive number (e.g. optimizer.lr=0.1)"),
        ("model.width=0", "model.width=0: must be >= 1"),
        # a builtin has no signature to check (was: a traceback and a FAILED run)
        ("activation.module._target_=torch.sigmoid", "activation.module._target_=torch.sigmoid: has no "
         "signature its arguments can be checked against; name a Python class or function, e.g. "
         "torch.nn.Sigmoid"),
        ("activation.module._target_=argparse.Namespace", "activation=relu: argparse.Namespace builds a "
         "Namespace, not a torch module; name one such as torch.nn.Sigmoid"),
    ],
)  # fmt: skip
def test_cli_rejects_bad_input_with_one_line_and_no_run(tmp_path: Path, override, expected):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli("actstudy.train", ["data=shapes", override], cwd=tmp_path, uri=uri)
    assert result.returncode == 2
    assert result.stderr.strip() == f"actstudy: error: {expected}"
    assert not (tmp_path / "mlflow.db").exists()  # nothing was logged, not even an empty store


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["trainer.precision=banana"], {}, "trainer.precision='banana': must be one of 32-true, 16-mixed, "
         "bf16-mixed, 16-true, bf16-true, 64-true"),
        (["seed=-1"], {}, "seed=-1: must be in [0, 4294967295]"),
        (["trainer.limit_train_batches=1.5"], {}, "trainer.limit_train_batches=1.5: must be a fraction in "
         "(0, 1] or a whole number of batches >= 1"),
        (["optimizer.momentum=2"], {}, "optimizer.momentum=2.0: must be in [0, 1) (0.9 is usual; "
         "0: plain SGD)"),
        (["depth=100000"], {}, "depth=100000: must be <= 100 (plain nets this deep do not train at all, and "
         "building them takes minutes)"),
        (["data.val_size=999999"], {}, "data.train_size + data.val_size = 1007999: generating more than "
         "200000 shapes images needs several GB; use smaller sizes"),
        (["data.train_size=1"], {}, "data.train_size=1: smaller than one batch (data.batch_size=32), so "
         "nothing would be trained; use more images or a smaller batch"),
        (["data=cifar10", "data.val_size=50000"], {}, "data.val_size=50000: cifar10 has 50000 training "
         "images and the validation split is carved from them; use a smaller data.val_size"),
        (["data=mnist", "data.train_size=55000"], {}, "data.train_size=55000: only 50000 mnist training "
         "images remain after data.val_size=10000; use at most 50000"),
        (["data=cifar10", "data.root=/etc/passwd"], {}, "data.root=/etc/passwd: is a file; give the folder "
         "that holds (or will hold) the data"),
        (["tracking.experiment=''"], {}, "tracking.experiment='': must be a name (e.g. "
         "tracking.experiment=actstudy)"),
        # was: a traceback after the data and the store existed
        ([f"tracking.experiment={'e' * 5000}"], {}, "tracking.experiment: 5000 characters, more than MLflow "
         "stores (256); choose a shorter name"),
        (["tracking.uri=ftp://x"], {}, "tracking URI 'ftp://x' is not an MLflow store; use "
         "sqlite:///path/mlflow.db, http://host:5000 (a tracking server) or postgresql://... (tracking.uri "
         "or MLFLOW_TRACKING_URI)"),
        ([], {"MLFLOW_TRACKING_URI": "garbage"}, "tracking URI 'garbage' is not an MLflow store; use "
         "sqlite:///path/mlflow.db, http://host:5000 (a tracking server) or postgresql://... (tracking.uri "
         "or MLFLOW_TRACKING_URI)"),
    ],
    ids=lambda v: None,
)  # fmt: skip
def test_cli_rejects_each_bad_value_with_one_line_before_data_or_run(tmp_path: Path, args, env, expected):
    uri = env.pop("MLFLOW_TRACKING_URI", None) or f"sqlite:///{tmp_path / 'mlflow.db'}"
    base = [] if any(a.startswith("data=") for a in args) else ["data=shapes"]
    result = run_cli(
        "actstudy.train", [*base, *args], cwd=tmp_path, uri=uri, ACTSTUDY_DATA=str(tmp_path / "d")
    )
    assert (result.returncode, result.stderr.strip()) == (2, f"actstudy: error: {expected}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"] or not list(tmp_path.iterdir())
    assert not list(tmp_path.glob("outputs/*/checkpoints")) and not (tmp_path / "d").exists()


def test_a_malformed_yaml_in_the_config_dir_is_one_line_naming_it(tmp_path: Path):
    extra = tmp_path / "extra" / "activation"
    extra.mkdir(parents=True)
    (extra / "mine.yaml").write_text("name: mine\nmodule:\n  _target_: [torch.nn.Tanh\n")
    result = run_cli("actstudy.train", ["--config-dir", str(tmp_path / "extra"), "activation=mine"],
                     cwd=tmp_path, uri=f"sqlite:///{tmp_path / 'mlflow.db'}")  # fmt: skip
    assert (result.returncode, result.stderr.strip()) == (
        2,
        f"actstudy: error: {extra / 'mine.yaml'}: line 4, column 1: not valid YAML (expected ',' or ']', "
        "but got '<stream end>'); fix the file or move it out of --config-dir",
    )  # fmt: skip  (was: a ScannerError traceback, exit 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["extra"]


def test_cli_refuses_a_store_that_is_not_a_database_and_leaves_it_alone(tmp_path: Path):
    db = tmp_path / "mlflow.db"
    db.write_text("these are my notes\n" * 183)
    result = run_cli("actstudy.train", ["data=shapes"], cwd=tmp_path, uri=f"sqlite:///{db}")
    assert (result.returncode, result.stderr.strip()) == (
        2, f"actstudy: error: {db} is not an SQLite database; point tracking.uri at another file or move "
        "this one away"
    )  # fmt: skip
    assert db.read_text() == "these are my notes\n" * 183


def _in_read_only(folder: Path, args: list[str], cwd: Path, uri: str) -> subprocess.CompletedProcess:
    """Run the CLI with `folder` mounted read-only (a private mount namespace: root ignores chmod)."""
    import shlex

    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "actstudy.train", *args])
    script = f"mount --bind -o ro {shlex.quote(str(folder))} {shlex.quote(str(folder))} && exec {command}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], cwd=cwd, env=env, capture_output=True, text=True
    )
    if "mount" in result.stderr and result.returncode != 2:
        if os.environ.get("CI") == "true":
            pytest.fail(f"read-only mounts are needed in CI: {result.stderr[-500:]}")
        pytest.skip(f"no read-only bind mount here: {result.stderr[-200:]}")
    return result


def test_a_read_only_store_folder_is_one_line_before_anything(tmp_path: Path):
    store = tmp_path / "store"
    store.mkdir()
    result = _in_read_only(store, ["data=shapes"], tmp_path, f"sqlite:///{store / 'mlflow.db'}")
    assert (result.returncode, result.stderr.strip()) == (
        2, f"actstudy: error: cannot write the MLflow store in {store} (Read-only file system); use a "
        "writable folder"
    )  # fmt: skip
    assert list(store.iterdir()) == [] and not list(tmp_path.rglob("actstudy_run.json"))


def test_a_read_only_working_folder_is_one_line_before_anything(tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    result = _in_read_only(work, ["data=shapes"], work, f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert (result.returncode, result.stderr.strip()) == (
        2, f"actstudy: error: cannot write the job's folder in {work} (Read-only file system); run from a "
        "writable folder or set hydra.run.dir=<writable path>",
    )  # fmt: skip
    assert list(work.iterdir()) == [] and not (tmp_path / "mlflow.db").exists()


def _cores() -> int:
    return len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["trainer.accelerator=gpu"],
            "trainer.accelerator=gpu: no GPU is visible to PyTorch here; "
            "use trainer.accelerator=cpu (or auto)",
        ),
        (
            [
                "trainer.accelerator=cpu",
                f"trainer.devices={_cores() + 1}",
                f"data.batch_size={8 * (_cores() + 1)}",
            ],
            f"trainer.devices={_cores() + 1}: one process per device needs a core each and this machine has "
            f"{_cores()} available; use trainer.devices <= {_cores()}",
        ),
        (["trainer.strategy=fsdp"], "trainer.strategy='fsdp': must be one of auto, ddp"),
        (
            ["trainer.accelerator=cpu", "trainer.num_nodes=2"],
            "trainer.num_nodes=2: several nodes need a cluster launcher; use hydra/launcher=slurm (or "
            "slurm_gpu), which starts one task per device on every node",
        ),
        (
            ["trainer.devices=2", "data.batch_size=33"],
            "data.batch_size=33: the global batch is split evenly over trainer.devices x trainer.num_nodes = "
            "2 processes; use a multiple of 2",
        ),
    ],
    ids=["gpu-without-gpu", "more-devices-than-cores", "strategy", "nodes-without-cluster", "batch-split"],
)
def test_cli_rejects_devices_this_machine_cannot_run_before_any_run(tmp_path: Path, overrides, expected):
    import torch

    if "trainer.accelerator=gpu" in overrides and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli("actstudy.train", ["data=shapes", *overrides], cwd=tmp_path, uri=uri)
    assert (result.returncode, result.stderr.strip()) == (2, f"actstudy: error: {expected}")
    assert not (tmp_path / "mlflow.db").exists()
    assert not list(tmp_path.glob("outputs/*/checkpoints"))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["activation=maxout"], "activation=maxout: no such option (options: elu, gelu, leaky_relu, mish, "
         "relu, sigmoid, silu, softsign, tanh)"),
        (["activation=rlu"], "activation=rlu: no such option; did you mean relu? (options: elu, gelu, "
         "leaky_relu, mish, relu, sigmoid, silu, softsign, tanh)"),
        (["activaton=relu"], "activaton: no such key or config group; did you mean activation=relu? "
         "(python -m actstudy.train --cfg job lists the keys)"),
        (["foo=1"], "foo: no such key or config group (python -m actstudy.train --cfg job lists the keys)"),
        (["model.widht=3"], "model.widht: no such key or config group; did you mean model.width=3? "
         "(python -m actstudy.train --cfg job lists the keys)"),
        (["depth=[1"], "cannot read the override 'depth=[1': no viable alternative at input '[1' "
         "(https://hydra.cc/docs/advanced/override_grammar/basic/)"),
        (["-m", "activation=relu,sigmoi"], "activation=sigmoi: no such option; did you mean sigmoid? "
         "(options: elu, gelu, leaky_relu, mish, relu, sigmoid, silu, softsign, tanh)"),
        (["-m", "seed=0,1", "trainer.max_epochz=2"], "trainer.max_epochz: no such key or config group; did "
         "you mean trainer.max_epochs=2? (python -m actstudy.train --cfg job lists the keys)"),
    ],
    ids=["unknown-option", "misspelled-option", "misspelled-group", "unknown-key", "misspelled-key", "syntax",
         "misspelled-in-sweep", "misspelled-key-in-sweep"],
)  # fmt: skip
def test_cli_turns_hydras_errors_into_one_line_with_a_suggestion(tmp_path: Path, args, expected):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli("actstudy.train", ["data=shapes", *args], cwd=tmp_path, uri=uri)
    assert (result.returncode, result.stderr.strip()) == (2, f"actstudy: error: {expected}")
    assert not list(tmp_path.iterdir())  # not even Hydra's output folder


@pytest.mark.parametrize(
    ("sweep", "message"),
    [("depth=0,2", "depth=0: must be >= 1"), ("seed=0,-1", "seed=-1: must be in [0, 4294967295]")],
)
def test_cli_sweep_with_one_bad_job_runs_nothing(tmp_path: Path, sweep, message):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["-m", sweep, "data=shapes", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=uri)
    assert result.returncode == 2
    assert message in result.stderr and "nothing was run" in result.stderr
    assert not (tmp_path / "mlflow.db").exists()
    assert not list(tmp_path.iterdir())  # not even Hydra's output folder


def test_a_sweep_asking_for_its_config_is_one_line(tmp_path: Path):
    result = run_cli("actstudy.train", ["-m", "activation=relu,tanh", "--cfg", "job"], cwd=tmp_path, uri=None)
    assert (result.returncode, result.stderr.strip()) == (
        2,
        "actstudy: error: -m with --cfg: Hydra shows one job's config, not a sweep's; drop -m and give "
        "each key one value (e.g. python -m actstudy.train activation=relu --cfg job)",
    )  # fmt: skip  (was: Hydra's ValueError traceback)
