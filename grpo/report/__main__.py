"""python -m grpo.report RUN_DIR [RUN_DIR ...] [--out DIR]: see grpo/report/__init__.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grpo.report import write_report
from grpo.report.runs import NotARun


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grpo.report",
                                     description="A training report with plots, from run directories' saved files.")
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories to report (overlaid)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where report.md and its PNGs go (default: RUN_DIR/report for one run, ./report)")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.runs, args.out)
    except NotARun as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
