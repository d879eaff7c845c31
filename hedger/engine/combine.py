"""The combined hedge: several candidate hedges of one pair, weighted by how they hedged.

Members are hedges of Y with X in shares of X per share of Y (Kalman filters in different
modes and noises, rolling OLS on price changes, ...). Bar t's P&L of member i is
``e_it = dY_t - h_i,t-1 dX_t``; the combination ``h_t = sum_i w_it h_it`` with weights summing
to 1 earns ``dY - h_t-1 dX = sum_i w_i,t-1 e_it``, so its hedged variance is ``w' S w`` with
``S`` the second moment of the members' P&L. Because that is convex in ``w``, a combination
is never worse than the average of its members and usually better than the best of them.

Weighting (:class:`CombineParams`):

- ``equal``: ``w = 1 / N``, the baseline;
- ``minvar``: the minimum of ``w' S_t w`` subject to ``sum w = 1``, where ``S_t`` is the
  exponentially forgotten second moment of the members' P&L up to bar t (half-life
  ``half_life`` bars), shrunk towards equal weights by adding ``shrink * c * I``. ``c`` is the
  scale of the members' *differences* (``S`` projected off the common direction: trace over
  ``N - 1``), which makes ``shrink`` free of units: 0 is plain minimum variance, large values
  tend to equal weights. Members' P&Ls are nearly collinear, so unconstrained weights go long
  one member and short another; ``long_only`` clips negative weights to 0 and renormalises.
  Until ``min_obs`` bars have every member's P&L the weights are equal.

Weights after bar t use P&L of bars up to and including t only, and are applied to bar
t + 1's move: nothing looks ahead (:func:`combine_path`).

:class:`RollingHedge` is the rolling-OLS-on-changes member run live: OLS with an intercept of
``dY`` on ``dX`` over the last ``window`` bars, as :func:`hedger.research.baselines.rolling_fits`
computes it over a whole history.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from hedger.engine.linalg import FloatArray
from hedger.engine.units import hedged_pnl
from hedger.errors import ConfigError

Weighting = Literal["equal", "minvar"]


@dataclass(frozen=True, slots=True)
class CombineParams:
    """How members' hedges are weighted (see the module docstring).

    weighting: ``minvar`` (learnt online) or ``equal``. half_life: bars after which a P&L's
    weight in ``S`` has halved (> 0). shrink: towards equal weights, in units of the members'
    difference scale (>= 0). long_only: no negative weight. min_obs: bars with every member's
    P&L before the weights move from equal (>= 2).

    The defaults were chosen on the 32 study pairs of ``docs/evaluation.md`` only.
    """

    weighting: Weighting = "minvar"
    half_life: float = 500.0
    shrink: float = 1.0
    long_only: bool = True
    min_obs: int = 20

    def __post_init__(self) -> None:
        if self.weighting not in ("equal", "minvar"):
            raise ConfigError("weighting", f"must be 'equal' or 'minvar', got {self.weighting!r}")
        if not (math.isfinite(self.half_life) and self.half_life > 0.0):
            raise ConfigError("half_life", f"must be a number of bars > 0, got {self.half_life}")
        if not (math.isfinite(self.shrink) and self.shrink >= 0.0):
            raise ConfigError("shrink", f"must be a number >= 0, got {self.shrink}")
        if self.min_obs < 2:
            raise ConfigError("min_obs", f"must be at least 2, got {self.min_obs}")

    @property
    def forgetting(self) -> float:
        """The per-bar factor ``0.5 ** (1 / half_life)`` applied to ``S``."""
        return float(0.5 ** (1.0 / self.half_life))


def min_variance_weights(
    moment: Sequence[Sequence[float]] | FloatArray, shrink: float, long_only: bool
) -> list[float] | None:
    """The weights (N,) minimising ``w' (moment + shrink c I) w`` with ``sum w = 1`` (``c``
    the members' difference scale), clipped at 0 and renormalised when ``long_only``; None
    when ``moment`` (N, N) carries no difference between members, or there is one member
    (then equal weights hold). Plain floats: N is a handful, where numpy's per-call cost is
    most of the work."""
    n = len(moment)
    if n < 2:
        return None
    rows = [[float(v) for v in row] for row in moment]
    trace = sum(rows[i][i] for i in range(n))
    scale = (trace - sum(map(sum, rows)) / n) / (n - 1)
    if not (math.isfinite(scale) and scale > 0.0):
        return None
    ridge = shrink * scale
    for i in range(n):
        rows[i][i] += ridge
        rows[i].append(1.0)  # the augmented column: solve A x = 1
    x = _solve_augmented(rows)
    if x is None:
        return None
    total = math.fsum(x)
    if not (math.isfinite(total) and total != 0.0):
        return None
    w = [v / total for v in x]
    if long_only:
        w = [v if v > 0.0 else 0.0 for v in w]
        kept = math.fsum(w)
        w = [v / kept for v in w]
    return w


def _solve_augmented(rows: list[list[float]]) -> list[float] | None:
    """Gaussian elimination with partial pivoting on the augmented rows ``[A | b]`` (N, N+1),
    in place; None when ``A`` is singular to working precision (a pivot below 1e-13 of its
    largest entry)."""
    n = len(rows)
    tiny = 1e-13 * max(abs(v) for row in rows for v in row[:n])
    for k in range(n):
        pivot = max(range(k, n), key=lambda i: abs(rows[i][k]))
        if not abs(rows[pivot][k]) > tiny:  # singular to working precision (or NaN)
            return None
        rows[k], rows[pivot] = rows[pivot], rows[k]
        head = rows[k]
        for i in range(k + 1, n):
            row = rows[i]
            factor = row[k] / head[k]
            if factor:
                for j in range(k, n + 1):
                    row[j] -= factor * head[j]
    x = [0.0] * n
    for k in range(n - 1, -1, -1):
        row = rows[k]
        x[k] = (row[n] - sum(row[j] * x[j] for j in range(k + 1, n))) / row[k]
    return x


class HedgeCombiner:
    """The online weights of ``n_members`` hedges (n >= 1).

    Each bar, :meth:`observe` takes the members' P&L of that bar (in Y's price units per share
    of Y; a bar where one is missing is skipped) and :meth:`combine` the members' new hedges.
    The state is plain floats (see :func:`min_variance_weights`).
    """

    def __init__(self, n_members: int, params: CombineParams | None = None) -> None:
        if n_members < 1:
            raise ValueError("a combination needs at least one member")
        self.params = params or CombineParams()
        self.n_members = n_members
        self._forget = self.params.forgetting
        self._moment = [[0.0] * n_members for _ in range(n_members)]
        self.weight_sum = 0.0
        self.observations = 0
        """Bars observed with every member's P&L."""
        self._weights = [1.0 / n_members] * n_members

    @property
    def moment_rows(self) -> list[list[float]]:
        """The forgotten sum of ``e e'`` (N, N), as the rows it is kept in (not a copy: read,
        do not write); divided by :attr:`weight_sum` it is ``S``."""
        return self._moment

    @property
    def weights(self) -> FloatArray:
        """The current weights (N,), summing to 1."""
        return np.array(self._weights)

    @weights.setter
    def weights(self, values: Sequence[float] | FloatArray) -> None:
        if len(values) != self.n_members:
            raise ValueError(f"expected {self.n_members} weights, got {len(values)}")
        self._weights = [float(v) for v in values]

    @property
    def weight_list(self) -> list[float]:
        """The current weights as a list of floats (a copy)."""
        return list(self._weights)

    def observe(self, pnl: Sequence[float] | FloatArray) -> bool:
        """Take one bar's member P&L (N,) and move the weights; False (nothing changes) if
        any is not finite."""
        if not self.accumulate(pnl):
            return False
        if self.reweigh_due:
            self.reweigh()
        return True

    def accumulate(self, pnl: Sequence[float] | FloatArray) -> bool:
        """:meth:`observe` without moving the weights (:meth:`reweigh`, or
        :func:`reweigh_many` for many combiners at once, does that)."""
        if len(pnl) != self.n_members:
            raise ValueError(f"expected {self.n_members} member P&Ls, got {len(pnl)}")
        e = [float(v) for v in pnl]
        if not all(map(math.isfinite, e)):
            return False
        forget = self._forget
        for row, ei in zip(self._moment, e, strict=True):
            for j, ej in enumerate(e):
                row[j] = forget * row[j] + ei * ej
        self.weight_sum = forget * self.weight_sum + 1.0
        self.observations += 1
        return True

    @property
    def reweigh_due(self) -> bool:
        """Whether the weights move with the moment (minvar, past ``min_obs``)."""
        params = self.params
        return params.weighting == "minvar" and self.observations >= params.min_obs

    def second_moment(self) -> list[list[float]]:
        """``S``: the forgotten second moment of the members' P&L (N, N)."""
        scale = 1.0 / self.weight_sum
        return [[v * scale for v in row] for row in self._moment]

    def reweigh(self) -> None:
        """The minimum-variance weights of the current moment (kept when there are none)."""
        params = self.params
        w = min_variance_weights(self.second_moment(), params.shrink, params.long_only)
        if w is not None:
            self._weights = w

    def combine(self, hedges: Sequence[float] | FloatArray) -> float:
        """``sum_i w_i h_i`` over the members with a hedge (N,), the weights renormalised over
        them; NaN when none has one."""
        total = weighted = 0.0
        for w, h in zip(self._weights, hedges, strict=True):
            if math.isfinite(h):
                total += w
                weighted += w * h
        if total <= 0.0:
            return math.nan
        return weighted / total

    @property
    def combined_std(self) -> float:
        """sqrt(w' S w): the combined hedge's P&L standard deviation the weights expect (NaN
        before the first observation)."""
        if self.weight_sum <= 0.0:
            return math.nan
        w = self._weights
        quad = sum(wi * sum(m * wj for m, wj in zip(row, w, strict=True))
                   for wi, row in zip(w, self._moment, strict=True))  # fmt: skip
        return math.sqrt(max(quad / self.weight_sum, 0.0))

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain values (a checkpoint; :meth:`restore` takes it back)."""
        return {
            "moment": [list(row) for row in self._moment],
            "weight_sum": self.weight_sum,
            "observations": self.observations,
            "weights": list(self._weights),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` of a combiner with as many members."""
        moment = [[float(v) for v in row] for row in state["moment"]]
        weights = [float(v) for v in state["weights"]]
        n = self.n_members
        if len(moment) != n or any(len(row) != n for row in moment) or len(weights) != n:
            raise ValueError(f"the snapshot is not of a combination of {n} members")
        self._moment = moment
        self._weights = weights
        self.weight_sum = float(state["weight_sum"])
        self.observations = int(state["observations"])


def reweigh_many(combiners: Sequence[HedgeCombiner]) -> None:
    """:meth:`HedgeCombiner.reweigh` of every combiner whose weights are due, those of the same
    size and shrinkage in one batched solve (a bank of pairs: one numpy call instead of a
    small solve per pair). The weights equal each one's own :meth:`~HedgeCombiner.reweigh` to
    rounding (LAPACK's pivoting, not the scalar elimination's); a batch that a singular matrix
    stops, and any combiner without shrinkage, is reweighed one by one."""
    batches: dict[tuple[int, float, bool], list[HedgeCombiner]] = {}
    for combiner in combiners:
        params = combiner.params
        if not combiner.reweigh_due:
            continue
        if params.shrink <= 0.0 or combiner.n_members < 2:
            combiner.reweigh()
            continue
        key = (combiner.n_members, params.shrink, params.long_only)
        batches.setdefault(key, []).append(combiner)
    for (n, shrink, long_only), batch in batches.items():
        moments = np.array([c.moment_rows for c in batch])
        sums = np.array([c.weight_sum for c in batch])
        second = moments / sums[:, None, None]
        trace = np.trace(second, axis1=1, axis2=2)
        scale = (trace - second.sum(axis=(1, 2)) / n) / (n - 1)
        usable = np.isfinite(scale) & (scale > 0.0)
        if not usable.any():
            continue
        ridge = (shrink * scale[usable])[:, None, None] * np.eye(n)
        try:
            x = np.linalg.solve(second[usable] + ridge, np.ones((int(usable.sum()), n, 1)))[..., 0]
        except np.linalg.LinAlgError:
            for combiner in batch:
                combiner.reweigh()
            continue
        total = x.sum(axis=1)
        good = np.isfinite(total) & (total != 0.0)
        w = x / np.where(good, total, 1.0)[:, None]
        if long_only:
            w = np.maximum(w, 0.0)
            w /= w.sum(axis=1, keepdims=True)
        for combiner, row, ok in zip(
            [c for c, u in zip(batch, usable.tolist(), strict=True) if u],
            w.tolist(),
            good.tolist(),
            strict=True,
        ):
            if ok:
                combiner.weights = row


class CombinedPath(NamedTuple):
    """A combination over T bars of N members: row t is known at bar t's close.

    hedge (T,): shares of X per share of Y; weights (T, N): the weights after bar t (those of
    ``hedge[t]``); expected_std (T,): sqrt(w' S w) after bar t.
    """

    hedge: FloatArray
    weights: FloatArray
    expected_std: FloatArray


def combine_path(
    hedges: FloatArray, y: FloatArray, x: FloatArray, params: CombineParams | None = None
) -> CombinedPath:
    """Run a :class:`HedgeCombiner` over members' hedge paths ``hedges`` (T, N), shares of X
    per share of Y set at each bar's close, with raw prices ``y``, ``x`` (T,)."""
    n_bars, n_members = hedges.shape
    pnl = np.column_stack([hedged_pnl(y, x, hedges[:, i]) for i in range(n_members)])
    combiner = HedgeCombiner(n_members, params)
    out = np.full(n_bars, math.nan)
    weights = np.empty((n_bars, n_members))
    expected = np.full(n_bars, math.nan)
    for t in range(n_bars):
        combiner.observe(pnl[t])
        out[t] = combiner.combine(hedges[t])
        weights[t] = combiner.weight_list
        expected[t] = combiner.combined_std
    return CombinedPath(out, weights, expected)


class RollingHedge:
    """Rolling OLS with an intercept of ``dY`` on ``dX`` over the last ``window`` bars, one
    bar at a time: :attr:`hedge` is its slope (shares of X per share of Y) once the window has
    seen ``window`` bars and holds ``max(3, window // 2)`` finite changes, X moving in it; on a
    bar without a fit the last hedge is kept (NaN before the first), as a desk would, and as
    :func:`hedger.research.baselines.rolling_ols_path` carries it.

    The window's sums are kept as it moves (one change in, one out: O(1) a bar) and summed
    afresh from the window every ``window`` bars, so rounding cannot build up over a long run.
    """

    def __init__(self, window: int) -> None:
        if window < 3:
            raise ConfigError("window", f"must be at least 3 bars, got {window}")
        self.window = window
        self._dy = [math.nan] * window
        self._dx = [math.nan] * window
        self._next = 0
        self._bars = 0
        self._sums = [0.0, 0.0, 0.0, 0.0, 0.0]
        """n, sum dx, sum dy, sum dx^2, sum dx dy over the window's finite rows."""
        self._moving = 0
        """Finite rows with dx != 0: none means X did not move (the sums may hold rounding
        residue of the changes that left, not the exact zero the fit must see)."""
        self._since_resum = 0
        self.hedge = math.nan

    def update(self, dy: float, dx: float) -> float:
        """Take one bar's changes (NaN: no change this bar, a missing row of the window) and
        return the new hedge."""
        k = self._next
        sums = self._sums
        old_y, old_x = self._dy[k], self._dx[k]
        if math.isfinite(old_y) and math.isfinite(old_x):
            self._moving -= old_x != 0.0
            sums[0] -= 1.0
            sums[1] -= old_x
            sums[2] -= old_y
            sums[3] -= old_x * old_x
            sums[4] -= old_x * old_y
        self._dy[k], self._dx[k] = dy, dx
        if math.isfinite(dy) and math.isfinite(dx):
            self._moving += dx != 0.0
            sums[0] += 1.0
            sums[1] += dx
            sums[2] += dy
            sums[3] += dx * dx
            sums[4] += dx * dy
        self._next = (k + 1) % self.window
        self._bars += 1
        self._since_resum += 1
        if self._since_resum >= self.window:
            self._resum()
        fit = self._fit()
        if math.isfinite(fit):
            self.hedge = fit
        return self.hedge

    def _resum(self) -> None:
        rows = [
            (x, y) for x, y in zip(self._dx, self._dy, strict=True)
            if math.isfinite(x) and math.isfinite(y)
        ]  # fmt: skip
        self._sums = [
            float(len(rows)),
            math.fsum(x for x, _ in rows),
            math.fsum(y for _, y in rows),
            math.fsum(x * x for x, _ in rows),
            math.fsum(x * y for x, y in rows),
        ]
        self._moving = sum(x != 0.0 for x, _ in rows)
        self._since_resum = 0

    def _fit(self) -> float:
        n, sx, sy, sxx, sxy = self._sums
        if self._bars < self.window or n < max(3, self.window // 2) or not self._moving:
            return math.nan
        mx = sx / n
        sxx_c = sxx - sx * mx
        if sxx_c <= 0.0:
            return math.nan
        return (sxy - sy * mx) / sxx_c

    def snapshot(self) -> dict[str, Any]:
        """The window as plain values (NaN as None) in its ring order, with its running sums,
        so that a restored member carries on bit for bit."""
        return {
            "window": self.window,
            "bars": self._bars,
            "next": self._next,
            "since_resum": self._since_resum,
            "sums": list(self._sums),
            "moving": self._moving,
            "hedge": None if math.isnan(self.hedge) else self.hedge,
            "dy": [None if math.isnan(v) else v for v in self._dy],
            "dx": [None if math.isnan(v) else v for v in self._dx],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` of a window of the same length."""
        if int(state["window"]) != self.window or not (
            len(state["dy"]) == len(state["dx"]) == self.window
        ):
            raise ValueError(f"the snapshot is of a window of {state['window']} bars")
        self._dy = [math.nan if v is None else float(v) for v in state["dy"]]
        self._dx = [math.nan if v is None else float(v) for v in state["dx"]]
        self._next = int(state["next"])
        self._bars = int(state["bars"])
        self._since_resum = int(state["since_resum"])
        self._sums = [float(v) for v in state["sums"]]
        self._moving = int(state["moving"])
        self.hedge = math.nan if state["hedge"] is None else float(state["hedge"])
