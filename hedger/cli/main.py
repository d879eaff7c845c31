"""The ``hedger`` command line: the parser of every subcommand and the one place where a
:class:`~hedger.errors.HedgerError` becomes a one-line message and an exit status."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from types import ModuleType

from hedger import __version__
from hedger.cli import calibrate, demo, evaluate, matrix, pairs, replay, run, subscribe
from hedger.errors import HedgerError

COMMANDS: tuple[tuple[str, ModuleType], ...] = (
    ("demo", demo),
    ("replay", replay),
    ("matrix", matrix),
    ("calibrate", calibrate),
    ("evaluate", evaluate),
    ("run", run),
    ("subscribe", subscribe),
    ("pairs", pairs),
)
"""Each subcommand's name and module: a module has ``HELP``, ``DESCRIPTION``,
``add_arguments(parser)`` and ``run(args)``."""


NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
"""What argparse must read as a value, not an option: ``-1``, ``-0.5``, ``-1e-4`` (its own
rule misses the exponent, so ``--delta -1e-4`` was "expected one argument")."""


def _numbers_are_values(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    # argparse has no public switch for this: its (private) matcher decides what is a value.
    parser._negative_number_matcher = NEGATIVE_NUMBER
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand (a negative number after an option is its
    value, so that ``--delta -1e-4`` meets the range check, not a parser error)."""
    parser = _numbers_are_values(
        argparse.ArgumentParser(
            prog="hedger",
            description="Dynamic hedge ratios for stat-arb desks: a Kalman filter on every bar.",
        )
    )
    parser.add_argument("--version", action="version", version=f"hedger {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS:
        command = _numbers_are_values(
            commands.add_parser(name, help=module.HELP, description=module.DESCRIPTION)
        )
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except HedgerError as exc:
        print(f"hedger {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``hedger demo | head``): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status
