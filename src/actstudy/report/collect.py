"""Read a sweep (parent run + child runs) from MLflow into plain dataclasses.

Everything downstream (tables, figures, rendering) works on these dataclasses only, so it can be tested
without a store and never touches MLflow objects.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import Run
from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from actstudy import metric_names as mn
from actstudy import outcomes
from actstudy.config.schema import schema_key
from actstudy.monitor.histogram_file import ARTIFACT_DIR, FILE_NAME, Histograms, read_histograms
from actstudy.report.style import activation_order, activation_rank

#: Metric keys read with their full history: these scalars and every layer of these per-layer families.
SCALAR_METRICS = (
    *mn.SPLIT_METRICS,
    mn.VAL_ACC_BEST,
    mn.TEST_BEST_ACC,
    mn.GRAD_FIRST_TO_LAST,
    mn.TEST_EXAMPLES,
    mn.TEST_CHANCE_ACC,
    mn.CURV_SHARPNESS,  # only where monitor.sharpness_every_n_steps is set: never missed
    mn.CURV_TWO_OVER_LR,
)
LAYER_FAMILIES = (mn.GRAD_WEIGHT_RMS, mn.GRAD_BIAS_L2, mn.ACT_SATURATED, mn.ACT_DEAD)
#: Per-layer families read too but not missed when absent (runs recorded before they existed).
OPTIONAL_LAYER_FAMILIES = (
    mn.ACT_MEAN, mn.ACT_P02, mn.ACT_P98, mn.ACT_DERIV_MEAN, mn.ACT_ZERO_FRACTION, mn.WEIGHT_NORM,
    mn.WEIGHT_DISTANCE,
)  # fmt: skip
READ_LAYER_FAMILIES = LAYER_FAMILIES + OPTIONAL_LAYER_FAMILIES
#: Params that are "None" when the activation defines no such region (e.g. no dead sigmoid units).
REGION_PARAMS = {
    mn.ACT_SATURATED: schema_key("activation.saturated"),
    mn.ACT_DEAD: schema_key("activation.dead"),
}

Series = list[tuple[int, float]]


class ReportError(Exception):
    """A problem with the user's input (store, experiment, sweep) that the CLI reports in one line."""


@dataclass
class RunData:
    """One child run: its settings, tags, outcome, wall time and the metric histories the report needs."""

    name: str
    params: dict[str, str]
    tags: dict[str, str]
    outcome: str  # the actstudy.outcome tag, else a guess from the MLflow run status (e.g. ``running``)
    wall_time_s: float | None  # None while the run has no end time
    metrics: dict[str, Series] = field(default_factory=dict)
    histograms: Histograms | None = None  # the run's histogram artifact, if it has one

    def value(self, key: str, default: Any = None) -> Any:
        """Return the run's config value at `key` typed back from its param (`default` if it has none)."""
        return parse_param(self.params[key]) if key in self.params else default

    @property
    def activation(self) -> str:
        """Return the activation name (``activation.name`` param), or ``?`` when missing."""
        return self.params.get("activation.name", "?")

    @property
    def depth(self) -> int | None:
        """Return the ``depth`` param as an int, or None when missing or not an integer."""
        try:
            return int(self.params["depth"])
        except (KeyError, ValueError):
            return None

    @property
    def plottable(self) -> bool:
        """Return whether the run's metrics can go into figures (not failed, not diverged)."""
        return self.outcome not in (outcomes.FAILED, outcomes.DIVERGED)

    def layers(self, family: str) -> list[int]:
        """Return the sorted 1-based layer numbers for which ``family/lNN`` has a history."""
        parsed = (mn.parse_layer_key(key) for key in self.metrics)
        return sorted(p[1] for p in parsed if p and p[0] == family)

    def series(self, key: str) -> Series:
        """Return the finite (step, value) points of metric ``key`` sorted by step; empty when missing."""
        return [(s, v) for s, v in self.metrics.get(key, []) if math.isfinite(v)]

    def at_step(self, key: str, step: int) -> float | None:
        """Return the metric value logged at exactly ``step`` (last one if logged twice), or None."""
        values = [v for s, v in self.series(key) if s == step]
        return values[-1] if values else None

    def last(self, key: str) -> float | None:
        """Return the value at the highest logged step of ``key``, or None when there is none."""
        points = self.series(key)
        return points[-1][1] if points else None

    def best(self, key: str) -> float | None:
        """Return the maximum logged value of ``key``, or None when there is none."""
        points = self.series(key)
        return max(v for _, v in points) if points else None

    def by_layer(self, family: str, step: int | None = None) -> dict[int, float]:
        """Return {layer: value} of a per-layer family at ``step`` (None = each layer's last logged step)."""
        out = {}
        for layer in self.layers(family):
            key = mn.layer_key(family, layer)
            value = self.last(key) if step is None else self.at_step(key, step)
            if value is not None:
                out[layer] = value
        return out

    def missing(self) -> list[str]:
        """Return human-readable names of metrics the report expects but this run lacks."""
        expected: tuple[str, ...] = (mn.VAL_ACC, mn.TEST_ACC, mn.GRAD_FIRST_TO_LAST)
        if self.outcome == outcomes.DIVERGED:  # stopped at its non-finite loss: never tested
            expected = (mn.VAL_ACC, mn.GRAD_FIRST_TO_LAST)
        gaps = [k for k in expected if not self.series(k)]
        depth = self.depth
        for family in LAYER_FAMILIES:
            if family in REGION_PARAMS and self.params.get(REGION_PARAMS[family]) == "None":
                continue
            have = set(self.layers(family))
            lacking = [n for n in range(1, (depth or 0) + 1) if n not in have]
            none_found = not have if depth is None else len(lacking) == depth
            if none_found:
                gaps.append(mn.layer_key(family, "*"))
            elif lacking:
                gaps.append(f"{family}/" + ",".join(mn.layer_suffix(n) for n in lacking))
        if self.at_step(mn.GRAD_FIRST_TO_LAST, 0) is None and self.series(mn.GRAD_FIRST_TO_LAST):
            gaps.append(f"{mn.GRAD_FIRST_TO_LAST} at step 0")
        if "activation.name" not in self.params:
            gaps.append("param activation.name")
        if depth is None:
            gaps.append("param depth")
        return gaps


def histograms_of(run: RunData) -> Histograms:
    """Return the histograms of a run that has them (the histogram figures keep only such runs)."""
    assert run.histograms is not None
    return run.histograms


@dataclass
class SweepData:
    """A sweep: the parent run's identity and tags plus its child runs."""

    parent_run_id: str
    sweep_id: str
    experiment_name: str
    tags: dict[str, str]
    runs: list[RunData]

    @property
    def sweep_dir(self) -> str | None:
        """Return the Hydra sweep output folder from the parent's ``actstudy.sweep_dir`` tag, if any."""
        return self.tags.get(outcomes.SWEEP_DIR) or None

    def activations(self) -> list[str]:
        """Return the activation names in the sweep, in a stable order (known ones first)."""
        return activation_order(r.activation for r in self.runs)


def parse_param(text: str) -> Any:
    """Return a param's value as the config had it: MLflow keeps `str(value)`, so "False" is False, "None"
    None, "0.1" 0.1, "1e-05" 1e-05, "[1, 2]" a list; other text is itself."""
    import yaml

    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text.startswith(("[", "{")):
        with contextlib.suppress(yaml.YAMLError):
            return yaml.safe_load(text)
    return text


def search_all(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    """Return every run of the experiment that matches `filter_string`, page by page (1,000 a page)."""
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def find_experiment_id(client: MlflowClient, name: str) -> str:
    """Return the id of the experiment called ``name``; raise ReportError when there is none."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        raise ReportError(f"experiment {name!r} not found in the tracking store")
    return exp.experiment_id


def find_parent_run_id(client: MlflowClient, experiment_id: str, sweep: str | None = None) -> str:
    """Return the run id of the sweep's parent run.

    ``sweep`` is matched against the parent's ``actstudy.sweep_id`` tag, then tried as a run id; None picks
    the most recently started parent (``actstudy.kind = sweep``) in the experiment. Raises ReportError when
    nothing matches.
    """
    if sweep is not None and "'" in sweep:
        raise ReportError(f"invalid sweep id {sweep!r}")
    parents = f"tags.`{outcomes.KIND}` = '{outcomes.KIND_SWEEP}'"
    if sweep is not None:
        parents += f" and tags.`{outcomes.SWEEP_ID}` = '{sweep}'"
    runs = search_all(client, experiment_id, parents)
    if runs:
        return max(runs, key=lambda r: r.info.start_time or 0).info.run_id
    if sweep is None:
        raise ReportError("no sweep (parent run tagged actstudy.kind=sweep) in this experiment")
    with contextlib.suppress(MlflowException):  # unknown or malformed run id
        run = client.get_run(sweep)
        if run.info.experiment_id == experiment_id:
            return run.info.run_id
    raise ReportError(f"sweep {sweep!r} not found (no parent run with that actstudy.sweep_id or run id)")


def metric_series(client: MlflowClient, run_id: str, key: str, before: int | None = None) -> Series:
    """Return a metric's history as (step, value) points in step order (only steps below `before`)."""
    history = client.get_metric_history(run_id, key)
    points = ((m.step, float(m.value)) for m in history if before is None or m.step < before)
    return sorted(points, key=lambda p: p[0])  # by step alone: a step logged twice keeps the store's order


def _run_data(client: MlflowClient, run: Run, histograms: bool = True) -> RunData:
    info, tags = run.info, dict(run.data.tags)
    metrics = {}
    for key in sorted(run.data.metrics):
        layer = mn.parse_layer_key(key)
        if key in SCALAR_METRICS or (layer is not None and layer[0] in READ_LAYER_FAMILIES):
            metrics[key] = metric_series(client, info.run_id, key)
    status = info.status or ""
    guess = {"FINISHED": "completed?", "FAILED": outcomes.FAILED, "KILLED": outcomes.INTERRUPTED}
    ended = info.start_time is not None and info.end_time is not None
    return RunData(
        name=info.run_name or info.run_id[:8],
        params=dict(run.data.params),
        tags=tags,
        outcome=tags.get(outcomes.OUTCOME) or guess.get(status, status.lower() or "unknown"),
        wall_time_s=(info.end_time - info.start_time) / 1000.0 if ended else None,
        metrics=metrics,
        histograms=_histograms(client, info.run_id) if histograms else None,
    )


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore them."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _histograms(client: MlflowClient, run_id: str) -> Histograms | None:
    """Return the run's histogram artifact (`actstudy.monitor.histogram_file`), or None when it has none."""
    quiet = {MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name: "false"}  # no progress bar per run in the CLI
    with tempfile.TemporaryDirectory() as folder, _environment(quiet):
        try:
            path = client.download_artifacts(run_id, f"{ARTIFACT_DIR}/{FILE_NAME}", folder)
            return read_histograms(Path(path))
        except (MlflowException, OSError, ValueError):  # no such artifact, or not a readable file
            return None


def collect_sweep(client: MlflowClient, parent_run_id: str) -> SweepData:
    """Return the sweep of ``parent_run_id``: parent tags plus every child run with its metric histories.

    Children are runs whose ``mlflow.parentRunId`` is the parent, together with job runs carrying the same
    ``actstudy.sweep_id`` tag (for jobs that could not set the parent link); of a job begun anew (its
    first attempt died before a checkpoint), only the latest run is the job's. Raises ReportError when the
    parent run does not exist.
    """
    try:
        parent = client.get_run(parent_run_id)
    except MlflowException as exc:  # unknown id (RestException from a server is a subclass)
        raise ReportError(f"parent run {parent_run_id!r} not found: {exc}") from exc
    exp_id = parent.info.experiment_id
    tags = dict(parent.data.tags)
    sweep_id = tags.get(outcomes.SWEEP_ID, parent_run_id)
    children = {
        r.info.run_id: r for r in search_all(client, exp_id, f"tags.`{outcomes.PARENT}` = '{parent_run_id}'")
    }
    if outcomes.SWEEP_ID in tags and "'" not in sweep_id:
        for r in search_all(client, exp_id, f"tags.`{outcomes.SWEEP_ID}` = '{sweep_id}'"):
            if r.info.run_id != parent_run_id and r.data.tags.get(outcomes.KIND) != outcomes.KIND_SWEEP:
                children.setdefault(r.info.run_id, r)
    runs = [_run_data(client, r) for r in latest_per_job(children.values())]
    runs.sort(key=lambda r: (activation_rank(r.activation), r.depth or 0, r.name))
    experiment = client.get_experiment(exp_id)
    return SweepData(parent_run_id, sweep_id, experiment.name if experiment else exp_id, tags, runs)


def latest_per_job(runs: Iterable[Run]) -> list[Run]:
    """Return one run per job folder (`actstudy.output_dir`): the latest started; a run without the tag is
    a job of its own. Earlier runs of a folder are attempts a later one superseded."""
    latest: dict[str, Run] = {}
    for run in runs:
        job = run.data.tags.get(outcomes.OUTPUT_DIR) or run.info.run_id
        if job not in latest or (run.info.start_time or 0) > (latest[job].info.start_time or 0):
            latest[job] = run
    return list(latest.values())


def collect_run(client: MlflowClient, run_id: str) -> RunData:
    """Return one run with the metric histories the report reads, without its histogram artifact (e.g. for
    the run's own description, which does not show them)."""
    return _run_data(client, client.get_run(run_id), histograms=False)
