"""The seed article's published example, reproduced by the KalmanOLS facade."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hedger import KalmanOLS
from hedger.errors import BadInputError, ConfigError
from tests.reference import assert_close, pykalman_filter

# Published in the seed article (SliceMatrix KalmanOLS on AAPL/SPY, 2016-01-01..2017-03-27).
SEED_BEFORE: dict[str, Any] = {
    "mean": [0.5861620741470888, 0.003405671636829966],
    "cov": [[0.005238177410697875, -1.2409605965399522], [-1.240960596539952, 294.9887852793271]],
}
SEED_AFTER: dict[str, Any] = {
    "mean": [0.5855216995507875, 0.0034038488248975996],
    "cov": [[0.005244396950524588, -1.243807056418034], [-1.243807056418034, 295.98877717694285]],
}


def test_seed_update_reproduced_to_1e9_relative() -> None:
    model = KalmanOLS.from_state(SEED_BEFORE)
    state = model.update(X=237.97, Y=139.34)
    np.testing.assert_allclose(state["mean"], SEED_AFTER["mean"], rtol=1e-9, atol=0)
    np.testing.assert_allclose(state["cov"], SEED_AFTER["cov"], rtol=1e-9, atol=0)
    assert model.getState() == model.get_state() == state


def test_seed_defaults_are_pykalman_defaults() -> None:
    """Q = I and R = 1 (the values the seed's numbers imply) are the facade's defaults: the
    same update with them spelled out gives the same state."""
    explicit = KalmanOLS.from_state(SEED_BEFORE, trans_cov=[[1, 0], [0, 1]], obs_cov=1.0)
    default = KalmanOLS.from_state(SEED_BEFORE)
    assert explicit.update(X=237.97, Y=139.34) == default.update(X=237.97, Y=139.34)
    other = KalmanOLS.from_state(SEED_BEFORE, trans_cov=1e-4)
    assert other.update(X=237.97, Y=139.34)["mean"] != SEED_AFTER["mean"]


def test_dataset_fit_matches_pykalman_filter(
    synthetic_prices: tuple[np.ndarray, np.ndarray],
) -> None:
    y, x = synthetic_prices
    model = KalmanOLS(dataset=np.column_stack([y, x]))
    means, covs = pykalman_filter(
        y,
        np.column_stack([x, np.ones_like(x)]),
        mean=np.zeros(2),
        cov=np.eye(2),
        trans_cov=np.eye(2),
        obs_cov=1.0,
    )
    assert_close(np.array(model.getTrainingData()["means"]), means)
    state = model.getState()
    assert_close(np.array(state["mean"])[None, :], means[-1:])
    assert_close(np.array(state["cov"]), covs[-1])


def test_update_after_fit_is_pykalman_filter_update(
    real_prices: tuple[np.ndarray, np.ndarray],
) -> None:
    y, x = real_prices
    model = KalmanOLS(dataset=[[a, b] for a, b in zip(y[:500], x[:500], strict=True)])
    model.update(X=x[500], Y=y[500])
    means, covs = pykalman_filter(
        y[:501],
        np.column_stack([x[:501], np.ones(501)]),
        mean=np.zeros(2),
        cov=np.eye(2),
        trans_cov=np.eye(2),
        obs_cov=1.0,
    )
    assert_close(np.array(model.getState()["mean"])[None, :], means[-1:])
    assert_close(np.array(model.getState()["cov"]), covs[-1])
    assert len(model.getTrainingData()["means"]) == 501


def test_dataframe_like_inputs_are_accepted() -> None:
    class FrameLike:
        """Anything with ``__array__`` (a pandas DataFrame has it)."""

        def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
            return np.array([[10.0, 20.0], [11.0, 21.0], [12.0, 23.0]])

    a = KalmanOLS(dataset=FrameLike()).getState()
    b = KalmanOLS(dataset=[[10.0, 20.0], [11.0, 21.0], [12.0, 23.0]]).getState()
    assert a == b


def test_from_state_round_trip_continues_identically() -> None:
    data = np.column_stack([np.linspace(10, 20, 50) + np.sin(np.arange(50)), np.linspace(5, 9, 50)])
    whole = KalmanOLS(dataset=data, trans_cov=1e-3, obs_cov=0.5)
    half = KalmanOLS(dataset=data[:30], trans_cov=1e-3, obs_cov=0.5)
    resumed = KalmanOLS.from_state(half.getState(), trans_cov=1e-3, obs_cov=0.5)
    for y, x in data[30:]:
        resumed.update(X=x, Y=y)
    np.testing.assert_allclose(resumed.getState()["mean"], whole.getState()["mean"], rtol=1e-12)
    np.testing.assert_allclose(resumed.getState()["cov"], whole.getState()["cov"], rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"obs_cov": 0.0}, "obs_cov"),
        ({"trans_cov": [[1, 2], [3, 4]]}, "trans_cov"),
        ({"init_cov": [[1, 0, 0]]}, "init_cov"),
        ({"trans_cov": [[1, 0], [0, -1]]}, "trans_cov"),
    ],
)
def test_bad_parameters_name_the_key(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        KalmanOLS(**kwargs)  # type: ignore[arg-type]
    assert err.value.key == key


@pytest.mark.parametrize(
    "dataset", [[[1.0, 2.0, 3.0]], [[1.0, float("nan")]], [["a", "b"]], [1.0, 2.0]]
)
def test_bad_datasets_are_clear_errors(dataset: object) -> None:
    with pytest.raises(BadInputError):
        KalmanOLS(dataset=dataset)


def test_bad_update_leaves_state_untouched() -> None:
    model = KalmanOLS.from_state(SEED_BEFORE)
    for x, y in [(float("nan"), 1.0), (1.0, float("inf")), ("x", 1.0)]:
        with pytest.raises(BadInputError):
            model.update(X=x, Y=y)  # type: ignore[arg-type]
    assert model.getState() == KalmanOLS.from_state(SEED_BEFORE).getState()
