"""Browser test: a real `mlflow server` on the tiny sweep's store, driven in headless Chromium.

It checks what a person would do after a sweep: open the link the sweep prints (its jobs' table with
their key numbers as columns, no click), open the experiment's runs table, find the child runs under the
sweep's parent run, tick two and press Compare, read the parent's description (the claims' verdicts, a
link to the report) and a child's (its key numbers and per-layer figure). Screenshots go to `tmp_path`
and, when `ACTSTUDY_SAVE_SCREENSHOTS=<dir>` is set, are copied there as `mlflow_ui_sweep_link.png`,
`mlflow_ui_runs.png`, `mlflow_ui_compare.png`, `mlflow_ui_parent.png` and `mlflow_ui_child.png` (how
`docs/` gets its pictures).

Needs Playwright (Python) and a Chromium binary (`/usr/bin/chromium` from Debian's `chromium`
package, or `ACTSTUDY_CHROMIUM`); never `playwright install`. Without them the test is skipped,
unless `ACTSTUDY_REQUIRE_BROWSER=1` (CI), where it fails instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from actstudy import outcomes
from actstudy.tracking import store as tracking
from tests.system.conftest import launch_chromium

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1400, "height": 900}
SERVER_START_TIMEOUT = 120.0  # s; mlflow 3 imports a lot before /health answers (~20 s here)
UI_TIMEOUT = 30_000  # ms, for every wait on the page
# Runs-table columns toggled for the screenshot: hide empty attributes, show what the study is about.
# The columns the sweep's printed link opens with (jobs.sweep.table_columns for activation x depth).
SWEEP_COLUMNS = ("activation.name", "depth", "actstudy.outcome", "summary/test_acc",
                 "summary/log10_first_to_last_step0", "summary/log10_first_to_last_end")  # fmt: skip
COLUMN_TOGGLES = ("Dataset", "Source", "Models", "activation.name", "depth", "test/acc", "grad/first_to_last")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


@contextlib.contextmanager
def mlflow_server(uri: str, artifact_root: Path, workdir: Path) -> Iterator[str]:
    """Run `mlflow server` on a free loopback port; yield its base URL; always stop it."""
    port = _free_port()
    log = workdir / "mlflow_server.log"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no GenAI job runner: fewer processes
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", uri,
        "--default-artifact-root", artifact_root.as_uri(),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    with log.open("w") as out:
        # Own process group: the server spawns uvicorn workers, which must go with it.
        proc = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n{_log_tail(log)}", pytrace=False)
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"mlflow server not healthy after {SERVER_START_TIMEOUT:.0f} s:\n{_log_tail(log)}"
                )
            time.sleep(0.5)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of our own group only
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _try_click(locator, timeout: float = 5_000) -> bool:
    """Click `locator` if it shows up within `timeout` ms (optional UI chrome: tours, side panels)."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        locator.click(timeout=timeout)
        return True
    except PlaywrightError:
        return False


def _save(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path))
    dest = os.environ.get("ACTSTUDY_SAVE_SCREENSHOTS")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(dest) / name)
    return path


def _row(page, run_id: str):
    """The runs-table row of `run_id` (ag-grid splits a row into pinned and scrolling parts: all of them)."""
    return page.locator(f'[role="row"][row-id="{run_id}"]')


def _pick_pair(children: list) -> list:
    """Two children worth comparing: different activations at the deepest depth, else the first two."""
    depth = max(r.data.params.get("depth", "") for r in children)
    deepest = [r for r in children if r.data.params.get("depth", "") == depth]
    by_act = {r.data.params.get("activation.name"): r for r in deepest}
    pair = list(by_act.values())[:2] if len(by_act) >= 2 else children[:2]
    return sorted(pair, key=lambda r: r.info.run_name)


def test_mlflow_ui_opens_on_the_runs_shows_descriptions_and_figures_and_compares(
    browser_available, tiny_sweep, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    runs = tiny_sweep.runs()
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4, [r.info.run_name for r in runs]
    parent = parents[0]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    exp_id = parent.info.experiment_id
    kind = tiny_sweep.client.get_experiment(exp_id).tags.get(outcomes.EXPERIMENT_KIND)
    assert kind == outcomes.MODEL_TRAINING
    store_dir = Path(tiny_sweep.uri.removeprefix("sqlite:///")).parent

    with (
        mlflow_server(tiny_sweep.uri, store_dir / "artifacts", tmp_path) as base,
        sync_playwright() as pw,
    ):
        browser = launch_chromium(pw)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()  # a new browser: no view remembered
            page.set_default_timeout(UI_TIMEOUT)
            expect.set_options(timeout=UI_TIMEOUT)

            # --- the link the sweep prints opens its jobs' table with their key numbers as columns ---
            (printed,) = [
                line.split(": ", 2)[2]
                for line in tiny_sweep.result.stderr.splitlines()
                if line.startswith("actstudy: the sweep's runs in the MLflow UI: ")
            ]
            assert printed.startswith("http://127.0.0.1:5000/#/")  # a SQLite store: `mlflow ui`'s address
            page.goto(printed.replace("http://127.0.0.1:5000", base))
            for run in children:  # the jobs, without expanding their parent; the parent is not listed
                expect(_row(page, run.info.run_id).filter(has_text=run.info.run_name)).to_be_visible()
            expect(_row(page, parent.info.run_id)).to_have_count(0)
            _close_panels(page)
            headers = page.locator('[role="columnheader"]')
            for column in SWEEP_COLUMNS:
                expect(headers.filter(has_text=column).first).to_be_visible()
            sigmoid_2 = next(r for r in children if r.info.run_name == "sigmoid-d2-s0")
            log_ratio = f"{sigmoid_2.data.metrics['summary/log10_first_to_last_step0']:.4g}"[:5]
            expect(_row(page, sigmoid_2.info.run_id).filter(has_text=log_ratio).first).to_be_visible()
            _save(page, tmp_path, "mlflow_ui_sweep_link.png")

            # --- the second link: the deepest nets (depth 2 here: sigmoid and relu) in the compare view ---
            (compare_link,) = [
                line.split(": ", 2)[2]
                for line in tiny_sweep.result.stderr.splitlines()
                if line.startswith("actstudy: its deepest nets compared: ")
            ]
            page.goto(compare_link.replace("http://127.0.0.1:5000", base))
            expect(page.get_by_text("Comparing 2 Runs", exact=False)).to_be_visible()
            for name in ("relu-d2-s0", "sigmoid-d2-s0"):
                expect(page.get_by_text(name, exact=True).first).to_be_visible()
            expect(page.get_by_text("relu-d1-s0", exact=True)).to_have_count(0)
            assert "workflowType=machine_learning" in page.url  # the model-training view, kept

            # --- the experiment's runs table, without a click (a new browser: the shared view not in it) ---
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.set_default_timeout(UI_TIMEOUT)
            page.goto(tracking.ui_link(base, exp_id))
            parent_row = _row(page, parent.info.run_id).filter(has_text=parent.info.run_name)
            expect(parent_row).to_be_visible()
            _close_panels(page)

            # Child runs are grouped under the parent row: expand it with its [+] button.
            child_rows = {r.info.run_id: _row(page, r.info.run_id) for r in children}
            if not next(iter(child_rows.values())).first.is_visible():
                expander = parent_row.locator('[data-component-id*="runnamecellrenderer"]')
                if expander.count() == 0:
                    expander = parent_row.locator('[col-id*="Run Name"] button')
                expander.first.click()
            for run in children:
                expect(child_rows[run.info.run_id].filter(has_text=run.info.run_name)).to_be_visible()
                expect(page.get_by_role("link", name=run.info.run_name, exact=True)).to_be_visible()

            # Best effort, only for the picture: hide empty columns, add activation, depth, metrics.
            if _try_click(page.get_by_role("button", name="Columns", exact=True)):
                dialog = page.get_by_role("dialog")
                search = dialog.get_by_placeholder("Search columns")
                for col in COLUMN_TOGGLES:
                    with contextlib.suppress(Exception):
                        search.fill(col, timeout=3_000)
                        dialog.get_by_text(col, exact=True).first.click(timeout=3_000)
                page.keyboard.press("Escape")
                _try_click(page.get_by_text("matching runs"), timeout=3_000)  # focus off the menu button
            _save(page, tmp_path, "mlflow_ui_runs.png")

            # --- compare two child runs: tick their boxes, press Compare ---
            pair = _pick_pair(children)
            for run in pair:
                box = child_rows[run.info.run_id].locator("input.ag-checkbox-input").first
                box.check()
                expect(box).to_be_checked()
            compare = page.get_by_role("button", name="Compare", exact=True)
            if _try_click(compare, timeout=UI_TIMEOUT):
                page.wait_for_url("**/compare-runs**")
            else:  # fall back to the compare URL the button opens
                ids = ",".join(f'"{r.info.run_id}"' for r in pair)
                page.goto(f'{base}/#/compare-runs?runs=[{ids}]&experiments=["{exp_id}"]')
            expect(page.get_by_text("Comparing 2 Runs", exact=False)).to_be_visible()
            for run in pair:
                assert run.info.run_id in page.url
                expect(page.get_by_text(run.info.run_id, exact=True).first).to_be_visible()
                expect(page.get_by_text(run.info.run_name, exact=True).first).to_be_visible()
            chosen = {r.info.run_id for r in pair}
            for run in (r for r in children if r.info.run_id not in chosen):
                expect(page.get_by_text(run.info.run_id, exact=True)).to_have_count(0)
            # Let the parallel-coordinates plot finish drawing before the picture (best effort).
            with contextlib.suppress(Exception):
                page.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=15_000)
                page.wait_for_timeout(500)
            shot = _save(page, tmp_path, "mlflow_ui_compare.png")
            assert shot.stat().st_size > 10_000

            # --- the parent's overview: its description, the claims' verdicts in a table ---
            page.goto(tracking.ui_link(base, exp_id, parent.info.run_id))
            verdicts = page.locator("table").filter(has=page.get_by_role("columnheader", name="verdict"))
            expect(verdicts).to_have_count(1)
            _try_click(page.get_by_text("Show more", exact=True))  # the overview folds long descriptions
            _close_panels(page)
            expect(verdicts).to_be_visible()
            claimed = {v for k, v in parent.data.tags.items() if k.startswith("actstudy.claim.")}
            assert claimed
            for verdict in claimed:
                expect(verdicts.get_by_role("cell", name=verdict, exact=True).first).to_be_visible()
            for run in children:  # the runs table under it
                expect(page.get_by_role("cell", name=run.info.run_name, exact=True)).to_be_visible()
            _save(page, tmp_path, "mlflow_ui_parent.png")
            report = page.get_by_role("link", name="report.html", exact=True)
            href = report.get_attribute("href")
            with page.expect_response(lambda r: "get-artifact" in r.url and "report.html" in r.url) as got:
                page.goto(f"{base}/{href}")  # the link opens the report in the run's artifacts
            assert got.value.ok

            # --- a child's overview: its key numbers and its per-layer figure ---
            child = max(
                children,
                key=lambda r: (r.data.params["activation.name"] == "sigmoid", r.data.params["depth"]),
            )
            page.goto(tracking.ui_link(base, exp_id, child.info.run_id))
            figure = page.locator('img[src*="figures%2Flayers.png"]')
            expect(figure).to_be_visible()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=figure.element_handle())
            expect(page.get_by_role("cell", name="best val acc", exact=True)).to_be_visible()
            _close_panels(page)
            _try_click(page.get_by_text("Show more", exact=True), timeout=3_000)
            figure.scroll_into_view_if_needed()
            _save(page, tmp_path, "mlflow_ui_child.png")
        finally:
            browser.close()


def _close_panels(page) -> None:
    """Dismiss what covers the page in a new browser (a feature tour, the assistant): for the pictures."""
    _try_click(page.get_by_role("button", name="Got it", exact=True), timeout=2_000)
    _try_click(page.locator("[data-assistant-ui]").get_by_role("button", name="Close"), timeout=2_000)
