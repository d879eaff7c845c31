"""``hedger demo``: replay a recorded wide bar file through the engine and show how the hedge
ratio moved, beside the static (full-sample OLS) ratio a desk would have computed overnight."""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from feeds.files.readers import read_wide_bars, wide_bar_symbols
from hedger.cli.demo_live import run_live_demo
from hedger.cli.options import add_date_format, add_drop_repeats, add_mode, at_least
from hedger.core.rejects import Rejects
from hedger.core.topics import PairId
from hedger.engine import FilterParams, FilterStep, HedgeFilter, InputMode
from hedger.engine.linalg import ols
from hedger.engine.transforms import usable_price
from hedger.errors import ConfigError, DataFileError
from hedger.logs import configure_logging
from hedger.research.prices import FirstReject, no_rows_problem

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "examples" / "sp500_nasdaq_daily.csv"


@dataclass(frozen=True, slots=True)
class DemoRow:
    """One bar of the demo: its label, the two prices and the filter's step."""

    label: str
    y: float
    x: float
    step: FilterStep


def run_demo(
    path: Path,
    pair: str | None,
    mode: InputMode,
    params: FilterParams,
    date_format: str | None = None,
    drop_repeats: bool = False,
) -> tuple[str, str, list[DemoRow], Rejects, float]:
    """Filter the pair over the file; returns (y symbol, x symbol, rows, rejects, seconds)."""
    symbols = wide_bar_symbols(path)
    if pair is None:
        if len(symbols) < 2:
            raise DataFileError(str(path), "needs at least two price columns")
        y_sym, x_sym = symbols[0], symbols[1]
    else:
        pair_id = PairId.parse(pair)
        if len(pair_id.xs) != 1:
            raise ConfigError("pair", f"the demo hedges with one symbol (Y/X), got {pair!r}")
        y_sym, x_sym = pair_id.y, pair_id.xs[0]
    for symbol in (y_sym, x_sym):
        if symbol not in symbols:
            raise ConfigError(
                "pair", f"{symbol!r} is not a column of {path} ({', '.join(symbols)})"
            )
    hf = HedgeFilter(params)
    first = FirstReject()
    rejects = Rejects(first)
    rows: list[DemoRow] = []
    started = time.perf_counter()
    bars = read_wide_bars(
        path, rejects, only=(y_sym, x_sym), date_format=date_format, drop_repeats=drop_repeats
    )
    for bar in bars:
        # the one price rule, counted as replay counts it (a price <= 0 in a log mode)
        y, x = (_usable(bar.prices.get(s), mode, rejects, str(path)) for s in (y_sym, x_sym))
        step = hf.step(y, x)
        rows.append(
            DemoRow(bar.label, math.nan if y is None else y, math.nan if x is None else x, step)
        )
    elapsed = time.perf_counter() - started
    if not rows:
        raise DataFileError(str(path), no_rows_problem(rejects.counts, first))
    return y_sym, x_sym, rows, rejects, elapsed


def _usable(price: float | None, mode: InputMode, rejects: Rejects, source: str) -> float | None:
    if price is None:
        return None
    if not usable_price(price, mode.logarithmic):
        rejects.add("bad_price", source)
        return None
    return price


def render(
    out: TextIO,
    y_sym: str,
    x_sym: str,
    rows: list[DemoRow],
    rejects: Rejects,
    elapsed: float,
    mode: InputMode,
    n_lines: int,
) -> None:
    """Print the table of sampled bars and the summary. The table always shows the first
    warm row (where the warm-up ends), whose beta is the summary's first one."""
    usable = [r for r in rows if not r.step.predicted_only]
    first_warm = next((i for i, r in enumerate(rows) if r.step.warm), None)
    picks = table_rows(len(rows), n_lines, first_warm)
    out.write(f"hedger demo: {y_sym}/{x_sym} ({y_sym} hedged with {x_sym}), mode {mode.value}\n\n")
    header = (
        f"{'bar':<12}{y_sym:>12}{x_sym:>12}{'beta':>10}{'+-2 sd':>11}{'alpha':>11}{'z':>7}  warm\n"
    )
    out.write(header)
    out.write("-" * (len(header) - 1) + "\n")
    for i in picks:
        r = rows[i]
        s = r.step
        z = "" if math.isnan(s.zscore) else f"{s.zscore:+.2f}"
        out.write(
            f"{r.label:<12}{r.y:>12.2f}{r.x:>12.2f}{s.beta:>10.4f}{2 * s.beta_std[0]:>11.4g}"
            f"{s.alpha:>11.2f}{z:>7}  {'yes' if s.warm else 'no'}\n"
        )
    betas = np.array([r.step.beta for r in rows if r.step.warm])
    zs = np.array([r.step.zscore for r in usable if r.step.warm])
    ys = np.array([r.y for r in usable])
    xs = np.array([r.x for r in usable])
    static = _static_ratio(ys, xs, mode)
    out.write("\nsummary\n")
    out.write(
        f"  bars                 {len(rows)} ({len(usable)} updates, {rejects.total} rejects)\n"
    )
    if betas.size:
        out.write(
            f"  dynamic beta         first {betas[0]:.4f}, last {betas[-1]:.4f}, "
            f"range {betas.min():.4f} .. {betas.max():.4f}\n"
        )
        out.write(
            f"  innovations          mean |z| {np.mean(np.abs(zs)):.2f}, "
            f"|z| > 2 on {100 * np.mean(np.abs(zs) > 2):.1f}% of bars\n"
        )
    if static is not None:
        out.write(
            f"  static beta (OLS)    {static:.4f} over the whole file, known only in hindsight\n"
        )
    rate = len(rows) / elapsed if elapsed > 0 else float("inf")
    out.write(
        f"  speed                {elapsed * 1e3:.1f} ms, {rate:,.0f} bars/s (file read included)\n"
    )


def table_rows(n_rows: int, n_lines: int, first_warm: int | None) -> list[int]:
    """The indices of the rows the table shows: ``n_lines`` (at least 2) spread evenly from
    the first row to the last, and the first warm row (``first_warm``) if it is not one of
    them (then one line more), so the table and the summary's first beta agree."""
    picks = {round(i) for i in np.linspace(0, n_rows - 1, max(n_lines, 2))}
    if first_warm is not None:
        picks.add(first_warm)
    return sorted(picks)


def _static_ratio(ys: np.ndarray, xs: np.ndarray, mode: InputMode) -> float | None:
    if ys.size < 3:
        return None
    if mode.logarithmic:
        ys, xs = np.log(ys), np.log(xs)
    if mode.differenced:
        ys, xs = np.diff(ys), np.diff(xs)
    design = np.column_stack([xs, np.ones_like(xs)]) if not mode.differenced else xs[:, None]
    try:
        return float(ols(design, ys)[0][0])
    except np.linalg.LinAlgError:
        return None


HELP = "replay a recorded price file through the engine and show how the ratio moved"
DESCRIPTION = (
    "Replay a wide bar CSV (a time column, then one price column per symbol) through "
    "the hedge filter and print a table of the hedge ratio over time with a summary."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hedger demo``."""
    parser.add_argument(
        "--file",
        type=Path,
        default=DEFAULT_FILE,
        help="wide bar CSV (.csv or .csv.gz); default: S&P 500 / NASDAQ daily closes 1999-2018",
    )
    parser.add_argument(
        "--pair", help="Y/X: the hedged symbol, then the hedge (default: the first two columns)"
    )
    add_mode(parser)
    add_date_format(parser)
    add_drop_repeats(parser)
    parser.add_argument(
        "--delta",
        type=float,
        default=1e-7,
        help=(
            "state noise, Q = delta/(1-delta) I (default 1e-7, which suits index levels in the "
            "thousands; Q scales with 1/price^2, so ETF prices near $30 want about 1e-4)"
        ),
    )
    parser.add_argument("--rows", type=at_least(2), default=24, help="table rows to show (24)")
    parser.add_argument(
        "--live",
        action="store_true",
        help="instead, run the daemon on a synthetic pair with a WebSocket server, live",
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="how long the live demo runs (10)"
    )
    parser.add_argument("--seed", type=int, default=1, help="the live demo's market seed (1)")


def run(args: argparse.Namespace) -> int:
    """The recorded demo, or the live one with ``--live``."""
    if args.live:
        configure_logging("warning")
        return asyncio.run(run_live_demo(args.seconds, args.seed))
    mode = InputMode(args.mode)
    params = FilterParams(mode=mode, delta=args.delta)
    y_sym, x_sym, rows, rejects, elapsed = run_demo(
        args.file, args.pair, mode, params, args.date_format, args.drop_repeats
    )
    render(sys.stdout, y_sym, x_sym, rows, rejects, elapsed, mode, args.rows)
    return 0
