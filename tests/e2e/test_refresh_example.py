"""`scripts/refresh_example.py`: the docs' quick-start results are written from a sweep's report, and the
committed ones are checked against the example report they quote."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import Sweep

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "refresh_example.py"


def refresh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_the_committed_results_paragraph_is_what_the_committed_example_report_says():
    done = refresh("--check")
    assert done.returncode == 0, done.stderr


def test_the_docs_are_written_from_the_sweeps_report_and_a_hand_edit_is_caught(
    tiny_sweep: Sweep, tmp_path: Path
):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copyfile(ROOT / "docs" / "results.md", docs / "results.md")
    before = (docs / "results.md").read_text()
    report = tiny_sweep.sweep_dir / "report"
    done = refresh("--report", str(report), "--wall-s", "75.4", "--load", "0.5", "--command", "the command",
                   "--docs", str(docs))  # fmt: skip
    assert done.returncode == 0, done.stderr
    example = docs / "report_example"
    assert (example / "report.md").read_text() == (report / "report.md").read_text()
    assert json.loads((example / "claims.json").read_text()) == json.loads(
        (report / "claims.json").read_text()
    )
    assert (docs / "figures" / "grad_by_layer.png").read_bytes() == (
        report / "grad_by_layer.png"
    ).read_bytes()
    text = (docs / "results.md").read_text()
    begin, end = text.index("<!-- refresh_example.py: begin"), text.index("<!-- refresh_example.py: end -->")
    assert text[:begin] == before[: before.index("<!-- refresh_example.py: begin")]  # the rest is kept
    assert text[end:] == before[before.index("<!-- refresh_example.py: end -->") :]
    generated = text[begin:end]
    assert (
        "`the command`, runs: 4 (4 completed), 1 min 15 s on" in generated
        and "(load average 0.50 at the start, " in generated
    )
    claims = json.loads((report / "claims.json").read_text())
    assert claims  # the tiny sweep tests some claims
    for claim in claims:
        assert f"  - {claim['setting']}: {claim['measured']}: **{claim['verdict']}**" in generated
    assert refresh("--check", "--docs", str(docs)).returncode == 0
    edited = generated.replace(claims[0]["measured"], claims[0]["measured"] + "0", 1)
    (docs / "results.md").write_text(text[:begin] + edited + text[end:])
    done = refresh("--check", "--docs", str(docs))
    assert done.returncode == 1
    assert done.stderr.startswith("refresh_example: docs/results.md does not match docs/report_example/")
