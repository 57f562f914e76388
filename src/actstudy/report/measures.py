"""Per-run numbers that tables, claims and run descriptions share, each named with its direction and
time point (step 0, or @end: the mean of the last monitored steps, `stats.end_value`)."""

from __future__ import annotations

from actstudy.metric_names import GRAD_BIAS_L2, layer_key
from actstudy.report.collect import RunData
from actstudy.report.stats import end_value


def delta_first_to_last(run: RunData, at_end: bool = False) -> float | None:
    """Return ‖δ¹‖ / ‖δᴸ‖, Nielsen's speed of learning of the first hidden layer over the last one's (their
    bias gradients), at step 0 or @end; None without two layers' values. Nielsen quotes the inverse,
    ‖δᴸ‖ / ‖δ¹‖ (about 100 for his 4 x 30 sigmoid net)."""
    layers = run.layers(GRAD_BIAS_L2)
    if len(layers) < 2:
        return None
    keys = [layer_key(GRAD_BIAS_L2, n) for n in (layers[0], layers[-1])]
    first, last = (end_value(run, k) if at_end else run.at_step(k, 0) for k in keys)
    return first / last if first is not None and last else None
