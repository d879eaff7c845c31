"""Filter parameters: the model, its noises, its input mode and its initialisation.

The model (one observation per step, ``n = k + intercept`` states)::

    y_t     = H_t theta_t + eps_t,   H_t = [x1_t .. xk_t, 1]   (the 1 only with an intercept)
    theta_t = theta_{t-1} + w_t,     w_t ~ N(0, Q),  eps_t ~ N(0, R)

``theta = [beta_1 .. beta_k, alpha]``. All parameter objects are frozen and validated when built,
raising :class:`~hedger.errors.ConfigError` that names the offending key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from hedger.engine.linalg import FloatArray
from hedger.errors import ConfigError


class InputMode(StrEnum):
    """How raw prices become the filter's observations ``y`` and ``x``.

    - ``levels``: prices as they are (the hedge is in shares of X per share of Y);
    - ``log``: natural log of prices (beta is an elasticity);
    - ``changes``: price change since the previous step (beta is the minimum-variance hedge in
      shares);
    - ``returns``: log return since the previous step.
    """

    LEVELS = "levels"
    LOG = "log"
    CHANGES = "changes"
    RETURNS = "returns"

    @property
    def differenced(self) -> bool:
        """True when an observation needs the previous step's prices."""
        return self in (InputMode.CHANGES, InputMode.RETURNS)

    @property
    def logarithmic(self) -> bool:
        """True when prices must be finite and strictly positive."""
        return self in (InputMode.LOG, InputMode.RETURNS)

    @property
    def default_intercept(self) -> bool:
        """Levels and log prices carry an intercept by default; differences do not."""
        return not self.differenced


@dataclass(frozen=True, slots=True)
class GivenInit:
    """Start from a given state mean (n,) and covariance (n, n), in pykalman's convention: they
    are the prior of the *first* observation's state, which is absorbed without a predict step.

    ``warmup_steps`` observations must pass before outputs are flagged ``warm`` (default 0).
    """

    mean: tuple[float, ...]
    cov: tuple[tuple[float, ...], ...]
    warmup_steps: int = 0


@dataclass(frozen=True, slots=True)
class DiffuseInit:
    """Start from mean 0 and covariance ``variance * I``: the data decide everything.

    Outputs are ``warm`` once ``warmup_steps`` observations were absorbed (default: the state
    dimension ``n``, the fewest that identify the state).
    """

    variance: float = 1e6
    warmup_steps: int | None = None


@dataclass(frozen=True, slots=True)
class OlsWarmupInit:
    """Estimate the starting state by ordinary least squares on the first ``n_obs`` observations.

    While they arrive, a provisional filter from a diffuse prior produces outputs flagged
    ``warm=False``. At the ``n_obs``-th observation the state is replaced by the OLS fit:
    mean = the OLS coefficients, covariance = ``R (H'H)^-1`` (the Kalman posterior of a
    diffuse prior with no state noise), and an adaptive R is seeded with the OLS residual
    variance ``s^2``. From then on outputs are ``warm``.
    """

    n_obs: int = 20
    diffuse_variance: float = 1e6


Init = GivenInit | DiffuseInit | OlsWarmupInit


def _check_positive(key: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(key, f"must be a finite number > 0, got {value!r}")


def _as_psd_matrix(key: str, rows: Sequence[Sequence[float]], n: int) -> FloatArray:
    try:
        matrix = np.array(rows, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(key, f"must be a {n}x{n} matrix of numbers ({exc})") from None
    if matrix.shape != (n, n):
        raise ConfigError(key, f"must be {n}x{n} for {n} states, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ConfigError(key, "must be finite")
    if not np.array_equal(matrix, matrix.T):
        raise ConfigError(key, "must be symmetric")
    if np.linalg.eigvalsh(matrix).min() < -1e-12 * max(1.0, float(np.abs(matrix).max())):
        raise ConfigError(key, "must be positive semi-definite")
    return matrix


@dataclass(frozen=True, slots=True)
class FilterParams:
    """Everything that defines one hedge filter.

    Args:
        n_legs: k, the number of hedge instruments X (1 for a pair, more for a basket).
        mode: the input transform (see :class:`InputMode`).
        intercept: whether the state carries alpha; ``None`` takes the mode's default.
        delta: state noise in Chan's parametrisation, ``Q = delta / (1 - delta) * I``;
            0 <= delta < 1. Ignored when ``trans_cov`` is given.
        trans_cov: a full (n, n) state-noise matrix Q, symmetric positive semi-definite.
        obs_cov: the observation noise R (fixed), or the starting value of an adaptive R.
        adaptive_r: ``None`` for a fixed R; else the forgetting factor ``lam`` in (0, 1) of the
            residual-based estimate ``R_t = lam R_{t-1} + (1 - lam) (r_t^2 + H P_t H')``,
            where ``r_t = y_t - H_t theta_t`` is the post-update residual (covariance matching;
            always positive, it tracks the variance the model leaves unexplained).
        init: the initialisation (:class:`GivenInit`, :class:`DiffuseInit`,
            :class:`OlsWarmupInit`).
        outlier_z: the innovation gate: once warm, an observation whose standardised
            innovation ``|z| = |e| / sqrt(S)`` exceeds this is refused as an outlier (the step
            is predict-only, the adaptive R does not absorb it); ``None`` (the engine's
            default) gates nothing. The replay and the daemon gate at 6 unless told otherwise
            (``docs/reliability.md`` has the false-rejection rates behind that default).
        outlier_run: this many outliers in a row are not a bad print but a new level (a
            split, a re-listing): the filter starts again from its initialisation with those
            observations, and warms up anew.

    The defaults are hedger's recommendation for price levels: delta = 1e-4 (Chan's choice for
    ETF pairs: beta drifts slowly), R learnt from the data (a fixed R must be in the squared
    units of Y's price, which no default can know), and an OLS warm-up of 20 observations (no
    arbitrary prior). The seed-compatible :class:`hedger.KalmanOLS` keeps the seed's own
    defaults instead.
    """

    n_legs: int = 1
    mode: InputMode = InputMode.LEVELS
    intercept: bool | None = None
    delta: float = 1e-4
    trans_cov: tuple[tuple[float, ...], ...] | None = None
    obs_cov: float = 1e-3
    adaptive_r: float | None = 0.99
    init: Init = field(default_factory=OlsWarmupInit)
    outlier_z: float | None = None
    outlier_run: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.n_legs, int) or isinstance(self.n_legs, bool) or self.n_legs < 1:
            raise ConfigError("n_legs", f"must be an integer >= 1, got {self.n_legs!r}")
        try:
            object.__setattr__(self, "mode", InputMode(self.mode))
        except ValueError:
            choices = ", ".join(m.value for m in InputMode)
            raise ConfigError("mode", f"must be one of {choices}, got {self.mode!r}") from None
        if self.intercept is None:
            object.__setattr__(self, "intercept", self.mode.default_intercept)
        if self.trans_cov is None:
            if not (math.isfinite(self.delta) and 0.0 <= self.delta < 1.0):
                raise ConfigError("delta", f"must be in [0, 1), got {self.delta!r}")
        else:
            _as_psd_matrix("trans_cov", self.trans_cov, self.n_states)
        _check_positive("obs_cov", self.obs_cov)
        if self.adaptive_r is not None and not (0.0 < self.adaptive_r < 1.0):
            raise ConfigError("adaptive_r", f"must be in (0, 1) or None, got {self.adaptive_r!r}")
        if self.outlier_z is not None and not (
            isinstance(self.outlier_z, int | float) and 1.0 <= self.outlier_z < math.inf
        ):
            raise ConfigError("outlier_z", f"must be a number >= 1 or None, got {self.outlier_z!r}")
        run = self.outlier_run
        if isinstance(run, bool) or not isinstance(run, int) or run < 1:
            raise ConfigError("outlier_run", f"must be an integer >= 1, got {run!r}")
        self._check_init()

    def _check_init(self) -> None:
        init, n = self.init, self.n_states
        if isinstance(init, GivenInit):
            mean = np.asarray(init.mean, dtype=np.float64)
            if mean.shape != (n,) or not np.all(np.isfinite(mean)):
                raise ConfigError("init.mean", f"must be {n} finite numbers, got {init.mean!r}")
            _as_psd_matrix("init.cov", init.cov, n)
            if init.warmup_steps < 0:
                raise ConfigError("init.warmup_steps", "must be >= 0")
        elif isinstance(init, DiffuseInit):
            _check_positive("init.variance", init.variance)
            if init.warmup_steps is not None and init.warmup_steps < 0:
                raise ConfigError("init.warmup_steps", "must be >= 0")
        elif isinstance(init, OlsWarmupInit):
            _check_positive("init.diffuse_variance", init.diffuse_variance)
            if init.n_obs < n + 2:
                raise ConfigError(
                    "init.n_obs",
                    f"must be >= {n + 2} (states + 2) for {n} states, got {init.n_obs}",
                )
        else:
            raise ConfigError("init", f"unknown initialisation {init!r}")

    @property
    def has_intercept(self) -> bool:
        """Whether the state carries alpha (the resolved ``intercept``)."""
        return bool(self.intercept)

    @property
    def n_states(self) -> int:
        """n, the state dimension: k betas plus alpha when there is an intercept."""
        return self.n_legs + (1 if self.intercept is None or self.intercept else 0)

    def state_noise(self) -> FloatArray:
        """Q as an (n, n) array."""
        n = self.n_states
        if self.trans_cov is not None:
            return np.array(self.trans_cov, dtype=np.float64)
        return np.eye(n) * (self.delta / (1.0 - self.delta))
