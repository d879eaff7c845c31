"""The hedge-ratio matrix: every ordered pair Y/X of N symbols filtered in one compiled pass.

Each of the ``P = N (N - 1)`` ordered pairs runs its own pair filter (the arithmetic of
:class:`~hedger.engine.pair.PairFilter`, through the kernels ``pair_predict``, ``pair_correct``
and ``adapt_r``), and every filter shares one :class:`~hedger.engine.params.FilterParams`. The
input transform (levels, log, changes, returns) is applied once per symbol, vectorised, so a
bar costs one transform of N prices plus P filter updates.

This module is the wrapper (:class:`MatrixFilter`, pair indexing, price cleaning and
transforms); the compiled kernel and its array layout are in :mod:`hedger.engine.kernels.matrix`.

Layout. State is held as (N, N) planes indexed ``[iy, ix]``: the entry of row ``iy`` and column
``ix`` belongs to the pair Y = ``symbols[iy]`` hedged with X = ``symbols[ix]``; the diagonal is
unused and stays NaN. The flat pair order used by every (P,) output is row-major over Y, then
X, skipping Y == X::

    p = iy * (N - 1) + (ix if ix < iy else ix - 1)

(:func:`pair_indices` gives ``iy`` and ``ix`` (P,) in that order.)

Missing prices. A NaN price (or one that cannot be a price: infinite, above
:data:`~hedger.engine.transforms.MAX_ABS_PRICE`, or <= 0 in a log mode) means "no price": every
pair that uses that symbol takes a predict-only step, exactly as :class:`HedgeFilter` does when
given ``None`` for a leg, and no other pair is touched. In the differenced modes a change needs
two consecutive prices, so a hole also blanks the next bar's change of that symbol.

Initialisation matches :class:`~hedger.engine.filter.HedgeFilter` for :class:`GivenInit`,
:class:`DiffuseInit` and :class:`OlsWarmupInit`. The OLS warm-up keeps five running moments per
pair (means and centred co-moments, Welford's update, or plain sums without an intercept) while
a provisional diffuse filter runs; at the ``n_obs``-th observation the pair's state becomes the
OLS fit, mean = coefficients, covariance = ``R (H'H)^-1``, R = the residual variance when R is
adaptive. The tests hold every matrix entry to the single-pair filter within 1e-10.

This module does no I/O and no logging.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from hedger.engine.kernels.matrix import (
    ALPHA,
    BETA,
    DET,
    MOMENTS,
    OBS_COV,
    OUT_ALPHA,
    OUT_BETA,
    OUT_BETA_SE,
    OUT_WARM,
    OUT_ZSCORE,
    P00,
    P01,
    P11,
    RECORDED,
    SLOTS,
    WARM_AFTER,
    ZSCORE,
    config_vector,
    matrix_advance,
)
from hedger.engine.linalg import BoolArray, FloatArray, IntArray
from hedger.engine.params import (
    DiffuseInit,
    FilterParams,
    GivenInit,
    InputMode,
    OlsWarmupInit,
)
from hedger.engine.transforms import MAX_ABS_PRICE
from hedger.errors import ConfigError

_DEFAULT_RECORD_CELLS = 1 << 20
"""Recorded chunks hold about this many pair-bars (5 planes x 8 bytes each: 40 MiB)."""


def load_kernel() -> None:
    """Compile (or load from numba's disk cache) the matrix kernel now, on a tiny input, so
    that the first real call and any timing of it measure the filtering alone."""
    MatrixFilter(2).run(np.ones((2, 2)))


def pair_indices(n_symbols: int) -> tuple[IntArray, IntArray]:
    """``(iy, ix)`` (P,) of the ordered pairs of ``n_symbols`` symbols, in the flat order:
    row-major over Y, then X, skipping Y == X."""
    iy, ix = np.nonzero(~np.eye(n_symbols, dtype=bool))
    return iy.astype(np.int64), ix.astype(np.int64)


def clean_prices(prices: ArrayLike, mode: InputMode) -> FloatArray:
    """Prices (T, N) or (N,) as float64 with every value that cannot be a price set to NaN:
    non-finite, ``|p| > MAX_ABS_PRICE``, or ``p <= 0`` in a log mode (a copy)."""
    p = np.array(prices, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(p) | (np.abs(p) > MAX_ABS_PRICE)
        if mode.logarithmic:
            bad |= ~(p > 0.0)
    p[bad] = np.nan
    return p


def transform_prices(
    prices: FloatArray, mode: InputMode, previous: FloatArray | None = None
) -> FloatArray:
    """Observations (T, N) from clean prices (T, N) (see :func:`clean_prices`), per symbol.

    ``previous`` (N,): the prices of the bar before ``prices[0]`` for the differenced modes
    (NaN or None: none). ``changes`` gives ``p_t - p_{t-1}``, ``returns`` ``log(p_t /
    p_{t-1})``; either is NaN where one of the two prices is.
    """
    if mode is InputMode.LEVELS:
        return prices
    with np.errstate(invalid="ignore", divide="ignore"):
        if mode is InputMode.LOG:
            obs: FloatArray = np.log(prices)
            return obs
        before = np.empty_like(prices)
        before[0] = np.nan if previous is None else previous
        before[1:] = prices[:-1]
        obs = prices - before if mode is InputMode.CHANGES else np.log(prices / before)
    return obs


class MatrixBars(NamedTuple):
    """Recorded outputs of ``B`` consecutive bars starting at bar ``start`` (0-based, counted
    from the first bar the filter saw). Every array is (B, N, N), NaN on the diagonal.

    beta: hedge ratios (units of the transformed Y per unit of the transformed X).
    alpha: intercepts (units of the transformed Y; 0 without an intercept).
    beta_se: standard errors of beta, ``sqrt(P00)``.
    zscore: standardised innovations ``e / sqrt(S)`` (NaN on a predict-only bar).
    warm: whether each pair's warm-up is complete (bool, False on the diagonal).
    """

    start: int
    beta: FloatArray
    alpha: FloatArray
    beta_se: FloatArray
    zscore: FloatArray
    warm: BoolArray


class MatrixFilter:
    """Every ordered pair of N symbols, filtered together; the online matrix of a daemon.

    Args:
        n_symbols: N >= 2.
        params: the parameters of every pair filter (``n_legs`` must be 1); default
            :class:`FilterParams` ().

    :meth:`step` takes one bar of raw prices (N,), NaN for a symbol without a price;
    :meth:`run` and :meth:`run_bars` take a whole table (T, N). The current state is read
    through (N, N) arrays indexed ``[iy, ix]`` (Y = row, X = column): :attr:`beta`,
    :attr:`alpha`, :attr:`zscore`, :attr:`obs_cov` are read-only views that the next step
    updates in place; :attr:`beta_se` and :attr:`warm` are computed on each read.
    """

    def __init__(self, n_symbols: int, params: FilterParams | None = None) -> None:
        if n_symbols < 2:
            raise ConfigError("symbols", f"a matrix needs at least 2 symbols, got {n_symbols}")
        params = params if params is not None else FilterParams()
        if params.n_legs != 1:
            raise ConfigError("n_legs", "the matrix runs pairs: n_legs must be 1")
        self.params = params
        self.n_symbols = n = n_symbols
        self.mode: InputMode = params.mode
        self._cfg = config_vector(params)
        self._state = np.full((SLOTS, n, n), math.nan)
        self._count: IntArray = np.zeros((n, n), dtype=np.int64)
        self._moments = np.zeros((MOMENTS, n, n))
        self._previous = np.full(n, math.nan)
        self._offdiag: BoolArray = ~np.eye(n, dtype=bool)
        self._no_output = np.empty((RECORDED, 0, n, n))
        self.bars = 0
        mean, cov = _initial_state(params)
        offdiag = self._offdiag
        for plane, value in (
            (BETA, mean[0]),
            (ALPHA, mean[1]),
            (P00, cov[0, 0]),
            (P01, cov[0, 1]),
            (P11, cov[1, 1]),
            (DET, max(cov[0, 0] * cov[1, 1] - cov[0, 1] * cov[0, 1], 0.0)),
            (OBS_COV, params.obs_cov),
        ):
            self._state[plane][offdiag] = value
        self.beta = _read_only(self._state[BETA])
        self.alpha = _read_only(self._state[ALPHA])
        self.zscore = _read_only(self._state[ZSCORE])
        self.obs_cov = _read_only(self._state[OBS_COV])
        self.observations = _read_only(self._count)

    @property
    def n_pairs(self) -> int:
        """P = N (N - 1)."""
        return self.n_symbols * (self.n_symbols - 1)

    @property
    def beta_se(self) -> FloatArray:
        """Standard errors of the betas (N, N), ``sqrt(P00)``, NaN on the diagonal."""
        se: FloatArray = np.sqrt(self._state[P00])
        return se

    @property
    def warm(self) -> BoolArray:
        """Whether each pair's warm-up is complete (N, N), False on the diagonal."""
        warm: BoolArray = (self._count >= self._cfg[WARM_AFTER]) & self._offdiag
        return warm

    def flat(self, matrix: FloatArray | BoolArray) -> FloatArray | BoolArray:
        """An (N, N) (or (..., N, N)) matrix as its (P,) (or (..., P)) pair entries, in the
        flat pair order."""
        flat: FloatArray | BoolArray = matrix[..., self._offdiag]
        return flat

    def step(self, prices: ArrayLike) -> None:
        """Advance every pair one bar with the raw prices (N,) of the symbols (NaN: none)."""
        row = clean_prices(prices, self.mode)
        if row.shape != (self.n_symbols,):
            raise ConfigError("prices", f"expected {self.n_symbols} prices, got shape {row.shape}")
        table = row.reshape(1, -1)
        obs = transform_prices(table, self.mode, self._previous)
        self._previous = row
        matrix_advance(obs, self._state, self._count, self._moments, self._cfg, self._no_output)
        self.bars += 1

    def run(self, prices: ArrayLike) -> None:
        """Advance every pair over a table of raw prices (T, N) in one compiled pass."""
        table = self._table(prices)
        obs = self._observations(table)
        matrix_advance(obs, self._state, self._count, self._moments, self._cfg, self._no_output)
        self.bars += table.shape[0]

    def run_bars(self, prices: ArrayLike, chunk_bars: int | None = None) -> Iterator[MatrixBars]:
        """Advance over a table of raw prices (T, N), yielding every bar's outputs in chunks of
        ``chunk_bars`` bars (default: about a million pair-bars per chunk), so memory stays
        bounded whatever T is. Each chunk's arrays are fresh (safe to keep)."""
        table = self._table(prices)
        n = self.n_symbols
        if chunk_bars is None:
            chunk_bars = max(1, _DEFAULT_RECORD_CELLS // (n * n))
        if chunk_bars < 1:
            raise ConfigError("chunk_bars", f"must be >= 1, got {chunk_bars}")
        for start in range(0, table.shape[0], chunk_bars):
            chunk = table[start : start + chunk_bars]
            obs = self._observations(chunk)
            out = np.empty((RECORDED, chunk.shape[0], n, n))
            matrix_advance(obs, self._state, self._count, self._moments, self._cfg, out)
            first = self.bars
            self.bars += chunk.shape[0]
            out[:, :, ~self._offdiag] = math.nan
            yield MatrixBars(
                start=first,
                beta=out[OUT_BETA],
                alpha=out[OUT_ALPHA],
                beta_se=out[OUT_BETA_SE],
                zscore=out[OUT_ZSCORE],
                warm=np.nan_to_num(out[OUT_WARM]) > 0.5,
            )

    def _table(self, prices: ArrayLike) -> FloatArray:
        table = clean_prices(prices, self.mode)
        if table.ndim != 2 or table.shape[1] != self.n_symbols:
            raise ConfigError(
                "prices", f"expected a (T, {self.n_symbols}) table, got shape {table.shape}"
            )
        return table

    def _observations(self, table: FloatArray) -> FloatArray:
        obs = np.ascontiguousarray(transform_prices(table, self.mode, self._previous))
        if table.shape[0]:
            self._previous = table[-1].copy()
        return obs


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _initial_state(params: FilterParams) -> tuple[FloatArray, FloatArray]:
    """The prior (2,) and (2, 2) of every pair's first observation, as ``HedgeFilter`` sets it
    (alpha's row and column zero without an intercept)."""
    init, n = params.init, params.n_states
    if isinstance(init, GivenInit):
        mean, cov = np.array(init.mean, dtype=np.float64), np.array(init.cov, dtype=np.float64)
    elif isinstance(init, DiffuseInit):
        mean, cov = np.zeros(n), np.eye(n) * init.variance
    else:
        assert isinstance(init, OlsWarmupInit)
        mean, cov = np.zeros(n), np.eye(n) * init.diffuse_variance
    full_mean, full_cov = np.zeros(2), np.zeros((2, 2))
    if params.has_intercept:
        full_mean[:], full_cov[:] = mean, cov
    else:
        full_mean[0], full_cov[0, 0] = mean[0], cov[0, 0]
    return full_mean, full_cov


def filter_matrix(prices: ArrayLike, params: FilterParams | None = None) -> MatrixFilter:
    """Run every ordered pair of the N columns of ``prices`` (T, N) and return the filter at
    the last bar (read ``beta``, ``alpha``, ``beta_se``, ``zscore``, ``warm``)."""
    table = np.asarray(prices, dtype=np.float64)
    if table.ndim != 2:
        raise ConfigError("prices", f"expected a (T, N) table, got shape {table.shape}")
    matrix = MatrixFilter(table.shape[1], params)
    matrix.run(table)
    return matrix


__all__ = [
    "MatrixBars",
    "MatrixFilter",
    "clean_prices",
    "filter_matrix",
    "load_kernel",
    "matrix_advance",
    "pair_indices",
    "transform_prices",
]
