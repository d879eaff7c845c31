"""The per-pair filter actor: owns one pair's filter, turns bar closes into events."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hedger.core.bars import LegPrice
from hedger.core.events import Event, HedgeRatioEvent, SpreadEvent
from hedger.core.failures import Failures
from hedger.core.rejects import Rejects
from hedger.core.topics import PairId
from hedger.engine import FilterParams, HedgeFilter
from hedger.engine.linalg import MatrixLike
from hedger.errors import BadInputError


@dataclass(frozen=True, slots=True)
class PairSpec:
    """A pair to run and its filter parameters (``params.n_legs`` must match the pair)."""

    pair: PairId
    params: FilterParams


BarListener = Callable[["PairActor", int, list[float | None]], None]


class PairActor:
    """One pair's filter and sequence counter; never shares mutable state with other actors.

    :meth:`handle_bar` guards (is this bar about us, which legs are fresh) and contains
    failures; :meth:`on_bar` holds the logic. Every bar the pair takes part in yields a
    ``hedge_ratio`` and a ``spread`` event with the same ``seq``. A step that raises is
    counted in ``failures`` under the pair's id and logged; the bar then publishes nothing and
    ``seq``, ``last_ts`` and ``stale_bars`` stay as they were. (The filter itself is left as
    the exception left it: bad prices, the one failure the engine expects, leave it unchanged.)
    """

    def __init__(
        self,
        spec: PairSpec,
        max_age_ns: int,
        publish: Callable[[Event], None],
        rejects: Rejects,
        failures: Failures | None = None,
    ) -> None:
        self.pair = spec.pair
        self.pair_id = str(spec.pair)
        self._filter = HedgeFilter(spec.params)
        self._max_age = max_age_ns
        self._publish = publish
        self._rejects = rejects
        self._failures = failures if failures is not None else Failures()
        self.seq = 0
        self.last_ts = 0
        self.stale_bars = 0
        self.bar_listener: BarListener | None = None
        """Called after every step with the actor, the bar's ts and the prices the filter
        took (Y first; None for a leg it did not take): how a refitter keeps its history."""

    def handle_bar(self, ts: int, prices: dict[str, LegPrice], ticked: frozenset[str]) -> None:
        """A bar closed at ``ts`` (ns)."""
        legs = self.pair.legs
        if not any(symbol in ticked for symbol in legs):
            return
        fresh: list[float | None] = []
        for symbol in legs:
            leg = prices.get(symbol)
            fresh.append(leg.price if leg is not None and ts - leg.ts <= self._max_age else None)
        try:
            ratio, spread, taken = self.on_bar(ts, fresh)
        except Exception as exc:
            self._failures.record("actor", self.pair_id, exc, ts=ts)
            return
        # Publishing is outside the guard: the bus contains its subscribers, and a sink that
        # fails (a replay's output file) must stop the run, not be counted.
        self.seq = ratio.seq
        self.last_ts = ts
        if any(price is None for price in fresh):
            self.stale_bars += 1
        self._publish(ratio)
        self._publish(spread)
        if self.bar_listener is not None:
            try:
                self.bar_listener(self, ts, taken)
            except Exception as exc:
                self._failures.record("bar listener", self.pair_id, exc, ts=ts)

    def on_bar(
        self, ts: int, fresh: list[float | None]
    ) -> tuple[HedgeRatioEvent, SpreadEvent, list[float | None]]:
        """Step the filter on a bar closed at ``ts`` (ns) with the legs' fresh prices (Y
        first; None for a stale leg): the bar's two events and the prices the filter took."""
        y, xs = fresh[0], fresh[1:]
        stale = any(price is None for price in fresh)
        try:
            step = self._filter.step(y, xs)
        except BadInputError as exc:
            self._rejects.add(exc.reason, self.pair_id, value=repr(exc.value))
            step = self._filter.step(None, [None] * len(xs))
            stale = True
            fresh = [None] * len(fresh)
        if step.outlier:
            self._rejects.add("outlier", self.pair_id, zscore=round(step.zscore, 1))
            fresh = [None] * len(fresh)  # the filter did not take them
        elif step.restarted:
            run = self._filter.params.outlier_run
            self._rejects.add("outlier_restart", self.pair_id, bars=run)
        head = (self.pair_id, self.seq + 1, ts)
        ratio = HedgeRatioEvent(
            *head, step.betas, step.alpha, step.cov, step.beta_std, step.warm, stale, step.outlier
        )
        std = math.sqrt(step.innovation_var)
        spread = SpreadEvent(*head, step.spread, step.innovation, std, step.zscore, step.outlier)
        return ratio, spread, fresh

    @property
    def params(self) -> FilterParams:
        """The filter's current parameters (its noise changes with :meth:`set_noise`)."""
        return self._filter.params

    @property
    def observations(self) -> int:
        """Observations the filter has absorbed (it never resets, so this only grows)."""
        return self._filter.observations

    def set_noise(self, trans_cov: MatrixLike, obs_cov: float) -> None:
        """Swap the filter's noise, Q (n, n) and R, keeping its state
        (:meth:`HedgeFilter.set_noise`)."""
        self._filter.set_noise(trans_cov, obs_cov)

    def snapshot(self) -> dict[str, Any]:
        """The actor's whole state as one plain value (what a checkpoint will save)."""
        return {
            "pair": self.pair_id,
            "seq": self.seq,
            "last_ts": self.last_ts,
            "filter": self._filter.snapshot(),
        }
