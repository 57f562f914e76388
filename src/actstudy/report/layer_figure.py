"""The run's per-layer picture: gradient magnitude and activation statistics of every layer over training.

Drawn from the run's own series as the store holds them, so a resumed run's figure includes its history
from before the resume. At each checkpoint it is drawn on a background thread (the metrics are in the
store by then: `FlushMetricsBeforeCheckpoint` runs first); after the last step once more, and kept as
`figures/layers.png`, which the run's description shows. Each drawing is logged with
`MlflowClient.log_image` under one key and the step of its newest point: the run's "Model metrics" tab
shows them as one image card with a slider over training. matplotlib is imported only to draw.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path

import lightning as L
from mlflow.tracking import MlflowClient

from actstudy import metric_names as mn
from actstudy.report.collect import Series, metric_series

log = logging.getLogger("actstudy")

IMAGE_KEY = "layers"  # the run page's image card
FINAL_FIGURE = "figures/layers.png"  # the last drawing as a plain file (the run's description shows it)
#: The panels, left to right: (per-layer family, title, log scale).
PANELS = (
    (mn.GRAD_WEIGHT_RMS, "weight-gradient RMS", True),
    (mn.ACT_MEAN, "activation mean", False),
    (mn.ACT_STD, "activation std", False),
)


def read_layer_series(
    client: MlflowClient, run_id: str, before: int | None = None
) -> dict[str, dict[int, Series]]:
    """Return {family: {layer: [(step, value), ...]}} of the panels' families, as the store holds them
    (only the points of steps below `before`, if given)."""
    families = {family for family, _, _ in PANELS}
    series: dict[str, dict[int, Series]] = {}
    for key in client.get_run(run_id).data.metrics:
        parsed = mn.parse_layer_key(key)
        if parsed is not None and parsed[0] in families:
            series.setdefault(parsed[0], {})[parsed[1]] = metric_series(client, run_id, key, before)
    return series


def last_step(series: dict[str, dict[int, Series]]) -> int | None:
    """Return the newest step of any series (None when there are none)."""
    steps = [points[-1][0] for layers in series.values() for points in layers.values() if points]
    return max(steps) if steps else None


def draw(series: dict[str, dict[int, Series]], title: str, path: Path) -> Path:
    """Draw one panel per family, stacked (narrow enough for a run's description), every layer a line over
    training (input side dark); return `path` (PNG)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # no pyplot: safe off the main thread

    from actstudy.report.figure_grid import Margins, axes_grid, figure_title, log_y, title_room

    fig = Figure(figsize=(7, 2.6 * len(PANELS)), dpi=90)
    # the right margin holds the layers' legend (up to ~12 entries of "lNN")
    margins = Margins(left=0.8, right=0.85, top=0.6 + title_room(title, 7, 11), bottom=0.5, hgap=0.4)
    axes = axes_grid(fig, len(PANELS), 1, margins, sharex=True)[:, 0]
    for ax, (family, label, log_scale) in zip(axes, PANELS, strict=True):
        layers = series.get(family, {})
        for i, (layer, points) in enumerate(sorted(layers.items())):
            color = colormaps["viridis"](0.85 * i / max(len(layers) - 1, 1))  # the last still readable
            finite = [(s, v) for s, v in points if v == v and (v > 0 or not log_scale)]
            if finite:
                steps, values = zip(*finite, strict=True)
                ax.plot(steps, values, color=color, lw=1.4, label=mn.layer_suffix(layer))
        if log_scale and ax.has_data():
            log_y(ax)
        ax.set_title(f"{label} ({family}/lNN)", fontsize=10)
        ax.grid(alpha=0.3)
        if not layers:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    axes[-1].set_xlabel("step")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="center right", title="layer", fontsize=8)
    figure_title(fig, title, fontsize=11)
    fig.savefig(path)
    return path


class LayerFigures:
    """Draws and logs one run's figure: `request` (at a checkpoint, in the background), `finish` (at the end).

    A checkpoint's figure shows the steps before it, what the checkpoint has trained on, whatever training
    logs meanwhile. Requests made while a drawing is under way are served after it, by one drawing for the
    newest.
    Errors are logged, never raised: the figure must not end a run.
    """

    def __init__(self, client: MlflowClient, run_id: str, title: str):
        self.client, self.run_id, self.title = client, run_id, title
        self._lock = threading.Lock()
        self._wanted: int | None = None  # the newest checkpoint's step not drawn yet
        self._thread: threading.Thread | None = None
        self._logged_steps: set[int] = set()
        self.final: str | None = None  # the artifact path of the final figure, once logged
        self._last: tuple[int, bytes] | None = None  # the newest drawing: its last step and PNG

    def request(self, step: int) -> None:
        """Draw, on a background thread, the figure of the steps before `step` (a checkpoint's)."""
        with self._lock:
            self._wanted = max(step, self._wanted or 0)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="layer-figure", daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        while True:
            with self._lock:
                before, self._wanted = self._wanted, None
                if before is None:
                    self._thread = None
                    return
            self._log(before)

    def wait(self) -> None:
        """Return once no drawing is under way or asked for."""
        while True:
            with self._lock:
                thread = self._thread
            if thread is None:
                return
            thread.join()

    def finish(self) -> None:
        """After the last step: wait for a background drawing, then draw the final figure and keep it."""
        self.wait()
        self._log(None)

    def _log(self, before: int | None) -> None:
        """Draw the steps below `before` (all of them: the final figure, also kept as a file)."""
        final = before is None
        try:
            series = read_layer_series(self.client, self.run_id, before)
            step = last_step(series)
            if step is None or (step in self._logged_steps and not final):
                return
            with tempfile.TemporaryDirectory(prefix="actstudy-figure-") as tmp:
                path = Path(tmp) / Path(FINAL_FIGURE).name
                if self._last is not None and self._last[0] == step:  # the same points: drawn already
                    path.write_bytes(self._last[1])
                else:
                    draw(series, f"{self.title}: per-layer statistics through step {step}", path)
                    self._last = (step, path.read_bytes())
                if step not in self._logged_steps:
                    from PIL import Image

                    with Image.open(path) as image:
                        rgb = image.convert("RGB")
                    self.client.log_image(self.run_id, rgb, key=IMAGE_KEY, step=step)
                    self._logged_steps.add(step)
                if final:
                    folder = str(Path(FINAL_FIGURE).parent)
                    self.client.log_artifact(self.run_id, str(path), folder)
                    self.final = FINAL_FIGURE
        except Exception as exc:  # a figure is never worth a failed run
            log.warning("drawing the per-layer figure of run %s failed: %s", self.run_id, exc)


class DrawAtCheckpoint(L.Callback):
    """Ask `figures` for a drawing whenever a checkpoint is saved (after its metrics were flushed)."""

    def __init__(self, figures: LayerFigures):
        self.figures = figures

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self.figures.request(trainer.global_step)
