"""Compiled kernel of a bar: every pair of a bank through one whole :class:`HedgeFilter` step
and its actor's bookkeeping, in one call.

Per pair (columns of the arrays below, one per pair) it does what
:meth:`hedger.core.actors.PairActor.on_bar` does with a pair's filter: freshness of the legs
at the bar's close, the price rule, the input transform (levels, log, changes, returns), the
warm-up count, the innovation gate and its run of refused observations, the predict and
correct steps with an adaptive R, the marks, the hedge in shares, the hedged P&L, the
position's integer quantities and the relationship-break detector. The arithmetic is the same
as the Python path's, operation for operation, so the two agree to the last bit in practice
(tests hold them to 1e-12).

Two rare steps are left to the Python path, which is the reference: the end of an OLS
warm-up (a least-squares fit) and a run of outliers that restarts the filter. Such a pair is
flagged :data:`SLOW` and its state is left exactly as it was, so that the caller can take the
step the slow way and write the state back.

Layouts (P pairs, S symbols):

- ``icfg`` int64 (ICFG_ROWS, P): leg_y, leg_x (indexes into the symbol arrays), mode (0 levels,
  1 log, 2 changes, 3 returns), outlier_run, warm_after, position kind (0 none, 1 shares,
  2 notional), lot, alarm (0/1), the alarm's burn_in.
- ``fcfg`` float64 (FCFG_ROWS, P): gate (NaN: none), the position's shares or notional, then the
  alarm's drift, threshold, 1 + scale_drift, scale_threshold, clip, clip^2, 1 / memory.
- ``params`` float64 (6, P) and ``state`` float64 (7, P): as in ``kernels/pair.py``.
- ``istate`` int64 (ISTATE_ROWS, P): primed, observations, OLS rows held (-1: no OLS warm-up
  pending), refused rows held, outliers, restarts, seq, last_ts, stale_bars.
- ``prev`` (2, P): the transform's previous (y, x) prices; ``marks`` (2, P); ``held`` (P,):
  the last bar's hedge. NaN stands for "none" in all three.
- ``ols_rows`` (P, N, 2), ``ref_rows`` (P, R, 2): the warm-up's and the refused run's (y, x).
- ``alarm_f`` (4, P): up, down, scale, mean square; ``alarm_i`` int64 (4, P): steps and the
  step each kind (up, down, scale) was raised on, -1 while inactive.
- outputs ``out`` float64 (OUT_ROWS, P) and ``iout`` int64 (IOUT_ROWS, P), rows named below.
"""

from __future__ import annotations

import math

import numpy as np

from hedger.engine.alarm import cusum_step
from hedger.engine.kernels.jit import compiled
from hedger.engine.kernels.pair import adapt_r, pair_correct, pair_predict
from hedger.engine.transforms import usable_price

# flags (iout row FLAGS)
TOOK = 1
"""The pair took part in the bar (one of its legs ticked): it has events."""
STALE = 2
"""A leg had no fresh price (or a bad one): a predict-only step."""
OUTLIER = 4
"""The gate refused the observation."""
WARM = 8
"""The warm-up is complete."""
PREDICTED = 16
"""Only the predict step ran."""
SLOW = 32
"""The step is left to the Python path (an OLS warm-up ends, or a run of outliers restarts)."""
BAD_PRICE = 64
"""A fresh price failed the price rule (counted by the caller)."""
MISSING = 128
"""A leg had no fresh price at the bar's close (what ``stale_bars`` counts)."""
HAS_QTY = 256
"""The position's quantities exist on this bar."""

ICFG_ROWS, FCFG_ROWS, ISTATE_ROWS = 9, 9, 9
MODE_CODES = {"levels": 0, "log": 1, "changes": 2, "returns": 3}
"""The kernel's code of each input mode."""

# rows of ``out``
BETA, ALPHA, P00, P01, P11, INNOVATION, INNOVATION_STD, ZSCORE, SPREAD = range(9)
HEDGE, MARK_Y, MARK_X, PNL, POSITION, NOTIONAL, ALARM_UP, ALARM_DOWN, ALARM_SCALE = range(9, 18)
OUT_ROWS = 18
# rows of ``iout``
FLAGS, QTY, RAISED, CLEARED = range(4)
IOUT_ROWS = 4


@compiled
def bar_step(
    sym_px: np.ndarray,
    sym_ts: np.ndarray,
    sym_seen: np.ndarray,
    sym_in_bar: np.ndarray,
    close_ts: int,
    max_age: int,
    icfg: np.ndarray,
    fcfg: np.ndarray,
    params: np.ndarray,
    state: np.ndarray,
    istate: np.ndarray,
    prev: np.ndarray,
    marks: np.ndarray,
    held: np.ndarray,
    ols_rows: np.ndarray,
    ref_rows: np.ndarray,
    alarm_f: np.ndarray,
    alarm_i: np.ndarray,
    out: np.ndarray,
    iout: np.ndarray,
) -> int:
    """Advance every pair by the bar closed at ``close_ts`` (ns), a leg fresh when its price
    is at most ``max_age`` ns old. Returns the number of pairs flagged :data:`SLOW`."""
    nan = np.nan
    slow = 0
    for i in range(icfg.shape[1]):
        iout[RAISED, i] = 0
        iout[CLEARED, i] = 0
        iy = icfg[0, i]
        ix = icfg[1, i]
        if not (sym_in_bar[iy] or sym_in_bar[ix]):
            iout[FLAGS, i] = 0
            continue
        fresh_y = sym_seen[iy] and close_ts - sym_ts[iy] <= max_age
        fresh_x = sym_seen[ix] and close_ts - sym_ts[ix] <= max_age
        py = sym_px[iy] if fresh_y else nan
        px = sym_px[ix] if fresh_x else nan
        missing = not (fresh_y and fresh_x)
        mode = icfg[2, i]
        positive = mode in (1, 3)
        # a fresh price the price rule refuses (NaN included: NaN below means "no price")
        bad = (fresh_y and not usable_price(py, positive)) or (
            fresh_x and not usable_price(px, positive)
        )
        if bad:
            py = nan
            px = nan
        # the input transform
        new_prev_y = prev[0, i]
        new_prev_x = prev[1, i]
        if mode == 0:
            yo, xo = py, px
        elif mode == 1:
            yo, xo = math.log(py), math.log(px)
        elif mode == 2:
            yo, xo = py - new_prev_y, px - new_prev_x
            new_prev_y, new_prev_x = py, px
        else:
            yo, xo = math.log(py / new_prev_y), math.log(px / new_prev_x)
            new_prev_y, new_prev_x = py, px
        has_obs = not (math.isnan(yo) or math.isnan(xo))
        # the filter step, in locals until it is known not to be a slow one
        b, a = state[0, i], state[1, i]
        p00, p01, p11, d, r = state[2, i], state[3, i], state[4, i], state[5, i], state[6, i]
        primed = istate[0, i] != 0
        observations = istate[1, i]
        ols_n = istate[2, i]
        ref_n = istate[3, i]
        outliers = istate[4, i]
        warm_after = icfg[4, i]
        q00, q01, q11, qdet, h1, lam = (
            params[0, i],
            params[1, i],
            params[2, i],
            params[3, i],
            params[4, i],
            params[5, i],
        )
        outlier = False
        predicted = True
        refused_row = False
        e = s = z = spread = nan
        if not has_obs:
            if primed:
                p00, p01, p11, d = pair_predict(p00, p01, p11, d, q00, q01, q11, qdet)
        else:
            gate = fcfg[0, i]
            gated = not math.isnan(gate) and observations >= warm_after
            if ols_n >= 0 and ols_n + 1 >= warm_after:
                iout[FLAGS, i] = TOOK | SLOW
                slow += 1
                continue
            tp00, tp01, tp11, td = p00, p01, p11, d
            if primed:
                tp00, tp01, tp11, td = pair_predict(tp00, tp01, tp11, td, q00, q01, q11, qdet)
            tb, ta, tp00, tp01, tp11, td, e, s = pair_correct(
                b, a, tp00, tp01, tp11, td, r, h1, yo, xo
            )
            z = e * math.sqrt(1.0 / s)
            if gated and abs(z) > gate:
                if ref_n + 1 >= icfg[3, i]:
                    iout[FLAGS, i] = TOOK | SLOW
                    slow += 1
                    continue
                refused_row = True
                outlier = True
                outliers += 1
                if primed:
                    p00, p01, p11, d = pair_predict(p00, p01, p11, d, q00, q01, q11, qdet)
            else:
                if lam > 0.0:
                    r = adapt_r(r, lam, e, s)
                b, a, p00, p01, p11, d = tb, ta, tp00, tp01, tp11, td
                primed = True
                observations += 1
                predicted = False
                if gated:
                    ref_n = 0
            spread = yo - (0.0 + b * xo) - a
        warm = observations >= warm_after
        # the actor: marks (not moved by a refused or bad observation), hedge, P&L, position
        took_y = nan if outlier else py
        took_x = nan if outlier else px
        y0, x0 = marks[0, i], marks[1, i]
        y1 = y0 if math.isnan(took_y) else took_y
        x1 = x0 if math.isnan(took_x) else took_x
        if mode in (0, 2):
            hedge = b
        elif math.isnan(y1) or math.isnan(x1):
            hedge = nan
        else:
            hedge = b * y1 / x1
        h = held[i]
        pnl = nan
        known = not (math.isnan(y0) or math.isnan(y1) or math.isnan(x0) or math.isnan(x1))
        if known and not math.isnan(h):
            pnl = y1 - y0
            pnl -= h * (x1 - x0)
        flags = TOOK
        position = nan
        notional = nan
        qty = 0
        kind = icfg[5, i]
        if kind != 0 and not (kind == 2 and math.isnan(y1)):
            value = fcfg[1, i]
            position = value / y1 if kind == 2 else value
            if not math.isnan(hedge):
                quantity = -hedge * position
                if not math.isfinite(quantity):  # the Python path raises and counts it
                    iout[FLAGS, i] = TOOK | SLOW
                    slow += 1
                    continue
                lot = float(icfg[6, i])
                lots = math.floor(abs(quantity) / lot + 0.5)
                qty = int(math.copysign(lots * lot, quantity)) if lots else 0
                notional = nan if math.isnan(x1) else qty * x1
                flags |= HAS_QTY
        # commit
        state[0, i], state[1, i], state[2, i], state[3, i] = b, a, p00, p01
        state[4, i], state[5, i], state[6, i] = p11, d, r
        istate[0, i] = primed
        istate[1, i] = observations
        if has_obs and not outlier and ols_n >= 0:
            ols_rows[i, ols_n, 0] = yo
            ols_rows[i, ols_n, 1] = xo
            ols_n += 1
        if refused_row:
            ref_rows[i, ref_n, 0] = yo
            ref_rows[i, ref_n, 1] = xo
            ref_n += 1
        istate[2, i] = ols_n
        istate[3, i] = ref_n
        istate[4, i] = outliers
        istate[6, i] += 1
        istate[7, i] = close_ts
        istate[8, i] += missing
        if mode >= 2:
            prev[0, i], prev[1, i] = new_prev_y, new_prev_x
        marks[0, i], marks[1, i] = y1, x1
        held[i] = hedge
        raised = cleared = 0
        v_up = v_down = v_scale = 0.0
        if icfg[7, i] and warm and (outlier or not predicted):
            (
                alarm_f[0, i], alarm_f[1, i], alarm_f[2, i], alarm_i[0, i], alarm_f[3, i],
                alarm_i[1, i], alarm_i[2, i], alarm_i[3, i], raised, cleared, v_up, v_down,
                v_scale,
            ) = cusum_step(
                z, alarm_f[0, i], alarm_f[1, i], alarm_f[2, i], alarm_i[0, i], alarm_f[3, i],
                alarm_i[1, i], alarm_i[2, i], alarm_i[3, i], fcfg[2, i], fcfg[3, i],
                fcfg[4, i], fcfg[5, i], fcfg[6, i], fcfg[7, i], fcfg[8, i], icfg[8, i],
            )  # fmt: skip
        # outputs
        if missing or bad:
            flags |= STALE
        if missing:
            flags |= MISSING
        if bad:
            flags |= BAD_PRICE
        if outlier:
            flags |= OUTLIER
        if warm:
            flags |= WARM
        if predicted:
            flags |= PREDICTED
        iout[FLAGS, i] = flags
        iout[QTY, i] = qty
        iout[RAISED, i] = raised
        iout[CLEARED, i] = cleared
        out[BETA, i], out[ALPHA, i] = b, a
        out[P00, i], out[P01, i], out[P11, i] = p00, p01, p11
        out[INNOVATION, i] = e
        out[INNOVATION_STD, i] = math.sqrt(s)
        out[ZSCORE, i] = z
        out[SPREAD, i] = spread
        out[HEDGE, i] = hedge
        out[MARK_Y, i], out[MARK_X, i] = y1, x1
        out[PNL, i] = pnl
        out[POSITION, i] = position
        out[NOTIONAL, i] = notional
        out[ALARM_UP, i], out[ALARM_DOWN, i], out[ALARM_SCALE, i] = v_up, v_down, v_scale
    return slow
