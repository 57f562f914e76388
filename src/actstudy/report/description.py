"""Run descriptions (`mlflow.note.content`, Markdown, shown on a run's overview page in the MLflow UI).

A sweep's parent run: the claims verdicts, the key numbers and the per-run table of its report, with a
link to the full report. A job's run: its own key numbers. Both are the report's own content, written by
its Markdown writer; too long for a tag, tables are cut with a pointer to the report.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from urllib.parse import urlencode

from mlflow.tracking import MlflowClient

# Not in MLflow's documented API, but where MLflow itself defines the description tag and the tag length
# its stores enforce: importing them keeps actstudy in step with the installed version.
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from actstudy import outcomes
from actstudy.report.claims import Claim, claims_table
from actstudy.report.collect import RunData, SweepData, collect_run
from actstudy.report.measures import delta_first_to_last
from actstudy.report.render import Block, Bullets, Document, Strong, Table, to_markdown
from actstudy.report.stats import END_POINTS
from actstudy.report.tables import METRICS, fmt_ratio, key_numbers, run_table
from actstudy.report.tuning import Tuning
from actstudy.tracking.store import UI_VIEW


def run_numbers(run: RunData) -> Table:
    """Return a run's key numbers as a two-column table: the report's metric columns, one per row."""
    rows = [[label, fmt(value(run))] for label, value, fmt in METRICS]
    rows.insert(6, ["‖δ¹‖/‖δᴸ‖ @end", fmt_ratio(delta_first_to_last(run, at_end=True))])  # beside its @0
    return Table(["measure", "value"], rows, [False, True])


def run_note(run: RunData, figure_url: str | None = None) -> str:
    """Return a job run's description: its outcome, its key numbers, and its figure if there is one."""
    outcome = run.outcome
    if run.outcome == outcomes.DIVERGED and run.tags.get(outcomes.DIVERGED_STEP):
        outcome += f" at step {run.tags[outcomes.DIVERGED_STEP]}"
    legend = f"@end = mean of the last {END_POINTS} monitored steps; first/last grad = grad/first_to_last."
    facts = Bullets([[Strong("outcome:"), f" {outcome}"]])
    sections: dict[str, list[Block]] = {"Key numbers": [run_numbers(run), legend]}
    if figure_url:
        sections["Per-layer statistics over training"] = [f"![per-layer statistics]({figure_url})"]
    return for_mlflow(to_markdown(Document(run.name, facts, sections)))


def describe_run(client: MlflowClient, run_id: str, outcome: str, figure: str | None = None) -> RunData:
    """Set a job run's description from its metrics in the store; `outcome` is how it is ending, `figure`
    the artifact path of an image it shows. Return the run as the description read it."""
    run = collect_run(client, run_id)
    run.outcome = outcome
    # The UI's own artifact URL, relative: it works wherever the UI is served (a static prefix too).
    url = f"get-artifact?{urlencode({'path': figure, 'run_uuid': run_id})}" if figure else None
    client.set_tag(run_id, MLFLOW_RUN_NOTE, run_note(run, url))
    return run


def sweep_note(
    sweep: SweepData,
    claims: list[Claim],
    report_link: str,
    limit: int = MAX_TAG_VAL_LENGTH,
    tuning: Tuning | None = None,
) -> str:
    """Return a sweep's description: link to the report, claims verdicts, key numbers, runs table; with
    `tuning`, that the comparison is tuned, and key numbers of the picked runs.

    Within `limit` characters: the runs table goes first, then claims from the end, each time saying so.
    """
    lines = [f"Full report with figures: [report.html]({report_link})"]
    if tuning:
        lines.append(
            f"Tuned comparison: {', '.join(tuning.keys)} picked per setting by validation accuracy "
            "(the report's Tuned selection has the sensitivity table)"
        )
    facts = Bullets(lines)
    picked = tuning.runs(sweep.runs) if tuning else None
    full = claims_table(claims)
    # Without the rule column (long; the report has it).
    table = Table(full.columns[:5], [row[:5] for row in full.rows], full.numeric[:5])
    shown = dataclasses.replace(sweep, runs=picked) if picked is not None else sweep
    numbers = [Bullets(key_numbers(shown))] if shown.runs else []
    runs = [run_table(sweep, picked)] if sweep.runs else []
    runs_cut = ["The table of runs is in the report."] if sweep.runs else []
    candidates = [(len(table.rows), runs)] + [(n, runs_cut) for n in range(len(table.rows), -1, -1)]
    for n_shown, runs_blocks in candidates:
        left_out = len(table.rows) - n_shown
        claim_blocks = ([Table(table.columns, table.rows[:n_shown], table.numeric)] if n_shown else []) + (
            [f"{left_out} more claim(s) in the report."] if left_out else []
        )
        sections: dict[str, Sequence[Block]] = {
            "Claims": claim_blocks,
            "Key numbers": numbers,
            "Runs": runs_blocks,
        }
        doc = Document(f"actstudy sweep {sweep.sweep_id}", facts, {k: v for k, v in sections.items() if v})
        text = for_mlflow(to_markdown(doc))
        if len(text) <= limit:
            return text
    return for_mlflow(to_markdown(Document(f"actstudy sweep {sweep.sweep_id}", facts, {})))[:limit]


def describe_sweep(
    client: MlflowClient,
    sweep: SweepData,
    claims: list[Claim],
    report_artifact: str,
    tuning: Tuning | None = None,
) -> None:
    """Set the sweep's parent run description, linking the report artifact's page in the MLflow UI."""
    experiment = client.get_run(sweep.parent_run_id).info.experiment_id
    link = f"#/experiments/{experiment}/runs/{sweep.parent_run_id}/artifacts/{report_artifact}?{UI_VIEW}"
    note = sweep_note(sweep, claims, link, tuning=tuning)
    client.set_tag(sweep.parent_run_id, MLFLOW_RUN_NOTE, note)


def for_mlflow(markdown: str) -> str:
    """Return Markdown as the MLflow UI should show it: its renderer (showdown, GitHub flavour) links a
    word after "@" to a GitHub user ("@end"); "\\@" is a plain "@" there and in any Markdown."""
    return re.sub(r"(^|\s)@", r"\1\\@", markdown, flags=re.MULTILINE)
