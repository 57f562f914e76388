"""Benchmark: the same job on 1 process and on 2 DDP processes (gloo on CPUs), same global batch.

Runs `python -m actstudy.train` for each, in random order per round, into a temporary store, and prints
per variant the median command wall time (start-up included), the MLflow run's duration, and the
training time per step read off the `train/loss` timestamps (logged every step here), with the ratios.

    python scripts/bench_ddp.py [--repeats 3] [--accelerator cpu] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOB = [
    "data=shapes", "data.train_size=4096", "data.val_size=256", "data.test_size=256", "data.batch_size=64",
    "depth=4", "model.width=32", "trainer.log_every_n_steps=1", "trainer.progress=none",
]  # fmt: skip


def run_once(devices: int, accelerator: str, epochs: int) -> tuple[float, float, float]:
    """Return (command wall s, run duration s, training ms per step) of one run."""
    from mlflow.tracking import MlflowClient

    from actstudy import metric_names

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        args = [*JOB, f"trainer.max_epochs={epochs}", f"trainer.accelerator={accelerator}"]
        args.append(f"trainer.devices={devices}")
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        start = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "actstudy.train", *args], cwd=tmp, env=env, check=True, capture_output=True
        )
        wall = time.monotonic() - start
        client = MlflowClient(uri)
        run = client.search_runs([client.get_experiment_by_name("actstudy").experiment_id])[0]
        history = client.get_metric_history(run.info.run_id, metric_names.TRAIN_LOSS)
        points = sorted(history, key=lambda m: m.step)
        per_step = (points[-1].timestamp - points[0].timestamp) / (points[-1].step - points[0].step)
        return wall, (run.info.end_time - run.info.start_time) / 1000, per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    os.chdir(Path(__file__).resolve().parents[1])
    results: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}
    shuffler = random.Random(0)
    for rep in range(args.repeats):
        order = [1, 2]
        shuffler.shuffle(order)
        for devices in order:
            results[devices].append(run_once(devices, args.accelerator, args.epochs))
        print(
            f"repeat {rep + 1}: " + "  ".join(f"{d} proc {results[d][-1][0]:.1f} s" for d in (1, 2)),
            flush=True,
        )
    med = {d: [statistics.median(col) for col in zip(*rows, strict=True)] for d, rows in results.items()}
    print(f"\nCNN depth 4 width 32, shapes 4096 images x {args.epochs} epochs, global batch 64 "
          f"({args.accelerator}, {os.cpu_count()} cores), medians of {args.repeats}")  # fmt: skip
    print("| processes | command wall s | run duration s | ms / training step |")
    print("|---|---:|---:|---:|")
    for d in (1, 2):
        print(f"| {d} | {med[d][0]:.1f} | {med[d][1]:.1f} | {med[d][2]:.1f} |")
    ratio = [two / one for one, two in zip(med[1], med[2], strict=True)]
    print(f"| 2 / 1 | {ratio[0]:.2f} | {ratio[1]:.2f} | {ratio[2]:.2f} |")


if __name__ == "__main__":
    main()
