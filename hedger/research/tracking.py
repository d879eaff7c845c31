"""Tracking error against a known truth: how closely each method follows the true hedge ratio
of the synthetic market (:mod:`feeds.synthetic`), whose beta drifts along a path we can read.

The synthetic Y is ``beta_t X_t + alpha + u_t`` in prices, so the true beta *is* a hedge in
shares of X per share of Y: every method's hedge (:class:`hedger.research.baselines.MethodPath`)
is compared
with it directly, on the test bars, by root-mean-square error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from feeds.synthetic import SyntheticMarket, SyntheticSpec
from hedger.engine.linalg import FloatArray
from hedger.research.evaluate import Calibrator, candidate_paths, default_calibrator

TRACKING_SPEC = SyntheticSpec(
    sigma_x=0.005, beta_vol=0.003, spread_vol=0.005, half_life=30.0, noise=0.01, rate=5.0
)
"""A pair whose true beta wanders visibly (about +-0.2 in half an hour) around 1.5, X near 100,
with a tight spread so that the ratio is identifiable from 1-second bars."""


@dataclass(frozen=True, slots=True)
class SyntheticBars:
    """Bars cut from the synthetic ticks: ``ts`` (T,) bar closes in ns, ``y``, ``x`` (T,) the
    last price of each leg in the bar (NaN if it did not trade), ``true_beta`` (T,) the true
    ratio at each bar's close."""

    ts: np.ndarray
    y: FloatArray
    x: FloatArray
    true_beta: FloatArray


@dataclass(frozen=True, slots=True)
class TrackingResult:
    """RMSE (shares of X per share of Y) of each method's hedge from the true beta over the
    test bars, sorted best first, as ``(name, rmse)`` pairs; ``bars`` test bars."""

    rmse: tuple[tuple[str, float], ...]
    bars: int

    def of(self, name: str) -> float:
        """The RMSE of method ``name``."""
        return dict(self.rmse)[name]


def synthetic_bars(
    spec: SyntheticSpec = TRACKING_SPEC, *, seconds: float = 1800.0, bar: float = 1.0, seed: int = 0
) -> SyntheticBars:
    """Generate ``seconds`` of the market of ``spec`` (seeded) and cut ``bar``-second bars,
    each leg's price being its last tick in the bar."""
    market = SyntheticMarket(spec, seed=seed)
    bar_ns = round(bar * 1e9)
    start = spec.start_ns // bar_ns
    n = math.ceil(seconds / bar) + 1
    prices = np.full((n, 2), math.nan)
    column = {spec.y: 0, spec.xs[0]: 1}
    for tick in market.ticks(seconds):
        prices[tick.ts_event // bar_ns - start, column[tick.symbol]] = tick.price
    filled = ~np.all(np.isnan(prices), axis=1)
    rows = np.flatnonzero(filled)
    ts = (rows + start + 1) * bar_ns
    true_beta = np.array([market.true_betas(int(t))[0] for t in ts])
    return SyntheticBars(
        ts.astype(np.int64), prices[rows, 0].copy(), prices[rows, 1].copy(), true_beta
    )


def tracking_errors(
    bars: SyntheticBars, *, train_fraction: float = 0.5, calibrator: Calibrator | None = None
) -> TrackingResult:
    """Build every candidate of :func:`hedger.research.evaluate.candidate_paths` on the first
    ``train_fraction`` of ``bars`` and measure each one's beta RMSE on the rest."""
    split = int(len(bars.y) * train_fraction)
    calibration = (calibrator or default_calibrator)(bars.y[:split], bars.x[:split])
    paths, _, _ = candidate_paths(bars.y, bars.x, split, calibration)
    truth = bars.true_beta[split:]
    rmse = []
    for name, path in paths.items():
        miss = path.hedge[split:] - truth
        miss = miss[np.isfinite(miss)]
        rmse.append((name, float(np.sqrt(np.mean(miss**2))) if miss.size else math.nan))
    rmse.sort(key=lambda item: (item[1] if math.isfinite(item[1]) else math.inf, item[0]))
    return TrackingResult(tuple(rmse), len(truth))
