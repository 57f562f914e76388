"""`python -m actstudy {train,report,list,repair}`: one entry point that runs the four commands."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import TINY, Sweep, run_cli


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


def test_a_dry_run_lists_each_job_its_folder_and_what_it_would_do_and_runs_nothing(
    tiny_sweep: Sweep, tmp_path: Path
):
    args = ["-m", "activation=sigmoid,relu", "depth=1,2", *TINY, f"hydra.sweep.dir={tiny_sweep.sweep_dir}"]
    runs_before = len(tiny_sweep.runs())
    done = run_cli("actstudy.train", [*args, "--dry-run"], cwd=tmp_path, uri=tiny_sweep.uri)
    assert done.returncode == 0, done.stderr[-3000:]
    heading, *jobs = done.stdout.strip().splitlines()
    assert heading == f"4 job(s) in {tiny_sweep.sweep_dir} (dry run: nothing was run)"
    folders = sorted(p.parent for p in tiny_sweep.sweep_dir.glob("*/actstudy_run.json"))
    assert [line.split()[:4] for line in jobs] == [
        [f"{i}/4", folder.name.rsplit("-", 1)[0], "keep", "(completed)"]
        for i, folder in enumerate(sorted(folders, key=lambda p: jobs_order(p.name)), 1)
    ]
    assert sorted(Path(line.split()[4]) for line in jobs) == folders  # the real jobs' folders
    assert len(tiny_sweep.runs()) == runs_before  # no parent run, no job run
    # a sweep not run yet: every job would start, and nothing is made on disk or in the store
    fresh = tmp_path / "fresh"
    done = run_cli("actstudy.train", [*args[:-1], f"hydra.sweep.dir={fresh}", "--dry-run"], cwd=tmp_path,
                   uri=f"sqlite:///{tmp_path / 'none.db'}")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line.split()[2] for line in done.stdout.strip().splitlines()[1:]] == ["start"] * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def jobs_order(folder: str) -> tuple[int, int]:
    """Return a job folder's place in the sweep's launch order (activation=sigmoid,relu slowest)."""
    activation, depth = folder.split("-")[:2]
    return ["sigmoid", "relu"].index(activation), int(depth[1:])


def test_a_dry_run_without_m_is_one_line_and_exit_2(tmp_path: Path):
    done = run_cli("actstudy.train", [*TINY, "--dry-run"], cwd=tmp_path, uri=f"sqlite:///{tmp_path / 'm.db'}")
    assert (done.returncode, done.stderr.strip()) == (
        2,
        "actstudy: error: --dry-run lists a sweep's jobs: add -m",
    )
    assert list(tmp_path.iterdir()) == []
