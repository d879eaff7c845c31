"""The price history a pair command (``calibrate``, ``evaluate``) reads: its arguments (FILE,
``--pair``, ``--until`` / ``--train-until``, ``--bar``) and the pair's two price columns."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hedger.cli.options import add_date_format, add_drop_repeats, check_bar
from hedger.core.topics import PairId
from hedger.errors import ConfigError
from hedger.research.prices import PriceTable, load_prices


def add_history_arguments(
    parser: argparse.ArgumentParser, *, until: tuple[str, str], until_help: str
) -> None:
    """FILE, ``--pair Y/X``, the cut (``until``: its two option names, the first one naming
    the attribute) and ``--bar``."""
    parser.add_argument(
        "file", type=Path, metavar="FILE", help="wide bar CSV or tick file (any of them .gz)"
    )
    parser.add_argument("--pair", required=True, metavar="Y/X", help="hedged symbol / hedge symbol")
    parser.add_argument(*until, metavar="DATE|FRACTION", help=until_help)
    parser.add_argument("--bar", default="1d", help="bar length for tick files (default 1d)")
    add_date_format(parser)
    add_drop_repeats(parser)


@dataclass(frozen=True, slots=True)
class PairHistory:
    """A pair's prices: the table they came from and the Y and X columns (currency units,
    NaN where a symbol has no price)."""

    pair: PairId
    table: PriceTable
    y: np.ndarray
    x: np.ndarray


def read_pair_history(args: argparse.Namespace, command: str, refusal: str) -> PairHistory:
    """The history ``args`` name; a basket is refused with ``refusal`` (``{pair}``: the
    argument). What the file had to reject is one line on stderr."""
    pair = PairId.parse(args.pair)
    if pair.is_basket:
        raise ConfigError("pair", refusal.format(pair=args.pair))
    table = load_prices(
        args.file,
        bar=check_bar(args.bar),
        date_format=args.date_format,
        drop_repeats=args.drop_repeats,
    )
    table.require_rows(args.file)
    note = table.rejects_note()
    if note is not None:
        print(f"hedger {command}: {args.file}: {note}", file=sys.stderr)
    return PairHistory(pair, table, table.column(pair.y), table.column(pair.xs[0]))
