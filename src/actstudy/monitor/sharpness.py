"""The training loss's sharpness: its Hessian's top eigenvalue on a fixed batch, by power iteration.

Gradient descent with step size lr is unstable along any direction whose curvature exceeds 2 / lr; full-
batch training drives the sharpness up to that limit ("edge of stability", Cohen et al. 2021). Logged
beside 2 / lr, it says why a run diverged. Each Hessian-vector product is a double backward (public
`torch.autograd.grad` with `create_graph`), so a measurement costs about `iterations` backward passes:
it runs every `every_n_steps` steps only, on rank 0, and changes nothing of training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import lightning as L
import torch
from torch import Tensor, nn

from actstudy import metric_names as mn

if TYPE_CHECKING:
    from actstudy.training.module import ClassifierModule

LossFn = Callable[[Tensor, Tensor], Tensor]


def top_hessian_eigenvalue(
    model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, iterations: int, seed: int = 0
) -> Tensor:
    """Return the largest eigenvalue of the Hessian of `loss_fn(model(x), y)` over the model's trainable
    parameters, after `iterations` power-iteration steps (a 0-d tensor on the model's device).

    Power iteration finds the eigenvalue of largest magnitude, which near initialisation is often a
    negative one; when it is, a second run on H - lambda I (whose spectrum is then >= 0) finds the top
    one. The start vector comes from a private generator seeded with `seed`; the model's buffers (batch
    norm's running statistics) are left as they were, so the measurement leaves no trace on training.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    # copies of the buffers take batch norm's running-statistics update; the model's own stay as they are
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    logits = torch.func.functional_call(model, buffers, (x,))
    grads = torch.autograd.grad(loss_fn(logits, y), params, create_graph=True)

    def hvp(v: list[Tensor]) -> list[Tensor]:
        return [h.detach() for h in torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)]

    generator = torch.Generator().manual_seed(seed)
    start = _normalised(
        [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in params]
    )
    largest = _power_iteration(hvp, start, iterations)
    if largest.item() >= 0:
        return largest

    def shifted(v: list[Tensor]) -> list[Tensor]:
        return [h - largest * t for h, t in zip(hvp(v), v, strict=True)]

    return _power_iteration(shifted, start, iterations) + largest


def _power_iteration(operator: Callable[[list[Tensor]], list[Tensor]], v: list[Tensor], steps: int) -> Tensor:
    """Return the Rayleigh quotient v'Av after `steps` power-iteration steps of `operator` A from `v`."""
    quotient = torch.zeros((), device=v[0].device, dtype=v[0].dtype)
    for _ in range(steps):
        av = operator(v)
        # sum() starts from 0, and 0 + a tensor is a tensor (v is never empty)
        quotient = cast(Tensor, sum((a * b).sum() for a, b in zip(v, av, strict=True)))
        v = _normalised(av)
    return quotient


def _normalised(vectors: list[Tensor]) -> list[Tensor]:
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in vectors]))
    return [t / norm.clamp_min(torch.finfo(t.dtype).tiny) for t in vectors]


class SharpnessMonitor(L.Callback):
    """Log `curv/sharpness` and `curv/two_over_lr` at step 0 and every `every_n_steps` steps.

    Measured before the step's own forward pass, on the weights that step starts from and the first
    batch it saw (kept in the checkpoint, so a resumed run measures on the same batch).
    """

    def __init__(self, every_n_steps: int, iterations: int):
        self.every_n_steps = every_n_steps
        self.iterations = iterations
        self._batch: tuple[Tensor, Tensor] | None = None
        self._last_logged: int | None = None

    def state_dict(self) -> dict[str, Any]:
        """Return the fixed batch (tensors, on the host); empty before the first measurement."""
        return {"batch": [t.cpu() for t in self._batch]} if self._batch is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        batch = state_dict.get("batch")
        self._batch = (batch[0], batch[1]) if batch is not None else None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int):
        step = trainer.global_step
        if not trainer.is_global_zero or step % self.every_n_steps != 0 or step == self._last_logged:
            return
        if self._batch is None:
            self._batch = (batch[0].detach().clone(), batch[1].detach().clone())
        x, y = (t.to(batch[0].device) for t in self._batch)
        module = cast("ClassifierModule", pl_module)  # the module actstudy trains (training.trainer)
        sharpness = top_hessian_eigenvalue(module.model, module.loss_fn, x, y, self.iterations, step)
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        self._last_logged = step
        metrics = {mn.CURV_SHARPNESS: sharpness.item(), mn.CURV_TWO_OVER_LR: 2.0 / lr}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
