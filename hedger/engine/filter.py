"""The complete online hedge filter: input transform, initialisation, warm-up, one result per
step. This is what a pair's actor drives; everything below it is pure math."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, NamedTuple, cast

import numpy as np

from hedger.engine.basket import BasketFilter
from hedger.engine.linalg import MatrixLike, ols
from hedger.engine.pair import PairFilter, PairState
from hedger.engine.params import DiffuseInit, FilterParams, GivenInit, OlsWarmupInit
from hedger.engine.transforms import InputTransform

_LOG_2PI = math.log(2.0 * math.pi)


class FilterStep(NamedTuple):
    """What one step of a hedge filter yields (units are those of the transformed inputs).

    betas: the hedge ratios (k,) after the step. alpha: the intercept (0 without one).
    cov: the state covariance (n, n), n = k + intercept, symmetric PSD.
    forecast: the one-step forecast of y before the observation.
    innovation: e = y - forecast. innovation_var: its variance S. zscore: e / sqrt(S).
    spread: y - betas.x - alpha with the state after the update.
    loglik: the log-likelihood increment -(log(2 pi S) + e^2 / S) / 2.
    obs_cov: R used for the step.
    warm: whether the initialisation's warm-up is complete.
    predicted_only: no observation absorbed this step (a leg missing, a differenced mode still
        priming, or an outlier): only the predict step ran. The observation fields are NaN,
        except for an outlier, where they describe the refused observation.
    outlier: the innovation gate refused the observation (``FilterParams.outlier_z``).
    restarted: a run of ``outlier_run`` outliers ended here and the filter started again from
        its initialisation with them (a new level: a split, a re-listing); it warms up anew.
    """

    betas: tuple[float, ...]
    alpha: float
    cov: tuple[tuple[float, ...], ...]
    forecast: float
    innovation: float
    innovation_var: float
    zscore: float
    spread: float
    loglik: float
    obs_cov: float
    warm: bool
    predicted_only: bool
    outlier: bool = False
    restarted: bool = False

    @property
    def beta(self) -> float:
        """The hedge ratio of a pair (the first of ``betas``)."""
        return self.betas[0]

    @property
    def beta_std(self) -> tuple[float, ...]:
        """Standard deviations of the betas (k,), from the diagonal of ``cov``."""
        return tuple(math.sqrt(self.cov[i][i]) for i in range(len(self.betas)))


class PairFilterState(NamedTuple):
    """A pair :class:`HedgeFilter`'s complete state (k = 1), every number exact: what
    :meth:`HedgeFilter.save_pair` returns and :meth:`HedgeFilter.load_pair` resumes from (the
    bank holds the same in its arrays).

    core: the pair filter's mean, covariance, tracked determinant, R and ``primed``.
    previous: the transform's remembered (Y, X) prices (None: none). observations: absorbed
    since the (re)start. warmup_rows: the OLS warm-up's (y, x) observations so far, None when
    no OLS warm-up is pending. outlier_run: the (y, x) of the current run of refused
    observations. outliers, restarts: the counters of :class:`HedgeFilter`.
    """

    core: PairState
    previous: tuple[float | None, float | None]
    observations: int
    warmup_rows: tuple[tuple[float, float], ...] | None
    outlier_run: tuple[tuple[float, float], ...]
    outliers: int
    restarts: int


class HedgeFilter:
    """One hedge filter driven by raw prices: ``step(y, x)`` for a pair, ``step(y, [x1..xk])``
    for a basket; ``None`` for a leg with no price this step (predict only).

    A price that cannot be used (NaN, inf, or <= 0 in a log mode) raises
    :class:`~hedger.errors.BadInputError` and leaves the filter exactly as it was. With an
    innovation gate (``params.outlier_z``), a warm filter refuses an observation whose |z|
    exceeds it (see :class:`FilterStep`'s ``outlier`` and ``restarted``).
    """

    def __init__(self, params: FilterParams | None = None) -> None:
        self.params = params = params if params is not None else FilterParams()
        self._transform = InputTransform(params.mode, params.n_legs)
        self._n = params.n_states
        self._k = params.n_legs
        self._intercept = params.has_intercept
        self._carried: tuple[float, float] | None = None
        """(e, S) of a step whose warm-up reset the core (which forgets them)."""
        self._refused: list[tuple[float, tuple[float, ...]]] = []
        """The outliers of the current run (transformed y and x), oldest first."""
        self.outliers = 0
        """Observations the gate refused (not those of a run that restarted the filter)."""
        self.restarts = 0
        """Runs of outliers that restarted the filter."""
        self._start()

    def _start(self) -> None:
        """(Re)build the core at the initialisation, with no observation absorbed."""
        params = self.params
        self._observations = 0
        self._warm_after = 0
        self._ols_rows: list[tuple[float, ...]] | None = None
        mean, cov = self._initial_state()
        q = params.state_noise()
        core_cls = PairFilter if self._k == 1 else BasketFilter
        if self._k == 1 and self._n == 1:
            mean, cov, q = _pad_to_pair(mean, cov, q)
        self._core: PairFilter | BasketFilter = core_cls(
            mean,
            cov,
            q,
            params.obs_cov,
            intercept=self._intercept,
            adaptive_r=params.adaptive_r,
        )

    def _initial_state(self) -> tuple[np.ndarray, np.ndarray]:
        init, n = self.params.init, self._n
        if isinstance(init, GivenInit):
            self._warm_after = init.warmup_steps
            return np.array(init.mean, dtype=np.float64), np.array(init.cov, dtype=np.float64)
        if isinstance(init, DiffuseInit):
            self._warm_after = n if init.warmup_steps is None else init.warmup_steps
            return np.zeros(n), np.eye(n) * init.variance
        assert isinstance(init, OlsWarmupInit)
        self._warm_after = init.n_obs
        self._ols_rows = []
        return np.zeros(n), np.eye(n) * init.diffuse_variance

    @property
    def warm(self) -> bool:
        """Whether the warm-up is complete."""
        return self._observations >= self._warm_after

    @property
    def warm_after(self) -> int:
        """Observations the warm-up needs (the filter is ``warm`` from then on)."""
        return self._warm_after

    @property
    def current_obs_cov(self) -> float:
        """R for the next step: fixed, or the adaptive estimate as it stands."""
        return float(self._core.obs_cov)

    @property
    def observations(self) -> int:
        """How many observations the filter has absorbed."""
        return self._observations

    def snapshot(self) -> dict[str, object]:
        """The complete filter state as a plain value (numbers, lists, bools): the core's mean,
        covariance and R, the transform's memory and the warm-up progress. Two filters with
        equal snapshots behave identically from then on."""
        core = self._core
        if isinstance(core, PairFilter):
            b, a, p00, p01, p11, _, _, primed, _, _ = core.raw()
            mean: list[float] = [b, a]
            cov: list[list[float]] = [[p00, p01], [p01, p11]]
        else:
            mean, cov, primed = core.mean.tolist(), core.cov.tolist(), core.primed
        return {
            "mean": mean,
            "cov": cov,
            "obs_cov": core.obs_cov,
            "primed": primed,
            "observations": self._observations,
            "previous_prices": self._transform.memory(),
            "warmup_rows": None if self._ols_rows is None else [list(r) for r in self._ols_rows],
            "outlier_run": [[y, *xs] for y, xs in self._refused],
        }

    def checkpoint(self) -> dict[str, Any]:
        """The exact state as plain values (numbers, lists, bools, None; a float may be NaN),
        for :meth:`resume`: the core's state as the kernels hold it, the noise in force (a
        refit may have swapped it), the transform's memory, the warm-up's progress, the
        current run of outliers and the counters. A filter resumed from it takes the steps
        this one would have taken, bit for bit."""
        core = self._core
        core_state: object
        if isinstance(core, PairFilter):
            core_state = list(core.state)
        else:
            mean, sqrt_p, r, primed = core.save()
            core_state = {
                "mean": mean.tolist(), "sqrt_p": sqrt_p.tolist(), "r": r, "primed": primed,
            }  # fmt: skip
        return filter_state(
            core_state,
            self.noise_lists(),
            self._transform.memory(),
            self._observations,
            None if self._ols_rows is None else [list(r) for r in self._ols_rows],
            [[y, *xs] for y, xs in self._refused],
            self.outliers,
            self.restarts,
        )

    def noise_lists(self) -> tuple[list[list[float]], float]:
        """The noise in force as plain values: Q (n, n) as lists, and R as configured (the
        adaptive estimate is in the core's state)."""
        q = np.asarray(self.params.state_noise(), dtype=np.float64).tolist()
        return q, float(self.params.obs_cov)

    def resume(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`checkpoint` of a filter of the same shape (legs, intercept,
        mode, initialisation). Its noise is taken when it differs from this filter's (a refit
        saved it). Raises ``ValueError`` (``KeyError``, ``TypeError``) for a state of another
        shape, leaving the filter as it was."""
        n, k = self._n, self._k
        trans_cov = [[float(v) for v in row] for row in state["trans_cov"]]
        if len(trans_cov) != n or any(len(row) != n for row in trans_cov):
            raise ValueError(f"the state's noise is not {n}x{n}")
        previous = [None if v is None else float(v) for v in state["previous"]]
        if len(previous) != k + 1:
            raise ValueError(f"the state remembers {len(previous)} prices, not {k + 1}")
        rows = state["warmup_rows"]
        warmup = None if rows is None else [tuple(float(v) for v in r) for r in rows]
        refused = [(float(r[0]), tuple(float(v) for v in r[1:])) for r in state["outlier_run"]]
        if any(len(xs) != k for _, xs in refused) or (warmup and len(warmup[0]) != k + 1):
            raise ValueError("the state's observations have another number of legs")
        core = self._core
        if isinstance(core, PairFilter):
            values = state["core"]
            if len(values) != len(PairState._fields):
                raise ValueError("the state is not a pair filter's")
            b, a, p00, p01, p11, det, r = (float(v) for v in values[:-1])
            saved: PairState | tuple[np.ndarray, np.ndarray, float, bool] = PairState(
                b, a, p00, p01, p11, det, r, bool(values[-1])
            )
        else:
            c = state["core"]
            mean = np.array(c["mean"], dtype=np.float64)
            sqrt_p = np.array(c["sqrt_p"], dtype=np.float64)
            if mean.shape != (n,) or sqrt_p.shape != (n, n):
                raise ValueError("the state is not a basket filter's of this size")
            saved = (mean, sqrt_p, float(c["r"]), bool(c["primed"]))
        obs_cov = float(state["obs_cov"])
        current = np.asarray(self.params.state_noise(), dtype=np.float64).tolist()
        if trans_cov != current or obs_cov != self.params.obs_cov:
            self.set_noise(trans_cov, obs_cov)
        if isinstance(core, PairFilter):
            assert isinstance(saved, PairState)
            core.restore(saved)
        else:
            assert not isinstance(saved, PairState)
            core.restore(saved)
        self._transform.restore(previous)
        self._observations = int(state["observations"])
        self._ols_rows = None if warmup is None else list(warmup)
        self._refused = refused
        self.outliers = int(state["outliers"])
        self.restarts = int(state["restarts"])
        self._carried = None

    def save_pair(self) -> PairFilterState:
        """The exact state of a pair filter (k = 1), for :meth:`load_pair`."""
        core = self._core
        if not isinstance(core, PairFilter):
            raise TypeError("save_pair is for pairs (n_legs = 1)")
        y_prev, x_prev = self._transform.memory()
        rows = self._ols_rows
        return PairFilterState(
            core.state,
            (y_prev, x_prev),
            self._observations,
            None if rows is None else tuple((r[0], r[1]) for r in rows),
            tuple((y, xs[0]) for y, xs in self._refused),
            self.outliers,
            self.restarts,
        )

    def load_pair(self, state: PairFilterState) -> None:
        """Resume a pair filter from ``state`` (:meth:`save_pair` of a filter with the same
        parameters): the following steps are those the saved filter would have taken."""
        core = self._core
        if not isinstance(core, PairFilter):
            raise TypeError("load_pair is for pairs (n_legs = 1)")
        core.restore(state.core)
        self._transform.restore(state.previous)
        self._observations = state.observations
        rows = state.warmup_rows
        self._ols_rows = None if rows is None else [(y, x) for y, x in rows]
        self._refused = [(y, (x,)) for y, x in state.outlier_run]
        self.outliers = state.outliers
        self.restarts = state.restarts
        self._carried = None

    def set_noise(self, trans_cov: MatrixLike, obs_cov: float) -> None:
        """Swap in new noise, Q (n, n) and R, without touching the state: the mean, covariance,
        the transform's memory and the warm-up progress carry on, so the following steps are
        those of a filter built with the new noise from the same state. ``params`` is updated
        (with ``trans_cov`` set, ``delta`` ignored); an adaptive R continues from ``obs_cov``.
        Invalid noise raises :class:`~hedger.errors.ConfigError` and changes nothing."""
        rows = tuple(tuple(float(v) for v in row) for row in trans_cov)
        params = replace(self.params, trans_cov=rows, obs_cov=float(obs_cov))
        q = params.state_noise()
        if self._k == 1 and self._n == 1:
            _, _, q = _pad_to_pair(np.zeros(1), np.zeros((1, 1)), q)
        self._core.set_noise(q, params.obs_cov)
        self.params = params

    def step(self, y: float | None, x: float | Sequence[float | None] | None) -> FilterStep:
        """Advance one step with the raw prices of Y and its hedge(s); returns the step."""
        # A string is a Sequence too: only real containers mean a basket.
        basket = isinstance(x, list | tuple | np.ndarray)
        xs = cast(Sequence[float | None], x) if basket else [cast(float | None, x)]
        observation = self._transform.apply(y, xs)
        if observation is None:
            self._core.predict()
            return self._result(math.nan, math.nan, self._core.obs_cov, None, predicted_only=True)
        y_obs, x_obs = observation
        core = self._core
        r_used = core.raw()[6] if isinstance(core, PairFilter) else core.obs_cov
        gate = self.params.outlier_z
        if gate is None or not self.warm:
            z = self._absorb(y_obs, x_obs)
            return self._result(y_obs, z, r_used, x_obs, predicted_only=False)
        saved = core.state if isinstance(core, PairFilter) else core.save()
        z = self._absorb(y_obs, x_obs)
        if not abs(z) > gate:
            self._refused.clear()
            return self._result(y_obs, z, r_used, x_obs, predicted_only=False)
        return self._refuse(y_obs, x_obs, z, r_used, saved)

    def _absorb(self, y_obs: float, x_obs: tuple[float, ...]) -> float:
        """Update the core with one observation (and the warm-up); returns z."""
        self._carried = None
        core = self._core
        z = (
            core.update(y_obs, x_obs[0])
            if isinstance(core, PairFilter)
            else core.update(y_obs, x_obs)
        )
        self._observations += 1
        if self._ols_rows is not None:
            self._ols_rows.append((y_obs, *x_obs))
            if len(self._ols_rows) == self._warm_after:
                # the reset to the OLS state forgets the step's e and S: this step reports them
                self._carried = self._innovation()
                self._finish_ols_warmup()
        return z

    def _innovation(self) -> tuple[float, float]:
        """The core's last (e, S)."""
        core = self._core
        if isinstance(core, PairFilter):
            e, s = core.raw()[8:10]
            return e, s
        return core.innovation, core.innovation_var

    def _refuse(
        self,
        y_obs: float,
        x_obs: tuple[float, ...],
        z: float,
        r_used: float,
        saved: PairState | tuple[np.ndarray, np.ndarray, float, bool],
    ) -> FilterStep:
        """The gate refused the observation just absorbed: undo it and predict only; a full
        run of outliers restarts the filter with them instead."""
        core = self._core
        if isinstance(core, PairFilter):
            assert isinstance(saved, PairState)
            e, s = core.raw()[8:10]
            core.restore(saved)
        else:
            assert not isinstance(saved, PairState)
            e, s = core.innovation, core.innovation_var
            core.restore(saved)
        self._observations -= 1
        self._refused.append((y_obs, x_obs))
        if len(self._refused) >= self.params.outlier_run:
            run, self._refused = self._refused, []
            self.restarts += 1
            self._start()
            for y_old, x_old in run[:-1]:
                self._absorb(y_old, x_old)
            z = self._absorb(y_obs, x_obs)
            return self._result(y_obs, z, r_used, x_obs, predicted_only=False, restarted=True)
        self.outliers += 1
        core.predict()
        step = self._result(y_obs, z, r_used, x_obs, predicted_only=True, outlier=True)
        return step._replace(
            forecast=y_obs - e, innovation=e, innovation_var=s,
            loglik=-0.5 * (_LOG_2PI + math.log(s) + e * e / s),
        )  # fmt: skip

    def _finish_ols_warmup(self) -> None:
        rows = np.array(self._ols_rows, dtype=np.float64)
        self._ols_rows = None
        design = rows[:, 1:]
        if self._intercept:
            design = np.column_stack([design, np.ones(len(rows))])
        try:
            coef, gram_inv, s2 = ols(design, rows[:, 0])
        except np.linalg.LinAlgError:
            # Degenerate warm-up data (a constant leg): keep the provisional diffuse filter.
            return
        r = s2 if self.params.adaptive_r is not None and s2 > 0 else self.params.obs_cov
        if self._k == 1 and self._n == 1:
            coef, gram_inv = np.array([coef[0], 0.0]), np.array([[gram_inv[0, 0], 0.0], [0, 0]])
        self._core.reset(coef, r * gram_inv, r, primed=True)

    def _result(
        self,
        y_obs: float,
        z: float,
        r_used: float,
        x_obs: tuple[float, ...] | None,
        *,
        predicted_only: bool,
        outlier: bool = False,
        restarted: bool = False,
    ) -> FilterStep:
        core = self._core
        if isinstance(core, PairFilter):
            b, alpha, p00, p01, p11, _, _, _, e, s = core.raw()
            betas: tuple[float, ...] = (b,)
            cov: tuple[tuple[float, ...], ...] = (
                ((p00, p01), (p01, p11)) if self._intercept else ((p00,),)
            )
        else:
            mean = core.mean
            betas = tuple(float(v) for v in mean[: self._k])
            alpha = float(mean[-1]) if self._intercept else 0.0
            cov = tuple(tuple(float(v) for v in row) for row in core.cov)
            e, s = core.innovation, core.innovation_var
        if self._carried is not None:
            (e, s), self._carried = self._carried, None
        if x_obs is None:
            spread = math.nan
        else:
            spread = y_obs - sum(bv * xv for bv, xv in zip(betas, x_obs, strict=True)) - alpha
        return FilterStep(
            betas=betas,
            alpha=alpha,
            cov=cov,
            forecast=y_obs - e,
            innovation=e,
            innovation_var=s,
            zscore=z,
            spread=spread,
            loglik=-0.5 * (_LOG_2PI + math.log(s) + e * e / s) if not math.isnan(s) else math.nan,
            obs_cov=r_used,
            warm=self.warm,
            predicted_only=predicted_only,
            outlier=outlier,
            restarted=restarted,
        )


def filter_state(
    core: object,
    noise: tuple[list[list[float]], float],
    previous: list[float | None],
    observations: int,
    warmup_rows: list[list[float]] | None,
    outlier_run: list[list[float]],
    outliers: int,
    restarts: int,
) -> dict[str, Any]:
    """The layout of :meth:`HedgeFilter.checkpoint` (the one place it is written: the bank
    writes its pairs' states with it too). ``core``: a pair core's :class:`PairState` as a
    list, or a basket core's mean, square root of P, R and primed; ``noise``: Q and R (see
    :meth:`HedgeFilter.noise_lists`); ``previous``: the transform's remembered prices (Y
    first); the rest as :class:`PairFilterState` names them."""
    return {
        "core": core,
        "trans_cov": noise[0],
        "obs_cov": noise[1],
        "previous": previous,
        "observations": observations,
        "warmup_rows": warmup_rows,
        "outlier_run": outlier_run,
        "outliers": outliers,
        "restarts": restarts,
    }


def _pad_to_pair(
    mean: np.ndarray, cov: np.ndarray, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embed a one-state (no intercept) problem in the pair filter's 2x2 layout."""
    return (
        np.array([mean[0], 0.0]),
        np.array([[cov[0, 0], 0.0], [0.0, 0.0]]),
        np.array([[q[0, 0], 0.0], [0.0, 0.0]]),
    )
