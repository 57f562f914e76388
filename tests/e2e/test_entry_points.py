"""`python -m actstudy {train,report,list,repair}`: one entry point that runs the four commands."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import Sweep, run_cli


def test_an_unknown_command_is_one_line_and_exit_2(tmp_path: Path):
    done = run_cli("actstudy", ["nope"], cwd=tmp_path, uri=None)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "actstudy: error: nope: no such command; usage: python -m actstudy {train,report,list,repair} [args] "
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


def test_runs_list_shows_the_sweep_with_each_job_its_outcome_and_numbers(tiny_sweep: Sweep, tmp_path: Path):
    done = run_cli("actstudy.runs", ["list", "--tracking-uri", tiny_sweep.uri], cwd=tmp_path, uri=None)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    (parent,) = [r for r in tiny_sweep.runs() if r.data.tags.get("actstudy.kind") == "sweep"]
    assert lines[0].startswith(f"{parent.info.run_name}  FINISHED  started ")
    assert lines[0].endswith(f"4 job(s): 4 completed  {tiny_sweep.sweep_dir}")
    assert lines[1].split() == ["job", "outcome", "test", "acc", "test", "acc", "@best", "val",
                                "first/last", "grad", "(last)", "wall", "time"]  # fmt: skip
    jobs = {r.info.run_name: r for r in tiny_sweep.runs() if r.data.tags.get("actstudy.kind") == "job"}
    assert [line.split()[0] for line in lines[2:]] == sorted(jobs) and len(lines) == 6
    for line in lines[2:]:
        name, outcome, test_acc = line.split()[:3]
        assert outcome == "completed"
        assert test_acc == f"{jobs[name].data.metrics['test/acc']:.3f}"


def test_runs_list_of_an_empty_store_says_so(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = run_cli("actstudy", ["list", "--tracking-uri", uri], cwd=tmp_path, uri=None)
    assert (done.returncode, done.stdout.strip()) == (0, f"no experiment 'actstudy' in {uri}")
