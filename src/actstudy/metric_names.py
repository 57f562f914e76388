"""Metric names: the one home of the keys that training logs and the report reads.

Per-layer metrics are a family name plus the layer: ``layer_key(ACT_DEAD, 3) == "act/dead/l03"``. Layers are
numbered from the input side, 1-based, two digits. Import-light (no torch, no MLflow).
"""

from __future__ import annotations

import re

TRAIN_LOSS = "train/loss"
TRAIN_ACC = "train/acc"
VAL_LOSS = "val/loss"
VAL_ACC = "val/acc"
TEST_LOSS = "test/loss"
TEST_ACC = "test/acc"
SPLIT_METRICS = (TRAIN_LOSS, TRAIN_ACC, VAL_LOSS, VAL_ACC, TEST_LOSS, TEST_ACC)  # mean loss and accuracy
# The checkpoint of the best validation accuracy: that accuracy, and its test loss and accuracy. Unlike
# the final weights' numbers above, these can rank settings whose training is noisy at the end.
VAL_ACC_BEST = "val/acc_best"
TEST_AT_BEST_VAL = "test_best"  # the split name of the second test (test_best/loss, test_best/acc)
TEST_BEST_ACC = "test_best/acc"
# Logged with the first test: how many test images the accuracies are over (a one-seed comparison's
# binomial interval needs it) and the accuracy of a uniform guess, 1 / number of classes.
TEST_EXAMPLES = "test/examples"
TEST_CHANCE_ACC = "test/chance_acc"


def split_key(split: str, measure: str) -> str:
    """Return the key of `measure` ("loss" or "acc") on `split` ("train", "val" or "test"), e.g. "val/acc"."""
    return f"{split}/{measure}"


# Per-layer families of the gradient-flow monitor.
GRAD_WEIGHT_L2 = "grad/weight_l2"
GRAD_WEIGHT_RMS = "grad/weight_rms"  # weight_l2 / sqrt(number of weights)
GRAD_BIAS_L2 = "grad/bias_l2"
GRAD_UPDATE_RATIO = "grad/update_ratio"  # ||w_after - w_before|| / ||w_before|| of one optimiser step
ACT_MEAN = "act/mean"
ACT_STD = "act/std"
ACT_SATURATED = "act/saturated"
ACT_DEAD = "act/dead"  # fraction of units (channels) whose output is dead over the whole batch
ACT_ZERO_FRACTION = "act/zero_fraction"  # fraction of output values exactly 0: the note's sparsity
ACT_DERIV_MEAN = "act/deriv_mean"  # mean of f'(z) at the layer's pre-activations z (sigmoid: <= 0.25)
ACT_P02 = "act/p02"  # percentiles of the layer's outputs (Glorot & Bengio 2010, Fig. 2)
ACT_P50 = "act/p50"
ACT_P98 = "act/p98"

WEIGHT_NORM = "weight/norm"  # ||W_s|| of the hidden layer's weight at monitored step s
WEIGHT_DISTANCE = "weight/distance_from_init"  # ||W_s - W_0|| / ||W_0||: how far the layer moved

PERF_STEP_MS = "perf/step_ms"  # wall time per training step over a logging window (timed, not trained)
TIMED_PREFIXES = ("system/", "perf/")  # metrics of wall time, which no two runs repeat

# The training loss's sharpness (top Hessian eigenvalue on a fixed batch) and the step size's stability
# limit 2 / lr: plain gradient descent is unstable once sharpness exceeds it (Cohen et al. 2021).
CURV_SHARPNESS = "curv/sharpness"
CURV_TWO_OVER_LR = "curv/two_over_lr"

GRAD_FIRST_TO_LAST = "grad/first_to_last"  # GRAD_WEIGHT_RMS of layer 1 / that of the last hidden layer

# Logged once, when a job ends completed or diverged (at its last step), for the MLflow UI's runs table:
# its columns show a metric's last value, and a ratio of 1e-5 needs its log10 to be read beside 1.
SUMMARY = "summary/"  # written by the job as it ends (jobs/job.py), not by the run's metrics writer
SUMMARY_TEST_ACC = SUMMARY + "test_acc"  # test accuracy at the best-validation checkpoint, else the final
SUMMARY_LOG10_FIRST_TO_LAST_0 = SUMMARY + "log10_first_to_last_step0"  # log10 grad/first_to_last at step 0
SUMMARY_LOG10_FIRST_TO_LAST_END = SUMMARY + "log10_first_to_last_end"  # the same @end

_LAYER_KEY = re.compile(r"^(?P<family>.+)/l(?P<layer>\d+)$")


def layer_suffix(layer: int | str) -> str:
    """Return the suffix of a 1-based layer number, ``"l01"`` for 1; a string (``"NN"``, ``"*"``) for text."""
    return f"l{layer:02d}" if isinstance(layer, int) else f"l{layer}"


def layer_key(family: str, layer: int | str) -> str:
    """Return the metric key of layer ``layer`` (1-based) of a per-layer family, e.g. ``"act/dead/l03"``."""
    return f"{family}/{layer_suffix(layer)}"


def parse_layer_key(key: str) -> tuple[str, int] | None:
    """Return ``(family, layer)`` of a per-layer metric key, or None when ``key`` is not one."""
    m = _LAYER_KEY.match(key)
    return (m.group("family"), int(m.group("layer"))) if m else None
