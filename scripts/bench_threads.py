"""Benchmark: training steps per second of one job at 1 and 2 intra-op threads, on a quiet machine and
with one core held busy by another process (what `trainer.threads=auto` should pick on a shared machine).

The job is the quick start's deepest net (CNN, depth 8, ReLU, batch 32 of 32x32 images, plain SGD),
trained in a child process per measurement so that each starts with its own thread pool. The busy core
is a second process spinning in pure Python. Rounds are interleaved in a fresh random order.

    python scripts/bench_threads.py [--steps 150] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
import time

STEP_CODE = """
import json, sys, time
import torch
from torch.nn import functional as F
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
from hydra import compose, initialize_config_dir
from actstudy.config.schema import parse_config
from actstudy.models import build_model
from actstudy.paths import CONF_DIR
with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
    cfg = parse_config(compose("config", overrides=["data=shapes", "depth=8", "activation=relu"]))
model = build_model(cfg, (3, 32, 32), 10)
opt = torch.optim.SGD(model.parameters(), lr=0.03)
x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
def step():
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()
for _ in range(10):
    step()
start = time.perf_counter()
for _ in range(int(sys.argv[2])):
    step()
print(json.dumps({"steps_per_s": int(sys.argv[2]) / (time.perf_counter() - start)}))
"""


def _spin() -> None:
    while True:
        pass


def measure(threads: int, steps: int) -> float:
    """Return the steps per second of `steps` training steps at `threads` intra-op threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, "-c", STEP_CODE, str(threads), str(steps)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])["steps_per_s"]


def main() -> None:
    """Print the table: steps/s per (threads, machine), and the ratios that decide the default."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cases = [(t, busy) for t in (1, 2) for busy in (False, True)]
    results: dict[tuple[int, bool], list[float]] = {case: [] for case in cases}
    print(f"{os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.2f}")
    for _ in range(args.repeats):
        for threads, busy in random.sample(cases, len(cases)):
            spinner = mp.Process(target=_spin, daemon=True) if busy else None
            if spinner is not None:
                spinner.start()
                time.sleep(0.5)
            try:
                results[(threads, busy)].append(measure(threads, args.steps))
            finally:
                if spinner is not None:
                    spinner.terminate()
                    spinner.join()
    median = {case: statistics.median(v) for case, v in results.items()}
    print("| machine | 1 thread (steps/s) | 2 threads (steps/s) | 2 threads / 1 thread |")
    print("| --- | ---: | ---: | ---: |")
    for busy in (False, True):
        one, two = median[(1, busy)], median[(2, busy)]
        name = "one core busy" if busy else "quiet"
        print(f"| {name} | {one:.1f} | {two:.1f} | {two / one:.2f} |")
    for case, values in results.items():
        print(f"  threads={case[0]} busy={case[1]}: " + ", ".join(f"{v:.1f}" for v in values))


if __name__ == "__main__":
    main()
