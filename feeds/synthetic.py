"""A synthetic market with a known truth: a cointegrated pair (or basket) whose true hedge
ratio moves along a path you can read back, with Poisson tick arrivals and microstructure noise.

The latent model, on a grid of ``step`` seconds (all seeded, so the same seed gives the same
ticks)::

    log X_i(t+1) = log X_i(t) + sigma_x * sqrt(step) * N(0, 1)          (each hedge leg)
    beta_i(t+1)  = beta_i(t) + beta_vol * sqrt(step) * N(0, 1)          (the true ratios)
    u(t+1)       = u(t) exp(-step / half_life * ln 2) + spread_vol * N  (a stationary spread)
    Y(t)         = sum_i beta_i(t) X_i(t) + alpha + u(t)

with, optionally, breaks of the relationship: at each ``(seconds, factor)`` of ``beta_jumps``
every true beta is multiplied by ``factor`` from then on (1.2: +20%; -1: a sign flip).

Each symbol ticks at Poisson times with ``rate`` ticks per second; a tick's price is its latent
price at that time plus ``noise`` * N(0, 1) (bid-ask bounce). This is ground truth for tests and
demos: :meth:`SyntheticMarket.true_betas` gives the path the filter should track.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from feeds.paced import PacedFeed
from hedger.core.ticks import Tick
from hedger.errors import ConfigError

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class SyntheticSpec:
    """The market's parameters (prices in currency units, times in seconds).

    y, xs: the symbols (Y hedged with the basket ``xs``; one X for a pair).
    beta0: the initial true ratio(s), one per X. alpha: the constant intercept of Y.
    x0: initial hedge price(s). sigma_x: volatility of log X per sqrt(second).
    beta_vol: volatility of the true beta per sqrt(second).
    spread_vol: innovation sd of the spread per step; half_life: its mean-reversion half-life.
    noise: microstructure noise sd per tick. rate: Poisson ticks per second per symbol.
    step: latent grid spacing. start_ns: time of the first grid point (ns since the epoch).
    beta_jumps: ``(seconds, factor)`` breaks: from ``seconds`` after the start on, every true
    beta is ``factor`` times its random walk (the factors of past breaks multiply).
    """

    y: str = "YYY"
    xs: tuple[str, ...] = ("XXX",)
    beta0: tuple[float, ...] = (1.5,)
    alpha: float = 5.0
    x0: tuple[float, ...] = (100.0,)
    sigma_x: float = 0.0005
    beta_vol: float = 0.0005
    spread_vol: float = 0.02
    half_life: float = 30.0
    noise: float = 0.01
    rate: float = 5.0
    step: float = 0.1
    start_ns: int = 1_700_000_000 * _NS
    beta_jumps: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        k = len(self.xs)
        if k < 1 or len(self.beta0) != k or len(self.x0) != k:
            raise ConfigError("synthetic", "xs, beta0 and x0 must have one entry per hedge leg")
        for key in ("sigma_x", "beta_vol", "spread_vol", "noise"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"synthetic.{key}", "must be >= 0")
        for key in ("half_life", "rate", "step"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"synthetic.{key}", "must be > 0")
        if any(p <= 0 for p in self.x0):
            raise ConfigError("synthetic.x0", "prices must be > 0")
        for at, factor in self.beta_jumps:
            if not (math.isfinite(at) and at >= 0 and math.isfinite(factor)):
                raise ConfigError("synthetic.beta_jumps", "needs (seconds >= 0, finite factor)")

    def jump_factor(self, times: np.ndarray) -> np.ndarray:
        """The product of the factors of the breaks at or before each of ``times`` (m,),
        seconds since the start."""
        factor = np.ones(times.shape[0])
        for at, jump in self.beta_jumps:
            factor[times >= at] *= jump
        return factor


class SyntheticMarket:
    """Generates the latent paths and the ticks of a :class:`SyntheticSpec`, in chunks, so
    the ticks stream in constant memory (the true beta path, one row per grid step, is kept
    for :meth:`true_betas`). ``ticks(seconds)`` is deterministic for a given seed."""

    def __init__(self, spec: SyntheticSpec | None = None, *, seed: int = 0) -> None:
        self.spec = spec or SyntheticSpec()
        self._seed = seed
        self._beta_grid: list[np.ndarray] = []

    @property
    def symbols(self) -> tuple[str, ...]:
        """Y first, then the hedges."""
        return (self.spec.y, *self.spec.xs)

    @property
    def generated(self) -> bool:
        """Whether ticks were generated, so that the true path exists."""
        return bool(self._beta_grid)

    def true_betas(self, ts: int) -> tuple[float, ...]:
        """The true ratio(s) at time ``ts`` (ns), from the last generated run."""
        if not self._beta_grid:
            raise ConfigError("synthetic", "generate ticks before asking for the true path")
        grid = np.concatenate(self._beta_grid)
        index = (ts - self.spec.start_ns) // round(self.spec.step * _NS)
        index = min(max(index, 0), grid.shape[0] - 1)
        return tuple(float(v) for v in grid[index])

    def ticks(self, seconds: float, *, chunk_seconds: float = 600.0) -> Iterator[Tick]:
        """All ticks of the first ``seconds`` of the market, in event-time order."""
        spec = self.spec
        k = len(spec.xs)
        # One stream per source of randomness, so the chunk size never changes the ticks.
        streams = np.random.SeedSequence(self._seed).spawn(3 + 2 * (k + 1))
        rng_x, rng_beta, rng_spread = (np.random.default_rng(s) for s in streams[:3])
        rng_arrival = [np.random.default_rng(s) for s in streams[3 : 4 + k]]
        rng_noise = [np.random.default_rng(s) for s in streams[4 + k :]]
        n_steps = math.ceil(seconds / spec.step)
        chunk = max(1, int(chunk_seconds / spec.step))
        log_x = np.log(np.array(spec.x0, dtype=np.float64))
        beta = np.array(spec.beta0, dtype=np.float64)
        u = 0.0
        keep = math.exp(-spec.step / spec.half_life * math.log(2.0))
        next_tick = [float(rng_arrival[j].exponential(1.0 / spec.rate)) for j in range(k + 1)]
        self._beta_grid = []
        done = 0
        while done < n_steps:
            m = min(chunk, n_steps - done)
            dlx = rng_x.normal(0.0, spec.sigma_x * math.sqrt(spec.step), (m, k))
            dbeta = rng_beta.normal(0.0, spec.beta_vol * math.sqrt(spec.step), (m, k))
            shocks = rng_spread.normal(0.0, spec.spread_vol, m)
            # cumulative sums carried over from the last chunk, added in one left-to-right
            # order, so the chunk size does not change a single bit
            lx = np.cumsum(np.vstack([log_x, dlx]), axis=0)[1:]
            walk = np.cumsum(np.vstack([beta, dbeta]), axis=0)[1:]
            if spec.beta_jumps:
                times = (done + np.arange(m)) * spec.step  # each row's start
                betas = walk * spec.jump_factor(times)[:, None]
            else:
                betas = walk
            us = np.empty(m)
            for i in range(m):
                u = u * keep + shocks[i]
                us[i] = u
            xs = np.exp(lx)
            ys = np.einsum("ij,ij->i", betas, xs) + spec.alpha + us
            log_x, beta = lx[-1], walk[-1]
            self._beta_grid.append(betas)
            latent = np.column_stack([ys, xs])
            t0 = done * spec.step
            t1 = (done + m) * spec.step
            per_symbol: list[list[tuple[int, int, float]]] = []
            for j in range(k + 1):
                arrivals: list[tuple[int, int, float]] = []
                t = next_tick[j]
                while t < t1:
                    row = min(int((t - t0) / spec.step), m - 1)
                    price = float(latent[row, j] + spec.noise * rng_noise[j].normal())
                    arrivals.append((spec.start_ns + round(t * _NS), j, price))
                    t += float(rng_arrival[j].exponential(1.0 / spec.rate))
                next_tick[j] = t
                per_symbol.append(arrivals)
            symbols = self.symbols
            for ts, j, price in heapq.merge(*per_symbol):
                yield Tick(symbols[j], price, ts, ts, None, "synthetic")
            done += m


class SyntheticFeed(PacedFeed):
    """The synthetic market as a live feed: ticks arrive at their event times scaled by
    ``speed`` (``None``: as fast as the consumer takes them)."""

    def __init__(
        self, market: SyntheticMarket, seconds: float, *, speed: float | None = 1.0
    ) -> None:
        super().__init__(speed)
        self.market = market
        self._seconds = seconds

    def source(self) -> Iterator[Tick]:
        return self.market.ticks(self._seconds)
