"""Benchmark hedger's engine against peer Kalman filter libraries, on the same data, in one process.

Run as ``python bench/bench_engine.py`` (full, 1-2 minutes) or ``--quick`` (smoke run, < 30 s).
Prints the machine, a markdown table (absolute times, peer time / our time), the agreement checks
that make the comparison fair (the peers must compute the same filter), and which targets were met.

Model everywhere: state ``[beta, alpha]``, a random walk with ``Q = delta / (1 - delta) I``
(delta = 1e-4), observation ``y = beta x + alpha + eps`` with ``R = 1``.

Cases:
1. online, one update at a time: ``PairFilter.update`` (returns z) and ``HedgeFilter.step`` vs
   pykalman ``filter_update`` and filterpy ``predict()`` + ``update()``; us per update.
2. batch, one series: ``filter_pair`` and the raw kernel ``kernels.pair_series`` vs statsmodels'
   state-space filter (time-varying design) and pykalman ``filter()``; steps per second.
3. bank: ``PairBank.step`` over P pairs (and the raw ``kernels.bank_step``) vs a plain-numpy
   vectorised update of the same P filters; ns per pair-update.

Timing: ``time.perf_counter``, best of several runs, garbage collector off while timing; the
contenders of a case are run round-robin (see ``best_of_rounds``) so that load from other jobs on
the machine does not bias a ratio; numba kernels are warmed up (compiled) on a small input
before anything is timed. Peers get their inputs
pre-built outside the timed loops (pykalman's observation matrices, 1-element observation
arrays), which favours them: the ratios are, if anything, lower bounds.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.metadata
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import filterpy
import numba
import numpy as np
import pykalman
import statsmodels
from filterpy.kalman import KalmanFilter as FilterpyKF
from numpy.typing import NDArray
from pykalman import KalmanFilter as PykalmanKF
from statsmodels.tsa.statespace.kalman_filter import MEMORY_CONSERVE
from statsmodels.tsa.statespace.mlemodel import MLEModel

from hedger.engine import (
    FilterParams,
    GivenInit,
    HedgeFilter,
    PairBank,
    PairFilter,
    filter_pair,
    kernels,
)

FloatArray = NDArray[np.float64]

DELTA = 1e-4
Q_VAR = DELTA / (1.0 - DELTA)
Q = ((Q_VAR, 0.0), (0.0, Q_VAR))
R = 1.0
MEAN0 = (0.0, 0.0)
COV0 = ((1.0, 0.0), (0.0, 1.0))


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does: steps timed per run, and how many runs (``rounds``
    round-robin passes over the contenders of a case; the fast ones run ``fast_reps`` times per
    round)."""

    online_ours: int
    online_hedge: int
    online_filterpy: int
    online_pykalman: int
    batch: int
    batch_statsmodels: int
    batch_pykalman: int
    bank_updates: int
    bank_max_steps: int
    numpy_max_steps: int
    rounds: int
    fast_reps: int


FULL = Sizes(
    online_ours=200_000,
    online_hedge=50_000,
    online_filterpy=20_000,
    online_pykalman=2_000,
    batch=1_000_000,
    batch_statsmodels=1_000_000,
    batch_pykalman=20_000,
    bank_updates=4_000_000,
    bank_max_steps=40_000,
    numpy_max_steps=4_000,
    rounds=5,
    fast_reps=3,
)

QUICK = Sizes(
    online_ours=20_000,
    online_hedge=5_000,
    online_filterpy=2_000,
    online_pykalman=300,
    batch=100_000,
    batch_statsmodels=100_000,
    batch_pykalman=2_000,
    bank_updates=400_000,
    bank_max_steps=4_000,
    numpy_max_steps=500,
    rounds=2,
    fast_reps=2,
)

BANK_SIZES = (1, 100, 10_000, 100_000)


# --------------------------------------------------------------------------------------------
# helpers


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time in seconds of ``repeats`` calls of ``fn`` (garbage collector off)."""
    best = math.inf
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
    finally:
        if enabled:
            gc.enable()
    return best


def best_of_rounds(items: Sequence[tuple[Callable[[], object], int]], rounds: int) -> list[float]:
    """Best wall time in seconds of each ``(fn, reps)`` item, its runs interleaved with the
    others': each of ``rounds`` passes runs every item ``reps`` times, so a slow spell of a shared
    machine hits all contenders alike instead of biasing a ratio."""
    best = [math.inf] * len(items)
    for _ in range(rounds):
        for i, (fn, reps) in enumerate(items):
            best[i] = min(best[i], best_of(fn, reps))
    return best


def copy_bandwidth(megabytes: int = 32) -> float:
    """Bytes per second (read + written) of a numpy copy of a ``megabytes`` array: context for
    the bank's memory traffic (not a hard ceiling: a large copy may bypass the caches)."""
    src = np.random.default_rng(0).random(megabytes * 2**20 // 8)
    dst = np.empty_like(src)
    return 2 * src.nbytes / best_of(lambda: np.copyto(dst, src), 20)


# Memory traffic of one pair-update in ``kernels.bank_step``: reads a state row (7 float64),
# a param row (6), primed (1 byte), y and x; writes the state row, primed, e, s and z.
BANK_BYTES_PER_UPDATE = 7 * 8 + 6 * 8 + 1 + 2 * 8 + 7 * 8 + 1 + 3 * 8


def make_pair(n: int, seed: int) -> tuple[FloatArray, FloatArray]:
    """A synthetic pair: x a geometric random walk near 100, y = beta x + alpha + N(0, 1) with a
    slowly drifting beta (about 1.5) and alpha (about 5)."""
    rng = np.random.default_rng(seed)
    x = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n)))
    beta = 1.5 + np.cumsum(rng.normal(0.0, 1e-3, n))
    alpha = 5.0 + np.cumsum(rng.normal(0.0, 1e-3, n))
    y = beta * x + alpha + rng.normal(0.0, 1.0, n)
    return y, x


def rel_diff(ours: FloatArray, ref: FloatArray) -> float:
    """Norm-wise relative difference ``|ours - ref| / |ref|``."""
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass
class Row:
    """One line of the results table."""

    case: str
    impl: str
    size: str
    seconds: float
    per_unit: str
    rate: str
    ratio: str
    note: str = ""


@dataclass
class Check:
    """One agreement check between our engine and a peer."""

    what: str
    value: float
    tolerance: float

    @property
    def ok(self) -> bool:
        """Whether the difference is within tolerance."""
        return self.value <= self.tolerance


@dataclass
class Target:
    """One performance target and what was measured."""

    what: str
    measured: str
    met: bool


def fmt_rate(per_second: float, unit: str) -> str:
    """Format a throughput like ``21.3M steps/s``."""
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f}M {unit}/s"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.1f}k {unit}/s"
    return f"{per_second:.0f} {unit}/s"


def fmt_ratio(value: float) -> str:
    """Format a ratio like ``412x``."""
    return f"{value:,.0f}x" if value >= 100 else f"{value:.1f}x"


# --------------------------------------------------------------------------------------------
# case 1: online single-pair update


def noop(y: float, x: float) -> float:
    """The cheapest two-argument call: the harness overhead of the Python timing loops."""
    return 0.0


def case_online(sz: Sizes, rows: list[Row], checks: list[Check], targets: list[Target]) -> None:
    """Online single-pair updates: ours vs pykalman filter_update vs filterpy."""
    y, x = make_pair(sz.online_ours, seed=1)
    ylist, xlist = y.tolist(), x.tolist()

    # -- ours: PairFilter.update, starting from a filtered state (predict, then update), as the
    # peers' predict+update loops do.
    pf = PairFilter(MEAN0, COV0, Q, R)
    pf.reset(MEAN0, COV0, R, primed=True)

    def run_ours() -> None:
        upd = pf.update
        for yv, xv in zip(ylist, xlist, strict=True):
            upd(yv, xv)

    def run_noop() -> None:
        fn = noop
        for yv, xv in zip(ylist, xlist, strict=True):
            fn(yv, xv)

    # -- ours: HedgeFilter.step (input transform, warm-up bookkeeping, a FilterStep per step).
    params = FilterParams(
        delta=DELTA, obs_cov=R, adaptive_r=None, init=GivenInit(mean=MEAN0, cov=COV0)
    )
    hf = HedgeFilter(params)
    yh, xh = ylist[: sz.online_hedge], xlist[: sz.online_hedge]

    def run_hedge() -> None:
        step = hf.step
        for yv, xv in zip(yh, xh, strict=True):
            step(yv, xv)

    # -- filterpy: predict() + update(y) with H = [[x, 1]] set per step.
    n_fp = sz.online_filterpy
    kf = FilterpyKF(dim_x=2, dim_z=1)

    def fp_reset() -> None:
        kf.x = np.array(MEAN0, dtype=np.float64).reshape(2, 1)
        kf.P = np.array(COV0, dtype=np.float64)
        kf.F = np.eye(2)
        kf.Q = np.array(Q, dtype=np.float64)
        kf.R = np.array([[R]])
        kf.H = np.array([[1.0, 1.0]])

    fp_reset()
    yf, xf = ylist[:n_fp], xlist[:n_fp]

    def run_filterpy() -> None:
        h = kf.H
        predict, update = kf.predict, kf.update
        for yv, xv in zip(yf, xf, strict=True):
            h[0, 0] = xv
            predict()
            update(yv)

    # -- pykalman: filter_update(mean, cov, observation, observation_matrix=[[x, 1]]).
    n_pk = sz.online_pykalman
    pk = PykalmanKF(
        transition_matrices=np.eye(2),
        transition_covariance=np.array(Q),
        observation_covariance=np.array([[R]]),
        n_dim_state=2,
        n_dim_obs=1,
    )
    obs_pk = [np.array([v]) for v in ylist[:n_pk]]
    h_pk = [np.array([[v, 1.0]]) for v in xlist[:n_pk]]
    pk_final: list[FloatArray] = []

    def run_pykalman() -> None:
        m = np.array(MEAN0, dtype=np.float64)
        c = np.array(COV0, dtype=np.float64)
        fu = pk.filter_update
        for ob, hm in zip(obs_pk, h_pk, strict=True):
            m, c = fu(m, c, observation=ob, observation_matrix=hm)
        pk_final[:] = [np.asarray(m), np.asarray(c)]

    fast = sz.fast_reps
    t_ours, t_noop, t_hedge, t_fp, t_pk = best_of_rounds(
        [(run_ours, fast), (run_noop, fast), (run_hedge, 1), (run_filterpy, 1), (run_pykalman, 1)],
        sz.rounds,
    )
    t_ours /= sz.online_ours
    t_noop /= sz.online_ours
    t_hedge /= sz.online_hedge
    t_fp /= n_fp
    t_pk /= n_pk

    # -- agreement on the first n_pk steps, all from the same filtered state.
    ref = PairFilter(MEAN0, COV0, Q, R)
    ref.reset(MEAN0, COV0, R, primed=True)
    for yv, xv in zip(ylist[:n_pk], xlist[:n_pk], strict=True):
        ref.update(yv, xv)
    ours_m = np.array([ref.beta, ref.alpha])
    ours_c = np.array(ref.cov)
    checks.append(
        Check(
            f"online: state mean after {n_pk} steps, ours vs pykalman",
            rel_diff(ours_m, pk_final[0]),
            1e-9,
        )
    )
    checks.append(
        Check(
            f"online: state cov after {n_pk} steps, ours vs pykalman",
            rel_diff(ours_c, pk_final[1]),
            1e-9,
        )
    )
    fp_reset()
    for yv, xv in zip(ylist[:n_pk], xlist[:n_pk], strict=True):
        kf.H[0, 0] = xv
        kf.predict()
        kf.update(yv)
    checks.append(
        Check(
            f"online: state mean after {n_pk} steps, ours vs filterpy",
            rel_diff(ours_m, kf.x.ravel()),
            1e-9,
        )
    )
    checks.append(
        Check(
            f"online: state cov after {n_pk} steps, ours vs filterpy", rel_diff(ours_c, kf.P), 1e-9
        )
    )
    # HedgeFilter (unprimed start: pykalman filter() convention) vs filter_pair on the same data.
    hf2 = HedgeFilter(params)
    last = None
    for yv, xv in zip(ylist[:n_pk], xlist[:n_pk], strict=True):
        last = hf2.step(yv, xv)
    series = filter_pair(y[:n_pk], x[:n_pk], mean=MEAN0, cov=COV0, trans_cov=Q, obs_cov=R)
    assert last is not None
    checks.append(
        Check(
            f"online: HedgeFilter.step vs filter_pair, beta/alpha/z after {n_pk} steps",
            rel_diff(
                np.array([last.beta, last.alpha, last.zscore]),
                np.array([series.beta[-1], series.alpha[-1], series.zscore[-1]]),
            ),
            1e-12,
        )
    )

    us = 1e6
    case = "1 online update"
    rows.append(
        Row(
            case,
            "hedger `PairFilter.update` (returns z)",
            f"{sz.online_ours:,} updates",
            t_ours * sz.online_ours,
            f"{t_ours * us:.3f} us/update",
            fmt_rate(1 / t_ours, "updates"),
            "1 (ref)",
            f"includes the Python for-loop; an empty loop calling a no-op "
            f"2-arg function costs {t_noop * us:.3f} us/iter",
        )
    )
    rows.append(
        Row(
            case,
            "hedger `HedgeFilter.step` (FilterStep)",
            f"{sz.online_hedge:,} steps",
            t_hedge * sz.online_hedge,
            f"{t_hedge * us:.3f} us/update",
            fmt_rate(1 / t_hedge, "updates"),
            f"({t_hedge / t_ours:.1f}x ref)",
            "convenience layer: input checks/transform, warm-up, FilterStep",
        )
    )
    rows.append(
        Row(
            case,
            "filterpy `predict()`+`update()`",
            f"{n_fp:,} updates",
            t_fp * n_fp,
            f"{t_fp * us:.2f} us/update",
            fmt_rate(1 / t_fp, "updates"),
            fmt_ratio(t_fp / t_ours),
            "H[0,0] = x set per step",
        )
    )
    rows.append(
        Row(
            case,
            "pykalman `filter_update`",
            f"{n_pk:,} updates",
            t_pk * n_pk,
            f"{t_pk * us:.1f} us/update",
            fmt_rate(1 / t_pk, "updates"),
            fmt_ratio(t_pk / t_ours),
            "observation_matrix=[[x, 1]] pre-built per step",
        )
    )

    targets.append(Target("PairFilter.update <= 0.5 us", f"{t_ours * us:.3f} us", t_ours <= 0.5e-6))
    targets.append(
        Target(
            "PairFilter.update >= 400x pykalman filter_update",
            fmt_ratio(t_pk / t_ours),
            t_pk / t_ours >= 400,
        )
    )
    targets.append(
        Target("PairFilter.update >= 30x filterpy", fmt_ratio(t_fp / t_ours), t_fp / t_ours >= 30)
    )


# --------------------------------------------------------------------------------------------
# case 2: batch filtering of one series


def kernel_inputs() -> tuple[FloatArray, FloatArray]:
    """State row (7,) and param row (6,) of ``kernels.pair_series``, as ``filter_pair`` builds
    them (intercept, fixed R)."""
    q00, q01, q11 = Q[0][0], Q[0][1], Q[1][1]
    params = np.array([q00, q01, q11, q00 * q11 - q01 * q01, 1.0, 0.0])
    p00, p01, p11 = COV0[0][0], COV0[0][1], COV0[1][1]
    state = np.array([MEAN0[0], MEAN0[1], p00, p01, p11, p00 * p11 - p01 * p01, R])
    return state, params


def statsmodels_model(y: FloatArray, x: FloatArray) -> MLEModel:
    """The pair model as a statsmodels state space: design (1, 2, T) = [x_t, 1], transition and
    selection I, state_cov Q, obs_cov R, known initialisation (mean, cov) of the first state
    (the same convention as ``filter_pair`` and pykalman's ``filter()``)."""
    n = y.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod = MLEModel(
            y,
            k_states=2,
            k_posdef=2,
            initialization="known",
            initial_state=np.array(MEAN0),
            initial_state_cov=np.array(COV0),
        )
    design = np.empty((1, 2, n))
    design[0, 0, :] = x
    design[0, 1, :] = 1.0
    mod["design"] = design
    mod["obs_intercept"] = np.zeros((1, 1))
    mod["obs_cov"] = np.array([[R]])
    mod["transition"] = np.eye(2)
    mod["state_intercept"] = np.zeros((2, 1))
    mod["selection"] = np.eye(2)
    mod["state_cov"] = np.array(Q)
    return mod


def case_batch(sz: Sizes, rows: list[Row], checks: list[Check], targets: list[Target]) -> None:
    """Batch filtering of one series: ours vs statsmodels vs pykalman filter()."""
    n = sz.batch
    y, x = make_pair(max(n, sz.batch_statsmodels), seed=2)
    yb, xb = y[:n], x[:n]

    # warm-up (compile or load the numba kernels) on a small input, outside any timing.
    filter_pair(yb[:100], xb[:100], trans_cov=Q, obs_cov=R)

    def run_filter_pair() -> None:
        filter_pair(yb, xb, mean=MEAN0, cov=COV0, trans_cov=Q, obs_cov=R)

    state0, params = kernel_inputs()
    out = np.empty((11, n))
    kernels.pair_series(state0.copy(), params, False, yb[:100], xb[:100], out[:, :100])

    def run_kernel() -> None:
        kernels.pair_series(state0.copy(), params, False, yb, xb, out)

    # -- statsmodels: the filter pass only (the models are built once, outside the timing).
    # Default storage (every step's filtered/predicted state and cov, forecasts, gains), and
    # statsmodels' best case MEMORY_CONSERVE (the last state only: less output than ours).
    n_sm = sz.batch_statsmodels
    mod = statsmodels_model(y[:n_sm], x[:n_sm])
    mod_c = statsmodels_model(y[:n_sm], x[:n_sm])
    mod_c.ssm.set_conserve_memory(MEMORY_CONSERVE)

    # -- pykalman filter(): a shorter series (it is slow), scaled per step.
    n_pk = sz.batch_pykalman
    pk = PykalmanKF(
        transition_matrices=np.eye(2),
        observation_matrices=np.stack([np.column_stack([x[:n_pk], np.ones(n_pk)])], axis=1),
        transition_covariance=np.array(Q),
        observation_covariance=np.array([[R]]),
        initial_state_mean=np.array(MEAN0),
        initial_state_covariance=np.array(COV0),
        n_dim_state=2,
        n_dim_obs=1,
    )
    obs = y[:n_pk, None]

    def run_pykalman() -> None:
        pk.filter(obs)

    fast = sz.fast_reps
    t_fp, t_k, t_sm, t_smc, t_pk = best_of_rounds(
        [
            (run_filter_pair, fast),
            (run_kernel, fast),
            (mod.ssm.filter, 1),
            (mod_c.ssm.filter, 1),
            (run_pykalman, 1),
        ],
        sz.rounds,
    )

    # -- agreement checks.
    ours = filter_pair(y[:n_sm], x[:n_sm], mean=MEAN0, cov=COV0, trans_cov=Q, obs_cov=R)
    res = mod.ssm.filter()
    sm_state = np.asarray(res.filtered_state)
    ours_end = np.array([ours.beta[-1], ours.alpha[-1]])
    checks.append(
        Check(
            f"batch: filtered [beta, alpha] at step {n_sm:,}, ours vs statsmodels",
            rel_diff(ours_end, sm_state[:, -1]),
            1e-6,
        )
    )
    checks.append(
        Check(
            f"batch: filtered cov at step {n_sm:,}, ours vs statsmodels",
            rel_diff(ours.cov[-1], np.asarray(res.filtered_state_cov)[:, :, -1]),
            1e-6,
        )
    )
    beta_path = float(np.max(np.abs(ours.beta - sm_state[0]) / np.abs(sm_state[0])))
    checks.append(
        Check(
            f"batch: max over {n_sm:,} steps of |beta diff| / |beta|, vs statsmodels",
            beta_path,
            1e-6,
        )
    )
    z_sm = np.asarray(res.standardized_forecasts_error)[0]
    checks.append(
        Check(
            "batch: max |z diff| over all steps, ours vs statsmodels standardized_forecasts_error",
            float(np.max(np.abs(ours.zscore - z_sm))),
            1e-6,
        )
    )
    llf_ours = float(np.sum(ours.loglik))
    checks.append(
        Check(
            "batch: total log-likelihood, relative diff vs statsmodels llf",
            abs(llf_ours - float(res.llf)) / abs(float(res.llf)),
            1e-9,
        )
    )
    del res
    res_c = mod_c.ssm.filter()
    checks.append(
        Check(
            f"batch: filtered [beta, alpha] at step {n_sm:,}, ours vs statsmodels MEMORY_CONSERVE",
            rel_diff(ours_end, np.asarray(res_c.filtered_state)[:, -1]),
            1e-6,
        )
    )
    del res_c, mod, mod_c
    pk_means, _ = pk.filter(obs)
    checks.append(
        Check(
            f"batch: filtered [beta, alpha] at step {n_pk:,}, ours vs pykalman",
            rel_diff(np.array([ours.beta[n_pk - 1], ours.alpha[n_pk - 1]]), pk_means[-1]),
            1e-6,
        )
    )
    checks.append(
        Check(
            f"batch: max |beta diff| over {n_pk:,} steps, ours vs pykalman",
            float(np.max(np.abs(ours.beta[:n_pk] - pk_means[:, 0]))),
            1e-6,
        )
    )

    case = "2 batch, 1 series"
    rate_fp, rate_k = n / t_fp, n / t_k
    rate_sm, rate_pk = n_sm / t_sm, n_pk / t_pk
    rows.append(
        Row(
            case,
            "hedger `filter_pair` (PairSeries)",
            f"{n:,} steps",
            t_fp,
            f"{t_fp / n * 1e9:.1f} ns/step",
            fmt_rate(rate_fp, "steps"),
            "1 (ref)",
            "all outputs: state, cov, forecast, e, S, z, spread, loglik",
        )
    )
    rows.append(
        Row(
            case,
            "hedger `kernels.pair_series` (raw)",
            f"{n:,} steps",
            t_k,
            f"{t_k / n * 1e9:.1f} ns/step",
            fmt_rate(rate_k, "steps"),
            f"({t_k / t_fp:.2f}x ref)",
            "preallocated (11, T) output",
        )
    )
    rows.append(
        Row(
            case,
            "statsmodels `ssm.filter()`",
            f"{n_sm:,} steps",
            t_sm,
            f"{t_sm / n_sm * 1e9:.0f} ns/step",
            fmt_rate(rate_sm, "steps"),
            fmt_ratio(rate_fp / rate_sm),
            f"time-varying design; filter pass only; {fmt_ratio(rate_k / rate_sm)} vs raw kernel",
        )
    )
    rate_smc = n_sm / t_smc
    rows.append(
        Row(
            case,
            "statsmodels `ssm.filter()`, MEMORY_CONSERVE",
            f"{n_sm:,} steps",
            t_smc,
            f"{t_smc / n_sm * 1e9:.0f} ns/step",
            fmt_rate(rate_smc, "steps"),
            fmt_ratio(rate_fp / rate_smc),
            f"keeps the final state only (less output than ours); "
            f"{fmt_ratio(rate_k / rate_smc)} vs raw kernel",
        )
    )
    rows.append(
        Row(
            case,
            "pykalman `filter()`",
            f"{n_pk:,} steps (scaled)",
            t_pk,
            f"{t_pk / n_pk * 1e9:.0f} ns/step",
            fmt_rate(rate_pk, "steps"),
            fmt_ratio(rate_fp / rate_pk),
            f"timed on {n_pk:,} steps, not {n:,}: per-step rate scaled",
        )
    )

    targets.append(
        Target("filter_pair >= 20M steps/s", fmt_rate(rate_fp, "steps"), rate_fp >= 20e6)
    )
    targets.append(
        Target(
            "kernels.pair_series >= 20M steps/s (raw kernel, for reference)",
            fmt_rate(rate_k, "steps"),
            rate_k >= 20e6,
        )
    )
    targets.append(
        Target(
            "filter_pair >= 15x statsmodels", fmt_ratio(rate_fp / rate_sm), rate_fp / rate_sm >= 15
        )
    )
    targets.append(
        Target(
            "kernels.pair_series >= 15x statsmodels (raw kernel, for reference)",
            fmt_ratio(rate_k / rate_sm),
            rate_k / rate_sm >= 15,
        )
    )


# --------------------------------------------------------------------------------------------
# case 3: a bank of P pairs


class NumpyBank:
    """Plain-numpy reference: P pair filters as (P,) arrays, updated with whole-array numpy
    expressions (textbook covariance update ``P - g g^T / S``, ``g = P h^T``)."""

    def __init__(self, p: int) -> None:
        self.b = np.full(p, MEAN0[0])
        self.a = np.full(p, MEAN0[1])
        self.p00 = np.full(p, COV0[0][0])
        self.p01 = np.full(p, COV0[0][1])
        self.p11 = np.full(p, COV0[1][1])
        self.r = np.full(p, R)
        self.q00 = np.full(p, Q[0][0])
        self.q01 = np.full(p, Q[0][1])
        self.q11 = np.full(p, Q[1][1])
        self.z = np.empty(p)
        self.primed = False

    def step(self, y: FloatArray, x: FloatArray) -> None:
        """Predict (unless first), then absorb y, x (P,) each."""
        if self.primed:
            self.p00 += self.q00
            self.p01 += self.q01
            self.p11 += self.q11
        self.primed = True
        g0 = self.p00 * x + self.p01
        g1 = self.p01 * x + self.p11
        s = x * g0 + g1 + self.r
        e = y - (self.b * x + self.a)
        k0 = g0 / s
        k1 = g1 / s
        self.b += k0 * e
        self.a += k1 * e
        self.p00 -= k0 * g0
        self.p01 -= k0 * g1
        self.p11 -= k1 * g1
        np.divide(e, np.sqrt(s), out=self.z)


def bank_kernel_arrays(p: int) -> tuple[FloatArray, FloatArray, NDArray[np.bool_]]:
    """State (7, P), params (6, P) and primed (P,) for a direct ``kernels.bank_step`` call."""
    state1, params1 = kernel_inputs()
    state = np.ascontiguousarray(np.tile(state1[:, None], (1, p)))
    params = np.ascontiguousarray(np.tile(params1[:, None], (1, p)))
    return state, params, np.zeros(p, dtype=bool)


def case_bank(sz: Sizes, rows: list[Row], checks: list[Check], targets: list[Target]) -> None:
    """PairBank.step at several P vs the raw kernel vs a numpy vectorised reference."""
    n_inputs = 8
    case = "3 bank of P pairs"
    warm = PairBank(4, trans_cov=Q, obs_cov=R)
    warm.step(np.ones(4), np.ones(4))
    bandwidth = copy_bandwidth()
    for p in BANK_SIZES:
        rng = np.random.default_rng(3)
        xs = [100.0 + rng.normal(0.0, 1.0, p) for _ in range(n_inputs)]
        ys = [1.5 * xi + 5.0 + rng.normal(0.0, 1.0, p) for xi in xs]
        steps = max(n_inputs, min(sz.bank_max_steps, sz.bank_updates // p))
        np_steps = max(n_inputs, min(steps, sz.numpy_max_steps))

        bank = PairBank(p, mean=MEAN0, cov=COV0, trans_cov=Q, obs_cov=R)

        def run_bank(
            bank: PairBank = bank,
            steps: int = steps,
            ys: list[FloatArray] = ys,
            xs: list[FloatArray] = xs,
        ) -> None:
            step = bank.step
            for k in range(steps):
                j = k % n_inputs
                step(ys[j], xs[j])

        state, params, primed = bank_kernel_arrays(p)
        e_out, s_out, z_out = np.empty(p), np.empty(p), np.empty(p)

        def run_kernel(
            state: FloatArray = state,
            params: FloatArray = params,
            primed: NDArray[np.bool_] = primed,
            e_out: FloatArray = e_out,
            s_out: FloatArray = s_out,
            z_out: FloatArray = z_out,
            steps: int = steps,
            ys: list[FloatArray] = ys,
            xs: list[FloatArray] = xs,
        ) -> None:
            fn = kernels.bank_step
            for k in range(steps):
                j = k % n_inputs
                fn(state, params, primed, ys[j], xs[j], e_out, s_out, z_out)

        nb = NumpyBank(p)

        def run_numpy(
            nb: NumpyBank = nb,
            np_steps: int = np_steps,
            ys: list[FloatArray] = ys,
            xs: list[FloatArray] = xs,
        ) -> None:
            step = nb.step
            for k in range(np_steps):
                j = k % n_inputs
                step(ys[j], xs[j])

        fast = sz.fast_reps
        t_bank, t_kernel, t_np = best_of_rounds(
            [(run_bank, fast), (run_kernel, fast), (run_numpy, 1)], sz.rounds
        )
        t_bank /= steps * p
        t_kernel /= steps * p
        t_np /= np_steps * p

        # agreement: fresh bank and numpy reference, same inputs, a few steps.
        chk_bank = PairBank(p, mean=MEAN0, cov=COV0, trans_cov=Q, obs_cov=R)
        chk_np = NumpyBank(p)
        for k in range(3 * n_inputs):
            chk_bank.step(ys[k % n_inputs], xs[k % n_inputs])
            chk_np.step(ys[k % n_inputs], xs[k % n_inputs])
        checks.append(
            Check(
                f"bank P={p:,}: beta after {3 * n_inputs} steps, bank vs numpy",
                float(np.max(np.abs(chk_bank.beta - chk_np.b) / np.abs(chk_np.b))),
                1e-8,
            )
        )
        checks.append(
            Check(
                f"bank P={p:,}: z of last step, bank vs numpy (max abs diff)",
                float(np.max(np.abs(chk_bank.zscore - chk_np.z))),
                1e-8,
            )
        )

        ns = 1e9
        rows.append(
            Row(
                case,
                "hedger `PairBank.step`",
                f"P={p:,} x {steps:,} steps",
                t_bank * steps * p,
                f"{t_bank * ns:.2f} ns/pair-update",
                fmt_rate(1 / t_bank, "pair-updates"),
                "1 (ref)",
                f"moves ~{BANK_BYTES_PER_UPDATE} B per pair-update: "
                f"{BANK_BYTES_PER_UPDATE / t_bank / 1e9:.0f} GB/s achieved; 2 ns would need "
                f"{BANK_BYTES_PER_UPDATE / 2:.0f} GB/s from one core (numpy copy of 32 MB here: "
                f"{bandwidth / 1e9:.0f} GB/s)"
                if p == BANK_SIZES[-1]
                else "",
            )
        )
        rows.append(
            Row(
                case,
                "hedger `kernels.bank_step` (raw)",
                f"P={p:,} x {steps:,} steps",
                t_kernel * steps * p,
                f"{t_kernel * ns:.2f} ns/pair-update",
                fmt_rate(1 / t_kernel, "pair-updates"),
                f"({t_kernel / t_bank:.2f}x ref)",
                "no input conversion",
            )
        )
        rows.append(
            Row(
                case,
                "plain numpy, vectorised over P",
                f"P={p:,} x {np_steps:,} steps",
                t_np * np_steps * p,
                f"{t_np * ns:.2f} ns/pair-update",
                fmt_rate(1 / t_np, "pair-updates"),
                fmt_ratio(t_np / t_bank),
                "textbook form, whole-array ops",
            )
        )
        if p == BANK_SIZES[-1]:
            targets.append(
                Target(
                    f"PairBank.step <= 2 ns per pair-update at P={p:,}",
                    f"{t_bank * ns:.2f} ns",
                    t_bank <= 2e-9,
                )
            )


# --------------------------------------------------------------------------------------------
# report


def machine_lines() -> list[str]:
    """The machine and software versions, as markdown list items."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "n/a"
    return [
        f"- date: {now}",
        f"- platform: {platform.platform()}",
        f"- CPU: {cpu_model()}, os.cpu_count() = {os.cpu_count()}",
        f"- load average at the end of the run (1, 5, 15 min): {load}",
        f"- Python {platform.python_version()} ({platform.python_implementation()})",
        f"- numpy {np.__version__}, numba {numba.__version__}",
        f"- hedger {importlib.metadata.version('hedger')}, pykalman {pykalman.__version__}, "
        f"filterpy {filterpy.__version__}, statsmodels {statsmodels.__version__}",
    ]


def table(rows: list[Row]) -> list[str]:
    """The results as a markdown table."""
    head = [
        "| case | implementation | timed size | best time (s) | per unit | throughput "
        "| peer time / our time | notes |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    body = [
        f"| {r.case} | {r.impl} | {r.size} | {r.seconds:.4f} | {r.per_unit} | {r.rate} "
        f"| {r.ratio} | {r.note} |"
        for r in rows
    ]
    return head + body


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the report; exit status 0 (targets are reported, not
    enforced)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run (< 30 s)")
    args = parser.parse_args(argv)
    sz = QUICK if args.quick else FULL
    t_start = time.perf_counter()

    rows: list[Row] = []
    checks: list[Check] = []
    targets: list[Target] = []
    case_online(sz, rows, checks, targets)
    case_batch(sz, rows, checks, targets)
    case_bank(sz, rows, checks, targets)

    out = [f"# hedger engine benchmark ({'quick' if args.quick else 'full'} run)", ""]
    out += ["## Machine", "", *machine_lines(), ""]
    out += ["## Results", "", *table(rows), ""]
    out += [
        "Ratio column: peer time / our time for the same work, against the row marked `1 (ref)` "
        "of the same case (and, for case 3, the same P). Values in parentheses are our own "
        "alternative paths relative to that reference.",
        "",
        "## Agreement checks (same model, same data)",
        "",
        "| check | difference | tolerance | ok |",
        "|---|---:|---:|---|",
    ]
    out += [
        f"| {c.what} | {c.value:.2e} | {c.tolerance:.0e} | {'yes' if c.ok else 'NO'} |"
        for c in checks
    ]
    out += ["", "## Targets", ""]
    out += [
        f"- [{'x' if t.met else ' '}] {t.what}: measured {t.measured} -> "
        f"{'MET' if t.met else 'NOT MET'}"
        for t in targets
    ]
    n_met = sum(t.met for t in targets)
    out += [
        "",
        f"{n_met} of {len(targets)} targets met; "
        f"{sum(c.ok for c in checks)} of {len(checks)} agreement checks within tolerance.",
        f"Total run time {time.perf_counter() - t_start:.1f} s.",
        "",
    ]
    print("\n".join(out))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
