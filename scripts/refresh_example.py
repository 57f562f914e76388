"""Write the quick start's example into the docs from a sweep's report folder, or check that they agree.

    python scripts/refresh_example.py --report multirun/sweep-.../report --wall-s 368 --command "..."
    python scripts/refresh_example.py --check

The first form copies the report (report.md, claims.json, the gradient-by-layer figure) into
`docs/report_example/` and `docs/figures/`, with `run.json` (the command, its wall time, the date and
the machine), then rewrites the results paragraph of `docs/results.md` between its markers from those
files alone. `--check` renders the paragraph from the committed `docs/report_example/` and exits 1 if
`docs/results.md` says anything else: the numbers in the docs cannot drift from the run they quote.
`scripts/refresh_example.sh` runs the quick start and then the first form.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- refresh_example.py: begin (generated from docs/report_example; do not edit by hand) -->"
END = "<!-- refresh_example.py: end -->"
FIGURE = "grad_by_layer.png"


def copy_report(report: Path, docs: Path, facts: dict) -> None:
    """Copy the report's files into `docs/report_example/` (and its figure into `docs/figures/`)."""
    example = docs / "report_example"
    example.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "claims.json"):
        shutil.copyfile(report / name, example / name)
    (example / "run.json").write_text(json.dumps(facts, indent=2) + "\n")
    figure = report / FIGURE
    if figure.is_file():
        (docs / "figures").mkdir(exist_ok=True)
        shutil.copyfile(figure, docs / "figures" / FIGURE)


def _minutes(seconds: float) -> str:
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes} min {sec} s"


def paragraph(example: Path) -> str:
    """Return the results paragraph (Markdown) that the files in `example` support, and nothing else."""
    facts = json.loads((example / "run.json").read_text())
    claims = json.loads((example / "claims.json").read_text())
    header = (example / "report.md").read_text()
    runs = re.search(r"\*\*runs:\*\* (.+)", header)
    by_claim: dict[str, list[dict]] = defaultdict(list)
    for claim in claims:
        by_claim[claim["claim"]].append(claim)
    lines = [
        f"The quick-start sweep as `scripts/refresh_example.sh` last ran it on {facts['date']}: "
        f"`{facts['command']}`, runs: {runs[1] if runs else '?'}, {_minutes(facts['wall_s'])} on "
        f"{facts['cpus']} CPU cores (load average {facts['load_at_start']:.2f} at the start, "
        f"{facts['load_at_end']:.2f} at the end). "
        f"Its claims, per setting, with the verdict by the rule the report states "
        f"([the whole report](report_example/report.md)):",
        "",
    ]
    for text, rows in by_claim.items():
        verdicts = sorted({row["verdict"] for row in rows})
        lines.append(f"- *{text}* ({rows[0]['literature']}): {', '.join(verdicts)}")
        lines += [f"  - {row['setting']}: {row['measured']}: **{row['verdict']}**" for row in rows]
    return "\n".join(lines)


def block(text: str) -> tuple[int, int]:
    """Return where the generated block of `docs/results.md` starts and ends (its markers included)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"refresh_example: docs/results.md lacks the markers {BEGIN!r} ... {END!r}")
    return start, end + len(END)


def write_paragraph(docs: Path) -> None:
    """Replace the generated block of `docs/results.md` with the paragraph of `docs/report_example/`."""
    results = docs / "results.md"
    text = results.read_text()
    start, end = block(text)
    results.write_text(
        text[:start] + BEGIN + "\n" + paragraph(docs / "report_example") + "\n" + END + text[end:]
    )


def check(docs: Path) -> int:
    """Return 0 if `docs/results.md` quotes exactly what `docs/report_example/` holds, else 1 (said)."""
    text = (docs / "results.md").read_text()
    start, end = block(text)
    expected = BEGIN + "\n" + paragraph(docs / "report_example") + "\n" + END
    if text[start:end] == expected:
        return 0
    print(
        "refresh_example: docs/results.md does not match docs/report_example/: "
        "run scripts/refresh_example.sh (or refresh_example.py --report <its report folder> ...)",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help="the sweep's report folder (report.md, claims.json)")
    parser.add_argument("--wall-s", type=float, help="the sweep command's wall time in seconds")
    parser.add_argument("--command", default="", help="the sweep command as it was run")
    parser.add_argument("--load", type=float, default=None, help="the load average when it started")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs", help="default: the project's docs/")
    parser.add_argument("--check", action="store_true", help="only check docs/results.md against the example")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.docs)
    if args.report is None or args.wall_s is None:
        parser.error("--report and --wall-s are needed (or --check)")
    facts = {
        "command": args.command,
        "wall_s": args.wall_s,
        "date": dt.date.today().isoformat(),
        "cpus": len(os.sched_getaffinity(0)),
        "load_at_start": args.load if args.load is not None else os.getloadavg()[0],
        "load_at_end": os.getloadavg()[0],
    }
    copy_report(args.report, args.docs, facts)
    write_paragraph(args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
