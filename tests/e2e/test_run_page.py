"""What the MLflow UI shows of actstudy's runs: a model-training experiment, run descriptions, the per-layer
figure and system metrics. Checked in the store on the shared tiny sweep (no training of their own); see
tracking.system_metrics=false: test_sweep.py, its single job."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from actstudy.report.claims import Claim
from actstudy.report.collect import RunData, SweepData
from actstudy.report.description import sweep_note
from actstudy.report.layer_figure import FINAL_FIGURE, LayerFigures, draw, read_layer_series
from actstudy.tracking import store as tracking
from tests.helpers import Sweep

NOTE = "mlflow.note.content"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def children(sweep: Sweep) -> list:
    return [r for r in sweep.runs() if "mlflow.parentRunId" in r.data.tags]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    """A client on a new store, shared by this module's store-level tests (creating one takes seconds)."""
    return tracking.open_client(f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}")


def test_the_experiment_is_model_training_new_or_earlier_unless_someone_chose_its_kind(client: MlflowClient):
    earlier = {  # experiment: (its kind tag before actstudy uses it, after)
        "made-by-an-earlier-version": (None, "custom_model_development"),
        "kind-guessed-by-the-ui": ("no_inferred_type", "custom_model_development"),
        "kind-chosen-by-someone": ("genai_development", "genai_development"),
    }
    for name, (before, _) in earlier.items():
        client.create_experiment(name, tags={"mlflow.experimentKind": before} if before else None)
    for name, (_, after) in {**earlier, "new": (None, "custom_model_development")}.items():
        experiment = client.get_experiment(tracking.experiment_id(client, name))
        assert (experiment.name, experiment.tags["mlflow.experimentKind"]) == (name, after)


def test_each_child_logs_its_layer_figure_at_every_checkpoint_and_at_the_end(tiny_sweep: Sweep):
    client = tiny_sweep.client
    for run in children(tiny_sweep):
        run_id = run.info.run_id
        names = [a.path for a in client.list_artifacts(run_id, "images")]
        steps = sorted(
            int(m.group(1)) for n in names if (m := re.search(r"layers\+step\+(\d+)\+.*\.png$", n))
        )
        last = max(m.step for m in client.get_metric_history(run_id, "grad/weight_rms/l01"))
        # 2 epochs, a checkpoint at the end of each: the first one's figure is of an earlier step
        assert len(steps) == 2 and steps[0] < steps[1] == last, names
        final = Path(client.download_artifacts(run_id, "figures/layers.png"))
        assert final.read_bytes()[:8] == PNG_SIGNATURE


def test_each_child_records_system_metrics(tiny_sweep: Sweep):
    for run in children(tiny_sweep):
        recorded = {k for k in run.data.metrics if k.startswith("system/")}
        assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= recorded


def test_each_child_describes_its_own_key_numbers(tiny_sweep: Sweep):
    for run in children(tiny_sweep):
        note, metrics = run.data.tags[NOTE], run.data.metrics
        assert note.startswith(f"# {run.info.run_name}\n") and "**outcome:** completed" in note
        assert f"| best val acc | {metrics['val/acc_best']:.3f} |" in note
        assert f"| test acc \\@best val | {metrics['test_best/acc']:.3f} |" in note  # "\\@": not a mention
        if run.data.params["depth"] != "1":  # two layers or more: a ratio
            assert re.search(r"\| ‖δ¹‖/‖δᴸ‖ \\@0 \| [\d.e+-]+ \|", note)
            assert re.search(r"\| ‖δ¹‖/‖δᴸ‖ \\@end \| [\d.e+-]+ \|", note)
        figure = f"get-artifact?path=figures%2Flayers.png&run_uuid={run.info.run_id}"
        assert f"![per-layer statistics]({figure})" in note


def test_the_parent_describes_the_report_with_its_verdicts_and_a_link_to_it(tiny_sweep: Sweep):
    parent = next(r for r in tiny_sweep.runs() if r.data.tags.get("actstudy.kind") == "sweep")
    note = parent.data.tags[NOTE]
    report = (tiny_sweep.sweep_dir / "report" / "report.md").read_text()
    link = f"#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}/artifacts/report/report.html"
    assert f"[report.html]({link}?workflowType=machine_learning)" in note
    verdicts = {k: v for k, v in parent.data.tags.items() if k.startswith("actstudy.claim.")}
    assert verdicts and "## Claims\n\n| claim | verdict | setting | measured | literature |" in note
    for verdict in set(verdicts.values()):
        assert f" {verdict} |" in note
    key_numbers = report.split("## Key numbers\n\n")[1].split("\n\n")[0]  # the report's own lines
    assert f"## Key numbers\n\n{key_numbers}\n\n" in note
    for run in children(tiny_sweep):
        assert f"| {run.info.run_name} |" in note  # the runs table


def _run(name: str, depth: int) -> RunData:
    series = {"grad/first_to_last": [(0, 0.01), (8, 0.02)], "test/acc": [(8, 0.5)]}
    return RunData(name, {"activation.name": "sigmoid", "depth": str(depth)}, {}, "completed", 3.0, series)


def test_a_long_parent_description_is_cut_to_the_tag_limit_saying_what_the_report_adds():
    runs = [_run(f"sigmoid-d{d}-s{s}", d) for d in range(1, 11) for s in range(8)]
    sweep = SweepData("parent", "sweep-1", "actstudy", {}, runs)
    claims = [
        Claim(f"c{i}", f"claim {i}", "sigmoid", "lit", "0.5 [0.4, 0.6]", "holds", "rule") for i in range(60)
    ]
    full = sweep_note(sweep, claims, "#/link", limit=10**6)
    assert "| sigmoid-d10-s7 |" in full and "| claim 59 |" in full and "in the report" not in full
    for limit in (8000, 3000):  # 8000: MLflow's tag limit, all claims but no runs table; 3000: fewer claims
        cut = sweep_note(sweep, claims, "#/link", limit=limit)
        assert len(cut) <= limit and cut.startswith("# actstudy sweep sweep-1\n\n- Full report")
        assert "The table of runs is in the report." in cut and "| claim 0 |" in cut
        shown = cut.count("| claim ") - 1  # the header's
        assert shown == 60 if limit == 8000 else f"{60 - shown} more claim(s) in the report." in cut


def test_a_resumed_runs_figure_is_drawn_from_the_whole_history_in_the_store(
    client: MlflowClient, tmp_path: Path
):
    run_id = client.create_run(tracking.experiment_id(client, "resumed")).info.run_id
    for step in range(0, 12, 2):  # what the first process logged before it was interrupted
        client.log_batch(run_id, tracking.metric_points(_layer_metrics(step), step))
    figures = LayerFigures(client, run_id, "resumed")  # the resumed process: it has logged nothing itself
    client.log_batch(run_id, tracking.metric_points(_layer_metrics(12), 12))
    figures.finish()

    logged = Path(client.download_artifacts(run_id, FINAL_FIGURE, str(tmp_path))).read_bytes()
    whole = read_layer_series(client, run_id)
    assert [s for s, _ in whole["grad/weight_rms"][1]] == list(range(0, 14, 2))
    title = "resumed: per-layer statistics through step 12"
    assert logged == draw(whole, title, tmp_path / "whole.png").read_bytes()
    only_new = {f: {n: p[-1:] for n, p in layers.items()} for f, layers in whole.items()}
    assert logged != draw(only_new, title, tmp_path / "new.png").read_bytes()


def _layer_metrics(step: int) -> dict[str, float]:
    return {
        f"{family}/l{layer:02d}": (1 + step) * 10.0**-layer
        for family in ("grad/weight_rms", "act/mean", "act/std")
        for layer in (1, 2, 3)
    }
