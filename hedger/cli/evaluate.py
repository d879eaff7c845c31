"""``hedger evaluate``: compare dynamic and static hedges of one pair out of sample.

Prints a table sorted by out-of-sample hedged variance (or the JSON document with ``--json``)
and a one-line verdict; ``--plot`` also draws :func:`hedger.research.plots.plot_evaluation`.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TextIO

from hedger.cli.history import add_history_arguments, read_pair_history
from hedger.cli.options import PLOT_SUFFIXES, output_path, pair_label
from hedger.core.topics import PairId
from hedger.research.evaluate import DEFAULT_COST_BPS, Evaluation, evaluate_pair, split_index

HELP = "compare dynamic (Kalman) and static (OLS) hedges of a pair out of sample"
DESCRIPTION = (
    "Split a price file's history into a training and a test window, fit every "
    "candidate hedge (the Kalman filter in each input mode with calibrated, Chan's and "
    "the seed's parameters; static and rolling OLS on levels and on changes) on the "
    "training window, run them over the whole history and compare them on the test "
    "window: the variance of the hedged P&L dY - h dX per share of Y first."
)


def add_arguments(cmd: argparse.ArgumentParser) -> None:
    """The options of ``hedger evaluate``."""
    add_history_arguments(
        cmd,
        until=("--train-until", "--until"),
        until_help="train on bars before this date, or on this fraction of the bars (default 0.5)",
    )
    cmd.add_argument(
        "--cost",
        type=float,
        default=DEFAULT_COST_BPS,
        metavar="BPS",
        help=f"backtest cost per trade, bps of the notional traded (default {DEFAULT_COST_BPS:g})",
    )
    cmd.add_argument("--plot", type=Path, metavar="PNG", help="also draw the evaluation here")
    cmd.add_argument("--json", action="store_true", help="print the JSON document instead")


def run(args: argparse.Namespace) -> int:
    """Run ``hedger evaluate``; returns the exit status (errors raise HedgerError)."""
    output_path("plot", args.plot, PLOT_SUFFIXES)
    history = read_pair_history(
        args, "evaluate", "evaluate compares a pair Y/X, not a basket: {pair!r}"
    )
    pair, table, y, x = history.pair, history.table, history.y, history.x
    split = split_index(args.train_until, table, len(y))
    evaluation = evaluate_pair(
        y,
        x,
        pair=str(pair),
        ts=table.ts,
        labels=table.labels,
        split=split,
        cost_bps=args.cost,
    )
    if args.plot is not None:
        from hedger.research.plots import plot_evaluation  # noqa: PLC0415 (optional extra, lazily)

        plot_evaluation(evaluation, args.plot)
    if args.json:
        sys.stdout.buffer.write(evaluation.to_json())
    else:
        render(sys.stdout, evaluation)
        if args.plot is not None:
            print(f"plot written to {args.plot}")
    return 0


def _pct(value: float) -> str:
    return f"{value:+.1%}" if math.isfinite(value) else "n/a"


def _num(value: float, spec: str) -> str:
    width = int(spec.split(".", 1)[0] or 0)
    return format(value, spec) if math.isfinite(value) else "n/a".rjust(width)


def _half_life(value: float) -> str:
    if math.isinf(value):
        return "none"
    return f"{value:.0f}" if math.isfinite(value) else "n/a"


def render(out: TextIO, ev: Evaluation) -> None:
    """The human-readable table: one row per method, best (lowest variance) first."""
    s = ev.split
    pair = PairId.parse(ev.pair)
    hedges = "+".join(pair.xs)
    out.write(
        f"hedger evaluate: {pair_label(pair)} ({pair.y} hedged with {hedges}), {ev.bars} bars\n"
        f"  train {s.train_start} .. {s.train_end} ({s.train_bars} bars), "
        f"test {s.test_start} .. {s.test_end} ({s.test_bars} bars, {s.measured_bars} measured), "
        f"backtest cost {ev.cost_bps:g} bps, Sharpe annualised with "
        f"{ev.periods_per_year:.1f} bars a year\n\n"
    )
    header = (
        f"{'':2} {'method':27} {'setting':12} {'hedged var':>11} {'vs st.lvl':>9} "
        f"{'vs st.chg':>9} {'half-life':>9} {'|z|>2':>6} {'return':>8} {'Sharpe':>6} "
        f"{'max DD':>7} {'trades':>6} {'hedge':>8}"
    )
    out.write(header + "\n" + "-" * len(header) + "\n")
    for rank, row in enumerate(ev.methods):
        mark = ("*" if rank == 0 else " ") + ("R" if row.recommended else " ")
        bt = row.backtest
        out.write(
            f"{mark:2} {row.name:27} {row.setting:12} {_num(row.hedged_variance, '11.5g')} "
            f"{_pct(row.reduction_vs_static_levels):>9} "
            f"{_pct(row.reduction_vs_static_changes):>9} "
            f"{_half_life(row.half_life):>9} {_num(row.share_abs_z_over_2 * 100, '5.1f')}% "
            f"{_pct(bt.total_return):>8} {_num(bt.sharpe, '6.2f')} "
            f"{_num(bt.max_drawdown * 100, '6.1f')}% {bt.trades:6d} "
            f"{_num(row.final_hedge, '8.4f')}\n"
        )
    out.write(
        "\n* lowest out-of-sample hedged variance    R hedger's recommended hedge\n"
        "combined: members' hedges weighted by their recent hedged P&L (minvar) or equally;\n"
        "  its |z| and backtest use its hedged P&L over the sd its weights expected\n"
        "hedged var: variance of dY - h dX per share of Y on the test bars (price units^2)\n"
        "vs st.lvl, vs st.chg: its reduction vs the static OLS hedge on levels, on changes\n"
        "half-life: AR(1) half-life (bars) of the hedged position's value; none = a unit root\n"
        "  is not rejected (Dickey-Fuller, 5%)\n"
        "|z|>2: share of test bars whose forecast error exceeds 2 predicted sd\n"
        "return, Sharpe, max DD, trades: z-score backtest (enter at |e| > sd, exit when e "
        "crosses 0);\n"
        "  Sharpe n/a: no trades (a filter whose R is far above the data's never signals)\n"
        "hedge: the last hedge, shares of X per share of Y\n\n"
    )
    out.write(f"verdict: {ev.verdict}\n")
    if ev.combination is not None:
        out.write(combination_summary(ev) + "\n")
    out.write(alarm_summary(ev) + "\n")


def combination_summary(ev: Evaluation) -> str:
    """The recommended combination's members with their mean weight over the test bars and
    their weight after the last bar."""
    c = ev.combination
    assert c is not None
    parts = ", ".join(
        f"{name} {mean:.2f} (last {last:.2f})"
        for name, mean, last in zip(c.members, c.mean_test_weights, c.final_weights, strict=True)
    )
    return f"combined weights, mean over the test bars: {parts}"


def alarm_summary(ev: Evaluation) -> str:
    """One line on the calibrated filter's break alarms: how many, how many in the test
    window, and the first few raised there."""
    split = ev.split.train_bars
    in_test = [span for span in ev.alarms if span.start >= split]
    text = (
        f"break alarms on {ev.alarm_method}: {len(ev.alarms)} over the history, "
        f"{len(in_test)} in the test window"
    )
    labels = ev.labels
    if in_test and labels:
        shown = ", ".join(f"{span.kind} {labels[span.start]}" for span in in_test[:5])
        more = f", ... ({len(in_test) - 5} more)" if len(in_test) > 5 else ""
        text += f" ({shown}{more})"
    return text
