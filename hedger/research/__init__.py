"""Offline evidence: price tables, static and rolling baselines, hedge metrics, the z-score
backtest, the out-of-sample evaluation, the synthetic tracking check and the plots (matplotlib,
the ``hedger[plot]`` extra, loaded only when a plot is drawn)."""

from hedger.research.evaluate import Evaluation, MethodResult, evaluate_pair
from hedger.research.prices import PriceTable, load_prices

__all__ = ["Evaluation", "MethodResult", "PriceTable", "evaluate_pair", "load_prices"]
