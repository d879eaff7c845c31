"""The ``hedger`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hedger import __version__
from hedger.demo import DEFAULT_FILE, render, run_demo
from hedger.engine import FilterParams, InputMode
from hedger.errors import HedgerError


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="hedger",
        description="Dynamic hedge ratios for stat-arb desks: a Kalman filter on every bar.",
    )
    parser.add_argument("--version", action="version", version=f"hedger {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="replay a recorded price file through the engine and show how the ratio moved",
        description=(
            "Replay a wide bar CSV (a time column, then one price column per symbol) through "
            "the hedge filter and print a table of the hedge ratio over time with a summary."
        ),
    )
    demo.add_argument(
        "--file",
        type=Path,
        default=DEFAULT_FILE,
        help="wide bar CSV (.csv or .csv.gz); default: S&P 500 / NASDAQ daily closes 1999-2018",
    )
    demo.add_argument(
        "--pair", help="Y/X: the hedged symbol, then the hedge (default: the first two columns)"
    )
    demo.add_argument(
        "--mode",
        choices=[m.value for m in InputMode],
        default=InputMode.LEVELS.value,
        help="input transform (default: levels)",
    )
    demo.add_argument(
        "--delta",
        type=float,
        default=1e-7,
        help=(
            "state noise, Q = delta/(1-delta) I (default 1e-7, which suits index levels in the "
            "thousands; Q scales with 1/price^2, so ETF prices near $30 want about 1e-4)"
        ),
    )
    demo.add_argument("--rows", type=_positive_int, default=24, help="table rows to show (24)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            return _demo(args)
    except HedgerError as exc:
        print(f"hedger {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``hedger demo | head``): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 1


def _demo(args: argparse.Namespace) -> int:
    mode = InputMode(args.mode)
    params = FilterParams(mode=mode, delta=args.delta)
    y_sym, x_sym, rows, rejects, elapsed = run_demo(args.file, args.pair, mode, params)
    render(sys.stdout, y_sym, x_sym, rows, rejects, elapsed, mode, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
