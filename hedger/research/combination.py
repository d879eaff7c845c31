"""Whether to run a pair with the combined hedge: the in-sample check ``hedger calibrate``
makes before it writes a ``combine`` table.

The members are those the daemon runs (:data:`hedger.config.combine.MEMBERS`): the calibrated
filter, the seed's and Chan's filters in its mode, and rolling OLS on price changes with the
window that hedged best on the same bars. The combination's weights are learnt online from
the first bar (no look-ahead), so its in-sample hedged variance is an honest, if short, test
against the calibrated filter alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hedger.engine.combine import CombineParams, combine_path
from hedger.engine.linalg import FloatArray
from hedger.engine.params import FilterParams
from hedger.engine.presets import chan_params, seed_params
from hedger.engine.units import hedged_pnl
from hedger.research.baselines import choose_window, kalman_path, rolling_ols_path
from hedger.research.metrics import hedged_variance


@dataclass(frozen=True, slots=True)
class CombinationAdvice:
    """The in-sample comparison. rolling_window: the rolling member's window (bars);
    combined_variance, single_variance: hedged variance (Y's price units squared) of the
    combination and of the calibrated filter alone, on the bars where every member has a
    P&L; bars: how many; recommended: the combination hedged no worse."""

    rolling_window: int
    combined_variance: float
    single_variance: float
    bars: int

    @property
    def change(self) -> float:
        """``combined / single - 1``: negative when the combination hedged better."""
        return self.combined_variance / self.single_variance - 1.0

    @property
    def measured(self) -> bool:
        """Whether both variances could be measured (enough bars with every member's P&L)."""
        return self.bars >= 2 and math.isfinite(self.combined_variance + self.single_variance)

    @property
    def recommended(self) -> bool:
        return self.measured and bool(self.combined_variance <= self.single_variance)


def combination_advice(
    y: FloatArray, x: FloatArray, own: FilterParams, params: CombineParams | None = None
) -> CombinationAdvice:
    """Run the combination of ``own`` (the calibrated filter) and its fellow members over the
    prices ``y``, ``x`` (T,) it was calibrated on, and compare."""
    window = choose_window(y, x, len(y), differenced=True)
    members = [
        kalman_path(own, y, x).hedge,
        kalman_path(seed_params(own.mode), y, x).hedge,
        kalman_path(chan_params(own.mode), y, x).hedge,
        rolling_ols_path(y, x, window, differenced=True).hedge,
    ]
    combined = combine_path(np.column_stack(members), y, x, params).hedge
    pnls = np.vstack([hedged_pnl(y, x, h) for h in (*members, combined)])
    common = np.all(np.isfinite(pnls), axis=0)
    return CombinationAdvice(
        rolling_window=window,
        combined_variance=hedged_variance(pnls[-1][common]),
        single_variance=hedged_variance(pnls[0][common]),
        bars=int(common.sum()),
    )
