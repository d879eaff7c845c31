"""Background refits of a running daemon's filter noise.

A :class:`Refitter` listens to every pair actor's bars (the raw prices its filter took), keeps
the last ``window`` of them per pair, and on a schedule fits delta and R by maximum likelihood
(:func:`hedger.engine.calibrate.fit_noise`) in the pair's configured input mode (never a new
mode: that would change what the state means). The fit runs in a worker thread
(:func:`asyncio.to_thread`; the compiled kernels release the GIL), so the event loop keeps
stepping filters meanwhile; the new noise is then swapped into the running filter between two
bars, on the loop, without touching its state (:meth:`hedger.engine.HedgeFilter.set_noise`).
Both parameter sets are logged.

The schedule counts in bars or in bar time (``every = 500`` or ``every = "1h"``), so it reads
the same with live feeds and recorded files. Which bar a refit lands on depends on how long the
fit took, so a daemon with refits is not bit-for-bit a replay; one without is.

```toml
[refit]
every = 500         # bars between refits of a pair, or a duration of bar time ("4h")
window = 2000       # bars of history the fit uses (the most recent)
min_bars = 250      # no refit before this many bars of history
```
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hedger.config.refit import RefitSettings
from hedger.core.actors import PairActor
from hedger.engine.calibrate import NoiseFit, fit_noise
from hedger.errors import HedgerError


@dataclass(frozen=True, slots=True)
class RefitRecord:
    """One applied refit: the pair, the actor's ``seq`` when the noise was swapped in (the
    next bar is the first with the new noise), the bars fitted, and the old and new noise."""

    pair: str
    seq: int
    bars: int
    old_delta: float
    old_obs_cov: float
    fit: NoiseFit


class _History:
    """A pair's last ``window`` bars of raw prices and its schedule (``last_ts``: the bar of
    the last refit, None before the first)."""

    __slots__ = ("bars_since", "last_ts", "running", "x", "y")

    def __init__(self, window: int) -> None:
        self.y: deque[float] = deque(maxlen=window)
        self.x: deque[float] = deque(maxlen=window)
        self.bars_since = 0
        self.last_ts: int | None = None
        self.running = False


class Refitter:
    """Keeps each pair's history and refits its noise in the background.

    Call :meth:`attach` with the pipeline's actors, run :meth:`run` as a task; ``refits``,
    ``failures`` and ``skipped`` count what happened, ``records`` holds the last 100 refits.
    Baskets are not refitted (calibration fits pairs), nor pairs with an adaptive R: the fit
    is that of a fixed-R model, and its delta belongs with its R, which an adaptive estimate
    would soon replace (``hedger calibrate`` writes ``adaptive_r = false`` for that reason).
    """

    def __init__(self, settings: RefitSettings, logger: Any) -> None:
        self.settings = settings
        self.log = logger
        self.refits = 0
        self.failures = 0
        self.skipped = 0
        self.records: deque[RefitRecord] = deque(maxlen=100)
        self._histories: dict[str, _History] = {}
        self._due: asyncio.Queue[PairActor] = asyncio.Queue()

    def attach(self, actors: Sequence[PairActor]) -> None:
        """Listen to every pair actor's bars."""
        for actor in actors:
            if actor.pair.is_basket:
                self.log.info("refit skips baskets", pair=actor.pair_id)
                continue
            if actor.params.adaptive_r is not None:
                self.log.warning(
                    "refit skips a pair with an adaptive R (the fit is of a fixed R); "
                    "set adaptive_r = false for it",
                    pair=actor.pair_id,
                )
                continue
            self._histories[actor.pair_id] = _History(self.settings.window)
            actor.bar_listener = self.on_bar

    def detach(self, actor: PairActor) -> None:
        """Stop listening to ``actor`` (a pair removed or replaced at run time): its history
        is dropped, and a fit of it still queued or running is not applied."""
        if actor.bar_listener == self.on_bar:
            actor.bar_listener = None
            self._histories.pop(actor.pair_id, None)

    def _attached(self, actor: PairActor) -> bool:
        return actor.bar_listener == self.on_bar

    def metrics(self) -> dict[str, float]:
        """Counters for the daemon's metrics."""
        return {
            "refits": self.refits,
            "refit_failures": self.failures,
            "refit_skipped": self.skipped,
            "refit_pairs": len(self._histories),
        }

    def on_bar(self, actor: PairActor, ts: int, prices: list[float | None]) -> None:
        """A pair's filter took a bar: remember its prices, and queue a refit when due (the
        first once ``min_bars`` are in, then every ``every`` bars or bar time)."""
        history = self._histories[actor.pair_id]
        y, x = prices[0], prices[1]
        history.y.append(math.nan if y is None else y)
        history.x.append(math.nan if x is None else x)
        history.bars_since += 1
        settings = self.settings
        if len(history.y) < settings.min_bars:
            return
        if history.last_ts is None:
            due = True
        elif settings.every_bars is not None:
            due = history.bars_since >= settings.every_bars
        else:
            assert settings.every_ns is not None
            due = ts - history.last_ts >= settings.every_ns
        if not due:
            return
        history.bars_since = 0
        history.last_ts = ts
        if history.running:
            self.skipped += 1  # the previous fit of this pair is still running
            return
        history.running = True
        self._due.put_nowait(actor)

    async def run(self) -> None:
        """Fit pairs as they fall due, one at a time, until cancelled."""
        while True:
            actor = await self._due.get()
            if not self._attached(actor):
                continue  # detached while queued
            history = self._histories[actor.pair_id]
            try:
                await self._refit(actor)
            finally:
                history.running = False

    async def _refit(self, actor: PairActor) -> None:
        history = self._histories[actor.pair_id]
        y = np.array(history.y, dtype=np.float64)
        x = np.array(history.x, dtype=np.float64)
        params = actor.params
        try:
            fit = await asyncio.to_thread(
                fit_noise, y, x, params.mode, intercept=params.has_intercept, measure_hedge=False
            )
        except HedgerError as exc:
            self.failures += 1
            self.log.warning("refit failed", pair=actor.pair_id, bars=len(y), error=str(exc))
            return
        except Exception as exc:
            self.failures += 1
            self.log.error("refit failed", pair=actor.pair_id, bars=len(y), error=repr(exc))
            return
        if not self._attached(actor):
            self.log.info("refit dropped: the pair was removed meanwhile", pair=actor.pair_id)
            return
        old_q = float(params.state_noise()[0, 0])
        old_delta = old_q / (1.0 + old_q)
        old_r = _current_r(actor)
        n = params.n_states
        actor.set_noise(np.eye(n) * fit.trans_cov, fit.obs_cov)
        self.refits += 1
        self.records.append(RefitRecord(actor.pair_id, actor.seq, len(y), old_delta, old_r, fit))
        self.log.info(
            "refit",
            pair=actor.pair_id,
            seq=actor.seq,
            bars=len(y),
            mode=fit.mode.value,
            old_delta=old_delta,
            old_obs_cov=old_r,
            delta=fit.delta,
            obs_cov=fit.obs_cov,
            loglik=fit.loglik,
            n_obs=fit.n_obs,
            static=fit.static,
            at_upper=fit.at_upper,
        )


def _current_r(actor: PairActor) -> float:
    """The R the actor's filter uses now (an adaptive R's current estimate)."""
    return actor.obs_cov
