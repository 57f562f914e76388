"""`python -m actstudy {train,report,repair}`: one entry point that runs the three commands."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run_cli


def test_an_unknown_command_is_one_line_and_exit_2(tmp_path: Path):
    done = run_cli("actstudy", ["nope"], cwd=tmp_path, uri=None)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "actstudy: error: nope: no such command; usage: python -m actstudy {train,report,repair} [args] "
        "(each command's own --help lists them)"
    )


def test_train_checks_its_overrides_as_python_m_actstudy_train_does(tmp_path: Path):
    done = run_cli("actstudy", ["train", "depth=0"], cwd=tmp_path, uri=f"sqlite:///{tmp_path / 'm.db'}")
    assert (done.returncode, done.stderr.strip()) == (2, "actstudy: error: depth=0: must be >= 1")
    assert not (tmp_path / "m.db").exists()


def test_report_and_repair_run_their_commands(tmp_path: Path):
    out = tmp_path / "figures"
    done = run_cli("actstudy", ["report", "--activations", "relu", "--out", str(out)], cwd=tmp_path, uri=None)
    assert done.returncode == 0, done.stderr
    assert (out / "activations.png").is_file()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = run_cli("actstudy", ["repair", "--dry-run", "--tracking-uri", uri], cwd=tmp_path, uri=None)
    assert (done.returncode, done.stdout.strip()) == (0, "would end 0 run(s) left RUNNING by a dead process")
