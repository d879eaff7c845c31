"""``hedger calibrate``: fit a pair's noise (delta, R) by maximum likelihood and choose its input
mode by the in-sample variance of the hedged P&L (:mod:`hedger.engine.calibrate`).

Prints a table of every mode's fit and a ready-to-paste ``[pairs."Y/X"]`` TOML table (or one
JSON object with ``--json``); ``--write FILE`` puts that table into a TOML file, replacing the
pair's table if it has one and keeping everything else as it was.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from hedger.cli.history import add_history_arguments, read_pair_history
from hedger.cli.options import output_path, pair_label
from hedger.config.combine import MEMBERS
from hedger.config.edit import write_pair_table
from hedger.engine import InputMode
from hedger.engine.calibrate import WARMUP, Calibration, NoiseFit, calibrate
from hedger.research.combination import CombinationAdvice, combination_advice
from hedger.research.prices import PriceTable, leading_bars

AUTO = "auto"


HELP = "fit a pair's filter noise (delta, R) and input mode to a price history"
DESCRIPTION = (
    "Fit the state noise delta (Q = delta/(1-delta) I) and the observation noise R of a "
    "pair's Kalman filter by maximum likelihood, in one input mode or in all four "
    "(auto), choose the mode (log returns whenever they can be fitted), check the combined "
    "hedge in sample, and print the fits with a ready-to-paste config table."
)


def add_arguments(cal: argparse.ArgumentParser) -> None:
    """The options of ``hedger calibrate``."""
    add_history_arguments(
        cal,
        until=("--until", "--train-until"),
        until_help="fit only on bars before DATE (ISO 8601) or on the first FRACTION (0-1) of bars",
    )
    cal.add_argument(
        "--mode",
        choices=[*(m.value for m in InputMode), AUTO],
        default=AUTO,
        help="input mode to fit (default auto: all four, returns chosen whenever fitted)",
    )
    cal.add_argument("--write", type=Path, metavar="TOML", help="add the pair's table to this file")
    cal.add_argument("--json", action="store_true", help="print one JSON object instead")


def run(args: argparse.Namespace) -> int:
    """Run ``hedger calibrate``; returns the exit status."""
    output_path("write", args.write)
    history = read_pair_history(args, "calibrate", "calibrate fits pairs Y/X, not baskets ({pair})")
    pair, table = history.pair, history.table
    end = cut_index(table, args.until)
    y, x = history.y[:end], history.x[:end]
    modes = list(InputMode) if args.mode == AUTO else [InputMode(args.mode)]
    progress = sys.stderr.isatty()
    if progress:
        sys.stderr.write(
            f"calibrating {pair_label(pair)} on {end:,} bars, {len(modes)} mode(s)...\n"
        )
    result = calibrate(y, x, modes=modes)
    advice = combination_advice(y, x, result.best.filter_params())
    snippet = toml_table(
        str(pair), result.best, source=args.file.name, bars=(table, end), advice=advice
    )
    if args.write is not None:
        write_pair_table(args.write, str(pair), snippet)
    if args.json:
        document = as_json(str(pair), result, snippet, table, end)
        document["combination"] = advice_json(advice)
        print(json.dumps(document, indent=2))
    else:
        print(format_report(pair_label(pair), result, table, end, args.file.name))
        print(advice_text(advice))
        print()
        print(snippet, end="")
        if args.write is not None:
            print(f"\n(written to {args.write})")
    return 0


def cut_index(table: PriceTable, until: str | None) -> int:
    """The number of bars to fit on: all, those before a date, or a leading fraction."""
    if until is None:
        return len(table.ts)
    return leading_bars(until, len(table.ts), table.index_of, key="until", whole=True)


def _number(value: float) -> str:
    """A float as TOML and Python both read back exactly."""
    return repr(float(value))


def toml_table(
    pair: str,
    fit: NoiseFit,
    *,
    source: str,
    bars: tuple[PriceTable, int],
    advice: CombinationAdvice | None = None,
) -> str:
    """The ``[pairs."Y/X"]`` table of ``fit``: every key :mod:`hedger.config.pipeline` needs to
    run the fitted model (fixed R, the OLS warm-up the likelihood assumed), plus a comment
    saying where it came from; with ``advice`` recommending it, the ``combine`` key that runs
    the combined hedge (else a comment saying why not)."""
    table, end = bars
    span = f"{table.labels[0]} .. {table.labels[end - 1]}" if end else "no bars"
    notes = " (static beta: likelihood largest at delta = 0)" if fit.static else ""
    if fit.at_upper:
        notes = " (delta at the top of the search range: a beta that re-fits every bar)"
    lines = [
        f'[pairs."{_toml_key(pair)}"]',
        f"# hedger calibrate: {source}, {end} bars {span}; loglik {fit.loglik:.6g} over "
        f"{fit.n_obs} observations, hedged P&L variance {fit.hedged_variance:.6g}{notes}",
        f'mode = "{fit.mode.value}"',
        f"intercept = {'true' if fit.intercept else 'false'}",
        f"delta = {_number(fit.delta)}",
        f"obs_cov = {_number(fit.obs_cov)}",
        "adaptive_r = false",
        'init = "ols"',
        f"warmup = {WARMUP}",
    ]
    if advice is not None and not advice.measured:
        lines.append(
            f"# the combined hedge could not be checked: {advice.bars} bars with every member's P&L"
        )
    elif advice is not None:
        comparison = (
            f"in-sample hedged var {advice.combined_variance:.6g} vs {advice.single_variance:.6g}"
            f" for this filter alone ({advice.change:+.1%})"
        )
        if advice.recommended:
            members = ", ".join(f'"{name}"' for name in MEMBERS)
            lines += [
                f"# the combined hedge: {comparison}",
                f"combine = {{ members = [{members}], rolling_window = {advice.rolling_window} }}",
            ]
        else:
            lines.append(f"# the combined hedge is not recommended: {comparison}")
    return "\n".join(lines) + "\n"


def advice_text(advice: CombinationAdvice) -> str:
    """The report's lines on the combined hedge."""
    if not advice.measured:
        return (
            f"\ncombined hedge: not checked ({advice.bars} bars with every member's P&L, too few "
            "for a variance); the table below runs the filter alone"
        )
    verdict = "recommended" if advice.recommended else "NOT recommended"
    return (
        f"\ncombined hedge (this filter, the seed's, Chan's and rolling OLS on changes over "
        f"{advice.rolling_window} bars, minimum-variance weights learnt online): {verdict}\n"
        f"  in-sample hedged var {advice.combined_variance:.4g} vs {advice.single_variance:.4g} "
        f"for the filter alone ({advice.change:+.1%}) over {advice.bars} bars"
        + ("" if advice.recommended else "; the table below runs the filter alone")
    )


def advice_json(advice: CombinationAdvice) -> dict[str, Any]:
    """The combination check as JSON values."""
    return {
        "recommended": advice.recommended,
        "members": list(MEMBERS),
        "rolling_window": advice.rolling_window,
        "combined_variance": advice.combined_variance,
        "single_variance": advice.single_variance,
        "bars": advice.bars,
    }


def _toml_key(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def format_report(pair: str, result: Calibration, table: PriceTable, end: int, source: str) -> str:
    """The table of fits, one row per mode, the chosen one marked."""
    span = f"{table.labels[0]} .. {table.labels[end - 1]}"
    head = (
        f"hedger calibrate: {pair} on {source}, {end} bars ({span}); warm-up {WARMUP} "
        "observations excluded from the likelihood"
    )
    header = (
        f"{'mode':<8} {'delta':>10} {'Q':>10} {'R':>10} {'log-lik':>12} {'n':>6} "
        f"{'hedged var':>11} {'se log Q':>8}"
    )
    rows = [head, "", header]
    for fit in result.fits:
        chosen = "<- chosen" if fit is result.best else ""
        note = "static" if fit.static else "upper bound" if fit.at_upper else ""
        rows.append(
            f"{fit.mode.value:<8} {fit.delta:>10.3e} {fit.trans_cov:>10.3e} {fit.obs_cov:>10.3e} "
            f"{fit.loglik:>12.2f} {fit.n_obs:>6} {fit.hedged_variance:>11.4g} "
            f"{fit.log_q_se:>8.2f}  {' '.join(filter(None, (note, chosen)))}".rstrip()
        )
    for mode, why in result.failed:
        rows.append(f"{mode.value:<8} not fitted: {why}")
    rows.append("")
    rows.append(
        "hedged var: in-sample variance of dY - h dX per share of Y, h set a bar before.\n"
        "chosen: returns whenever they can be fitted (in-sample differences of a few percent\n"
        "between modes do not last out of sample; docs/evaluation.md)."
    )
    return "\n".join(rows)


def as_json(
    pair: str, result: Calibration, snippet: str, table: PriceTable, end: int
) -> dict[str, Any]:
    """The result as plain JSON values (NaN as null)."""

    def clean(value: float) -> float | None:
        return None if math.isnan(value) else value

    return {
        "pair": pair,
        "bars": end,
        "first": table.labels[0],
        "last": table.labels[end - 1],
        "warmup": WARMUP,
        "chosen": result.best.mode.value,
        "failed": [{"mode": mode.value, "error": why} for mode, why in result.failed],
        "fits": [
            {
                "mode": fit.mode.value,
                "intercept": fit.intercept,
                "delta": fit.delta,
                "trans_cov": fit.trans_cov,
                "obs_cov": fit.obs_cov,
                "loglik": fit.loglik,
                "n_obs": fit.n_obs,
                "hedged_variance": clean(fit.hedged_variance),
                "log_q_se": clean(fit.log_q_se),
                "static": fit.static,
                "at_upper": fit.at_upper,
            }
            for fit in result.fits
        ],
        "toml": snippet,
    }
