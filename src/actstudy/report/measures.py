"""Per-run numbers, the one home of each: tables, claims, run descriptions, `runs list` and a job's end
line all read them here. Each is named with its direction (first / last: the input side over the output
side) and its time point: step 0, or @end, the mean of the last monitored steps (`stats.end_value`).
"""

from __future__ import annotations

import math
import statistics

from actstudy import metric_names as mn
from actstudy.report.collect import RunData
from actstudy.report.stats import end_value


def test_acc(run: RunData) -> float | None:
    """Return the test accuracy of the final weights, or None."""
    return run.last(mn.TEST_ACC)


def test_acc_at_best_val(run: RunData) -> float | None:
    """Return the test accuracy of the best-validation checkpoint, or None."""
    return run.last(mn.TEST_BEST_ACC)


def best_val_acc(run: RunData) -> float | None:
    """Return the best validation accuracy (logged at the end, else the best logged value), or None."""
    logged = run.last(mn.VAL_ACC_BEST)
    return logged if logged is not None else run.best(mn.VAL_ACC)


def grad_first_to_last(run: RunData, at_end: bool = False) -> float | None:
    """Return `grad/first_to_last` (layer 1's weight-gradient RMS over the last hidden layer's) at step 0
    or @end, or None."""
    return end_value(run, mn.GRAD_FIRST_TO_LAST) if at_end else run.at_step(mn.GRAD_FIRST_TO_LAST, 0)


def delta_first_to_last(run: RunData, at_end: bool = False) -> float | None:
    """Return ‖δ¹‖ / ‖δᴸ‖, Nielsen's speed of learning of the first hidden layer over the last one's (their
    bias gradients), at step 0 or @end; None without two layers' values. Nielsen quotes the inverse,
    ‖δᴸ‖ / ‖δ¹‖ (about 100 for his 4 x 30 sigmoid net)."""
    layers = run.layers(mn.GRAD_BIAS_L2)
    if len(layers) < 2:
        return None
    keys = [mn.layer_key(mn.GRAD_BIAS_L2, n) for n in (layers[0], layers[-1])]
    first, last = (end_value(run, k) if at_end else run.at_step(k, 0) for k in keys)
    return first / last if first is not None and last else None


def layer_values(run: RunData, family: str, at_end: bool, positive: bool = True) -> list[float]:
    """Return a per-layer family's values from the input side, at step 0 or @end; [] if a hidden layer
    lacks one (or, with `positive`, has one that is not above 0; else one that is not finite)."""
    values = []
    for layer in range(1, (run.depth or 0) + 1):
        key = mn.layer_key(family, layer)
        value = end_value(run, key) if at_end else run.at_step(key, 0)
        if value is None or not (value > 0 if positive else math.isfinite(value)):
            return []
        values.append(value)
    return values


def layer_mean(run: RunData, family: str, at_end: bool = True) -> float | None:
    """Return the mean over the hidden layers of a per-layer family at step 0 or @end, or None."""
    values = layer_values(run, family, at_end, positive=False)
    return statistics.fmean(values) if values else None


def family_first_to_last(run: RunData, family: str, at_end: bool) -> float | None:
    """Return a per-layer family's value in the first hidden layer over that in the last, or None."""
    values = layer_values(run, family, at_end)
    return values[0] / values[-1] if values else None


def decay_factor(values: list[float]) -> float | None:
    """Return the per-layer factor by which `values` (from the input side) shrink towards the input.

    A least-squares line through log(value) against the layer number; the factor is exp(-slope): 0.25
    means each layer nearer the input has a quarter of the gradient of the one above it.
    """
    if len(values) < 2:
        return None
    xs = range(1, len(values) + 1)
    x_mean, y_mean = statistics.fmean(xs), statistics.fmean(math.log(v) for v in values)
    slope = sum((x - x_mean) * (math.log(v) - y_mean) for x, v in zip(xs, values, strict=True)) / sum(
        (x - x_mean) ** 2 for x in xs
    )
    return math.exp(-slope)


def gradient_decay(run: RunData, at_end: bool) -> float | None:
    """Return the per-layer factor of the weight gradients' RMS (`decay_factor`) at step 0 or @end."""
    return decay_factor(layer_values(run, mn.GRAD_WEIGHT_RMS, at_end))


def summary(run: RunData) -> dict[str, float]:
    """Return a finished run's summary metrics (`metric_names.SUMMARY_*`) that it has the values for."""
    accuracy = test_acc_at_best_val(run)
    values = {
        mn.SUMMARY_TEST_ACC: accuracy if accuracy is not None else test_acc(run),
        mn.SUMMARY_LOG10_FIRST_TO_LAST_0: grad_first_to_last(run),
        mn.SUMMARY_LOG10_FIRST_TO_LAST_END: grad_first_to_last(run, at_end=True),
    }
    logs = {mn.SUMMARY_LOG10_FIRST_TO_LAST_0, mn.SUMMARY_LOG10_FIRST_TO_LAST_END}
    out = {}
    for key, value in values.items():
        if value is not None and math.isfinite(value) and (key not in logs or value > 0):
            out[key] = math.log10(value) if key in logs else value
    return out
