"""The pairs of a pipeline advanced together: their filters, marks, positions and alarm
detectors held in arrays and stepped through a bar in one compiled call
(:func:`hedger.engine.kernels.bar.bar_step`).

A :class:`BarBank` is built from pair actors (pairs, k = 1, that no bar listener watches) and
owns their state from then on: the actors are its record, brought up to date by
:meth:`BarBank.store` whenever someone outside needs them (a snapshot, a control request, a
change of the running pairs). The two rare steps the kernel leaves to Python (the end of an
OLS warm-up, a run of outliers restarting a filter) go through the actor itself: its state is
written back, the actor takes the bar, its state is loaded again.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from hedger.core.actors import PairActor, actor_state
from hedger.core.bars import LegPrice
from hedger.core.events import AlarmEvent, HedgeRatioEvent, SpreadEvent
from hedger.core.failures import Failures
from hedger.engine.alarm import ALARM_KINDS, AlarmChange, detector_state
from hedger.engine.filter import PairFilterState, filter_state
from hedger.engine.kernels.bar import (
    ALARM_DOWN,
    ALARM_SCALE,
    ALARM_UP,
    ALPHA,
    BAD_PRICE,
    BETA,
    CLEARED,
    FCFG_ROWS,
    FLAGS,
    HAS_QTY,
    HEDGE,
    ICFG_ROWS,
    INNOVATION,
    INNOVATION_STD,
    IOUT_ROWS,
    ISTATE_ROWS,
    MARK_X,
    MARK_Y,
    MODE_CODES,
    NOTIONAL,
    OUT_ROWS,
    OUTLIER,
    P00,
    P01,
    P11,
    PNL,
    POSITION,
    QTY,
    RAISED,
    SLOW,
    SPREAD,
    STALE,
    TOOK,
    WARM,
    ZSCORE,
    bar_step,
)
from hedger.engine.pair import PairState
from hedger.engine.params import OlsWarmupInit
from hedger.engine.transforms import check_price
from hedger.errors import BadInputError


def bankable(actor: PairActor) -> bool:
    """Whether ``actor`` can run in a bank: a pair (one hedge) whose steps nobody watches one
    by one (a refitter's bar listener keeps its actor on the Python path)."""
    return len(actor.pair.xs) == 1 and actor.bar_listener is None


class BankBar(NamedTuple):
    """What one bar did to the bank's pairs that took part in it (n of them, bank order).

    members: (n,) their positions in the bank. out: float64 (OUT_ROWS, n), rows named in
    :mod:`hedger.engine.kernels.bar` (beta, alpha, P, e, sqrt(S), z, spread, hedge, marks,
    hedged P&L, position, notional). flags, qty, seq: int64 (n,). alarms: the alarm events
    of the bar with the bank position of their pair, in bank order. combination: see below.
    """

    members: np.ndarray
    out: np.ndarray
    flags: np.ndarray
    qty: np.ndarray
    seq: np.ndarray
    alarms: list[tuple[int, AlarmEvent]]
    combination: dict[int, dict[str, Any]] | None = None
    """The ``combination`` field of the ratio event of each column (by column index) whose
    pair has a combined hedge (its ``out`` columns then hold the combined hedge)."""


_price_of = operator.attrgetter("price")
_ts_of = operator.attrgetter("ts")


def _none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


class BarBank:
    """The bank of ``actors`` (each :func:`bankable`), whose state it loads now.

    ``max_age_ns``: a leg is fresh when its price is at most this old at the close. ``clock``:
    the events' ``ts_init`` (ns), read once a bar; None: the bar's close (replays).
    ``failures``: where a failure building a pair's alarm events is counted (contained).
    Bad input a bar reveals is counted in each pair actor's own ``rejects``.
    """

    def __init__(
        self,
        actors: Sequence[PairActor],
        max_age_ns: int,
        clock: Callable[[], int] | None = None,
        failures: Failures | None = None,
    ) -> None:
        if not all(bankable(actor) for actor in actors):
            raise ValueError("a bank runs pairs that no bar listener watches")
        self.actors = list(actors)
        self._max_age = max_age_ns
        self._clock = clock
        self._failures = failures if failures is not None else Failures()
        symbols = sorted({symbol for actor in self.actors for symbol in actor.pair.legs})
        self.symbols = tuple(symbols)
        self._sym_index = {symbol: k for k, symbol in enumerate(symbols)}
        self._symbol_set = frozenset(symbols)
        s, p = len(symbols), len(self.actors)
        self._px = np.zeros(s)
        self._px_ts = np.zeros(s, dtype=np.int64)
        self._seen = np.zeros(s, dtype=np.bool_)
        self._in_bar = np.zeros(s, dtype=np.bool_)
        self._all_prices = True
        """The next bar loads every symbol's price, not only those that ticked (a new bank)."""
        self._icfg = np.zeros((ICFG_ROWS, p), dtype=np.int64)
        self._fcfg = np.zeros((FCFG_ROWS, p))
        self._params = np.zeros((6, p))
        self._state = np.zeros((7, p))
        self._istate = np.zeros((ISTATE_ROWS, p), dtype=np.int64)
        self._prev = np.full((2, p), math.nan)
        self._marks = np.full((2, p), math.nan)
        self._held = np.full(p, math.nan)
        # a restart (a run of outliers) begins an OLS warm-up again: room for every OLS init
        warmups = [
            a.params.init.n_obs for a in self.actors if isinstance(a.params.init, OlsWarmupInit)
        ]
        self._ols_rows = np.zeros((p, max(warmups, default=1), 2))
        runs = [a.params.outlier_run for a in self.actors]
        self._ref_rows = np.zeros((p, max(runs, default=1), 2))
        self._alarm_f = np.zeros((4, p))
        self._alarm_i = np.full((4, p), -1, dtype=np.int64)
        self._out = np.zeros((OUT_ROWS, p))
        self._iout = np.zeros((IOUT_ROWS, p), dtype=np.int64)
        for j, actor in enumerate(self.actors):
            actor.detach()
            self._configure(j, actor)
            self._load(j)
            actor.attach(self, j)
        self._stored = True
        """Whether every actor holds the bank's state as it is (no bar since the last
        :meth:`store`): reading them then writes nothing back."""

    def _configure(self, j: int, actor: PairActor) -> None:
        """The pair's fixed settings: legs, mode, gate, warm-up, noise, position, alarm."""
        f = actor.hedge_filter
        params = f.params
        q = params.state_noise()
        q00 = float(q[0][0])
        intercept = params.has_intercept
        q01 = float(q[0][1]) if intercept else 0.0
        q11 = float(q[1][1]) if intercept else 0.0
        lam = 0.0 if params.adaptive_r is None else float(params.adaptive_r)
        self._params[:, j] = (q00, q01, q11, q00 * q11 - q01 * q01, float(intercept), lam)
        spec = actor.spec
        position = spec.position
        kind = 0 if position is None else (1 if position.shares is not None else 2)
        value = 0.0
        if position is not None:
            value = float(position.shares if position.shares is not None else position.notional)  # type: ignore[arg-type]
        y, x = actor.pair.legs
        icfg, fcfg = self._icfg, self._fcfg
        icfg[:6, j] = (
            self._sym_index[y], self._sym_index[x], MODE_CODES[params.mode.value],
            params.outlier_run, f.warm_after, kind,
        )  # fmt: skip
        icfg[6, j] = spec.lots[0] if spec.lots is not None else 1
        fcfg[0, j] = math.nan if params.outlier_z is None else float(params.outlier_z)
        fcfg[1, j] = value
        detector = actor.detector
        if detector is not None:
            a = detector.params
            icfg[7, j], icfg[8, j] = 1, a.burn_in
            clip = float(a.clip)
            fcfg[2:, j] = (
                float(a.drift), float(a.threshold), 1.0 + float(a.scale_drift),
                float(a.scale_threshold), clip, clip * clip, 1.0 / a.memory,
            )  # fmt: skip

    def _load(self, j: int) -> None:
        """Copy actor ``j``'s state into the arrays."""
        actor = self.actors[j]
        saved = actor.hedge_filter.save_pair()
        core = saved.core
        self._state[:, j] = core[:7]
        rows = saved.warmup_rows
        self._istate[:6, j] = (
            core.primed, saved.observations, -1 if rows is None else len(rows),
            len(saved.outlier_run), saved.outliers, saved.restarts,
        )  # fmt: skip
        self._istate[6:, j] = (actor.seq, actor.last_ts, actor.stale_bars)
        if rows:
            self._ols_rows[j, : len(rows)] = rows
        if saved.outlier_run:
            self._ref_rows[j, : len(saved.outlier_run)] = saved.outlier_run
        self._prev[:, j] = [_nan(v) for v in saved.previous]
        self._marks[:, j] = [_nan(v) for v in actor.marks]
        self._held[j] = math.nan if actor.hedge is None else actor.hedge[0]
        detector = actor.detector
        if detector is not None:
            self._alarm_f[:, j] = (*detector.statistics, detector.mean_square)
            since = [detector.active.get(kind, -1) for kind in ALARM_KINDS]
            self._alarm_i[:, j] = (detector.steps, *since)

    def store(self) -> None:
        """Write every pair's state back to its actor."""
        if self._stored:
            return
        for j in range(len(self.actors)):
            self._store(j)
        self._stored = True

    def store_pair(self, j: int) -> None:
        """Write pair ``j``'s state back to its actor (an actor reading its own state)."""
        if not self._stored:
            self._store(j)

    def release(self) -> None:
        """Give every actor its state back and let go of them (the bank is done)."""
        for j, actor in enumerate(self.actors):
            self._store(j)
            actor.detach()

    def _store(self, j: int) -> None:
        actor = self.actors[j]
        st, ist = self._state[:, j].tolist(), self._istate[:, j].tolist()
        ols_n, ref_n = ist[2], ist[3]
        rows = None if ols_n < 0 else tuple(map(tuple, self._ols_rows[j, :ols_n].tolist()))
        refused = tuple(map(tuple, self._ref_rows[j, :ref_n].tolist()))
        prev_y, prev_x = (_none(v) for v in self._prev[:, j].tolist())
        actor.hedge_filter.load_pair(
            PairFilterState(
                PairState(st[0], st[1], st[2], st[3], st[4], st[5], st[6], bool(ist[0])),
                (prev_y, prev_x),
                ist[1],
                rows,
                refused,
                ist[4],
                ist[5],
            )
        )
        actor.seq, actor.last_ts, actor.stale_bars = ist[6], ist[7], ist[8]
        actor.marks = [_none(v) for v in self._marks[:, j].tolist()]
        held = float(self._held[j])
        actor.hedge = None if math.isnan(held) else (held,)
        detector = actor.detector
        if detector is not None:
            up, down, scale, ms = self._alarm_f[:, j].tolist()
            steps, *since = self._alarm_i[:, j].tolist()
            detector.statistics = (up, down, scale)
            detector.mean_square = ms
            detector.steps = steps
            # in the order they were raised, as the detector's own dict holds them
            raised = sorted((s, i) for i, s in enumerate(since) if s >= 0)
            detector.active = {ALARM_KINDS[i]: s for s, i in raised}

    def snapshots(self) -> list[dict[str, Any]]:
        """Every pair's :meth:`PairActor.snapshot`, in bank order, read straight from the
        arrays (a checkpoint of many pairs: no write-back to the actors first)."""
        st, ist = self._state.T.tolist(), self._istate.T.tolist()
        prev, marks = self._prev.T.tolist(), self._marks.T.tolist()
        held = self._held.tolist()
        alarm_f, alarm_i = self._alarm_f.T.tolist(), self._alarm_i.T.tolist()
        states = []
        for j, actor in enumerate(self.actors):
            s, i = st[j], ist[j]
            ols_n, ref_n = i[2], i[3]
            f = actor.hedge_filter
            filter_part = filter_state(
                [*s, bool(i[0])],
                f.noise_lists(),
                [None if math.isnan(v) else v for v in prev[j]],
                i[1],
                None if ols_n < 0 else self._ols_rows[j, :ols_n].tolist(),
                self._ref_rows[j, :ref_n].tolist(),
                i[4],
                i[5],
            )
            alarm = None
            if actor.detector is not None:
                up, down, scale, ms = alarm_f[j]
                steps, *since = alarm_i[j]
                raised = sorted((v, k) for k, v in enumerate(since) if v >= 0)
                detector = detector_state(
                    [up, down, scale], {ALARM_KINDS[k]: v for v, k in raised}, steps, ms
                )
                started = {kind: list(bar) for kind, bar in actor.raised.items()}
                alarm = {**detector, "raised": started}
            h = held[j]
            states.append(
                actor_state(
                    actor.pair_id,
                    i[6],
                    i[7],
                    i[8],
                    [None if math.isnan(v) else v for v in marks[j]],
                    None if math.isnan(h) else [h],
                    filter_part,
                    alarm,
                    actor.combination_snapshot(),
                )
            )
        return states

    @property
    def seq(self) -> np.ndarray:
        """Each pair's last seq (P,), a view."""
        seq: np.ndarray = self._istate[6]
        return seq

    def active_alarms(self) -> int:
        """Pairs with an active alarm."""
        return int(np.count_nonzero((self._alarm_i[1:] >= 0).any(axis=0)))

    def on_bar(
        self, ts: int, prices: dict[str, LegPrice], ticked: frozenset[str]
    ) -> tuple[int, BankBar]:
        """Step every pair on the bar closed at ``ts`` (the bar handler's arguments): the
        bar's ``ts_init`` and what it did."""
        self._stored = False
        index_of = self._sym_index
        px, px_ts, seen, in_bar = self._px, self._px_ts, self._seen, self._in_bar
        if self._all_prices:
            self._all_prices = False
            for symbol, leg in prices.items():
                k = index_of.get(symbol)
                if k is not None:
                    px[k], px_ts[k], seen[k] = leg.price, leg.ts, True
        known = list(ticked & self._symbol_set)
        n = len(known)
        index = np.fromiter(map(index_of.__getitem__, known), np.int64, n)
        if n:
            legs = list(map(prices.__getitem__, known))
            px[index] = np.fromiter(map(_price_of, legs), np.float64, n)
            px_ts[index] = np.fromiter(map(_ts_of, legs), np.int64, n)
            seen[index] = True
            in_bar[index] = True
        return self._step(ts, index, lambda: (prices, ticked))

    def on_bar_arrays(
        self, ts: int, px: np.ndarray, px_ts: np.ndarray, in_bar: np.ndarray, seen: np.ndarray
    ) -> tuple[int, BankBar]:
        """:meth:`on_bar` for a bar given as arrays (S,) over :attr:`symbols` (the compiled
        bars of a replay, whose symbol table is this bank's): prices, their times (ns),
        whether each ticked in the bar, whether each has a price."""
        self._stored = False
        self._px[:], self._px_ts[:], self._in_bar[:], self._seen[:] = px, px_ts, in_bar, seen
        self._all_prices = False
        touched = np.flatnonzero(in_bar)
        symbols = self.symbols

        def as_handler_arguments() -> tuple[dict[str, LegPrice], frozenset[str]]:
            prices = {
                symbols[k]: LegPrice(float(px[k]), int(px_ts[k]), bool(in_bar[k]))
                for k in np.flatnonzero(seen).tolist()
            }
            return prices, frozenset(symbols[k] for k in touched.tolist())

        return self._step(ts, touched, as_handler_arguments)

    def _step(
        self,
        ts: int,
        touched: np.ndarray,
        handler_arguments: Callable[[], tuple[dict[str, LegPrice], frozenset[str]]],
    ) -> tuple[int, BankBar]:
        """The compiled step, then what it left to Python (``handler_arguments``: the bar as
        the actors take it, built only for a slow step)."""
        iout, out = self._iout, self._out
        slow = bar_step(
            self._px, self._px_ts, self._seen, self._in_bar, ts, self._max_age,
            self._icfg, self._fcfg, self._params, self._state, self._istate, self._prev,
            self._marks, self._held, self._ols_rows, self._ref_rows, self._alarm_f,
            self._alarm_i, out, iout,
        )  # fmt: skip
        self._in_bar[touched] = False
        ts_init = ts if self._clock is None else self._clock()
        flags = iout[FLAGS]
        alarms: list[tuple[int, AlarmEvent]] = []
        rare = np.flatnonzero(
            (flags & (SLOW | BAD_PRICE | OUTLIER)) | iout[RAISED] | iout[CLEARED]
        ).tolist()
        arguments = handler_arguments() if slow else None
        for j in rare:
            if flags[j] & SLOW:
                assert arguments is not None
                self._slow_step(j, ts, *arguments, alarms)
            else:
                self._rare(j, ts, ts_init, alarms)
        index = np.flatnonzero(flags & TOOK)
        taken = BankBar(
            index,
            out.take(index, axis=1),  # C order: rows are contiguous for orjson
            flags[index],
            iout[QTY, index],
            self._istate[6, index],
            alarms,
        )
        return ts_init, taken

    def _slow_step(
        self,
        j: int,
        ts: int,
        prices: dict[str, LegPrice],
        ticked: frozenset[str],
        alarms: list[tuple[int, AlarmEvent]],
    ) -> None:
        """Pair ``j``'s step the Python way (the state goes to its actor and back)."""
        self._store(j)
        actor = self.actors[j]
        actor.detach()
        try:
            taken = actor.take_bar(ts, prices, ticked)
        finally:
            self._load(j)
            actor.attach(self, j)
        if taken is None:
            self._iout[FLAGS, j] = 0
            return
        ratio, spread, *more = taken[0]
        assert isinstance(ratio, HedgeRatioEvent) and isinstance(spread, SpreadEvent)
        self._fill(j, ratio, spread)
        alarms.extend((j, event) for event in more if isinstance(event, AlarmEvent))

    def _fill(self, j: int, ratio: HedgeRatioEvent, spread: SpreadEvent) -> None:
        """The output columns of pair ``j`` from its events (a step taken the Python way)."""
        out = self._out
        cov = ratio.cov
        out[BETA, j], out[ALPHA, j], out[P00, j] = ratio.beta[0], ratio.alpha, cov[0][0]
        out[P01, j] = cov[0][1] if len(cov) > 1 else 0.0
        out[P11, j] = cov[1][1] if len(cov) > 1 else 0.0
        out[INNOVATION, j], out[INNOVATION_STD, j] = spread.innovation, spread.innovation_std
        out[ZSCORE, j], out[SPREAD, j] = spread.zscore, spread.spread
        out[PNL, j] = spread.hedged_pnl
        out[HEDGE, j] = math.nan if ratio.hedge is None else ratio.hedge[0]
        marks = list(ratio.prices.values()) if ratio.prices is not None else [None, None]
        out[MARK_Y, j], out[MARK_X, j] = _nan(marks[0]), _nan(marks[1])
        out[POSITION, j] = _nan(ratio.position)
        notional = ratio.hedge_notional
        out[NOTIONAL, j] = math.nan if notional is None else notional[0]
        flags = TOOK
        flags |= STALE if ratio.stale else 0
        flags |= OUTLIER if ratio.outlier else 0
        flags |= WARM if ratio.warm else 0
        if ratio.hedge_qty is not None:
            flags |= HAS_QTY
            self._iout[QTY, j] = ratio.hedge_qty[0]
        self._iout[FLAGS, j] = flags

    def _rare(self, j: int, ts: int, ts_init: int, alarms: list[tuple[int, AlarmEvent]]) -> None:
        """What the kernel flags for Python to record: a bad price, an outlier, alarms."""
        actor = self.actors[j]
        flags = int(self._iout[FLAGS, j])
        if flags & BAD_PRICE:
            self._reject_bad_price(actor, ts)
        if flags & OUTLIER:
            zscore = round(float(self._out[ZSCORE, j]), 1)
            actor.rejects.add("outlier", actor.pair_id, zscore=zscore)
        raised, cleared = int(self._iout[RAISED, j]), int(self._iout[CLEARED, j])
        if not (raised | cleared):
            return
        values = (self._out[ALARM_UP, j], self._out[ALARM_DOWN, j], self._out[ALARM_SCALE, j])
        changes = tuple(
            AlarmChange(kind, bool(raised >> bit & 1), float(values[bit]), 0)
            for bit, kind in enumerate(ALARM_KINDS)
            if (raised | cleared) >> bit & 1
        )
        seq = int(self._istate[6, j])
        try:
            events = actor.alarm_events(changes, seq, ts, ts_init)
        except Exception as exc:  # contained as an actor's failure is
            self._failures.record("alarm", actor.pair_id, exc, ts=ts)
            return
        alarms.extend((j, event) for event in events)

    def _reject_bad_price(self, actor: PairActor, ts: int) -> None:
        """Count the first price of the pair's legs the price rule refused, as the actor
        would."""
        positive = actor.logarithmic
        for symbol in actor.pair.legs:
            k = self._sym_index[symbol]
            if not self._seen[k] or ts - self._px_ts[k] > self._max_age:
                continue
            try:
                check_price(float(self._px[k]), positive=positive)
            except BadInputError as exc:
                actor.rejects.add(exc.reason, actor.pair_id, value=repr(exc.value))
                return
