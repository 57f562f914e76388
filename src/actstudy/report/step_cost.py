"""What a training step costs per activation: a paired, interleaved micro-benchmark in one process.

The runs' own step times cannot rank activations on a shared machine (the same job's step time varied
2-17x with the machine's load), so the step-cost claim reads this instead: the same CNN built with each
activation, one forward + backward step each per round in a shuffled order, so that a round's steps see
the same load, and the paired ratio (activation / ReLU) per round summarised as a 95 % t-interval of the
log ratios. The activation alone (forward + backward on the step's hidden outputs) is timed too, to say
what share of the step it is: on a CPU the convolutions dominate, on a GPU the step may be memory-bound.

    python -m actstudy.report.step_cost [--depth 8] [--width 32] [--batch 32] [--rounds 15]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from actstudy.models.cnn import CNN
from actstudy.paths import CONF_DIR
from actstudy.report.stats import Interval, interval

BASELINE = "relu"
INPUT_SHAPE, CLASSES = (3, 32, 32), 10  # CIFAR-10's


@dataclass(frozen=True)
class StepCost:
    """Per-activation step times (median ms) on one device, and each one's paired ratio to ReLU's."""

    device: str
    step_ms: dict[str, float]
    ratios: dict[str, Interval]  # activation / relu step time, one pair per round
    activation_ms: dict[str, float]  # the activation alone, forward + backward, on the step's hidden outputs
    depth: int
    batch: int

    def text(self) -> str:
        """Return e.g. "sigmoid / relu step time 1.04 [1.02, 1.05] (n=15); ... (depth-8 CNN, batch 32)"."""
        ratios = "; ".join(
            f"{a} / {BASELINE} step time {r.text(lambda v: f'{v:.3g}')}" for a, r in self.ratios.items()
        )
        steps = ", ".join(
            f"{a} {ms:.3g} ms (activation alone {self.activation_ms[a]:.2g} ms, "
            f"{100 * self.activation_ms[a] / ms:.2g} %)"
            for a, ms in self.step_ms.items()
        )
        return f"{ratios}; per step: {steps} (depth-{self.depth} CNN, batch {self.batch}, median of rounds)"


def activation_module(name: str) -> Callable[[], nn.Module]:
    """Return a factory of the activation module `conf/activation/<name>.yaml` names."""
    module = OmegaConf.load(CONF_DIR / "activation" / f"{name}.yaml").module
    return lambda: instantiate(module)


def device_text(device: torch.device) -> str:
    """Return the device as the verdict names it: "cuda (NVIDIA H200)" or "cpu (2 threads)"."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads > 1 else ''})"


def _timed(fn: Callable[[], None], device: torch.device) -> float:
    """Return `fn`'s wall time in ms, synchronised on a GPU so the time covers the kernels."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 1000 * (time.perf_counter() - start)


def _hidden_inputs(model: nn.Module, x: torch.Tensor, kind: type) -> list[torch.Size]:
    """Return the shapes of the inputs of `model`'s activation modules (of type `kind`) on `x`."""
    shapes: list[torch.Size] = []
    handles = [m.register_forward_hook(lambda m, i, o: shapes.append(i[0].shape)) for m in model.modules()
               if isinstance(m, kind)]  # fmt: skip
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return shapes


def measure_step_cost(
    activations: tuple[str, ...] = ("relu", "sigmoid", "tanh"),
    depth: int = 8,
    width: int = 32,
    batch: int = 32,
    rounds: int = 15,
    device: torch.device | None = None,
    seed: int = 0,
) -> StepCost:
    """Return the step cost of each of `activations` (ReLU among them, the baseline) on `device` (the GPU
    if there is one, else the CPU), from `rounds` interleaved rounds after one warm-up round."""
    if BASELINE not in activations:
        raise ValueError(f"activations={activations}: the ratios are to {BASELINE}, which must be among them")
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *INPUT_SHAPE, generator=generator).to(device)
    y = torch.randint(0, CLASSES, (batch,), generator=generator).to(device)
    steps, alone = {}, {}
    for name in activations:
        make = activation_module(name)
        torch.manual_seed(seed)
        model = CNN(INPUT_SHAPE, CLASSES, depth, make, width, batch_norm=False, max_pools=3).to(device)
        optimiser = torch.optim.SGD(model.parameters(), lr=1e-3)
        act = make().to(device)
        inputs = [
            torch.randn(s, device=device, requires_grad=True) for s in _hidden_inputs(model, x, type(act))
        ]

        def step(model=model, optimiser=optimiser) -> None:
            optimiser.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            optimiser.step()

        def activation_only(act=act, inputs=inputs) -> None:
            for z in inputs:
                act(z).sum().backward()

        steps[name], alone[name] = step, activation_only
    order = list(activations)
    rng = random.Random(seed)
    times: dict[str, list[float]] = {a: [] for a in activations}
    alone_times: dict[str, list[float]] = {a: [] for a in activations}
    for r in range(rounds + 1):
        rng.shuffle(order)
        for name in order:
            step_ms, act_ms = _timed(steps[name], device), _timed(alone[name], device)
            if r:  # round 0 warms up (allocator, kernels, caches)
                times[name].append(step_ms)
                alone_times[name].append(act_ms)
    base = times[BASELINE]
    ratios = {
        a: interval((t / b for t, b in zip(times[a], base, strict=True)), log=True)
        for a in activations
        if a != BASELINE
    }
    return StepCost(
        device_text(device),
        {a: statistics.median(t) for a, t in times.items()},
        # not None: the step times are positive (and with no rounds, the medians above raise)
        cast(dict[str, Interval], ratios),
        {a: statistics.median(t) for a, t in alone_times.items()},
        depth,
        batch,
    )


def main(argv: list[str] | None = None) -> None:
    """Print the step cost of ReLU, sigmoid and tanh on this machine's device."""
    parser = argparse.ArgumentParser(prog="python -m actstudy.report.step_cost", description=main.__doc__)
    for flag, default in (
        ("--depth", 8),
        ("--width", 32),
        ("--batch", 32),
        ("--rounds", 15),
        ("--threads", 0),
    ):
        parser.add_argument(flag, type=int, default=default)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cost = measure_step_cost(depth=args.depth, width=args.width, batch=args.batch, rounds=args.rounds)
    print(f"{cost.device}: {cost.text()}")


if __name__ == "__main__":
    main()
