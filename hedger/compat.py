"""``KalmanOLS``: the seed article's SliceMatrix API, reproduced on hedger's engine.

The seed's published numbers pin its parameters down: solving its example step for Q and R
(four unknowns, five independent equations) gives ``Q = I`` and ``R = 1`` exactly, which are
pykalman's defaults, and pykalman's defaults also give the prior ``mean = 0``, ``cov = I``.
Those are this facade's defaults, so ``KalmanOLS().update(...)`` behaves like the seed's client.

The engine's own recommended defaults (:class:`hedger.engine.FilterParams`) differ on purpose:
Q = I lets beta take a random step of standard deviation 1 per bar, which on prices of hundreds
of dollars makes the hedge ratio chase noise, and R = 1 assumes a residual of one price unit
whatever the instruments; hedger prefers a small delta, an R learnt from the data and an OLS
warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import numpy as np

from hedger.engine.batch import filter_pair
from hedger.engine.pair import PairFilter, PairState
from hedger.errors import BadInputError, ConfigError


class KalmanState(TypedDict):
    """``{"mean": [beta, alpha], "cov": [[..], [..]]}``, as the seed prints it."""

    mean: list[float]
    cov: list[list[float]]


class TrainingData(TypedDict):
    """``{"means": [[beta, alpha], ...]}``, one row per dataset row."""

    means: list[list[float]]


def _matrix_param(name: str, value: Any, default: float) -> list[list[float]]:
    if value is None:
        value = default
    if np.ndim(value) == 0:
        scalar = float(value)
        return [[scalar, 0.0], [0.0, scalar]]
    matrix = np.asarray(value, dtype=np.float64)
    if matrix.shape != (2, 2) or not np.all(np.isfinite(matrix)):
        raise ConfigError(name, f"must be a number or a finite 2x2 matrix, got {value!r}")
    if not np.allclose(matrix, matrix.T, rtol=1e-12, atol=0.0):
        raise ConfigError(name, "must be symmetric")
    if np.linalg.eigvalsh(matrix).min() < -1e-12 * float(np.abs(matrix).max()):
        raise ConfigError(name, "must be positive semi-definite")
    return [[float(v) for v in row] for row in matrix]


def _dataset_columns(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        table = np.asarray(dataset, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BadInputError("not_a_number", "dataset", str(exc)) from None
    if table.ndim != 2 or table.shape[1] != 2:
        raise BadInputError(
            "shape", table.shape, "dataset must have 2 columns: Y (hedged), then X (hedge)"
        )
    if not np.all(np.isfinite(table)):
        bad = int(np.argwhere(~np.isfinite(table))[0][0])
        raise BadInputError("nan", f"row {bad}", "dataset values must be finite numbers")
    return table[:, 0].copy(), table[:, 1].copy()


class KalmanOLS:
    """Online OLS of Y on X with a Kalman filter: ``Y = beta X + alpha``, ``[beta, alpha]`` a
    random walk. The seed's API and numbers (see the module docstring).

    Args:
        dataset: optional history, 2 columns: Y (the hedged instrument), then X (the hedge), as
            the seed's ``combo = [AAPL, SPY]``; a numpy array, a list of rows or a pandas
            DataFrame. It is filtered like pykalman's ``filter()``: the first row updates the
            initial state without a predict step, every later row predicts then updates.
        init_alpha, init_beta: initial state mean (default 0, 0).
        trans_cov: Q, a number (times I) or a 2x2 matrix (default I).
        obs_cov: R (default 1).
        init_cov: initial state covariance, a number (times I) or 2x2 (default I).

    Without a dataset, the initial state is the prior of the first ``update``, which absorbs
    it without a predict step (the same convention).
    """

    def __init__(
        self,
        dataset: Any = None,
        init_alpha: float | None = None,
        init_beta: float | None = None,
        trans_cov: Any = None,
        obs_cov: float | None = None,
        init_cov: Any = None,
    ) -> None:
        self._trans_cov = _matrix_param("trans_cov", trans_cov, 1.0)
        r = 1.0 if obs_cov is None else float(obs_cov)
        if not (math.isfinite(r) and r > 0):
            raise ConfigError("obs_cov", f"must be a finite number > 0, got {obs_cov!r}")
        self._obs_cov = r
        mean = [
            0.0 if init_beta is None else float(init_beta),
            0.0 if init_alpha is None else float(init_alpha),
        ]
        cov = _matrix_param("init_cov", init_cov, 1.0)
        self._filter = PairFilter(mean, cov, self._trans_cov, r)
        self._training: list[list[float]] = []
        if dataset is not None:
            self._fit(dataset, mean, cov)

    def _fit(self, dataset: Any, mean: list[float], cov: list[list[float]]) -> None:
        y, x = _dataset_columns(dataset)
        if y.size == 0:
            return
        series = filter_pair(
            y, x, mean=mean, cov=cov, trans_cov=self._trans_cov, obs_cov=self._obs_cov
        )
        self._training = np.column_stack([series.beta, series.alpha]).tolist()
        last = series.cov[-1]
        self._filter.reset(
            [series.beta[-1], series.alpha[-1]], last.tolist(), self._obs_cov, primed=True
        )

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **params: Any) -> KalmanOLS:
        """Resume from a state returned by :meth:`getState`; the next ``update`` predicts
        first. ``params`` are the constructor's (``trans_cov``, ``obs_cov``)."""
        if "dataset" in params:
            raise ConfigError("dataset", "from_state resumes a fitted model; give no dataset")
        try:
            mean = [float(v) for v in state["mean"]]
            cov = [[float(v) for v in row] for row in state["cov"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                "state", f"needs 'mean' [beta, alpha] and 'cov' 2x2 ({exc})"
            ) from None
        if len(mean) != 2:
            raise ConfigError("state.mean", f"must be [beta, alpha], got {state['mean']!r}")
        model = cls(init_beta=mean[0], init_alpha=mean[1], init_cov=cov, **params)
        model._filter.reset(mean, model._filter.cov, model._obs_cov, primed=True)
        return model

    def getState(self) -> KalmanState:
        """The current state: ``{"mean": [beta, alpha], "cov": [[..], [..]]}``."""
        st: PairState = self._filter.state
        return {
            "mean": [float(st.beta), float(st.alpha)],
            "cov": [[float(st.p00), float(st.p01)], [float(st.p01), float(st.p11)]],
        }

    get_state = getState

    def update(self, X: float, Y: float) -> KalmanState:
        """Absorb a new pair of prices (X: the hedge, Y: the hedged) and return the state."""
        x = _finite("X", X)
        y = _finite("Y", Y)
        self._filter.update(y, x)
        self._training.append([self._filter.beta, self._filter.alpha])
        return self.getState()

    def getTrainingData(self) -> TrainingData:
        """The filtered ``[beta, alpha]`` after each dataset row (and each later update)."""
        return {"means": [list(row) for row in self._training]}

    get_training_data = getTrainingData


def _finite(name: str, value: float | Sequence[float]) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadInputError("not_a_number", value, f"{name} must be a number") from None
    if not math.isfinite(number):
        raise BadInputError("nan" if math.isnan(number) else "inf", value, f"{name} must be finite")
    return number
