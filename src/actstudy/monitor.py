"""Gradient-flow and activation monitor: per hidden layer gradient norms, update ratios, activation stats.

Works with any LightningModule that has `hidden_layers() -> [(weight layer, activation module), ...]`
and `hidden_biases() -> [bias or None, ...]`, ordered from the input. On a monitored step s (s = 0, N,
2N, ... of the optimiser's global step) it records, for the batch that produces update s:

- `grad/weight_l2/lNN`, `grad/weight_rms/lNN`, `grad/bias_l2/lNN`: norms of the gradients (the bias is
  batch norm's shift when the layer has none);
- `grad/update_ratio/lNN`: ||w_after - w_before|| / ||w_before|| of that optimiser step;
- `grad/first_to_last`: weight_rms of layer 1 / weight_rms of the last hidden layer;
- `act/mean`, `act/std`, `act/saturated`, `act/dead` of each activation's output (forward hooks that
  exist only during monitored steps).

Everything stays on the training device until the end of a monitored step, where one `.tolist()` moves
it to the host and one `log_metrics` call sends it to the logger. Steps that are not monitored do no
extra work and no host synchronisation.

Under DDP the monitor runs on rank 0 only. Gradients are read after DDP's all-reduce, so the gradient
norms are those of the whole global batch (the same as one process on the same batch); the activation
statistics cover rank 0's shard of the batch.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from actstudy import metric_names as mn
from actstudy.config import ActivationConfig

#: The families of `activation_stats`, in its order. NaN values (undefined for the activation) are not logged.
ACT_FAMILIES = (mn.ACT_MEAN, mn.ACT_STD, mn.ACT_SATURATED, mn.ACT_DEAD)


def activation_stats(y: Tensor, activation: ActivationConfig) -> list[Tensor]:
    """Return [mean, std, saturated fraction, dead fraction] of one activation output, as 0-d tensors.

    Saturated: fraction of output values outside (low, high) of the activation's config. Dead: fraction
    of units (MLP neurons, CNN channels) whose output is <= dead.max_output for every example and position.
    Undefined statistics are NaN so that every layer reports the same keys.
    """
    y = y.detach().float()
    nan = torch.full((), math.nan, device=y.device)
    sat = activation.saturated
    saturated = ((y < sat.low) | (y > sat.high)).float().mean() if sat is not None else nan
    if activation.dead is not None:
        alive = (y > activation.dead.max_output).transpose(0, 1).reshape(y.shape[1], -1).any(dim=1)
        dead = (~alive).float().mean()
    else:
        dead = nan
    return [y.mean(), y.std(), saturated, dead]


def _norms(tensors: list[Tensor]) -> Tensor:
    """Return the L2 norm of each tensor as one 1-d tensor, on the tensors' device (no host sync)."""
    return torch.stack([torch.linalg.vector_norm(t) for t in tensors])


class GradientFlowMonitor(L.Callback):
    """Record gradient-flow and activation statistics at step 0 and every `every_n_steps` steps."""

    def __init__(self, activation: ActivationConfig, every_n_steps: int = 50, activations: bool = True):
        self.activation = activation
        self.every_n_steps = every_n_steps
        self.track_activations = activations
        self._step: int | None = None
        self._handles: list[RemovableHandle] = []
        self._act_stats: dict[int, list[Tensor]] = {}
        self._grad_stats: list[Tensor] = []
        self._weights_before: list[Tensor] = []
        self._last_logged: int | None = None

    @staticmethod
    def _layers(pl_module: L.LightningModule) -> list[tuple[nn.Module, nn.Module]]:
        return pl_module.hidden_layers()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int):
        step = trainer.global_step
        if not trainer.is_global_zero or step % self.every_n_steps != 0 or step == self._last_logged:
            return
        self._step = step
        self._act_stats = {}
        if self.track_activations:
            for i, (_, act) in enumerate(self._layers(pl_module)):
                self._handles.append(act.register_forward_hook(self._make_hook(i)))

    def _make_hook(self, index: int):
        def hook(module: nn.Module, inputs: Any, output: Tensor) -> None:
            self._act_stats[index] = activation_stats(output, self.activation)

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
        weights = [layer.weight for layer, _ in layers]
        biases = [b for b in pl_module.hidden_biases() if b is not None]
        grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in weights]
        grads += [b.grad if b.grad is not None else torch.zeros_like(b) for b in biases]
        norms = _norms(grads)
        weight_l2 = norms[: len(weights)]
        sizes = torch.tensor([w.numel() for w in weights], device=weight_l2.device, dtype=weight_l2.dtype)
        weight_rms = weight_l2 / sizes.sqrt()
        bias_l2 = norms[len(weights) :] if biases else None
        self._grad_stats = [weight_l2, weight_rms, bias_l2]
        self._weights_before = [w.detach().clone() for w in weights]

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch, idx):
        if self._step is None:
            return
        self._remove_hooks()
        step, self._step = self._step, None
        if not self._grad_stats:  # the optimiser step was skipped (e.g. no gradients)
            return
        weights = [layer.weight.detach() for layer, _ in self._layers(pl_module)]
        delta = _norms([w - b for w, b in zip(weights, self._weights_before, strict=True)])
        ratio = delta / _norms(self._weights_before)
        weight_l2, weight_rms, bias_l2 = self._grad_stats
        rows = {mn.GRAD_WEIGHT_L2: weight_l2, mn.GRAD_WEIGHT_RMS: weight_rms, mn.GRAD_UPDATE_RATIO: ratio}
        if bias_l2 is not None:
            rows[mn.GRAD_BIAS_L2] = bias_l2
        if self._act_stats:
            stats = torch.stack([torch.stack(self._act_stats[i]) for i in sorted(self._act_stats)])
            for col, name in enumerate(ACT_FAMILIES):
                rows[name] = stats[:, col]
        names = list(rows)
        values = torch.cat(
            [rows[n].float().flatten() for n in names] + [(weight_rms[0] / weight_rms[-1])[None]]
        )
        host = values.tolist()  # the one host sync of a monitored step
        metrics: dict[str, float] = {}
        offset = 0
        for name in names:
            for i in range(rows[name].numel()):
                value = host[offset + i]
                if not math.isnan(value) or name not in ACT_FAMILIES:
                    metrics[mn.layer_key(name, i + 1)] = value
            offset += rows[name].numel()
        metrics[mn.GRAD_FIRST_TO_LAST] = host[-1]
        self._grad_stats, self._weights_before = [], []
        self._last_logged = step
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
