"""Benchmark: a job's fixed costs (start-up, gaps between a sweep's jobs, the report), not a test.

For each source tree given (`--src`, default this checkout's `src/`; give two to compare a base commit
with this one, side by side in one run, the trees taking turns within each repeat), with that tree first
on PYTHONPATH, the median of `--repeats`:
  - floor: `python -c "import torch"`;
  - the training stack: `import torch, lightning, torchmetrics, mlflow.tracking`, plainly and the way a
    job imports it (`actstudy.lean_imports`, in trees that have it);
  - single run: `python -m actstudy.train data=shapes depth=2` (one epoch of a few batches, its own fresh
    SQLite store and a fresh data cache): seconds to its first training step (the timestamp of the
    monitor's step-0 point in the store, which is written right after the first backward) and to exit;
  - sweep: the same command with `-m activation=sigmoid,tanh,relu` (3 jobs, one process): the gap between
    one job's end (its run's end time) and the next job's first training step, and the overhead share,
    (sweep wall time - sum of the jobs' fit times) / sweep wall time, where a job's fit time runs from its
    first training step to its last metric point (validation and test included);
  - report: `python -m actstudy.report` on a 9-job sweep (sigmoid, tanh, relu x depth 2, 4, 8; made once
    per tree, tiny sizes).
  - with `--quickstart`, once per tree: the README's former quick start (`-m activation=sigmoid,tanh,relu
    depth=2,4,8 data=shapes`, lr 0.1 for all: a workload every tree has; full size, a new store and an
    empty cache): its wall time (minutes) and its overhead share.
The load average is printed: the machine may be shared, which is why medians are taken.

    python scripts/bench_startup.py [--src /path/to/base/src --src src] [--repeats 3] [--quickstart]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOB = [
    "data=shapes", "depth=2", "trainer.max_epochs=1", "trainer.limit_train_batches=20",
    "trainer.limit_val_batches=5", "trainer.limit_test_batches=5", "trainer.progress=none",
]  # fmt: skip
REPORT_SWEEP = [
    "activation=sigmoid,tanh,relu", "depth=2,4,8", "data=shapes", "data.train_size=64", "data.val_size=32",
    "data.test_size=32", "trainer.max_epochs=1", "trainer.progress=none",
]  # fmt: skip
QUICK_START = ["activation=sigmoid,tanh,relu", "depth=2,4,8", "data=shapes", "trainer.progress=none"]
STACK = ("torch", "lightning", "torchmetrics", "mlflow.tracking")  # what a job imports
LEAN = "from actstudy import lean_imports; lean_imports.import_training_stack()"  # the same, lean
STEP0 = "grad/first_to_last"  # one of the monitor's points, logged at step 0


def run(src: Path, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run `python args` with `src` first on PYTHONPATH; return (start time, wall seconds); raise on error."""
    full_env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", **(env or {})}
    start = time.time()
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return start, time.time() - start


def job_times(db: Path) -> list[tuple[float, float, float]]:
    """Return (first training step, last metric point, run end) in seconds of each job run, in order."""
    import sqlite3

    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT r.run_uuid, r.start_time, r.end_time, "
        f"(SELECT MIN(timestamp) FROM metrics m WHERE m.run_uuid = r.run_uuid AND key = '{STEP0}'), "
        "(SELECT MAX(timestamp) FROM metrics m WHERE m.run_uuid = r.run_uuid) "
        "FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'actstudy.kind' AND t.value = 'job' "
        "ORDER BY r.start_time"
    ).fetchall()
    con.close()
    return [(first / 1000, last / 1000, end / 1000) for _, _, end, first, last in rows]


def overhead_share(wall: float, jobs: list[tuple[float, float, float]]) -> float:
    """Return the percentage of `wall` seconds not spent in the jobs' fit (first step to last point)."""
    return 100 * (wall - sum(last - first for first, last, _ in jobs)) / wall


def quick_start(src: Path, work: Path) -> dict[str, float]:
    """Return the README quick start's wall time [min] and overhead share [%], from nothing cached."""
    folder = work / f"{src.parent.name}-quickstart"
    env = {"XDG_CACHE_HOME": str(folder / "cache")}
    uri = f"tracking.uri=sqlite:///{folder / 'mlflow.db'}"
    _, wall = run(
        src, ["-m", "actstudy.train", "-m", *QUICK_START, uri, f"hydra.sweep.dir={folder}"], work, env
    )
    return {
        "quick start: wall time [min]": wall / 60,
        "quick start: overhead share [%]": overhead_share(wall, job_times(folder / "mlflow.db")),
    }


def report_store(src: Path, work: Path) -> str:
    """Run the 9-job sweep the report is timed on (once per tree); return its tracking URI."""
    folder = work / f"{src.parent.name}-report"
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    run(
        src,
        ["-m", "actstudy.train", "-m", *REPORT_SWEEP, f"tracking.uri={uri}", f"hydra.sweep.dir={folder}"],
        work,
    )
    return uri


def measure_once(src: Path, i: int, work: Path, report_uri: str) -> dict[str, float]:
    """Return one sample of every measurement for one source tree (repeat `i`)."""
    lean = (src / "actstudy" / "lean_imports.py").exists()
    sample = {
        "import torch (floor) [s]": run(src, ["-c", "import torch"], work)[1],
        "import training stack [s]": run(src, ["-c", f"import {', '.join(STACK)}"], work)[1],
        "import training stack, lean [s]": run(src, ["-c", LEAN], work)[1] if lean else float("nan"),
    }
    folder = work / f"{src.parent.name}-{i}"
    cache = {"XDG_CACHE_HOME": str(folder / "cache")}  # a new user's first run: nothing cached
    uri = f"tracking.uri=sqlite:///{folder / 'single' / 'mlflow.db'}"
    start, wall = run(
        src, ["-m", "actstudy.train", *JOB, uri, f"hydra.run.dir={folder / 'single'}"], work, cache
    )
    ((first, _, _),) = job_times(folder / "single" / "mlflow.db")
    sample["single run: to first step [s]"] = first - start
    sample["single run: to exit [s]"] = wall
    uri = f"tracking.uri=sqlite:///{folder / 'sweep' / 'mlflow.db'}"
    sweep = ["-m", "actstudy.train", "-m", "activation=sigmoid,tanh,relu", *JOB, uri]
    _, wall = run(src, [*sweep, f"hydra.sweep.dir={folder / 'sweep'}"], work, cache)
    jobs = job_times(folder / "sweep" / "mlflow.db")
    gaps = [nxt[0] - prev[2] for prev, nxt in zip(jobs, jobs[1:], strict=False)]
    sample["sweep of 3: gap between jobs [s]"] = statistics.median(gaps)
    sample["sweep of 3: overhead share [%]"] = overhead_share(wall, jobs)
    out = f"--out={work / f'{src.parent.name}-report' / f'report-{i}'}"
    sample["report, 9 runs [s]"] = run(
        src, ["-m", "actstudy.report", f"--tracking-uri={report_uri}", out], work
    )[1]
    return sample


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", type=Path, action="append", help="a source tree (repeat to compare)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quickstart", action="store_true", help="also time the README's quick start, once")
    args = p.parse_args()
    trees = [s.resolve() for s in (args.src or [ROOT / "src"])]
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        work = Path(tmp)
        report_uris = [report_store(src, work) for src in trees]
        samples: list[dict[str, list[float]]] = [{} for _ in trees]
        for i in range(args.repeats):  # the trees take turns: a machine that slows down slows both
            for src, uri, tree_samples in zip(trees, report_uris, samples, strict=True):
                for name, value in measure_once(src, i, work, uri).items():
                    tree_samples.setdefault(name, []).append(value)
                print(f"{src} repeat {i + 1}: load average {os.getloadavg()}", flush=True)
        results = [{name: statistics.median(v) for name, v in s.items()} for s in samples]
        if args.quickstart:
            for src, result in zip(trees, results, strict=True):
                result.update(quick_start(src, work))
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}; medians of {args.repeats}")
    header = f"{'':36}" + "".join(f"{str(src.parent)[-22:]:>24}" for src in trees)
    print(header + (f"{'last/first':>12}" if len(trees) > 1 else ""))
    for name in results[0]:
        row = f"{name:36}" + "".join(f"{r[name]:24.2f}" for r in results)
        if len(trees) > 1 and results[0][name]:
            row += f"{results[-1][name] / results[0][name]:12.2f}"
        print(row)
    floor = [r["import torch (floor) [s]"] for r in results]
    first = [r["single run: to first step [s]"] for r in results]
    print("first step / floor: " + "  ".join(f"{f / t:.2f}" for f, t in zip(first, floor, strict=True)))


if __name__ == "__main__":
    main()
