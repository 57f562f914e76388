"""`python -m actstudy {train,report,list,repair} [args]`: one entry point for the four commands."""

from __future__ import annotations

import sys

USAGE = "usage: python -m actstudy {train,report,list,repair} [args] (each command's own --help lists them)"


def main(argv: list[str] | None = None) -> int:
    """Run the named command with the remaining arguments; return its exit code (2: no such command)."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ("train", "report", "list", "repair"):
        print(f"actstudy: error: {args[0] + ': no such command; ' if args else ''}{USAGE}", file=sys.stderr)
        return 2
    command, rest = args[0], args[1:]
    if command == "train":
        from actstudy.cli.train import cli

        sys.argv = ["actstudy.train", *rest]  # Hydra reads its overrides from sys.argv
        cli()
        return 0
    if command == "report":
        from actstudy.report.__main__ import main as report

        return report(rest)
    from actstudy.cli.runs import main as runs

    return runs([command, *rest])


if __name__ == "__main__":
    sys.exit(main())
