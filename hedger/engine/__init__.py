"""The hedge-ratio engine: pure math (no I/O, no asyncio, no logging).

- :class:`HedgeFilter` -- one online filter from raw prices, with input transform and warm-up;
- :class:`PairFilter` -- the plain-float hot path of a pair; :class:`BasketFilter` -- k hedges;
- :class:`PairBank` -- P pair filters in one compiled call; :func:`filter_pair` -- a whole
  series in one compiled pass;
- :class:`MatrixFilter` -- every ordered pair of N symbols, one compiled pass per bar;
- :class:`FilterParams` and the initialisations, :class:`InputMode`;
- :func:`combine_path`, :class:`HedgeCombiner`, :class:`CombineParams`, :class:`RollingHedge`
  -- the combined hedge of several members, weighted online by their hedged P&L;
  :func:`seed_params`, :func:`chan_params` -- the seed article's and Chan's filter settings;
- :func:`calibrate` (delta and R by maximum likelihood, and the mode), :func:`filter_prices`
  (a filter over whole price histories), :func:`shares_hedge` and :func:`hedged_pnl` (the
  hedge in shares of X and its P&L); :func:`bar_hedge` (one bar's hedge in shares),
  :class:`Position`, :func:`hedge_quantities` and :func:`round_to_lot` (integer shares to hold).
"""

from hedger.engine.bank import PairBank
from hedger.engine.basket import BasketFilter
from hedger.engine.batch import PairSeries, filter_pair
from hedger.engine.calibrate import Calibration, NoiseFit, calibrate
from hedger.engine.combine import CombineParams, HedgeCombiner, RollingHedge, combine_path
from hedger.engine.filter import FilterStep, HedgeFilter
from hedger.engine.matrix import MatrixFilter
from hedger.engine.pair import PairFilter, PairState
from hedger.engine.params import (
    DiffuseInit,
    FilterParams,
    GivenInit,
    Init,
    InputMode,
    OlsWarmupInit,
)
from hedger.engine.presets import chan_params, seed_params
from hedger.engine.units import (
    HedgePath,
    Position,
    bar_hedge,
    filter_prices,
    hedge_quantities,
    hedged_pnl,
    round_to_lot,
    shares_hedge,
)

__all__ = [
    "BasketFilter",
    "Calibration",
    "CombineParams",
    "DiffuseInit",
    "FilterParams",
    "FilterStep",
    "GivenInit",
    "HedgeCombiner",
    "HedgeFilter",
    "HedgePath",
    "Init",
    "InputMode",
    "MatrixFilter",
    "NoiseFit",
    "OlsWarmupInit",
    "PairBank",
    "PairFilter",
    "PairSeries",
    "PairState",
    "Position",
    "RollingHedge",
    "bar_hedge",
    "calibrate",
    "chan_params",
    "combine_path",
    "filter_pair",
    "filter_prices",
    "hedge_quantities",
    "hedged_pnl",
    "round_to_lot",
    "seed_params",
    "shares_hedge",
]
