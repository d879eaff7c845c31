"""Hedge quality, measured out of sample: does the dynamic hedge beat the static one?

:func:`evaluate_pair` splits a pair's history at ``split`` into a training window ``[0, split)``
and a test window ``[split, T)``, builds every candidate on the training window, runs each over
the *whole* history (training then test) and measures it on the test window only.

Candidates (names as in the results):

- ``kalman-<mode>-calibrated``: the filter in each input mode (levels, log, changes, returns)
  with delta and R fitted on the training window by :func:`hedger.engine.calibrate.calibrate`;
- ``kalman-<mode>-chan``: Chan's delta = 1e-4 and fixed R = Ve = 1e-3 (OLS warm-up start);
- ``kalman-<mode>-seed``: the seed article's Q = I, R = 1, prior N(0, I);
- ``static-levels``, ``static-changes``: OLS on the training window of Y on X and of dY on dX
  (the minimum-variance hedge), held unchanged;
- ``rolling-levels``, ``rolling-changes``: OLS on the last w bars at every bar, w chosen on the
  training window (:func:`hedger.research.baselines.choose_window`);
- ``combined``: the combination (:mod:`hedger.engine.combine`) of :data:`COMBINED_MEMBERS`
  with minimum-variance weights learnt online from the members' hedged P&L; and
  ``combined-equal``, the same members with equal weights (the baseline of the weighting).

The recommended hedge is ``combined`` (flagged ``recommended``). Its members were chosen on
the 32 study pairs of ``docs/evaluation.md`` only. The ``kalman-*`` and ``static``/``rolling``
rows are the *single* candidates the combination is measured against.

Metrics (test window, bars ``[split, T)``; a hedge is always the one set at the previous close):

- ``hedged_variance``: variance of ``dY_t - h_{t-1} dX_t`` per share of Y, on the bars where
  every method has a value (the headline, in Y's price units squared);
- ``reduction_vs_static_levels`` / ``_changes``: ``1 - var / var(static)``, fractions;
- ``half_life``: AR(1) half-life in bars of the method's *spread*, defined for every method
  alike as the value of the hedged position (long one Y, short ``h`` X re-hedged every bar),
  i.e. the cumulative hedged P&L from the test's start; ``null`` in JSON unless a
  Dickey-Fuller test rejects a unit root at 5% (:func:`hedger.research.metrics.half_life`);
- ``share_abs_z_over_2``: the fraction of test bars where the method's forecast error is more
  than 2 of its own predicted standard deviations (see
  :class:`hedger.research.baselines.MethodPath`);
- ``backtest``: :mod:`hedger.research.backtest` (Chan's rule on the same error and scale).

Alarms: the live relationship-break detector (:mod:`hedger.engine.alarm`, its defaults unless
told) run over the recommended filter's z-scores of the whole history; each alarm is a span of
bars (:class:`hedger.research.alarms.AlarmSpan`), in the JSON and on the plot.

The JSON form (:meth:`Evaluation.to_json`) is versioned and documented in
``docs/evaluation.md``; the same inputs give byte-identical JSON.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import orjson

from hedger.engine.alarm import AlarmParams
from hedger.engine.calibrate import calibrate
from hedger.engine.combine import CombineParams, Weighting, combine_path
from hedger.engine.linalg import FloatArray
from hedger.engine.params import FilterParams, InputMode
from hedger.engine.units import hedged_pnl
from hedger.errors import ConfigError
from hedger.research.alarms import AlarmSpan, alarm_spans
from hedger.research.backtest import BacktestResult, run_backtest
from hedger.research.baselines import (
    MethodPath,
    chan_params,
    choose_window,
    kalman_path,
    rolling_ols_path,
    seed_params,
    static_ols_path,
)
from hedger.research.metrics import (
    half_life,
    hedged_variance,
    periods_per_year,
    reduction,
    share_beyond,
)
from hedger.research.prices import leading_bars

JSON_VERSION = 1
COMBINED_MEMBERS: tuple[str, ...] = (
    "kalman-returns-calibrated",
    "kalman-returns-seed",
    "kalman-returns-chan",
    "rolling-changes",
)
"""The members of the recommended combination (those a pair has: the returns filters need
positive prices). Chosen on the study pairs: adding the log filters or the static hedges, or
taking all 13 dynamic candidates, did worse there (``docs/evaluation.md``)."""
RECOMMENDED = "combined"
SINGLE_FAMILIES = frozenset({"kalman", "static", "rolling"})
"""The families of single candidates (the combinations are not single)."""
MIN_TRAIN_BARS = 60
MIN_TEST_BARS = 20
DEFAULT_COST_BPS = 5.0


class NoiseFitLike(Protocol):
    """What the evaluation reads of a calibrated fit (:class:`hedger.engine.calibrate.NoiseFit`)."""

    @property
    def mode(self) -> InputMode: ...
    @property
    def delta(self) -> float: ...
    @property
    def obs_cov(self) -> float: ...
    def filter_params(self) -> FilterParams: ...


class CalibrationLike(Protocol):
    """What the evaluation reads of a calibration (:class:`hedger.engine.calibrate.Calibration`)."""

    @property
    def best(self) -> NoiseFitLike: ...
    def fit_for(self, mode: InputMode) -> NoiseFitLike: ...


Calibrator = Callable[[FloatArray, FloatArray], CalibrationLike]
"""Fits noise parameters in every mode on training prices y, x (T,)."""


def default_calibrator(y: FloatArray, x: FloatArray) -> CalibrationLike:
    """hedger's own calibration (:func:`hedger.engine.calibrate.calibrate`), over every mode."""
    return calibrate(y, x)


@dataclass(frozen=True, slots=True)
class Split:
    """Where the history was cut. ``train_bars`` bars ``[0, split)`` train, the rest test;
    the labels are the bars' times as written in the file. ``measured_bars``: the test bars
    on which every method has a hedged P&L (the variances are over these)."""

    train_bars: int
    test_bars: int
    train_start: str
    train_end: str
    test_start: str
    test_end: str
    measured_bars: int


@dataclass(frozen=True, slots=True)
class MethodResult:
    """One candidate's out-of-sample numbers (see the module docstring for each metric).

    name: the candidate's id; family: ``kalman``, ``static``, ``rolling`` or ``combined``;
    mode: its input mode (``levels`` or ``changes`` for the OLS baselines; a combination's
    members joined by ``+``); setting: ``calibrated``, ``chan``, ``seed``, ``ols``,
    ``window=<w>`` or the combination's weighting (``minvar``, ``equal``); delta, obs_cov: the
    filter's noise (None otherwise); window: the rolling window in bars (None otherwise);
    recommended: hedger's recommended hedge; final_hedge: shares of X per share of Y at the
    last bar.
    """

    name: str
    family: str
    mode: str
    setting: str
    delta: float | None
    obs_cov: float | None
    window: int | None
    recommended: bool
    hedged_variance: float
    reduction_vs_static_levels: float
    reduction_vs_static_changes: float
    half_life: float
    share_abs_z_over_2: float
    backtest: BacktestResult
    final_hedge: float


@dataclass(frozen=True, slots=True)
class Combination:
    """The recommended combination of one pair: its members (row names), how it weighs them
    (:class:`~hedger.engine.combine.CombineParams`' fields), its weights after the last bar
    and their mean over the test bars (each (N,), summing to 1)."""

    members: tuple[str, ...]
    weighting: str
    half_life: float
    shrink: float
    long_only: bool
    final_weights: tuple[float, ...]
    mean_test_weights: tuple[float, ...]


@dataclass(frozen=True)
class Evaluation:
    """The whole comparison of one pair. ``methods`` are sorted by out-of-sample hedged
    variance (then name); ``winner`` is the first; ``recommended`` the name of the row that is
    hedger's recommended configuration. ``alarms``: the relationship-break alarms of the
    recommended filter over the whole history (none if the detector was off). ``paths`` (not
    part of the JSON) keeps each method's :class:`MethodPath` and ``ts`` (T,) the bar times,
    for plots; ``labels`` (T,) the bar times as written in the file."""

    pair: str
    bars: int
    split: Split
    cost_bps: float
    periods_per_year: float
    methods: tuple[MethodResult, ...]
    winner: str
    recommended: str
    verdict: str
    ts: np.ndarray = field(repr=False, compare=False)
    paths: Mapping[str, MethodPath] = field(repr=False, compare=False)
    y: FloatArray = field(repr=False, compare=False)
    x: FloatArray = field(repr=False, compare=False)
    alarms: tuple[AlarmSpan, ...] = ()
    labels: tuple[str, ...] = field(default=(), repr=False, compare=False)
    combination: Combination | None = None
    alarm_method: str = ""
    weights: FloatArray | None = field(default=None, repr=False, compare=False)
    """(T, N): the recommended combination's weights after each bar (for plots)."""

    @property
    def best_single(self) -> MethodResult:
        """The single candidate (not a combination) with the lowest hedged variance."""
        return next(row for row in self.methods if row.family in SINGLE_FAMILIES)

    def method(self, name: str) -> MethodResult:
        """The row called ``name``."""
        for row in self.methods:
            if row.name == name:
                return row
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form as plain values (NaN and infinities become None)."""
        return {
            "type": "hedge_evaluation",
            "version": JSON_VERSION,
            "pair": self.pair,
            "bars": self.bars,
            "split": _plain(self.split),
            "cost_bps": self.cost_bps,
            "periods_per_year": self.periods_per_year,
            "winner": self.winner,
            "recommended": self.recommended,
            "verdict": self.verdict,
            "best_single": self.best_single.name,
            "methods": [_plain(row) for row in self.methods],
            "combination": None if self.combination is None else _plain(self.combination),
            "alarms": self._alarms_dict(),
        }

    def _alarms_dict(self) -> dict[str, Any]:
        split = self.split.train_bars
        labels = self.labels

        def label(bar: int | None) -> str | None:
            return None if bar is None or not labels else labels[bar]

        return {
            "method": self.alarm_method,
            "raised": len(self.alarms),
            "raised_in_test": sum(1 for span in self.alarms if span.start >= split),
            "spans": [
                {
                    "kind": span.kind,
                    "start": label(span.start),
                    "end": label(span.end),
                    "start_bar": span.start,
                    "end_bar": span.end,
                    "statistic": span.statistic,
                }
                for span in self.alarms
            ],
        }

    def to_json(self) -> bytes:
        """The JSON document (UTF-8, 2-space indent, keys in a fixed order, newline-ended)."""
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2) + b"\n"


def _plain(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "__dataclass_fields__"):
        return {name: _plain(getattr(obj, name)) for name in obj.__dataclass_fields__}
    return obj


def split_index(spec: str | float | None, ts_labels: Any, n_bars: int) -> int:
    """The first test bar from ``--train-until``: a fraction in (0, 1) of the bars, an
    ISO-8601 date (training ends strictly before it), or None (0.5). ``ts_labels`` is anything
    with ``index_of(date) -> int`` (a :class:`hedger.research.prices.PriceTable`)."""
    return leading_bars(
        0.5 if spec is None else spec, n_bars, ts_labels.index_of, key="train-until"
    )


def check_split(split: int, usable: int, n_bars: int) -> None:
    """Refuse a split that leaves too little to train on or nothing to test on."""
    if split >= n_bars or n_bars - split < MIN_TEST_BARS:
        raise ConfigError(
            "train-until",
            f"leaves {max(n_bars - split, 0)} test bars; at least {MIN_TEST_BARS} are needed",
        )
    if usable < MIN_TRAIN_BARS:
        raise ConfigError(
            "train-until",
            f"leaves {usable} training bars with both prices; at least {MIN_TRAIN_BARS} are needed",
        )


def candidate_paths(
    y: FloatArray,
    x: FloatArray,
    split: int,
    calibration: CalibrationLike,
    combinations: dict[str, tuple[tuple[str, ...], FloatArray]] | None = None,
) -> tuple[dict[str, MethodPath], dict[str, dict[str, Any]], str]:
    """Every candidate's path over the whole history, its description (family, mode,
    setting, delta, obs_cov, window) and the name of the recommended row. ``combinations``,
    if given, receives each combination's members and weights (T, N)."""
    if combinations is None:
        combinations = {}
    paths: dict[str, MethodPath] = {}
    about: dict[str, dict[str, Any]] = {}
    # Log modes need prices > 0. Decided on the training bars (no look-ahead): a price <= 0
    # there rules the log modes out; one in the test window is a missing bar for them.
    train_y, train_x = y[:split], x[:split]
    positive = not (np.any(train_y <= 0.0) or np.any(train_x <= 0.0))
    for mode in InputMode:
        if mode.logarithmic and not positive:
            continue
        settings = [("chan", chan_params(mode)), ("seed", seed_params(mode))]
        try:
            fitted = calibration.fit_for(mode).filter_params()
        except ConfigError:
            pass  # the mode could not be calibrated on the training bars (calibration.failed)
        else:
            settings.insert(0, ("calibrated", fitted))
        for setting, params in settings:
            name = f"kalman-{mode.value}-{setting}"
            paths[name] = kalman_path(params, y, x)
            about[name] = _kalman_about(mode, setting, params)
    for differenced, mode_name in ((False, "levels"), (True, "changes")):
        paths[f"static-{mode_name}"] = static_ols_path(y, x, split, differenced)
        about[f"static-{mode_name}"] = _about("static", mode_name, "ols")
        window = choose_window(y, x, split, differenced)
        paths[f"rolling-{mode_name}"] = rolling_ols_path(y, x, window, differenced)
        about[f"rolling-{mode_name}"] = _about("rolling", mode_name, f"window={window}", window)
    members = [name for name in COMBINED_MEMBERS if name in paths]
    hedges = np.column_stack([paths[name].hedge for name in members])
    weightings: tuple[tuple[str, Weighting], ...] = (
        ("combined", "minvar"),
        ("combined-equal", "equal"),
    )
    for name, weighting in weightings:
        combination = combine_path(hedges, y, x, CombineParams(weighting=weighting))
        paths[name] = combined_method_path(combination.hedge, combination.expected_std, y, x)
        about[name] = _about("combined", "+".join(members), weighting)
        combinations[name] = (tuple(members), combination.weights)
    return paths, about, RECOMMENDED


def combined_method_path(
    hedge: FloatArray, expected_std: FloatArray, y: FloatArray, x: FloatArray
) -> MethodPath:
    """A combination as a :class:`MethodPath`: its forecast error of bar t is the hedged P&L
    of bar t (``dY - h_t-1 dX``, the move it did not hedge), its scale the standard deviation
    the weights expected of it at t - 1."""
    scale = np.full(len(y), math.nan)
    scale[1:] = expected_std[:-1]
    return MethodPath(hedge, np.full(len(y), math.nan), hedged_pnl(y, x, hedge), scale)


def _about(family: str, mode: str, setting: str, window: int | None = None) -> dict[str, Any]:
    return {
        "family": family,
        "mode": mode,
        "setting": setting,
        "delta": None,
        "obs_cov": None,
        "window": window,
    }


def _kalman_about(mode: InputMode, setting: str, params: FilterParams) -> dict[str, Any]:
    about = _about("kalman", mode.value, setting)
    if params.trans_cov is None:
        about["delta"] = params.delta
    else:
        q = params.trans_cov[0][0]
        about["delta"] = q / (1.0 + q)  # Q = delta / (1 - delta) I
    about["obs_cov"] = params.obs_cov
    return about


def evaluate_pair(
    y: FloatArray,
    x: FloatArray,
    *,
    pair: str,
    ts: np.ndarray,
    labels: tuple[str, ...],
    split: int,
    cost_bps: float = DEFAULT_COST_BPS,
    calibrator: Calibrator | None = None,
    alarm: AlarmParams | None = AlarmParams(),  # noqa: B008 (frozen, shared safely)
) -> Evaluation:
    """Compare every candidate hedge of Y (``y``, (T,) prices, NaN = missing) with X (``x``)
    trained on bars ``[0, split)`` and tested on ``[split, T)``; ``ts`` (T,) ns and ``labels``
    (T,) are the bar times. ``cost_bps`` is the backtest's cost per unit of notional traded.
    ``calibrator`` defaults to hedger's own calibration; ``alarm``: the break detector's
    parameters (None: no alarms)."""
    n = len(y)
    both = np.isfinite(y) & np.isfinite(x)
    check_split(split, int(both[:split].sum()), n)
    if not (math.isfinite(cost_bps) and cost_bps >= 0.0):
        raise ConfigError("cost", f"must be a number of basis points >= 0, got {cost_bps}")
    calibration = (calibrator or default_calibrator)(y[:split], x[:split])
    combinations: dict[str, tuple[tuple[str, ...], FloatArray]] = {}
    paths, about, recommended = candidate_paths(y, x, split, calibration, combinations)
    pnls = {name: hedged_pnl(y, x, path.hedge) for name, path in paths.items()}
    test = slice(split, n)
    common = np.all(np.isfinite(np.vstack([p[test] for p in pnls.values()])), axis=0)
    measured = int(common.sum())
    if measured < MIN_TEST_BARS:
        raise ConfigError(
            "train-until",
            f"the test window has {measured} bars on which every hedge has a P&L (both prices, "
            f"and the bar before); at least {MIN_TEST_BARS} are needed",
        )
    variances = {name: hedged_variance(p[test][common]) for name, p in pnls.items()}
    ppy = periods_per_year(ts)
    rows = []
    for name, path in paths.items():
        test_pnl = np.where(np.isfinite(pnls[name][test]), pnls[name][test], 0.0)
        backtest, _ = run_backtest(
            y,
            x,
            path.hedge,
            path.error,
            path.scale,
            start=max(split, 1),
            cost_bps=cost_bps,
            periods_per_year=ppy,
        )
        rows.append(
            MethodResult(
                name=name,
                recommended=name == recommended,
                hedged_variance=variances[name],
                reduction_vs_static_levels=reduction(variances[name], variances["static-levels"]),
                reduction_vs_static_changes=reduction(variances[name], variances["static-changes"]),
                half_life=half_life(np.cumsum(test_pnl)),
                share_abs_z_over_2=share_beyond(path.zscore[test]),
                backtest=backtest,
                final_hedge=float(path.hedge[-1]),
                **about[name],
            )
        )
    rows.sort(key=lambda r: (_sort_key(r.hedged_variance), r.name))
    methods = tuple(rows)
    members, weights = combinations[recommended]
    params = CombineParams()
    combination = Combination(
        members=members,
        weighting=params.weighting,
        half_life=params.half_life,
        shrink=params.shrink,
        long_only=params.long_only,
        final_weights=tuple(float(w) for w in weights[-1]),
        mean_test_weights=tuple(float(w) for w in weights[split:].mean(axis=0)),
    )
    alarm_method = f"kalman-{calibration.best.mode.value}-calibrated"
    if alarm_method not in paths:
        alarm_method = "kalman-returns-calibrated"
    split_info = Split(
        train_bars=split,
        test_bars=n - split,
        train_start=labels[0],
        train_end=labels[split - 1],
        test_start=labels[split],
        test_end=labels[-1],
        measured_bars=measured,
    )
    return Evaluation(
        pair=pair,
        bars=n,
        split=split_info,
        cost_bps=float(cost_bps),
        periods_per_year=ppy,
        methods=methods,
        winner=methods[0].name,
        recommended=recommended,
        verdict=verdict(methods, recommended),
        ts=ts,
        paths=paths,
        y=y,
        x=x,
        alarms=() if alarm is None else alarm_spans(_judged_z(paths[alarm_method]), alarm),
        labels=labels,
        combination=combination,
        alarm_method=alarm_method,
        weights=weights,
    )


def _judged_z(path: MethodPath) -> FloatArray:
    """The z-scores the live detector would be fed: NaN before the warm-up completes."""
    z = path.zscore
    if path.warm is None:
        return z
    return np.where(path.warm, z, np.nan)


def _sort_key(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def verdict(methods: tuple[MethodResult, ...], recommended: str) -> str:
    """One line: did the recommended hedge cut the hedged variance versus the static OLS
    hedges, and how did it do against the best single candidate?"""
    rec = next(r for r in methods if r.name == recommended)
    lv, ch = rec.reduction_vs_static_levels, rec.reduction_vs_static_changes
    what = f"the recommended hedge ({_describe(rec)})"
    if lv > 0 and ch > 0:
        text = (
            f"{what} cut the hedged variance by {lv:.1%} vs the static OLS hedge on levels "
            f"and by {ch:.1%} vs the static hedge on changes"
        )
    elif lv > 0:
        text = (
            f"{what} cut the hedged variance by {lv:.1%} vs the static OLS hedge on levels, "
            f"but not vs the static hedge on changes ({-ch:+.1%} variance)"
        )
    elif ch > 0:
        text = (
            f"{what} cut the hedged variance by {ch:.1%} vs the static hedge on changes, "
            f"but not vs the static OLS hedge on levels ({-lv:+.1%} variance)"
        )
    else:
        text = (
            f"{what} did NOT beat the static OLS hedges ({-lv:+.1%} variance vs levels, "
            f"{-ch:+.1%} vs changes)"
        )
    singles = [r for r in methods if r.family in SINGLE_FAMILIES and r.name != recommended]
    if not singles:
        return f"{text}."
    best = singles[0]
    if rec.hedged_variance <= best.hedged_variance:
        gap = 1.0 - rec.hedged_variance / best.hedged_variance
        return (
            f"{text}; it beat all {len(singles)} single candidates, the best of them "
            f"({best.name}) by {gap:.1%}."
        )
    gap = rec.hedged_variance / best.hedged_variance - 1.0
    return f"{text}; the best single candidate was {best.name}, {gap:.1%} lower."


def _describe(row: MethodResult) -> str:
    if row.family == "combined":
        n = len(row.mode.split("+"))
        weights = "minimum-variance weights" if row.setting == "minvar" else "equal weights"
        return f"{n} hedges combined with {weights}"
    return f"Kalman on {row.mode}, {row.setting}"
