"""The GPU check: what actstudy does on one GPU, printed as one table (run it where a GPU is lent).

1. the quick-start sweep (activation sigmoid,tanh,relu x depth 2,4,8, shapes data) on the GPU in
   bf16-mixed: wall time and training images per second of each job;
2. the same sweep as 3 concurrent jobs on the one GPU (hydra/launcher=joblib, n_jobs=3) against sequential;
3. the harness against a plain PyTorch loop on the GPU (scripts/bench_monitor.py: per-step time ratios);
4. the monitor under torch.cuda.set_sync_debug_mode("error") on every step that is neither a logging
   nor a monitored step: any host synchronisation there fails the check.

    python scripts/gpu_check.py [--accelerator gpu] [--quick]

`--accelerator cpu --quick` runs the same plumbing on a CPU (small sizes) to check the script itself;
its numbers mean nothing for a GPU.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = ["-m", "activation=sigmoid,tanh,relu", "depth=2,4,8", "data=shapes"]
QUICK = ["data.train_size=512", "data.val_size=64", "data.test_size=64", "trainer.max_epochs=1"]


def run_sweep(extra: list[str], folder: Path, accelerator: str, quick: bool) -> tuple[float, list[str]]:
    """Run the sweep into its own store; return its wall time and one 'name: img/s' line per job."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    args = [*SWEEP, f"trainer.accelerator={accelerator}", f"hydra.sweep.dir={folder / 'sweep'}", *extra]
    if accelerator == "gpu":
        args.append("trainer.precision=bf16-mixed")
    if quick:
        args += QUICK
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "ACTSTUDY_NO_REPORT": "1"}
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "actstudy.train", *args], env=env, capture_output=True, text=True
    )
    wall = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"sweep failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("actstudy").experiment_id
    rates = []
    for run in client.search_runs([exp], "tags.`actstudy.kind` = 'job'"):
        p = run.data.params
        images = int(p["data.train_size"]) * int(p["trainer.max_epochs"])
        seconds = (run.info.end_time - run.info.start_time) / 1000
        rates.append(f"{run.info.run_name.split('_')[0]} {images / seconds:,.0f} img/s")
    return wall, sorted(rates)


def harness_ratio(accelerator: str, quick: bool) -> str:
    """Return scripts/bench_monitor.py's ratio line on `accelerator`."""
    steps, repeats = ("30", "1") if quick else ("300", "3")
    cmd = [
        sys.executable,
        "scripts/bench_monitor.py",
        "--accelerator",
        accelerator,
        "--steps",
        steps,
        "--repeats",
        repeats,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return re.search(r"\(b\)/\(a\) = .*ratio of medians\)", out).group(0)


def sync_check(accelerator: str) -> str:
    """Train 120 steps with CUDA's sync debug mode on "error" on every unlogged, unmonitored step."""
    import lightning as L
    import torch

    from actstudy.data import load_splits
    from actstudy.training import trainer as training
    from tests.helpers.monitor import config

    log_every, monitor_every, steps = 10, 50, 120
    cfg = config(
        "data=shapes", f"data.train_size={steps * 32}", "data.val_size=64", "data.test_size=64",
        f"trainer.accelerator={accelerator}", "trainer.max_epochs=1", "trainer.progress=none",
        f"trainer.log_every_n_steps={log_every}", f"monitor.every_n_steps={monitor_every}",
    )  # fmt: skip

    class StrictSteps(L.Callback):
        checked = 0

        def on_train_batch_start(self, trainer, pl_module, batch, idx):
            s = trainer.global_step
            if s % log_every and s % monitor_every and torch.cuda.is_available():
                torch.cuda.set_sync_debug_mode("error")
                self.checked += 1

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, idx):
            if torch.cuda.is_available():
                torch.cuda.set_sync_debug_mode("default")

    strict = StrictSteps()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            training.train(cfg, load_splits(cfg.data), Path(tmp), callbacks=[strict])
        except RuntimeError as exc:
            return f"FAIL: a host sync on an unmonitored step: {str(exc).splitlines()[0]}"
    if not torch.cuda.is_available():
        return "not checked (no CUDA device)"
    return f"pass: no host sync on {strict.checked} unlogged, unmonitored steps of {steps}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accelerator", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the script, not the GPU")
    args = parser.parse_args()
    os.chdir(Path(__file__).resolve().parents[1])
    sys.path.insert(0, os.getcwd())  # tests.helpers.monitor
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    with tempfile.TemporaryDirectory() as tmp:
        seq_wall, seq_rates = run_sweep([], Path(tmp) / "seq", args.accelerator, args.quick)
        par_wall, _ = run_sweep(
            ["hydra/launcher=joblib", "hydra.launcher.n_jobs=3"],
            Path(tmp) / "par",
            args.accelerator,
            args.quick,
        )
    rows = [
        ("device", f"{device}, torch {torch.__version__}"),
        ("3x3 shapes sweep, sequential, wall", f"{seq_wall:.1f} s"),
        ("per job (train images / run wall time)", "; ".join(seq_rates)),
        ("same sweep, 3 concurrent jobs, wall", f"{par_wall:.1f} s ({seq_wall / par_wall:.2f}x sequential)"),
        ("harness vs plain loop (bench_monitor)", harness_ratio(args.accelerator, args.quick)),
        ("monitor under sync debug mode 'error'", sync_check(args.accelerator)),
    ]
    print("\n| check | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
