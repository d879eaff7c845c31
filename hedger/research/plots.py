"""Pictures of an evaluation (matplotlib, the optional extra ``hedger[plot]``).

matplotlib is loaded in one place, :func:`figure_class`, only when a plot is drawn, so the rest
of hedger never needs it; without it, a :class:`~hedger.errors.ConfigError` says how to install
it. Figures are drawn on matplotlib's ``Figure`` directly (its Agg canvas: no pyplot, no
display, no global state).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from hedger.core.topics import PairId
from hedger.engine.units import hedged_pnl
from hedger.errors import ConfigError
from hedger.research.evaluate import Evaluation

WIDTH_PX, HEIGHT_PX, DPI = 1400, 1000, 100

# what the P&L panel draws boldly, with its colour; every other method is a thin grey line
_HIGHLIGHT = {
    "static-levels": "#d62728",
    "static-changes": "#ff7f0e",
    "rolling-levels": "#9467bd",
    "rolling-changes": "#8c564b",
}
_RECOMMENDED = "#1f77b4"


def figure_class() -> Any:
    """matplotlib's ``Figure`` class, or a :class:`ConfigError` telling how to install it."""
    try:
        from matplotlib.figure import Figure  # noqa: PLC0415 (optional extra, lazily)
    except ImportError:
        raise ConfigError(
            "plot", "needs matplotlib, the optional extra: pip install 'hedger[plot]'"
        ) from None
    return Figure


_MEMBER_COLOURS = ("#1f77b4", "#2ca02c", "#17becf", "#bcbd22", "#8c564b", "#7f7f7f")
_ALARM_COLOURS = {"up": "#ff7f0e", "down": "#9467bd", "scale": "#e377c2"}


def plot_evaluation(ev: Evaluation, path: str | Path) -> Path:
    """Draw ``ev`` as one PNG (1400 x 1000 px) at ``path``: five panels on a shared date axis
    -- the recommended (combined) hedge with its members' hedges and the static OLS hedges; the
    combination's weights; the calibrated filter's forecast error e with the +-sqrt(S) band
    and its z-score with the +-2 lines; the cumulative hedged P&L of every method over the
    test window. The relationship-break alarms are shaded on the z-score panel. Returns the
    path written."""
    figure = figure_class()
    import matplotlib.dates as mdates  # noqa: PLC0415 (optional extra, lazily)

    out = Path(path)
    dates = np.asarray(ev.ts, dtype="datetime64[ns]").astype("datetime64[ms]").astype(object)
    split = ev.split.train_bars
    split_date = dates[split]
    rec = ev.paths[ev.recommended]
    flt = ev.paths[ev.alarm_method or ev.recommended]
    flt_row = ev.method(ev.alarm_method or ev.recommended)
    members = ev.combination.members if ev.combination is not None else ()
    pair = PairId.parse(ev.pair)
    y_sym, x_sym = pair.y, pair.xs[0]

    fig = figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    axes = fig.subplots(5, 1, sharex=True, gridspec_kw={"height_ratios": [1.2, 0.7, 0.9, 0.8, 1.3]})
    fig.suptitle(
        f"{y_sym} hedged with {x_sym}: recommended = {len(members)} hedges combined  "
        f"|  train to {ev.split.train_end}, test from {ev.split.test_start}",
        fontsize=13,
        fontweight="bold",
    )
    for ax in axes:
        ax.axvspan(split_date, dates[-1], color="#f2f2f2", zorder=0)
        ax.axvline(split_date, color="#555555", linewidth=1.0, linestyle="--", zorder=1)
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.tick_params(labelsize=9)

    ax = axes[0]
    for k, name in enumerate(members):
        ax.plot(
            dates,
            ev.paths[name].hedge,
            color=_MEMBER_COLOURS[k % len(_MEMBER_COLOURS)],
            linewidth=0.5,
            alpha=0.8,
            label=name,
        )
    ax.plot(dates, rec.hedge, color=_RECOMMENDED, linewidth=1.4, label="recommended (combined)")
    for name, style in (("static-levels", "-"), ("static-changes", "--")):
        ax.axhline(
            float(ev.paths[name].hedge[-1]),
            color=_HIGHLIGHT[name],
            linewidth=1.2,
            linestyle=style,
            label=f"static OLS on {name.split('-')[1]} (training)",
        )
    _clip_to(ax, rec.hedge[np.isfinite(rec.hedge)], np.zeros(0))
    ax.set_title("Hedge ratio  (y axis: 0.5-99.5% of the values)", fontsize=11, loc="left")
    ax.set_ylabel(f"shares of {x_sym}\nper share of {y_sym}", fontsize=9)
    ax.legend(loc="upper left", fontsize=8, ncol=4, framealpha=0.9)

    ax = axes[1]
    if ev.weights is not None and members:
        colours = [_MEMBER_COLOURS[k % len(_MEMBER_COLOURS)] for k in range(len(members))]
        ax.stackplot(dates, ev.weights.T, colors=colours, alpha=0.8, labels=members)
        ax.legend(loc="upper left", fontsize=7, ncol=len(members), framealpha=0.9)
    ax.set_ylim(0.0, 1.0)
    ax.set_title("Weights of the combination (set at each close)", fontsize=11, loc="left")
    ax.set_ylabel("weight", fontsize=9)

    unit = _error_unit(flt_row.mode, y_sym)
    ax = axes[2]
    sd = flt.scale
    ax.fill_between(dates, -sd, sd, color=_RECOMMENDED, alpha=0.2, linewidth=0, label="+-sqrt(S)")
    ax.plot(dates, flt.error, color="#333333", linewidth=0.5, label="forecast error e")
    ax.set_title(
        f"{ev.alarm_method or ev.recommended}: forecast error e (innovation) with its "
        "predicted sd  (y axis: 0.5-99.5% of the values)",
        fontsize=11,
        loc="left",
    )
    ax.set_ylabel(unit, fontsize=9)
    ax.legend(loc="upper left", fontsize=8, ncol=2, framealpha=0.9)
    _clip_to(ax, flt.error[np.isfinite(flt.error)], np.zeros(0))

    ax = axes[3]
    z = flt.zscore
    ax.plot(dates, z, color="#333333", linewidth=0.5)
    for level in (-2.0, 2.0):
        ax.axhline(level, color="#d62728", linewidth=1.0, linestyle="--")
    share = flt_row.share_abs_z_over_2
    for span in ev.alarms:
        end = dates[-1] if span.end is None else dates[span.end]
        ax.axvspan(dates[span.start], end, color=_ALARM_COLOURS[span.kind], alpha=0.35, zorder=0)
    for kind, colour in _ALARM_COLOURS.items():
        ax.fill_between([], [], color=colour, alpha=0.35, label=f"alarm: {kind}")
    if ev.alarms:
        ax.legend(loc="upper left", fontsize=8, ncol=3, framealpha=0.9)
    ax.set_title(
        f"z-score e / sqrt(S)  (|z| > 2 on {share:.1%} of test bars; "
        f"{len(ev.alarms)} break alarms shaded)",
        fontsize=11,
        loc="left",
    )
    ax.set_ylabel("z", fontsize=9)
    ax.set_ylim(-6, 6)

    ax = axes[4]
    for row in reversed(ev.methods):
        pnl = hedged_pnl(ev.y, ev.x, ev.paths[row.name].hedge)
        cum = np.full(len(pnl), math.nan)
        cum[split:] = np.cumsum(np.nan_to_num(pnl[split:]))
        if row.recommended:
            color, width, label, zorder = _RECOMMENDED, 2.0, "recommended", 5
        elif row.name in _HIGHLIGHT:
            color, width, label, zorder = _HIGHLIGHT[row.name], 1.3, row.name, 4
        else:
            color, width, label, zorder = "#aaaaaa", 0.6, None, 2
        if label is not None:
            label = f"{label}  (var {row.hedged_variance:.4g} {y_sym} units^2)"
        ax.plot(dates, cum, color=color, linewidth=width, label=label, zorder=zorder)
    ax.plot([], [], color="#aaaaaa", linewidth=0.6, label="other Kalman candidates")
    ax.set_title(
        "Cumulative hedged P&L per share of Y over the test window (dY - h dX)",
        fontsize=11,
        loc="left",
    )
    ax.set_ylabel(f"{y_sym} price units", fontsize=9)
    ax.legend(loc="upper left", fontsize=8, ncol=2, framealpha=0.9)
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.set_xlim(dates[0], dates[-1])
    ax.text(
        0.995,
        0.03,
        "shaded: test window",
        transform=ax.transAxes,
        ha="right",
        fontsize=8,
        color="#555555",
    )

    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(out, dpi=DPI)
    return out


def _error_unit(mode: str, y_sym: str) -> str:
    return {
        "levels": f"{y_sym} price units",
        "log": "log price",
        "changes": f"{y_sym} price change",
        "returns": "log return",
    }[mode]


def _clip_to(ax: Any, values: np.ndarray, band: np.ndarray) -> None:
    """Scale the y axis to the 0.5-99.5% range of the data so a warm-up spike does not
    flatten the rest."""
    if values.size == 0:
        return
    lo, hi = np.percentile(values, [0.5, 99.5])
    if band.size:
        lo -= float(np.percentile(band, 99.5))
        hi += float(np.percentile(band, 99.5))
    pad = 0.1 * (hi - lo) if hi > lo else 1.0
    ax.set_ylim(lo - pad, hi + pad)
