"""Fixed costs of a job: the thread count it picks, the generated-data cache, one store call to resume."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from actstudy.config.schema import ConfigError
from actstudy.data import generated_cache, shapes
from actstudy.processes import distributed
from actstudy.processes.distributed import World
from actstudy.tracking import store as tracking
from tests.helpers.monitor import config

AFFINITY_8 = set(range(8))


@pytest.mark.parametrize(
    ("setting", "env", "world", "concurrent", "expected"),
    [
        ("auto", {}, World(), 1, 8),  # the affinity (8 of the machine's cores)
        ("auto", {"SLURM_CPUS_PER_TASK": "3"}, World(), 1, 3),  # SLURM's allotment, not the affinity
        ("auto", {}, World(0, 2, 0, 2, "rank0"), 1, 4),  # 2 processes this job starts share 8 cores
        ("auto", {"SLURM_CPUS_PER_TASK": "3"}, World(1, 2, 1, 2, "slurm"), 1, 3),  # per task already
        ("auto", {}, World(), 3, 2),  # 3 jobs of a joblib sweep at once: 8 // 3
        ("auto", {"SLURM_CPUS_PER_TASK": "1"}, World(), 4, 1),  # never 0
        ("auto", {"OMP_NUM_THREADS": "2", "SLURM_CPUS_PER_TASK": "6"}, World(), 1, 2),  # the user's
        ("5", {"SLURM_CPUS_PER_TASK": "3"}, World(), 2, 5),  # explicit: as given
    ],
)
def test_threads_follow_the_allocation(monkeypatch, setting, env, world, concurrent, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: AFFINITY_8)
    assert distributed.threads_for(setting, world, concurrent, env) == expected


def test_share_threads_sets_torch_and_the_previous_count_comes_back(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: AFFINITY_8)
    before = torch.get_num_threads()
    previous = distributed.share_threads(World(), "3")
    try:
        assert previous == before and torch.get_num_threads() == 3
    finally:
        distributed.restore_threads(previous)


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "many"])
def test_a_bad_thread_count_is_one_line(value):
    with pytest.raises(ConfigError) as caught:
        config(f"trainer.threads={value}")
    assert str(caught.value) == (
        f"trainer.threads={value}: must be auto or a number of threads >= 1 (e.g. trainer.threads=4)"
    )


@pytest.fixture
def cache_home(tmp_path, monkeypatch) -> Path:
    """A private, empty disk cache and in-process cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(generated_cache, "_in_process", {})
    return generated_cache.cache_dir()


def _counting_generator(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = shapes.generate_shapes

    def generate(n, seed):
        calls.append(n)
        return original(n, seed)

    monkeypatch.setattr(shapes, "generate_shapes", generate)
    return calls


def test_shapes_are_generated_once_and_read_back_identical(cache_home, monkeypatch):
    calls = _counting_generator(monkeypatch)
    first = shapes.read_shapes(40, 8, seed=3)
    assert calls == [40, 8] and len(list(cache_home.glob("shapes-*.pt"))) == 1
    assert shapes.read_shapes(40, 8, seed=3).train_x is first.train_x  # the next job of a sweep: same process
    monkeypatch.setattr(generated_cache, "_in_process", {})  # another process: from disk
    again = shapes.read_shapes(40, 8, seed=3)
    assert calls == [40, 8]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    shapes.read_shapes(40, 8, seed=4)  # other parameters: other data
    assert calls == [40, 8, 40, 8] and len(list(cache_home.glob("shapes-*.pt"))) == 2


def test_a_sweeps_next_job_gets_the_same_splits_without_splitting_again(cache_home, monkeypatch):
    from actstudy.data import datamodule

    cfg = config("data=shapes", "data.train_size=40", "data.val_size=8", "data.test_size=8").data
    monkeypatch.setattr(datamodule, "_generated", {})
    first = datamodule.load_splits(cfg)
    monkeypatch.setattr(datamodule, "split", None)  # splitting again would fail
    assert datamodule.load_splits(cfg) is first


def test_a_damaged_cache_file_is_generated_again(cache_home, monkeypatch):
    calls = _counting_generator(monkeypatch)
    first = shapes.read_shapes(40, 8, seed=3)
    (path,) = cache_home.glob("shapes-*.pt")
    state = torch.load(path, weights_only=True)
    state["tensors"][0][0, 0, 0, 0] ^= 1  # one pixel changed: a loadable file with the wrong content
    torch.save(state, path)
    monkeypatch.setattr(generated_cache, "_in_process", {})
    again = shapes.read_shapes(40, 8, seed=3)
    assert calls == [40, 8, 40, 8]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    path.write_bytes(path.read_bytes()[:1000])  # truncated by a crash of another writer
    monkeypatch.setattr(generated_cache, "_in_process", {})
    assert torch.equal(shapes.read_shapes(40, 8, seed=3).train_x, first.train_x)
    assert len(calls) == 6


def test_a_read_only_cache_folder_still_gives_the_data(cache_home, monkeypatch):
    cache_home.parent.mkdir(parents=True)
    cache_home.write_text("not a folder")  # mkdir fails the way a read-only home does (root ignores modes)
    raw = shapes.read_shapes(40, 8, seed=3)
    assert raw.train_x.shape == (40, 3, 32, 32)


class CountingClient:
    """A real MLflow client that counts the store calls made through it."""

    def __init__(self, client):
        self.client, self.calls = client, []

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self.client, name)


def test_the_last_logged_steps_come_from_one_store_call(tmp_path):
    client = tracking.open_client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run(tracking.experiment_id(client, "resume")).info.run_id
    points = [*tracking.metric_points({"a": 1.0, "b": 2.0}, 0), *tracking.metric_points({"a": 3.0}, 7)]
    points += tracking.metric_points({"c": 0.5}, 3)
    client.log_batch(run_id, metrics=points)
    counting = CountingClient(client)
    assert tracking.last_logged_steps(counting, run_id) == {"a": 7, "b": 0, "c": 3}
    assert counting.calls == ["get_run"]


def _schema(db: Path) -> tuple[dict, list]:
    """Return {table: its columns} and the alembic version (MLflow's migrations order a table's
    constraints differently from one store to the next, so their SQL text is not compared)."""
    import sqlite3

    with sqlite3.connect(db) as con:
        tables = [name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        columns = {t: sorted(con.execute(f"PRAGMA table_info('{t}')").fetchall()) for t in tables}
        version = con.execute("SELECT version_num FROM alembic_version").fetchall()
    con.close()
    return columns, version


def test_a_new_store_is_a_copy_of_mlflows_own_empty_one(cache_home, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from actstudy.tracking import store_template

    own = tmp_path / "own.db"
    MlflowClient(tracking_uri=f"sqlite:///{own}").search_experiments(max_results=1)  # MLflow migrates it
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    copied = tmp_path / "copied.db"
    client = tracking.open_client(f"sqlite:///{copied}")
    assert store_template.template_path().is_file()  # made once, in the user's cache
    assert _schema(copied) == _schema(own)
    default = client.get_experiment("0")  # where MLflow would have put it for this process
    assert default.artifact_location == str(work / "mlruns" / "0")
    run = client.create_run(tracking.experiment_id(client, "actstudy"))
    client.log_metric(run.info.run_id, "m", 1.0, step=2)
    assert tracking.last_logged_steps(client, run.info.run_id) == {"m": 2}

    store_template.template_path().write_bytes(b"damaged")  # e.g. a disk that filled up
    again = tmp_path / "again.db"
    tracking.open_client(f"sqlite:///{again}")
    assert _schema(again) == _schema(own)
    assert store_template.template_path().read_bytes()[:16] == store_template.SQLITE_HEADER


@pytest.mark.parametrize(
    ("busy", "world", "concurrent", "expected"),
    [
        (0.0, World(), 1, 8),  # a quiet machine: every core
        (1.2, World(), 1, 7),  # another process holds a core: the job leaves it
        (7.9, World(), 1, 1),  # all busy: still 1
        (3.0, World(), 2, 4),  # a local sweep's jobs: shared out, the busy cores are its own
        (3.0, World(0, 2, 0, 2, "rank0"), 1, 4),  # a multi-process job shares the cores out itself
    ],
)
def test_auto_threads_leave_the_cores_other_processes_keep_busy(
    monkeypatch, busy, world, concurrent, expected
):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: AFFINITY_8)
    assert distributed.threads_for("auto", world, concurrent, {}, busy=busy) == expected


def test_busy_cores_sees_a_process_that_spins_on_a_core():
    import subprocess
    import sys
    import time

    quiet = distributed.busy_cores(0.5)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        deadline = time.monotonic() + 30
        while _cpu_seconds(spinner.pid) < 0.3:  # started and spinning, not still starting up
            assert time.monotonic() < deadline
            time.sleep(0.05)
        busy = distributed.busy_cores(1.0)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy >= 0.6 and busy - quiet >= 0.4, (quiet, busy)  # about one more core busy


def _cpu_seconds(pid: int) -> float:
    """Return the CPU time a process has used (Linux /proc/<pid>/stat: utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
