"""Gradient-flow and activation monitor: per hidden layer gradient norms, update ratios, activation stats.

Works with any LightningModule that has `hidden_layers() -> [(weight layer, activation module), ...]`
and `hidden_biases() -> [bias or None, ...]`, ordered from the input. On a monitored step s (s = 0, N,
2N, ... of the optimiser's global step) it records, for the batch that produces update s:

- `grad/weight_l2/lNN`, `grad/weight_rms/lNN`, `grad/bias_l2/lNN`: norms of the gradients (the bias is
  batch norm's shift when the layer has none);
- `grad/update_ratio/lNN`: ||w_after - w_before|| / ||w_before|| of that optimiser step;
- `grad/first_to_last`: weight_rms of layer 1 / weight_rms of the last hidden layer;
- `weight/norm/lNN` (||W_s||) and `weight/distance_from_init/lNN` (||W_s - W_0|| / ||W_0||) of the
  weights before update s: how far each layer has moved from its random init (W_0 is kept on the device
  from step 0 and in the checkpoints, so a resumed run continues the same distances);
- with `activations` (forward hooks that exist only during monitored steps), for each activation's
  output y = f(z): `act/mean`, `act/std`, `act/zero_fraction` (values exactly 0: the sparsity of ReLU
  outputs), `act/dead` (ReLU family: units dead for the whole batch) over the whole output;
  `act/p02`, `act/p50`, `act/p98` (percentiles of y), `act/deriv_mean` (mean of f'(z)) and
  `act/saturated` (fraction of f'(z) below `activation.saturated.derivative_below` x max f') over the
  layer's sample; and histograms of y and of the gradient of the loss with respect to y (a hook on the
  output tensor, run during the backward pass) over the same sample, kept in `histograms`
  (`actstudy.monitor.histograms` writes them as the run's artifact).

A layer's sample is all of its output when that has at most SAMPLE_SIZE values, else SAMPLE_SIZE fixed
positions drawn once per output shape with a private generator (training's random stream is untouched):
exact on small layers, while binning the million values of a CNN's first layer alone costs about as
much as a whole training step on a CPU (docs/benchmarks.md). f'(z) comes from autograd on the
activation module itself (`actstudy.monitor.activation_facts`), so every activation file works without
a formula.

Everything stays on the training device until the end of a monitored step, where one `.tolist()` moves
it to the host and one `log_metrics` call sends it to the logger. Steps that are not monitored do no
extra work and no host synchronisation.

Under DDP the monitor runs on rank 0 only. Gradients are read after DDP's all-reduce, so the gradient
norms are those of the whole global batch (the same as one process on the same batch); the activation
statistics cover rank 0's shard of the batch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, Protocol, cast

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from actstudy import metric_names as mn
from actstudy.config.schema import ActivationConfig
from actstudy.monitor.activation_facts import binned_range, derivative, derivative_max
from actstudy.monitor.histogram_file import GRADIENT_DECADES, gradient_edges
from actstudy.monitor.histograms import HistogramHistory

SAMPLE_SIZE = 4096  # values per layer for percentiles, f'(z) and histograms
ACTIVATION_BINS = 50
QUANTILES = (0.02, 0.5, 0.98)
_GRADIENT_EDGES = gradient_edges()
# Gradients are binned as t = sign(g) * max(log10|g| - GRADIENT_DECADES[0] + half a bin, 0), so that
# |g| <= 1e-10 (zeros too) falls in the middle bin and the others in equal bins of log10|g|.
_HALF_BIN = (math.log10(_GRADIENT_EDGES[-1]) - GRADIENT_DECADES[0]) / (len(_GRADIENT_EDGES) - 2)
_T_MAX = GRADIENT_DECADES[1] - GRADIENT_DECADES[0] + _HALF_BIN


class ActivationMeasures:
    """What the monitor computes on one activation's input and output; the statistics' names in `families`."""

    def __init__(self, activation: ActivationConfig):
        self.saturation_below = (
            activation.saturated.derivative_below * derivative_max(activation.module)
            if activation.saturated is not None
            else None
        )
        self.dead_max_output = activation.dead.max_output if activation.dead is not None else None
        self.low, self.high = binned_range(activation.module)
        self.families = [mn.ACT_MEAN, mn.ACT_STD, mn.ACT_ZERO_FRACTION, mn.ACT_DERIV_MEAN]
        self.families += [mn.ACT_P02, mn.ACT_P50, mn.ACT_P98]
        self.families += [mn.ACT_SATURATED] if self.saturation_below is not None else []
        self.families += [mn.ACT_DEAD] if self.dead_max_output is not None else []

    def activation_edges(self) -> np.ndarray:
        """Return the fixed edges of the activation histograms: ACTIVATION_BINS over f([-6, 6])."""
        return np.linspace(self.low, self.high, ACTIVATION_BINS + 1)

    def statistics(
        self, module: nn.Module, z: Tensor, y: Tensor, sample: Tensor | None
    ) -> tuple[list[Tensor], Tensor]:
        """Return (the values of `families` as 0-d tensors, the histogram of y's sample) for an activation's
        input `z` and output `y`; `sample`: flat positions of the layer's sample (None: every value)."""
        y = y.detach().float()
        values = [y.mean(), y.std(), (y == 0).float().mean()]
        y_s, z_s = _take(y, sample), _take(z.detach().float(), sample)
        slope = derivative(module, z_s)
        values.append(slope.mean())
        values += percentiles(y_s)
        if self.saturation_below is not None:
            values.append((slope < self.saturation_below).float().mean())
        if self.dead_max_output is not None:
            alive = (y > self.dead_max_output).transpose(0, 1).reshape(y.shape[1], -1).any(dim=1)
            values.append((~alive).float().mean())
        with _histc_allowed(y):
            counts = torch.histc(y_s.clamp(self.low, self.high), ACTIVATION_BINS, self.low, self.high)
        return values, counts


def percentiles(v: Tensor) -> list[Tensor]:
    """Return the QUANTILES of the 1-d `v` as 0-d tensors, as `torch.quantile` (linear interpolation)
    computes them, by selecting the order statistics needed (`kthvalue`) instead of sorting: cheaper."""
    n, out = v.numel(), []
    for q in QUANTILES:
        position = q * (n - 1)
        below = math.floor(position)
        low = v.kthvalue(below + 1).values
        fraction = position - below
        out.append(low + fraction * (v.kthvalue(below + 2).values - low) if fraction > 0 else low)
    return out


def gradient_histogram(grad: Tensor, sample: Tensor | None) -> Tensor:
    """Return the counts of the sampled gradient values in the bins of `histogram_file.gradient_edges`."""
    g = _take(grad.detach().float(), sample)
    t = torch.sign(g) * (torch.log10(g.abs()) - GRADIENT_DECADES[0] + _HALF_BIN).clamp(min=0)
    bins = len(_GRADIENT_EDGES) - 1
    with _histc_allowed(g):
        return torch.histc(t.clamp(-_T_MAX, _T_MAX), bins, -_T_MAX, _T_MAX)


def _take(t: Tensor, sample: Tensor | None) -> Tensor:
    flat = t.reshape(-1)
    return flat if sample is None else flat.index_select(0, sample)


@contextlib.contextmanager
def _histc_allowed(t: Tensor) -> Iterator[None]:
    """Let `torch.histc` run on CUDA in deterministic mode, which refuses it because it adds with atomics:
    adding 1.0 is exact in any order below 2^24 per bin (SAMPLE_SIZE is far below): counts repeat exactly."""
    if t.device.type != "cuda" or not torch.are_deterministic_algorithms_enabled():
        yield
        return
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(True, warn_only=warn_only)


def activation_stats(
    module: nn.Module, z: Tensor, activation: ActivationConfig, sample: Tensor | None = None
) -> dict[str, Tensor]:
    """Return {family: 0-d tensor} of the statistics the monitor logs for `module` applied to `z` (tests)."""
    measures = ActivationMeasures(activation)
    values, _ = measures.statistics(module, z, module(z), sample)
    return dict(zip(measures.families, values, strict=True))


class MonitoredModule(Protocol):
    """What the monitor asks of the LightningModule it watches (see above)."""

    def hidden_layers(self) -> list[tuple[nn.Module, nn.Module]]: ...

    def hidden_biases(self) -> list[Tensor | None]: ...


def _weight(layer: nn.Module) -> Tensor:
    # a weight layer's `weight` is a Parameter; nn.Module's attribute lookup is typed Tensor | Module
    return cast(Tensor, layer.weight)


def _norms(tensors: list[Tensor]) -> Tensor:
    """Return the L2 norm of each tensor as one 1-d tensor, on the tensors' device (no host sync)."""
    return torch.stack([torch.linalg.vector_norm(t) for t in tensors])


class GradientFlowMonitor(L.Callback):
    """Record gradient-flow and activation statistics at step 0 and every `every_n_steps` steps."""

    def __init__(self, activation: ActivationConfig, every_n_steps: int = 50, activations: bool = True):
        self.activation = activation
        self.every_n_steps = every_n_steps
        self.track_activations = activations
        self.measures = ActivationMeasures(activation)
        self.histograms = HistogramHistory(self.measures.activation_edges(), _GRADIENT_EDGES)
        self._step: int | None = None
        self._handles: list[RemovableHandle] = []
        self._act_stats: dict[int, list[Tensor]] = {}
        self._act_hist: dict[int, Tensor] = {}
        self._grad_hist: dict[int, Tensor] = {}
        self._samples: dict[tuple[int, int, torch.device], Tensor | None] = {}
        self._grad_stats: tuple[Tensor, Tensor, Tensor | None] | tuple[()] = ()  # weight L2, RMS, bias L2
        self._weights_before: list[Tensor] = []
        self._initial_weights: list[Tensor] | None = None  # W_0, from step 0 or the checkpoint
        self._last_logged: int | None = None

    def state_dict(self) -> dict[str, Any]:
        """Return W_0 (tensors: checkpoints load with `weights_only`); empty before step 0 was recorded."""
        return {"initial_weights": self._initial_weights} if self._initial_weights is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._initial_weights = state_dict.get("initial_weights")

    @staticmethod
    def _layers(pl_module: L.LightningModule) -> list[tuple[nn.Module, nn.Module]]:
        return cast(MonitoredModule, pl_module).hidden_layers()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int):
        step = trainer.global_step
        if not trainer.is_global_zero or step % self.every_n_steps != 0 or step == self._last_logged:
            return
        self._step = step
        self._act_stats, self._act_hist, self._grad_hist = {}, {}, {}
        if self.track_activations:
            for i, (_, act) in enumerate(self._layers(pl_module)):
                self._handles.append(act.register_forward_hook(self._make_hook(i)))

    def _sample(self, index: int, y: Tensor) -> Tensor | None:
        """Return layer `index`'s fixed sample positions for an output like `y` (None: all of it)."""
        key = (index, y.numel(), y.device)
        if key not in self._samples:
            if y.numel() <= SAMPLE_SIZE:
                self._samples[key] = None
            else:
                generator = torch.Generator().manual_seed(index)
                positions = torch.randint(y.numel(), (SAMPLE_SIZE,), generator=generator)
                self._samples[key] = positions.to(y.device)
        return self._samples[key]

    def _make_hook(self, index: int):
        def hook(module: nn.Module, inputs: Any, output: Tensor) -> None:
            sample = self._sample(index, output)
            stats, counts = self.measures.statistics(module, inputs[0], output, sample)
            self._act_stats[index], self._act_hist[index] = stats, counts
            if output.requires_grad:  # called with d loss / d output during the backward pass
                output.register_hook(
                    lambda g: self._grad_hist.__setitem__(index, gradient_histogram(g, sample))
                )

        return hook

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any):
        if self._step is None:
            return
        self._remove_hooks()  # the forward pass of this step is over
        layers = self._layers(pl_module)
        weights = [_weight(layer) for layer, _ in layers]
        biases = [b for b in cast(MonitoredModule, pl_module).hidden_biases() if b is not None]
        grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in weights]
        grads += [b.grad if b.grad is not None else torch.zeros_like(b) for b in biases]
        norms = _norms(grads)
        weight_l2 = norms[: len(weights)]
        sizes = torch.tensor([w.numel() for w in weights], device=weight_l2.device, dtype=weight_l2.dtype)
        weight_rms = weight_l2 / sizes.sqrt()
        bias_l2 = norms[len(weights) :] if biases else None
        self._grad_stats = (weight_l2, weight_rms, bias_l2)
        self._weights_before = [w.detach().clone() for w in weights]
        if self._initial_weights is None and self._step == 0:
            self._initial_weights = list(self._weights_before)  # never changed in place: shared, not copied

    def _histogram_rows(self, device: torch.device) -> tuple[Tensor, Tensor] | None:
        """Return (activation counts, gradient counts) as layers x bins tensors; NaN where a layer's
        gradient never came (None without activation hooks)."""
        if not self._act_hist:
            return None
        layers = sorted(self._act_hist)
        missing = torch.full((len(_GRADIENT_EDGES) - 1,), math.nan, device=device)
        grads = [self._grad_hist.get(i, missing) for i in layers]
        return torch.stack([self._act_hist[i] for i in layers]), torch.stack(grads)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch, idx):
        if self._step is None:
            return
        self._remove_hooks()
        step, self._step = self._step, None
        if not self._grad_stats:  # the optimiser step was skipped (e.g. no gradients)
            return
        weights = [_weight(layer).detach() for layer, _ in self._layers(pl_module)]
        delta = _norms([w - b for w, b in zip(weights, self._weights_before, strict=True)])
        before = _norms(self._weights_before)
        weight_l2, weight_rms, bias_l2 = self._grad_stats
        rows = {
            mn.GRAD_WEIGHT_L2: weight_l2,
            mn.GRAD_WEIGHT_RMS: weight_rms,
            mn.GRAD_UPDATE_RATIO: delta / before,
        }
        if bias_l2 is not None:
            rows[mn.GRAD_BIAS_L2] = bias_l2
        rows[mn.WEIGHT_NORM] = before
        if self._initial_weights is not None:
            initial = [
                w0.to(b.device) for w0, b in zip(self._initial_weights, self._weights_before, strict=True)
            ]
            self._initial_weights = initial  # on the device after a resume's first use
            moved = _norms([b - w0 for b, w0 in zip(self._weights_before, initial, strict=True)])
            rows[mn.WEIGHT_DISTANCE] = moved / _norms(initial)
        if self._act_stats:
            stats = torch.stack([torch.stack(self._act_stats[i]) for i in sorted(self._act_stats)])
            for col, name in enumerate(self.measures.families):
                rows[name] = stats[:, col]
        names = list(rows)
        parts = [rows[n].float().flatten() for n in names] + [(weight_rms[0] / weight_rms[-1])[None]]
        histograms = self._histogram_rows(weight_rms.device)
        if histograms is not None:
            parts += [h.float().flatten() for h in histograms]
        host = torch.cat(parts).tolist()  # the one host sync of a monitored step
        metrics: dict[str, float] = {}
        offset = 0
        for name in names:
            for i in range(rows[name].numel()):
                metrics[mn.layer_key(name, i + 1)] = host[offset + i]
            offset += rows[name].numel()
        metrics[mn.GRAD_FIRST_TO_LAST] = host[offset]
        offset += 1
        if histograms is not None:
            (layers, a_bins), g_bins = histograms[0].shape, histograms[1].shape[1]
            act = [host[offset + i * a_bins : offset + (i + 1) * a_bins] for i in range(layers)]
            offset += layers * a_bins
            grad = [host[offset + i * g_bins : offset + (i + 1) * g_bins] for i in range(layers)]
            self.histograms.add(step, act, grad)
        self._grad_stats, self._weights_before = (), []
        self._act_hist, self._grad_hist = {}, {}
        self._last_logged = step
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
