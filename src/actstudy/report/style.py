"""Fixed visual identity of the report: one colour per activation, a stable activation order."""

from __future__ import annotations

from collections.abc import Iterable

#: One fixed colour per activation, the same in every figure and every report.
ACTIVATION_COLORS: dict[str, str] = {
    "sigmoid": "#1f77b4",  # blue
    "tanh": "#ff7f0e",  # orange
    "relu": "#2ca02c",  # green
    "leaky_relu": "#17becf",  # cyan
    "elu": "#9467bd",  # purple
    "gelu": "#8c564b",  # brown
    "silu": "#e377c2",  # pink
    "softsign": "#bcbd22",  # olive
    "mish": "#e7ba52",  # gold (red marks untrainable values in the sensitivity figure)
}
_FALLBACK_COLORS = ("#d62728", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39")

#: Line styles and markers used to tell depths (or other series) apart inside one activation's panel.
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def activation_rank(name: str) -> tuple[int, str]:
    """Return a sort key that puts known activations in ``ACTIVATION_COLORS`` order, unknown ones after."""
    known = list(ACTIVATION_COLORS)
    return (known.index(name), "") if name in known else (len(known), name)


def activation_order(names: Iterable[str]) -> list[str]:
    """Return the distinct activation names sorted with ``activation_rank``."""
    return sorted(set(names), key=activation_rank)


def activation_color(name: str) -> str:
    """Return the fixed colour of an activation; unknown names get a stable colour from a fallback list."""
    return ACTIVATION_COLORS.get(name, _FALLBACK_COLORS[sum(map(ord, name)) % len(_FALLBACK_COLORS)])
