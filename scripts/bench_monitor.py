"""Benchmark: what the harness and its gradient-flow monitor cost per training step.

Trains the same CNN (depth 4, shapes data, plain SGD) for the same number of steps, in one process:
  (a) a plain PyTorch loop;
  (b) the harness (`actstudy.training.trainer.build_trainer`'s Trainer, tensor loader, MLflow logging to
      a local store, checkpoints and validation each epoch as in a real run) with the monitor off;
  (c) the same with the monitor on at its default frequency, activation statistics included;
  (d0) the monitor on every step as it was before percentiles, f'(z) and histograms (mean, std, dead);
  (d) the monitor on every step as it is (every step a monitored step: (d)/(d0) is what the new
      statistics and histograms add to a monitored step, (d0)/(b) and (d)/(b) what a monitored step costs);
  (e) (c) with curv/sharpness too, every `--sharpness-every` steps (`monitor.sharpness_every_n_steps`,
      `monitor.sharpness_iterations` power-iteration steps each): (e)/(c) is what the sharpness costs.
Repetitions are interleaved, in a fresh random order each round, so that machine noise and order effects
hit all alike; the median seconds per step of each, by the wall clock and by the training thread's CPU
time (steadier when other processes share the cores), is reported with the ratios, and the median and
range of the same ratios taken within each round (back-to-back measurements).

    python scripts/bench_monitor.py [--steps 300] [--repeats 5] [--threads N] [--accelerator gpu]
                                    [--sharpness-every 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from torch.nn import functional as F

from actstudy import metric_names as mn
from actstudy import outcomes
from actstudy.config.schema import parse_config
from actstudy.data.datamodule import TensorDataModule, split
from actstudy.data.shapes import read_shapes
from actstudy.data.tensor_loader import TensorLoader
from actstudy.models import build_model
from actstudy.monitor.gradient_flow import GradientFlowMonitor
from actstudy.tracking import store as tracking
from actstudy.tracking.logger import MlflowRunLogger
from actstudy.training.module import ClassifierModule
from actstudy.training.trainer import build_trainer

WARMUP = 10


def make_config(accelerator: str = "cpu"):
    from hydra import compose, initialize_config_dir

    from actstudy.paths import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        overrides = ["data=shapes", "depth=4", "activation=relu", f"trainer.accelerator={accelerator}"]
        return parse_config(compose("config", overrides=overrides))


def device_of(cfg) -> torch.device:
    """Return the device the harness trains on for `cfg.trainer.accelerator`."""
    return torch.device("cuda" if cfg.trainer.accelerator in ("gpu", "cuda") else "cpu")


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read measures it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loader(splits, cfg) -> TensorLoader:
    device = device_of(cfg)
    return TensorLoader(
        splits.train_x.to(device), splits.train_y.to(device), cfg.data.batch_size, splits.mean, splits.std,
        shuffle=True, drop_last=True, seed=cfg.seed,
    )  # fmt: skip


def plain_loop(cfg, splits, steps: int) -> tuple[float, float]:
    """Return (wall, CPU) seconds per step of a hand-written PyTorch training loop."""
    torch.manual_seed(cfg.seed)
    device = device_of(cfg)
    model = build_model(cfg, splits.input_shape, 10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.optimizer.lr)
    data, done, epoch, start = loader(splits, cfg), 0, 0, 0.0
    while done < steps + WARMUP:
        data.set_epoch(epoch)
        for x, y in data:
            if done == WARMUP:
                sync(device)
                start, cpu_start = time.perf_counter(), time.thread_time()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == steps + WARMUP:
                break
        epoch += 1
    sync(device)
    return (time.perf_counter() - start) / steps, (time.thread_time() - cpu_start) / steps


class StepTimer(L.Callback):
    """Time the steps after the warm-up; stop training after `last_step`."""

    def __init__(self, last_step: int) -> None:
        self.last_step = last_step
        self.start = self.end = self.cpu_start = self.cpu_end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, idx):
        if trainer.global_step == WARMUP:
            sync(pl_module.device)
            self.start, self.cpu_start = time.perf_counter(), time.thread_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, idx):
        if trainer.global_step >= self.last_step:
            sync(pl_module.device)
            self.end, self.cpu_end = time.perf_counter(), time.thread_time()
            trainer.should_stop = True


class MonitorBefore(GradientFlowMonitor):
    """The monitor's activation work as it was before act/p*, act/deriv_mean and the histograms (commit
    ac6c396): mean, std and, for the ReLU family, the dead fraction of each output; nothing in backward."""

    def __init__(self, activation, every_n_steps: int):
        super().__init__(activation, every_n_steps)
        self.measures.families = [mn.ACT_MEAN, mn.ACT_STD, mn.ACT_DEAD]

    def _make_hook(self, index: int):
        def hook(module, inputs, output) -> None:
            y = output.detach().float()
            alive = (y > 0).transpose(0, 1).reshape(y.shape[1], -1).any(dim=1)
            self._act_stats[index] = [y.mean(), y.std(), (~alive).float().mean()]

        return hook


def harness(
    cfg,
    splits,
    steps: int,
    monitor: str,
    client,
    experiment_id: str,
    every_n_steps: int | None = None,
    sharpness_every: int | None = None,
) -> tuple[float, float]:
    """Return (wall, CPU) seconds per step of the harness (its own Trainer, MLflow logging) with the
    monitor "off", "on" (as configured, or every `every_n_steps`; with `sharpness_every`, the sharpness
    too) or "before" (`MonitorBefore`, every `every_n_steps`)."""
    every = every_n_steps or cfg.monitor.every_n_steps
    cfg = dataclasses.replace(
        cfg,
        monitor=dataclasses.replace(
            cfg.monitor, enabled=monitor == "on", every_n_steps=every, sharpness_every_n_steps=sharpness_every
        ),
        trainer=dataclasses.replace(cfg.trainer, progress="none", max_epochs=1000),
    )
    torch.manual_seed(cfg.seed)
    run_id = client.create_run(experiment_id, run_name=f"bench-monitor-{monitor}").info.run_id
    logger = MlflowRunLogger(client, run_id)
    timer = StepTimer(steps + WARMUP)
    callbacks = [timer] + ([MonitorBefore(cfg.activation, every)] if monitor == "before" else [])
    module = ClassifierModule(build_model(cfg, splits.input_shape, 10), cfg.optimizer, 10)
    with tempfile.TemporaryDirectory() as checkpoints:
        trainer, _ = build_trainer(cfg, Path(checkpoints), logger, callbacks=callbacks)
        trainer.fit(module, datamodule=TensorDataModule(splits, cfg.data, cfg.seed))
    logger.flush()
    tracking.end_run(client, run_id, outcomes.COMPLETED)
    return (timer.end - timer.start) / steps, (timer.cpu_end - timer.cpu_start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--accelerator", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--sharpness-every", type=int, default=50, help="(e): sharpness every N steps")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import logging

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    cfg = make_config(args.accelerator)
    splits = split(read_shapes(8000 + cfg.data.val_size, 10, cfg.data.generator_seed), cfg.data)
    store = Path(tempfile.mkdtemp()) / "mlflow.db"
    client = tracking.open_client(f"sqlite:///{store}")
    experiment_id = tracking.experiment_id(client, "bench")
    times: dict[str, list[tuple[float, float]]] = {"a": [], "b": [], "c": [], "d0": [], "d": [], "e": []}
    variants = {
        "a": lambda: plain_loop(cfg, splits, args.steps),
        "b": lambda: harness(cfg, splits, args.steps, "off", client, experiment_id),
        "c": lambda: harness(cfg, splits, args.steps, "on", client, experiment_id),
        "d0": lambda: harness(cfg, splits, args.steps, "before", client, experiment_id, every_n_steps=1),
        "d": lambda: harness(cfg, splits, args.steps, "on", client, experiment_id, every_n_steps=1),
        "e": lambda: harness(
            cfg, splits, args.steps, "on", client, experiment_id, sharpness_every=args.sharpness_every
        ),
    }
    shuffler = random.Random(0)
    for rep in range(args.repeats):
        order = list(variants)
        shuffler.shuffle(order)
        for name in order:
            times[name].append(variants[name]())
        timings = "  ".join(f"{k} {v[-1][0] * 1e3:.2f}/{v[-1][1] * 1e3:.2f} ms" for k, v in times.items())
        print(f"repeat {rep + 1} (order {','.join(order)}, wall/CPU): {timings}", flush=True)
    print(f"\nCNN depth 4, width {cfg.model.width}, batch {cfg.data.batch_size}, {args.steps} steps x "
          f"{args.repeats} repeats, torch threads {torch.get_num_threads()}, monitor every "
          f"{cfg.monitor.every_n_steps} steps in (c), sharpness every {args.sharpness_every} steps "
          f"({cfg.monitor.sharpness_iterations} iterations) in (e)")  # fmt: skip
    labels = {
        "a": "(a) plain PyTorch loop",
        "b": "(b) harness, monitor off",
        "c": "(c) harness, monitor on",
        "d0": "(d0) monitor before, every step",
        "d": "(d) monitor now, every step",
        "e": "(e) (c) and sharpness",
    }
    pairs = (("b", "a"), ("c", "b"), ("d0", "b"), ("d", "b"), ("d", "d0"), ("e", "c"))
    for column, clock in enumerate(("wall", "CPU (training thread)")):
        med = {k: statistics.median(t[column] for t in v) for k, v in times.items()}
        print(f"\n{clock}\n| variant | median ms/step |\n|---|---:|")
        for k, label in labels.items():
            print(f"| {label} | {med[k] * 1e3:.2f} |")
        print("   ".join(f"({x})/({y}) = {med[x] / med[y]:.3f}" for x, y in pairs) + "   (ratio of medians)")
        paired = {
            f"({x})/({y})": [vx[column] / vy[column] for vx, vy in zip(times[x], times[y], strict=True)]
            for x, y in pairs
        }
        summary = [f"{k} = {statistics.median(v):.3f} [{min(v):.3f}-{max(v):.3f}]" for k, v in paired.items()]
        print("   ".join(summary) + "   (median [range] of the ratios within each round)")


if __name__ == "__main__":
    main()
