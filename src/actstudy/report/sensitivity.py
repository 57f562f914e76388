"""The tuned selection shown: a sensitivity table (every value of every setting) and its figure."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from matplotlib.figure import Figure

from actstudy import outcomes
from actstudy.metric_names import TEST_BEST_ACC
from actstudy.report.figure_grid import Margins, axes_grid, figure_title, save, title_room
from actstudy.report.render import FigureFile, Table
from actstudy.report.stats import interval
from actstudy.report.style import LINESTYLES, MARKERS, activation_color
from actstudy.report.tables import chance_level, fmt_acc, label_of, number
from actstudy.report.tuning import Candidate, Selection, Tuning, value_order

FILE_NAME = "sensitivity.png"


def _outcomes(c: Candidate) -> str:
    counts = Counter(r.outcome for r in c.runs)
    parts = []
    for outcome, n in sorted(counts.items()):
        steps = sorted({r.tags.get(outcomes.DIVERGED_STEP, "?") for r in c.runs if r.outcome == outcome})
        where = f" @ step {', '.join(steps)}" if outcome == outcomes.DIVERGED else ""
        parts.append(f"{n} {outcome}{where}")
    return ", ".join(parts)


def sensitivity_table(tuning: Tuning) -> Table:
    """Return one row per setting and tuned value: validation accuracy over seeds, outcomes, the pick."""
    labels = [label for _, label in tuning.factors] + [label_of(k) for k in tuning.keys]
    columns = labels + ["runs", "best val acc [95 %]", "test acc @best val", "outcomes", "picked"]
    numeric = [False] * len(tuning.factors) + [True] * len(tuning.keys) + [True, True, True, False, False]
    rows = []
    for s in tuning.selections:
        for c in s.candidates:
            done = [r for r in c.runs if r.outcome == outcomes.COMPLETED]
            test = interval(r.last(TEST_BEST_ACC) for r in done)
            picked = "✓ " + s.reason if c is s.picked else ("—" if c.untrainable else "")
            if s.picked is None and c is s.candidates[0]:
                picked = s.reason
            rows.append(
                list(s.setting) + list(c.values)
                + [str(len(c.runs)), c.score.text(fmt_acc) if c.score else "—",
                   fmt_acc(test.mean) if test else "—", _outcomes(c), picked]
            )  # fmt: skip
    return Table(columns, rows, numeric)


def sensitivity_figure(tuning: Tuning, path: Path) -> FigureFile | None:
    """Write validation accuracy against the tuned value, a panel per activation and a line per other
    setting; untrainable values marked with a cross, the picks circled. None when nothing is tuned."""
    if not tuning.selections:
        return None
    factor_keys = [k for k, _ in tuning.factors]
    act_index = factor_keys.index("activation.name") if "activation.name" in factor_keys else None
    panels: dict[str, list[Selection]] = {}
    for s in tuning.selections:
        panels.setdefault(s.setting[act_index] if act_index is not None else "all", []).append(s)
    values = sorted({c.values for s in tuning.selections for c in s.candidates}, key=value_order)
    numeric = len(tuning.keys) == 1 and all((number(v[0]) or 0) > 0 for v in values)
    x_of = {v: number(v[0]) if numeric else i for i, v in enumerate(values)}
    title = f"Validation accuracy against {', '.join(label_of(k) for k in tuning.keys)}, per setting"
    width = max(4.6, 3.8 * len(panels))
    fig = Figure(figsize=(width, 3.8))
    margins = Margins(left=0.8, top=0.7 + title_room(title, width), bottom=0.75, wgap=0.3)
    axes = axes_grid(fig, 1, len(panels), margins, sharey=True, sharex=True)[0]
    runs = [r for s in tuning.selections for c in s.candidates for r in c.runs]
    chance = chance_level(runs)
    for ax, (panel, selections) in zip(axes, panels.items(), strict=True):
        color = activation_color(panel)
        for i, s in enumerate(selections):
            rest = [f"{label}={v}" for (k, label), v in zip(tuning.factors, s.setting, strict=True)
                    if k != "activation.name"]  # fmt: skip
            scored = [(x_of[c.values], c.score) for c in s.candidates if c.score and not c.untrainable]
            style = dict(color=color, ls=LINESTYLES[i % len(LINESTYLES)], marker=MARKERS[i % len(MARKERS)])
            if scored:
                xs, ys = [x for x, _ in scored], [sc.mean for _, sc in scored]
                low = [sc.mean - sc.low for _, sc in scored]
                high = [sc.high - sc.mean for _, sc in scored]
                ax.errorbar(xs, ys, yerr=[low, high], capsize=2, ms=4, lw=1.4, label=", ".join(rest) or None,
                            **style)  # fmt: skip
            bad = [x_of[c.values] for c in s.candidates if c.untrainable]
            ax.plot(bad, [0.0] * len(bad), ls="none", marker="x", color="#d62728", ms=8, mew=2)
            if s.picked and s.picked.score:
                ax.plot([x_of[s.picked.values]], [s.picked.score.mean], ls="none", marker="o", ms=13,
                        mfc="none", mec="black", mew=1.3)  # fmt: skip
        if chance is not None:
            ax.axhline(chance, color="0.4", ls=":", lw=1)
        ax.set_title(panel, color=color, fontweight="bold")
        ax.grid(True, alpha=0.35)
        ax.set_ylim(-0.05, 1.05)
        if numeric:
            ax.set_xscale("log")
        else:
            ax.set_xticks(range(len(values)), ["/".join(v) for v in values], rotation=30, fontsize=8)
        ax.set_xlabel(", ".join(label_of(k) for k in tuning.keys))
        if any(line.get_label() and not line.get_label().startswith("_") for line in ax.get_lines()):
            ax.legend(fontsize=8, loc="best")
    axes[0].set_ylabel("best validation accuracy")
    figure_title(fig, title)
    caption = (
        "Mean over seeds of each run's best validation accuracy with its 95 % interval; a red cross at 0 "
        "marks a value whose runs diverged or failed (untrainable); a black circle the value picked; the "
        "dotted line is chance (1 / number of classes)."
    )
    return FigureFile(save(fig, path), "Sensitivity to the tuned values", caption)
