"""Tests of the sweep report against a real temporary MLflow store (SQLite + local artifacts)."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from actstudy.monitor.histogram_file import ARTIFACT_DIR, FILE_NAME, Histograms, gradient_edges
from actstudy.paths import PROJECT_ROOT
from actstudy.report import ReportError, write_report
from actstudy.report.__main__ import main
from actstudy.report.collect import collect_sweep, find_parent_run_id
from actstudy.report.tables import run_table

SRC = str(PROJECT_ROOT / "src")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = (
    "grad_by_layer.png",
    "grad_over_steps.png",
    "gradient_histograms.png",
    "activation_percentiles.png",
    "derivative_over_steps.png",
    "val_acc.png",
    "saturation_dead.png",
    "activations.png",
    # side by side across activations (depth 2 has the most: sigmoid, tanh, relu), one per common step
    "distributions_step000000.png",
    "distributions_step000060.png",
)
STEPS_PER_EPOCH = 20
EPOCHS = 3
SWEEP_ID = "sweep-test-001"

# per-layer derivative factor of the backward pass at init: sigmoid shrinks ~4x per layer, relu keeps the size
SHRINK = {"sigmoid": 0.25, "tanh": 0.6, "relu": 0.95}
FINAL_ACC = {"sigmoid": 0.2, "tanh": 0.5, "relu": 0.8}


@dataclass
class Spec:
    activation: str
    depth: int
    seed: int = 0
    outcome: str = "completed"
    grads: bool = True  # False: an old/crashed run without any gradient-flow metric


SPECS = [
    Spec("sigmoid", 2),
    Spec("sigmoid", 4),
    Spec("sigmoid", 4, seed=1),
    Spec("tanh", 2),
    Spec("tanh", 4, grads=False),
    Spec("relu", 2),
    Spec("relu", 4, outcome="failed"),
]


def _metrics(spec: Spec, ts: int) -> list[Metric]:
    out = []
    last_step = STEPS_PER_EPOCH * EPOCHS if spec.outcome != "failed" else 15
    shrink, acc = SHRINK[spec.activation], FINAL_ACC[spec.activation] - 0.02 * spec.seed
    for step in range(0, last_step + 1, 5):
        progress = step / (STEPS_PER_EPOCH * EPOCHS)
        if step > 0:
            out += [
                Metric("train/loss", 2.3 * (1 - 0.5 * progress), ts, step),
                Metric("train/acc", acc * progress, ts, step),
            ]
        if spec.grads and step % 10 == 0:
            rms = {
                n: 1e-2 * shrink ** (spec.depth - n) * (1 + progress * n / spec.depth)
                for n in range(1, spec.depth + 1)
            }
            for n, value in rms.items():
                tag = f"l{n:02d}"
                out += [
                    Metric(f"grad/weight_rms/{tag}", value, ts, step),
                    Metric(f"grad/weight_l2/{tag}", value * 30, ts, step),
                    Metric(f"grad/bias_l2/{tag}", value * 3, ts, step),
                    Metric(f"act/mean/{tag}", 0.5, ts, step),
                    Metric(f"act/p02/{tag}", 0.5 - 0.4 * (1 - progress), ts, step),
                    Metric(f"act/p98/{tag}", 0.5 + 0.4 * (1 - progress), ts, step),
                    Metric(f"act/deriv_mean/{tag}", 0.25 - 0.1 * progress, ts, step),
                    Metric(f"act/std/{tag}", 0.2, ts, step),
                    Metric(
                        f"act/saturated/{tag}",
                        (0.1 * n * progress) if spec.activation != "relu" else 0.0,
                        ts,
                        step,
                    ),
                    Metric(
                        f"act/dead/{tag}",
                        (0.05 * n * progress) if spec.activation == "relu" else 0.0,
                        ts,
                        step,
                    ),
                ]
                if step > 0:
                    out.append(Metric(f"grad/update_ratio/{tag}", 1e-3, ts, step))
            out.append(Metric("grad/first_to_last", rms[1] / rms[spec.depth], ts, step))
    for epoch in range(1, EPOCHS + 1):
        step = epoch * STEPS_PER_EPOCH
        if step <= last_step:
            out += [
                Metric("val/acc", acc * epoch / EPOCHS, ts, step),
                Metric("val/loss", 2.3 - epoch * 0.3, ts, step),
                Metric("epoch", epoch - 1, ts, step),
            ]
    if spec.outcome == "completed":
        out += [Metric("test/acc", acc - 0.01, ts, last_step), Metric("test/loss", 1.5, ts, last_step)]
    return out


@dataclass
class Store:
    client: MlflowClient
    uri: str
    experiment: str
    parent: str
    children: dict[str, str]  # run name -> run id
    sweep_dir: Path


def _no_fsync(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.execute("PRAGMA journal_mode=MEMORY")
    cursor.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A real SQLite MLflow store with one sweep parent and the child runs of SPECS.

    The throw-away database skips fsync (PRAGMA synchronous=OFF): MLflow's schema migrations otherwise
    dominate the test time on a busy disk.
    """
    event.listen(Engine, "connect", _no_fsync)
    try:
        yield _build_store(tmp_path_factory.mktemp("mlflow"))
    finally:
        event.remove(Engine, "connect", _no_fsync)


def _build_store(tmp: Path) -> Store:
    uri = f"sqlite:///{tmp}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("actstudy-test", artifact_location=(tmp / "artifacts").as_uri())
    sweep_dir = tmp / "multirun" / "2024-01-01" / "12-00-00"
    sweep_dir.mkdir(parents=True)
    t0 = int(time.time() * 1000) - 3_600_000
    parent = client.create_run(
        exp_id,
        run_name="sweep",
        start_time=t0,
        tags={"actstudy.sweep_id": SWEEP_ID, "actstudy.kind": "sweep", "actstudy.sweep_dir": str(sweep_dir)},
    ).info.run_id
    children = {}
    for i, spec in enumerate(SPECS):
        name = f"{spec.activation}-d{spec.depth}-s{spec.seed}"
        start = t0 + i * 60_000
        tags = {
            "mlflow.parentRunId": parent,
            "actstudy.sweep_id": SWEEP_ID,
            "actstudy.kind": "job",
            "actstudy.outcome": spec.outcome,
            "actstudy.overrides": f"activation={spec.activation},depth={spec.depth},seed={spec.seed}",
        }
        if spec.outcome == "failed":
            tags["actstudy.error"] = "RuntimeError: CUDA out of memory"
        run_id = client.create_run(exp_id, run_name=name, start_time=start, tags=tags).info.run_id
        params = {
            "activation.name": spec.activation,
            "depth": spec.depth,
            "seed": spec.seed,
            "model.name": "cnn",
            "model.init": "default",
            "model.batch_norm": False,
            "model.width": 32,
            "optimizer.name": "sgd",
            "optimizer.lr": 0.1,
            "data.name": "shapes",
            "trainer.max_epochs": EPOCHS,
        }
        metrics = _metrics(spec, start)
        client.log_batch(
            run_id, params=[Param(k, str(v)) for k, v in params.items()], tags=[RunTag("x", "y")]
        )
        for k in range(0, len(metrics), 900):
            client.log_batch(run_id, metrics=metrics[k : k + 900])
        if spec.seed == 0:  # a histogram artifact as the monitor writes it: two steps, a bell per layer
            _histograms(spec.depth).write(tmp / "histograms" / name / FILE_NAME)
            client.log_artifact(run_id, str(tmp / "histograms" / name / FILE_NAME), ARTIFACT_DIR)
        status = "FAILED" if spec.outcome == "failed" else "FINISHED"
        client.set_terminated(run_id, status, end_time=start + 42_000 + i * 1000)
        children[name] = run_id
    client.set_terminated(parent, "FINISHED", end_time=t0 + 600_000)
    return Store(client, uri, "actstudy-test", parent, children, sweep_dir)


def _histograms(depth: int) -> Histograms:
    edges = gradient_edges()
    centre = np.arange(len(edges) - 1) - (len(edges) - 2) / 2
    bell = [[np.exp(-((centre / (4 + n)) ** 2)) * 100 for n in range(depth)] for _ in (0, 1)]
    activation = np.ones((2, depth, 50))
    return Histograms(
        np.array([0, 60]), np.array([f"l{n + 1:02d}" for n in range(depth)]), np.linspace(0, 1, 51),
        activation, edges, np.array(bell),
    )  # fmt: skip


@pytest.fixture(scope="module")
def report(store: Store) -> Path:
    """The report of the fixture sweep written with the default output folder."""
    return write_report(store.client, store.parent)


def _read_png(path: Path) -> tuple[int, int]:
    import matplotlib.image

    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), path
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, image.shape
    assert image.std() > 0.01, f"{path.name} is blank"
    return image.shape[1], image.shape[0]


def test_files_written_in_default_folder(store: Store, report: Path) -> None:
    assert report == store.sweep_dir / "report" / "report.md"
    out = report.parent
    for name in ("report.md", "report.html", *FIGURES):
        assert (out / name).is_file(), name
    for name in FIGURES:
        _read_png(out / name)


def test_html_is_self_contained(report: Path) -> None:
    page = (report.parent / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(FIGURES)
    assert "<link" not in page and "<script" not in page and '.png"' not in page


def _md_table(md: str, heading: str) -> list[dict[str, str]]:
    lines = md.split(f"## {heading}\n\n", 1)[1].splitlines()
    rows = [line for line in lines[: next(i for i, x in enumerate(lines) if not x.startswith("|"))]]
    cols = [c.strip() for c in rows[0].strip("|").split("|")]
    return [dict(zip(cols, (c.strip() for c in r.strip("|").split("|")), strict=True)) for r in rows[2:]]


def test_run_table_matches_store(store: Store, report: Path) -> None:
    rows = _md_table(report.read_text(), "Runs")
    assert sorted(r["run"] for r in rows) == sorted(store.children)
    # only activation, depth and the varying seed are shown as settings
    assert list(rows[0])[:4] == ["run", "activation", "depth", "seed"]
    assert "init" not in rows[0] and "optimizer" not in rows[0]
    for row in rows:
        run_id = store.children[row["run"]]
        run = store.client.get_run(run_id)
        assert row["activation"] == run.data.params["activation.name"]
        assert row["depth"] == run.data.params["depth"]
        assert row["outcome"] == run.data.tags["actstudy.outcome"]
        if "test/acc" in run.data.metrics:
            assert row["test acc"] == f"{run.data.metrics['test/acc']:.3f}"
        else:
            assert row["test acc"] == "—"
        val = [m.value for m in store.client.get_metric_history(run_id, "val/acc")]
        assert row["best val acc"] == (f"{max(val):.3f}" if val else "—")
        ratio = store.client.get_metric_history(run_id, "grad/first_to_last")
        if ratio:
            at0 = next(m.value for m in ratio if m.step == 0)
            assert math.isclose(float(row["first/last grad @0"]), at0, rel_tol=0.06)
        else:
            assert row["first/last grad @0"] == "—"
        wall = (run.info.end_time - run.info.start_time) / 1000
        assert row["wall time"] == f"{wall:.1f} s"


def test_sigmoid_gradient_vanishes(store: Store) -> None:
    sweep = collect_sweep(store.client, store.parent)
    run = next(r for r in sweep.runs if r.name == "sigmoid-d4-s0")
    grads = run.by_layer("grad/weight_rms", step=0)
    assert list(grads) == [1, 2, 3, 4]
    assert grads[1] < grads[2] < grads[3] < grads[4]
    assert run.at_step("grad/first_to_last", 0) == pytest.approx(0.25**3)


def test_aggregate_table_over_seeds(report: Path) -> None:
    rows = _md_table(report.read_text(), "Mean over seeds")
    sig4 = next(r for r in rows if r["activation"] == "sigmoid" and r["depth"] == "4")
    assert sig4["n"] == "2" and re.fullmatch(r"0\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", sig4["test acc"])
    relu4 = next(r for r in rows if r["activation"] == "relu" and r["depth"] == "4")
    assert relu4["n"] == "0" and relu4["runs"] == "1"


def test_failed_and_missing_runs_are_reported(report: Path) -> None:
    md = report.read_text()
    notes = md.split("## Notes", 1)[1].split("## Figures", 1)[0]
    assert "relu-d4-s0 (failed)" in notes and "CUDA out of memory" in notes
    missing = next(line for line in notes.splitlines() if "Missing in `tanh-d4-s0" in line)
    assert "grad/weight_rms/l*" in missing and "grad/first_to_last" in missing


def test_parent_carries_artifacts(store: Store, report: Path) -> None:
    names = {Path(f.path).name for f in store.client.list_artifacts(store.parent, "report")}
    assert {"report.md", "report.html", *FIGURES} <= names


def test_parent_shows_the_distributions_with_a_step_slider(store: Store, report: Path) -> None:
    images = [Path(f.path).name for f in store.client.list_artifacts(store.parent, "images")]
    # MLflow names a step's image images/<key>+step+<step>+timestamp+...png
    steps = sorted(
        int(n.split("+")[2]) for n in images if n.startswith("distributions+") and n.endswith(".png")
    )
    assert steps == [0, 60]


def test_distributions_compare_activations_each_at_its_own_lr(store: Store) -> None:
    """The quick start gives each activation its own lr: that does not split the comparison, and a
    setting of two activations does not beat one of three."""
    from actstudy.report.histogram_compare import compared_runs

    sweep = collect_sweep(store.client, store.parent)
    lrs = {"sigmoid": "1.0", "tanh": "0.3", "relu": "0.03"}
    own_lr = [
        dataclasses.replace(r, params=r.params | {"optimizer.lr": lrs[r.activation]}) for r in sweep.runs
    ]
    for runs in (sweep.runs, own_lr):
        chosen, setting = compared_runs([r for r in runs if r.plottable])
        assert [r.name for r in chosen] == ["sigmoid-d2-s0", "tanh-d2-s0", "relu-d2-s0"]
        assert setting == "depth 2"


def test_latest_and_sweep_lookup(store: Store) -> None:
    exp_id = store.client.get_experiment_by_name(store.experiment).experiment_id
    assert find_parent_run_id(store.client, exp_id) == store.parent
    assert find_parent_run_id(store.client, exp_id, SWEEP_ID) == store.parent
    assert find_parent_run_id(store.client, exp_id, store.parent) == store.parent
    with pytest.raises(ReportError):
        find_parent_run_id(store.client, exp_id, "no-such-sweep")


def test_run_without_anything_does_not_crash(store: Store, tmp_path: Path) -> None:
    sweep = collect_sweep(store.client, store.parent)
    for run in sweep.runs:
        run.metrics = {}
    table = run_table(sweep)
    assert len(table.rows) == len(store.children)
    from actstudy.report.build import build_report

    md, _files, _stepped = build_report(sweep, tmp_path)
    assert "not drawn" in md.read_text()
    assert (tmp_path / "activations.png").is_file()


def test_cli_report(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI wiring (lookup, out folder, no artifacts); figures are covered above, so skip drawing them."""
    import actstudy.report.build

    monkeypatch.setattr(actstudy.report.build, "metric_figures", lambda sweep, out: ([], []))
    code = main(
        [
            "--tracking-uri",
            store.uri,
            "--experiment",
            store.experiment,
            "--out",
            str(tmp_path),
            "--no-log-artifacts",
        ]
    )
    assert code == 0
    assert (tmp_path / "report.html").is_file()
    assert capsys.readouterr().out.strip().endswith("report.md")


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        (["--sweep", "no-such-sweep"], "not found"),
        (["--experiment", "nope"], "experiment 'nope' not found"),
    ],
)
def test_cli_bad_input_exits_2(
    store: Store, extra: list[str], expect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--tracking-uri", store.uri, "--experiment", store.experiment] + extra
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expect in err


def test_cli_missing_sqlite_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--tracking-uri", f"sqlite:///{tmp_path}/none.db"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "none.db").exists()


def test_cli_entry_point_bad_store(tmp_path: Path) -> None:
    """The real ``python -m`` entry point: exit status 2, one line on stderr, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "actstudy.report", "--tracking-uri", f"sqlite:///{tmp_path}/none.db"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])},
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "no MLflow store" in proc.stderr


def test_cli_unreachable_server(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["--tracking-uri", f"http://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the tracking server" in err


def test_default_out_dir_without_sweep_folder(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actstudy.report.build import default_out_dir

    sweep = collect_sweep(store.client, store.parent)
    assert default_out_dir(sweep) == store.sweep_dir / "report"
    sweep.tags["actstudy.sweep_dir"] = str(tmp_path / "gone")
    monkeypatch.chdir(tmp_path)
    assert default_out_dir(sweep) == tmp_path / f"report-{SWEEP_ID}"


def test_cli_activations_only(tmp_path: Path) -> None:
    assert main(["--activations", "sigmoid,tanh,relu", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["activations.png"]
    _read_png(tmp_path / "activations.png")


def test_activation_derivatives() -> None:
    from actstudy.report.activation_plot import function_and_derivative

    _, _, ds = function_and_derivative("sigmoid")
    _, _, dt = function_and_derivative("tanh")
    x, _, dr = function_and_derivative("relu")
    assert ds.max() == pytest.approx(0.25)
    assert dt.max() == pytest.approx(1.0)
    assert set(dr[x < 0]) == {0.0} and set(dr[x > 0]) == {1.0}


def test_activations_come_from_the_config_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """conf/activation/*.yaml is the list: module parameters come through; a new file needs no edit."""
    import actstudy.report.activation_plot as plot

    x, _, d_leaky = plot.function_and_derivative("leaky_relu")
    assert set(d_leaky[x < 0]) == {0.01}  # negative_slope from conf/activation/leaky_relu.yaml
    (tmp_path / "activation").mkdir()
    (tmp_path / "activation" / "hardtanh.yaml").write_text(
        "name: hardtanh\nmodule: {_target_: torch.nn.Hardtanh, min_val: -2.0}\nsaturated: null\ndead: null\n"
    )
    monkeypatch.setattr(plot, "CONF_DIR", tmp_path)
    plot._module_configs.cache_clear()
    try:
        assert plot.known_activations() == ["hardtanh"]
        _, y, _ = plot.function_and_derivative("hardtanh")
        assert (y.min(), y.max()) == (-2.0, 1.0)
        _read_png(plot.activation_figure(["hardtanh", "unknown"], tmp_path / "activations.png").path)
    finally:
        plot._module_configs.cache_clear()


def _texts(fig) -> list[tuple[object, object]]:
    """Return (axes or None, visible non-empty text) of every label, title and tick label of `fig`."""
    found = [(None, t) for t in fig.texts]
    for ax in fig.axes:
        found += [(ax, t) for t in (ax.title, ax.xaxis.label, ax.yaxis.label)]
        for axis, coordinate in ((ax.xaxis, 0), (ax.yaxis, 1)):
            low, high = sorted(axis.get_view_interval())
            span = abs(high - low) * 1e-9
            found += [  # labels of ticks outside the axis's limits are not drawn
                (ax, t)
                for t in axis.get_ticklabels()
                if low - span <= t.get_position()[coordinate] <= high + span
            ]
    return [(ax, t) for ax, t in found if t.get_visible() and t.get_text()]


def assert_layout_fits(fig, name: str) -> None:
    """Every text of `fig` lies inside the figure, off every other panel, and overlaps no text of another
    panel (fixed margins, `actstudy.report.figure_grid`, must leave room for what the figures write)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)  # tick labels are placed on draw
    bounds = fig.bbox.padded(1)
    boxes = [(ax, t, t.get_window_extent(renderer).padded(-1)) for ax, t in _texts(fig)]
    boxes += [(None, legend.get_title(), legend.get_window_extent(renderer)) for legend in fig.legends]
    panels = [ax for ax in fig.axes if ax.axison]
    for ax, text, box in boxes:
        assert bounds.containsx(box.x0) and bounds.containsx(box.x1), f"{name}: {text.get_text()!r} cut off"
        assert bounds.containsy(box.y0) and bounds.containsy(box.y1), f"{name}: {text.get_text()!r} cut off"
        for other in panels:
            if other is not ax:
                assert not box.overlaps(other.get_window_extent(renderer)), (
                    f"{name}: {text.get_text()!r} lies over another panel"
                )
    for i, (_, text, box) in enumerate(boxes):
        for _, text2, box2 in boxes[i + 1 :]:
            assert not box.overlaps(box2), f"{name}: {text.get_text()!r} over {text2.get_text()!r}"


def test_figures_have_room_for_their_labels(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report's figures (3 activations, depths 2 and 4, a second seed; again with long run names, and
    with one activation) and the run's per-layer figure keep every label inside the figure, off the other
    panels and off each other."""
    import actstudy.report.activation_plot as activation_plot
    import actstudy.report.figures as figures
    import actstudy.report.histogram_compare as histogram_compare
    from actstudy.report import layer_figure

    drawn = []
    keep = figures.save

    def save(fig, path: Path) -> Path:
        drawn.append((path.name, fig))
        return keep(fig, path)

    monkeypatch.setattr(figures, "save", save)
    monkeypatch.setattr(activation_plot, "save", save)
    monkeypatch.setattr(histogram_compare, "save", save)

    def draw_all(sweep, out: Path) -> None:
        figures.metric_figures(sweep, out)
        histogram_compare.distribution_figures([r for r in sweep.runs if r.plottable], out)

    sweep = collect_sweep(store.client, store.parent)
    draw_all(sweep, tmp_path)
    activation_plot.activation_figure(["sigmoid", "tanh", "relu", "gelu"], tmp_path / "activations.png")
    assert sorted(name for name, _ in drawn) == sorted(FIGURES)
    # a sweep that varies more keys has longer run names; a sweep of one activation has narrower figures
    long = "_optimizer.lr=0.001,model.width=128,model.init=xavier"
    renamed = [dataclasses.replace(r, name=r.name + long) for r in sweep.runs]
    draw_all(dataclasses.replace(sweep, runs=renamed), tmp_path / "long")
    one = [r for r in sweep.runs if r.activation == "sigmoid"]
    draw_all(dataclasses.replace(sweep, runs=one), tmp_path / "one")  # no other activation to compare
    assert len(drawn) == len(FIGURES) + (len(FIGURES) - 1) + (len(FIGURES) - 3)
    for name, fig in drawn:
        assert_layout_fits(fig, name)

    series = {
        family: {n: [(s, 10.0 ** -(9 - n) * (1 + s / 100)) for s in range(0, 3000, 50)] for n in range(1, 9)}
        for family, _, _ in layer_figure.PANELS
    }
    figure_of = {}
    import matplotlib.figure  # draw() imports Figure from it when called

    class Kept(matplotlib.figure.Figure):
        def savefig(self, *args, **kwargs) -> None:
            figure_of["layers"] = self
            super().savefig(*args, **kwargs)

    monkeypatch.setattr(matplotlib.figure, "Figure", Kept)
    title = f"relu-d8-s0{long}: per-layer statistics through step 2950"
    layer_figure.draw(series, title, tmp_path / "layers.png")
    assert_layout_fits(figure_of["layers"], "layers.png")


def test_report_command_draws_every_figure(store: Store, tmp_path: Path) -> None:
    """`python -m actstudy.report` (no torch in its process: the activation figure is drawn by a spawned
    one) writes the report with every figure."""
    out = tmp_path / "report"
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "actstudy.report", "--tracking-uri", store.uri, "--experiment"]
    cmd += [store.experiment, "--out", str(out), "--no-log-artifacts"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out / "report.md")
    for name in FIGURES:
        _read_png(out / name)
