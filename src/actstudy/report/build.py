"""Assemble the sweep report: collect runs, draw figures, write md/html, attach them to the parent run."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import PIL.Image
from mlflow.tracking import MlflowClient

from actstudy import outcomes
from actstudy.report.claims import (
    CLAIMS_LEGEND,
    STATEMENTS_LEGEND,
    Claim,
    claims_table,
    evaluate_claims,
    statements_table,
    step_cost_setting,
    verdict_tags,
)
from actstudy.report.collect import ReportError, SweepData, collect_sweep
from actstudy.report.description import describe_sweep
from actstudy.report.figures import metric_figures
from actstudy.report.histogram_compare import IMAGE_KEY, distribution_figures
from actstudy.report.render import (
    Block,
    Bullets,
    Code,
    Document,
    FigureFile,
    Strong,
    Text,
    to_html,
    to_markdown,
)
from actstudy.report.sensitivity import FILE_NAME as SENSITIVITY_FIGURE
from actstudy.report.sensitivity import sensitivity_figure, sensitivity_table
from actstudy.report.tables import AGGREGATE_LEGEND, RUNS_LEGEND, aggregate_table, key_numbers, run_table
from actstudy.report.trouble import trouble_notes
from actstudy.report.tuning import RULE, Tuning, instability_notes, tune

if TYPE_CHECKING:  # at run time imported where it runs: it imports torch
    from actstudy.report.step_cost import StepCost

ARTIFACT_DIR = "report"


@contextlib.contextmanager
def torch_process() -> Iterator[Executor | None]:
    """Yield a pool of one spawned process for the report's torch work (the activation figure, the step
    cost) when this process has not imported torch (the report command: 3 s saved by importing it once,
    beside the other work), else None: that work runs here."""
    if "torch" in sys.modules:
        yield None
        return
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        yield pool


def measured_step_cost(sweep: SweepData, pool: Executor | None = None) -> StepCost | None:
    """Return the step cost of the sweep's activations (`actstudy.report.step_cost`) on this machine's
    device for the sweep's own CNN, None when no claim needs it; measured in `pool` when given."""
    setting = step_cost_setting(sweep.runs)
    if setting is None:
        return None
    return pool.submit(_step_cost, setting).result() if pool is not None else _step_cost(setting)


def _step_cost(setting: dict[str, Any]) -> StepCost:
    from actstudy.report.step_cost import measure_step_cost

    return measure_step_cost(**setting)


def default_out_dir(sweep: SweepData) -> Path:
    """Return ``<actstudy.sweep_dir>/report`` if that folder exists here, else ``./report-<sweep_id>``."""
    if sweep.sweep_dir and Path(sweep.sweep_dir).is_dir():
        return Path(sweep.sweep_dir) / "report"
    return Path.cwd() / f"report-{sweep.sweep_id}"


def tuned_keys(sweep: SweepData) -> tuple[str, ...]:
    """Return the keys the sweep tunes: its parent's `actstudy.tune` tag (comma-separated), () if none."""
    return tuple(k for k in sweep.tags.get(outcomes.TUNE, "").split(",") if k)


def compared(sweep: SweepData, tuning: Tuning | None) -> SweepData:
    """Return the sweep as its claims, key numbers and summaries see it: with tuning, the picked runs."""
    return dataclasses.replace(sweep, runs=tuning.runs(sweep.runs)) if tuning else sweep


def _meta(sweep: SweepData) -> list[Text]:
    counts = ", ".join(f"{n} {o}" for o, n in sorted(Counter(r.outcome for r in sweep.runs).items()))
    facts = {
        "experiment": sweep.experiment_name,
        "parent run": Code(sweep.parent_run_id),
        "runs": f"{len(sweep.runs)} ({counts})" if sweep.runs else "0",
        "sweep folder": Code(sweep.sweep_dir) if sweep.sweep_dir else None,
        "generated": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }
    return [[Strong(f"{name}:"), " ", value] for name, value in facts.items() if value is not None]


def _tuned_section(tuning: Tuning, out_dir: Path) -> list:
    figure = sensitivity_figure(tuning, out_dir / SENSITIVITY_FIGURE)
    keys = [part for k in tuning.keys for part in (", ", Code(k))][1:]
    intro: list[str] = ["This sweep tunes ", *keys, ": each setting is compared at the value its validation "]
    intro += ["accuracy picks, and every claim, key number and summary figure uses that value's runs (the "]
    intro += [f"table of runs lists all). {RULE}"]
    return [intro, sensitivity_table(tuning)] + ([figure] if figure else [])


def _run_notes(sweep: SweepData) -> list[Text]:
    """Return the notes about runs: no runs, failures with their error, metrics missing per run."""
    notes: list[Text] = [] if sweep.runs else ["The sweep has no child runs (yet)."]
    missing: list[Text] = []
    for run in sweep.runs:
        gaps = run.missing()
        if gaps:
            codes = [part for gap in gaps for part in (", ", Code(gap))][1:]
            missing.append(["Missing in ", Code(f"{run.name} ({run.outcome})"), ": ", *codes])
        if run.outcome == outcomes.FAILED and run.tags.get(outcomes.ERROR):
            error = run.tags[outcomes.ERROR].strip().splitlines()[-1][:300]
            notes.append([Code(run.name), f" failed: {error}"])
    return notes + missing


def build_report(
    sweep: SweepData,
    out_dir: Path,
    claims: list[Claim] | None = None,
    tuning: Tuning | None = None,
    pool: Executor | None = None,
) -> tuple[Path, list[Path], list[FigureFile]]:
    """Write the report of ``sweep`` (with ``claims``, evaluated here if None; compared at ``tuning``'s
    picks if given; the activation figure drawn in ``pool`` when given, see `torch_process`) into
    ``out_dir``; return (report.md path, every file written, the figures that are one step's image)."""
    from actstudy.report.activation_plot import activation_figure, known_activations  # no torch yet

    out_dir.mkdir(parents=True, exist_ok=True)
    names = known_activations()
    known = [a for a in sweep.activations() if a in names]
    path = out_dir / "activations.png"
    shown = compared(sweep, tuning)
    if not known or pool is None:  # a sweep's own report: drawn here in 0.3 s, no torch to import
        figures, notes = metric_figures(shown, out_dir)
        figures += [activation_figure(known, path)] if known else []
    else:  # the report command: the torch process draws it beside the metric figures
        activations = pool.submit(activation_figure, known, path)
        figures, notes = metric_figures(shown, out_dir)
        try:
            figures.append(activations.result())
        except BrokenProcessPool:  # the process could not run: drawn here
            figures.append(activation_figure(known, path))
    picked_keys = tuning.keys if tuning else ()
    stepped = distribution_figures([r for r in shown.runs if r.plottable], out_dir, picked_keys)
    figures += stepped
    unknown = [a for a in sweep.activations() if a not in names]
    if unknown:
        notes.append(f"No function plot for unknown activation(s): {', '.join(unknown)}.")
    notes += [*_run_notes(sweep), *instability_notes(sweep.runs, tuning), *trouble_notes(sweep.runs)]
    claims = evaluate_claims(sweep.runs, tuning) if claims is None else claims
    summary, aggregate = key_numbers(shown), aggregate_table(shown)
    tuned = _tuned_section(tuning, out_dir) if tuning else None
    sections: dict[str, Sequence[Block] | None] = {  # heading: blocks, or None to leave the section out
        "Claims": [claims_table(claims), CLAIMS_LEGEND] if claims else None,
        "Statements of the study note": [statements_table(claims), STATEMENTS_LEGEND],
        "Tuned selection": tuned,
        "Key numbers": [Bullets(summary)] if summary else None,
        "Runs": [run_table(sweep, shown.runs if tuning else None), RUNS_LEGEND] if sweep.runs else None,
        "Mean over seeds": [aggregate, AGGREGATE_LEGEND] if aggregate is not None else None,
        "Notes": [Bullets(notes, note=True)] if notes else None,
        "Figures": figures or None,
    }
    body = {heading: blocks for heading, blocks in sections.items() if blocks is not None}
    doc = Document(f"actstudy sweep {sweep.sweep_id}", Bullets(_meta(sweep)), body)
    md, page = out_dir / "report.md", out_dir / "report.html"
    md.write_text(to_markdown(doc), encoding="utf-8")
    page.write_text(to_html(doc), encoding="utf-8")
    table = out_dir / "claims.json"  # the verdicts as data, for scripts (and the parent's tags)
    table.write_text(json.dumps([dataclasses.asdict(c) for c in claims], indent=1, ensure_ascii=False))
    sensitivity = [b.path for b in tuned or [] if isinstance(b, FigureFile)]
    return md, [md, page, table, *(f.path for f in figures), *sensitivity], stepped


def write_report(
    client: MlflowClient,
    parent_run_id: str,
    out_dir: Path | None = None,
    log_artifacts: bool = True,
    tune_keys: tuple[str, ...] | None = None,
) -> Path:
    """Write the report of the sweep whose parent run is ``parent_run_id``; return the report.md path.

    ``tune_keys`` (default: the parent's ``actstudy.tune`` tag) are picked per setting by validation
    (`actstudy.report.tuning`); () compares every value as a setting of its own.

    ``out_dir`` defaults to ``default_out_dir``. With ``log_artifacts`` the written files (report.md,
    report.html, claims.json, the PNGs) are logged on the parent run under ``report/``, each claim's
    verdict is a tag ``actstudy.claim.<key>`` on it, so sweeps can be searched by verdict, and its
    description (the overview page) summarises the report. Raises
    ``ReportError`` when the parent run does not exist.
    """
    sweep = collect_sweep(client, parent_run_id)
    keys = tuned_keys(sweep) if tune_keys is None else tune_keys
    unknown = [k for k in keys if sweep.runs and not any(k in r.params for r in sweep.runs)]
    if unknown:
        raise ReportError(f"--tune {unknown[0]}: no run of the sweep has that param (e.g. optimizer.lr)")
    tuning = tune(sweep.runs, keys) if keys else None
    out = Path(out_dir) if out_dir is not None else default_out_dir(sweep)
    with torch_process() as pool:
        claims = evaluate_claims(sweep.runs, tuning, measured_step_cost(sweep, pool))
        md, files, stepped = build_report(sweep, out, claims, tuning, pool)
    if log_artifacts:
        for path in files:
            client.log_artifact(parent_run_id, str(path), ARTIFACT_DIR)
        for figure in stepped:  # the same figures again, as one image key with a step slider
            with PIL.Image.open(figure.path) as image:
                client.log_image(parent_run_id, image.convert("RGB"), key=IMAGE_KEY, step=figure.image_step)
        tags = {outcomes.CLAIM + key: verdict for key, verdict in verdict_tags(claims).items()}
        tags[outcomes.TUNE] = ",".join(keys)  # how the verdicts were reached: the next report does the same
        for stale in (k for k in sweep.tags if k.startswith(outcomes.CLAIM) and k not in tags):
            client.delete_tag(parent_run_id, stale)  # a claim this sweep's runs no longer test
        for key, verdict in tags.items():
            client.set_tag(parent_run_id, key, verdict)
        describe_sweep(client, sweep, claims, f"{ARTIFACT_DIR}/{md.with_suffix('.html').name}", tuning)
    return md
