"""Compiled kernels (numba) for the batch, bank, basket and matrix paths.

- ``pair``: the predict and correct steps of one pair, the adaptive R, a series in one pass;
- ``bank``: P pairs advanced by one bar in one call;
- ``basket``: the square-root time and measurement updates of a basket;
- ``matrix``: every ordered pair of N symbols, one pass per bar;
- ``jit``: the one compile step they all use.
"""

from hedger.engine.kernels.bank import BANK_BLOCK, bank_step
from hedger.engine.kernels.basket import sqrt_correct, sqrt_predict
from hedger.engine.kernels.jit import compiled
from hedger.engine.kernels.pair import (
    PARAM_WIDTH,
    STATE_WIDTH,
    adapt_r,
    pair_correct,
    pair_predict,
    pair_series,
)

__all__ = [
    "BANK_BLOCK",
    "PARAM_WIDTH",
    "STATE_WIDTH",
    "adapt_r",
    "bank_step",
    "compiled",
    "pair_correct",
    "pair_predict",
    "pair_series",
    "sqrt_correct",
    "sqrt_predict",
]
