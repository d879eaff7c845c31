"""The compiled kernel of the hedge-ratio matrix (numba) and the layout of its arrays.

:func:`matrix_advance` steps every ordered pair of N symbols over T bars of transformed
observations in one compiled pass, with the arithmetic of
:class:`~hedger.engine.pair.PairFilter` (the kernels ``pair_predict``, ``pair_correct`` and
``adapt_r``) plus the OLS warm-up of :class:`~hedger.engine.filter.HedgeFilter`. The state lives
in (N, N) planes indexed ``[iy, ix]`` (Y = row, X = column); the plane and slot indices below
are the layout shared with the wrapper, :class:`hedger.engine.matrix.MatrixFilter`, which owns
the arrays, cleans and transforms the prices and reads the results.

This module does no I/O and no logging.
"""

from __future__ import annotations

import math

import numpy as np

from hedger.engine.kernels.jit import compiled
from hedger.engine.kernels.pair import adapt_r, pair_correct, pair_predict
from hedger.engine.linalg import FloatArray
from hedger.engine.params import DiffuseInit, FilterParams, GivenInit, OlsWarmupInit

# Planes of the state array (SLOTS, N, N).
BETA, ALPHA, P00, P01, P11, DET, OBS_COV, ZSCORE = range(8)
SLOTS = 8
# Planes of the warm-up moments (MOMENTS, N, N): with an intercept, Welford's means and centred
# co-moments of (x, y); without one, plain sums (MEAN_X and MEAN_Y unused).
MEAN_X, MEAN_Y, CXX, CXY, CYY = range(5)
MOMENTS = 5
# The configuration vector handed to the kernel (float64[CFG_WIDTH]).
Q00, Q01, Q11, QDET, H1, LAM, R_FIXED, WARM_AFTER, OLS_N = range(9)
CFG_WIDTH = 9
# Planes of recorded outputs (RECORDED, B, N, N).
OUT_BETA, OUT_ALPHA, OUT_BETA_SE, OUT_ZSCORE, OUT_WARM = range(5)
RECORDED = 5


def config_vector(params: FilterParams) -> FloatArray:
    """The kernel's configuration (CFG_WIDTH,) for pair filters with ``params`` (n_legs 1)."""
    h1 = 1.0 if params.has_intercept else 0.0
    q = params.state_noise()
    q00 = float(q[0, 0])
    q01 = float(q[0, 1]) * h1 if h1 else 0.0
    q11 = float(q[1, 1]) * h1 if h1 else 0.0
    init = params.init
    if isinstance(init, GivenInit):
        warm_after, ols_n = init.warmup_steps, 0
    elif isinstance(init, DiffuseInit):
        warm_after = params.n_states if init.warmup_steps is None else init.warmup_steps
        ols_n = 0
    else:
        assert isinstance(init, OlsWarmupInit)
        warm_after = ols_n = init.n_obs
    cfg = np.zeros(CFG_WIDTH)
    cfg[Q00], cfg[Q01], cfg[Q11] = q00, q01, q11
    cfg[QDET] = q00 * q11 - q01 * q01
    cfg[H1] = h1
    cfg[LAM] = 0.0 if params.adaptive_r is None else params.adaptive_r
    cfg[R_FIXED] = params.obs_cov
    cfg[WARM_AFTER] = warm_after
    cfg[OLS_N] = ols_n
    return cfg


@compiled
def _finish_ols(
    state: np.ndarray,
    moments: np.ndarray,
    iy: int,
    ix: int,
    n: int,
    h1: float,
    lam: float,
    r_fixed: float,
) -> None:
    """Replace pair (iy, ix)'s state by the OLS fit of its ``n`` warm-up observations, as
    :meth:`HedgeFilter._finish_ols_warmup` does; leave it alone on a degenerate design."""
    if h1 > 0.0:
        mx = moments[MEAN_X, iy, ix]
        my = moments[MEAN_Y, iy, ix]
        cxx = moments[CXX, iy, ix]
        cxy = moments[CXY, iy, ix]
        cyy = moments[CYY, iy, ix]
        sxx = cxx + n * mx * mx
        if not (sxx > 0.0 and cxx > 0.0):
            return
        # the diagonal of R in the QR factorisation of the design [x, 1], as linalg.ols checks
        r11 = math.sqrt(sxx)
        r22 = math.sqrt(n * cxx / sxx)
        if min(r11, r22) <= 1e-12 * max(r11, r22):
            return
        beta = cxy / cxx
        alpha = my - beta * mx
        rss = cyy - beta * cxy
        s2 = (rss if rss > 0.0 else 0.0) / max(n - 2, 1)
        r = s2 if lam > 0.0 and s2 > 0.0 else r_fixed
        p00 = r / cxx
        p01 = -r * mx / cxx
        p11 = r * (1.0 / n + mx * mx / cxx)
        det = p00 * p11 - p01 * p01
        state[BETA, iy, ix] = beta
        state[ALPHA, iy, ix] = alpha
        state[P00, iy, ix] = p00
        state[P01, iy, ix] = p01
        state[P11, iy, ix] = p11
        state[DET, iy, ix] = det if det > 0.0 else 0.0
        state[OBS_COV, iy, ix] = r
    else:
        sxx = moments[CXX, iy, ix]
        if not sxx > 0.0:
            return
        sxy = moments[CXY, iy, ix]
        beta = sxy / sxx
        rss = moments[CYY, iy, ix] - beta * sxy
        s2 = (rss if rss > 0.0 else 0.0) / max(n - 1, 1)
        r = s2 if lam > 0.0 and s2 > 0.0 else r_fixed
        state[BETA, iy, ix] = beta
        state[ALPHA, iy, ix] = 0.0
        state[P00, iy, ix] = r / sxx
        state[P01, iy, ix] = 0.0
        state[P11, iy, ix] = 0.0
        state[DET, iy, ix] = 0.0
        state[OBS_COV, iy, ix] = r


@compiled
def matrix_advance(
    obs: np.ndarray,
    state: np.ndarray,
    count: np.ndarray,
    moments: np.ndarray,
    cfg: np.ndarray,
    out: np.ndarray,
) -> None:
    """Advance every ordered pair over ``obs`` (T, N) transformed observations, in place.

    state (SLOTS, N, N), count (N, N) int64 observations absorbed, moments (MOMENTS, N, N)
    warm-up moments, cfg (CFG_WIDTH,). ``out`` (RECORDED, T, N, N) receives every bar's beta,
    alpha, beta standard error, z-score and warm flag (1.0 / 0.0); pass a (RECORDED, 0, N, N)
    array to record nothing. A NaN in ``obs[t, j]`` makes every pair with leg j predict-only on
    bar t (its z-score NaN).
    """
    n_bars, n_sym = obs.shape
    q00, q01, q11, qdet = cfg[Q00], cfg[Q01], cfg[Q11], cfg[QDET]
    h1, lam, r_fixed = cfg[H1], cfg[LAM], cfg[R_FIXED]
    warm_after = int(cfg[WARM_AFTER])
    ols_n = int(cfg[OLS_N])
    record = out.shape[1] > 0
    nan = np.nan
    for t in range(n_bars):
        for iy in range(n_sym):
            y = obs[t, iy]
            y_missing = math.isnan(y)
            for ix in range(n_sym):
                if ix == iy:
                    continue
                n = count[iy, ix]
                p00 = state[P00, iy, ix]
                p01 = state[P01, iy, ix]
                p11 = state[P11, iy, ix]
                d = state[DET, iy, ix]
                if n > 0:
                    p00, p01, p11, d = pair_predict(p00, p01, p11, d, q00, q01, q11, qdet)
                x = obs[t, ix]
                if y_missing or math.isnan(x):
                    state[P00, iy, ix] = p00
                    state[P01, iy, ix] = p01
                    state[P11, iy, ix] = p11
                    state[DET, iy, ix] = d
                    state[ZSCORE, iy, ix] = nan
                else:
                    r = state[OBS_COV, iy, ix]
                    b, a, p00, p01, p11, d, e, s = pair_correct(
                        state[BETA, iy, ix], state[ALPHA, iy, ix], p00, p01, p11, d, r, h1, y, x
                    )
                    if lam > 0.0:
                        r = adapt_r(r, lam, e, s)
                    state[BETA, iy, ix] = b
                    state[ALPHA, iy, ix] = a
                    state[P00, iy, ix] = p00
                    state[P01, iy, ix] = p01
                    state[P11, iy, ix] = p11
                    state[DET, iy, ix] = d
                    state[OBS_COV, iy, ix] = r
                    state[ZSCORE, iy, ix] = e * math.sqrt(1.0 / s)
                    n += 1
                    count[iy, ix] = n
                    if n <= ols_n:
                        if h1 > 0.0:
                            dx = x - moments[MEAN_X, iy, ix]
                            mx = moments[MEAN_X, iy, ix] + dx / n
                            dy = y - moments[MEAN_Y, iy, ix]
                            my = moments[MEAN_Y, iy, ix] + dy / n
                            moments[MEAN_X, iy, ix] = mx
                            moments[MEAN_Y, iy, ix] = my
                            moments[CXX, iy, ix] += dx * (x - mx)
                            moments[CXY, iy, ix] += dx * (y - my)
                            moments[CYY, iy, ix] += dy * (y - my)
                        else:
                            moments[CXX, iy, ix] += x * x
                            moments[CXY, iy, ix] += x * y
                            moments[CYY, iy, ix] += y * y
                        if n == ols_n:
                            _finish_ols(state, moments, iy, ix, n, h1, lam, r_fixed)
                if record:
                    out[OUT_BETA, t, iy, ix] = state[BETA, iy, ix]
                    out[OUT_ALPHA, t, iy, ix] = state[ALPHA, iy, ix]
                    out[OUT_BETA_SE, t, iy, ix] = math.sqrt(state[P00, iy, ix])
                    out[OUT_ZSCORE, t, iy, ix] = state[ZSCORE, iy, ix]
                    out[OUT_WARM, t, iy, ix] = 1.0 if n >= warm_after else 0.0


__all__ = [
    "ALPHA",
    "BETA",
    "CFG_WIDTH",
    "DET",
    "MOMENTS",
    "OBS_COV",
    "OUT_ALPHA",
    "OUT_BETA",
    "OUT_BETA_SE",
    "OUT_WARM",
    "OUT_ZSCORE",
    "P00",
    "P01",
    "P11",
    "RECORDED",
    "SLOTS",
    "WARM_AFTER",
    "ZSCORE",
    "config_vector",
    "matrix_advance",
]
