"""Parity of every engine path with pykalman's filter() (the reference oracle) to 1e-9."""

from __future__ import annotations

import numpy as np
import pytest
from pykalman import KalmanFilter

from hedger.engine import (
    BasketFilter,
    FilterParams,
    GivenInit,
    HedgeFilter,
    InputMode,
    PairFilter,
    filter_pair,
)
from tests.reference import assert_close, pykalman_filter

Q2 = np.eye(2) * 1e-4 / (1 - 1e-4)


def transformed(y: np.ndarray, x: np.ndarray, mode: InputMode) -> tuple[np.ndarray, np.ndarray]:
    """The observations each mode feeds the filter, computed independently with numpy."""
    if mode is InputMode.LEVELS:
        return y, x
    if mode is InputMode.LOG:
        return np.log(y), np.log(x)
    if mode is InputMode.CHANGES:
        return np.diff(y), np.diff(x)
    return np.diff(np.log(y)), np.diff(np.log(x))


@pytest.mark.parametrize("data", ["real_prices", "synthetic_prices"])
@pytest.mark.parametrize("mode", list(InputMode))
def test_hedge_filter_matches_pykalman_in_every_mode(
    data: str, mode: InputMode, request: pytest.FixtureRequest
) -> None:
    y, x = request.getfixturevalue(data)
    y, x = y[:1500], x[:1500]
    ty, tx = transformed(y, x, mode)
    intercept = mode.default_intercept
    n = 2 if intercept else 1
    r = float(np.var(ty - np.polyfit(tx, ty, 1)[0] * tx))
    mean = tuple([0.5] + [0.0] * (n - 1))
    cov = tuple(tuple(float(v) for v in row) for row in np.eye(n) * 10.0)
    params = FilterParams(
        mode=mode,
        delta=1e-4,
        obs_cov=r,
        adaptive_r=None,
        init=GivenInit(mean=mean, cov=cov),
    )
    hf = HedgeFilter(params)
    steps = [hf.step(a, b) for a, b in zip(y, x, strict=True)]
    if mode.differenced:
        assert steps[0].predicted_only
        steps = steps[1:]
    design = np.column_stack([tx, np.ones_like(tx)]) if intercept else tx[:, None]
    q = np.eye(n) * 1e-4 / (1 - 1e-4)
    means, covs = pykalman_filter(
        ty, design, mean=np.array(mean), cov=np.array(cov), trans_cov=q, obs_cov=r
    )
    ours = np.array([[*s.betas, s.alpha][:n] for s in steps])
    assert_close(ours, means)
    assert_close(
        np.array([s.cov for s in steps]).reshape(len(steps), -1), covs.reshape(len(covs), -1)
    )
    # The step's innovation and its variance are pykalman's one-step forecast error and S.
    predicted_cov = np.concatenate([[np.array(cov)], covs[:-1] + q])
    predicted_mean = np.concatenate([[np.array(mean)], means[:-1]])
    e = ty - np.einsum("ti,ti->t", design, predicted_mean)
    s = np.einsum("ti,tij,tj->t", design, predicted_cov, design) + r
    assert_close(np.array([st.innovation for st in steps])[:, None], e[:, None])
    assert_close(np.array([st.innovation_var for st in steps])[:, None], s[:, None])
    np.testing.assert_allclose([st.zscore for st in steps], e / np.sqrt(s), rtol=1e-9, atol=1e-12)
    loglik = -0.5 * (np.log(2 * np.pi * s) + e * e / s)
    np.testing.assert_allclose([st.loglik for st in steps], loglik, rtol=1e-9)
    spread = ty - np.einsum("ti,ti->t", design, means)
    np.testing.assert_allclose(
        [st.spread for st in steps], spread, rtol=1e-7, atol=1e-9 * np.abs(ty).max()
    )


def test_batch_and_online_paths_agree_to_the_bit(
    real_prices: tuple[np.ndarray, np.ndarray],
) -> None:
    y, x = real_prices
    series = filter_pair(y, x, trans_cov=Q2, obs_cov=50.0, adaptive_r=0.995)
    online = PairFilter((0, 0), np.eye(2).tolist(), Q2.tolist(), 50.0, adaptive_r=0.995)
    zs = [online.update(a, b) for a, b in zip(y, x, strict=True)]
    assert online.beta == series.beta[-1]
    assert online.cov == tuple(map(tuple, series.cov[-1]))
    np.testing.assert_allclose(zs, series.zscore, rtol=1e-12)


def test_missing_observations_match_pykalman_masked(
    synthetic_prices: tuple[np.ndarray, np.ndarray],
) -> None:
    y, x = synthetic_prices
    y = y.copy()
    y[[3, 10, 11, 12, 500]] = np.nan
    series = filter_pair(y, x, trans_cov=Q2, obs_cov=0.1)
    kf = KalmanFilter(
        transition_matrices=np.eye(2),
        observation_matrices=np.column_stack([x, np.ones_like(x)])[:, None, :],
        transition_covariance=Q2,
        observation_covariance=[[0.1]],
        initial_state_mean=np.zeros(2),
        initial_state_covariance=np.eye(2),
    )
    means, covs = kf.filter(np.ma.masked_invalid(y)[:, None])
    assert_close(np.column_stack([series.beta, series.alpha]), means)
    assert_close(series.cov.reshape(-1, 4), covs.reshape(-1, 4))
    assert series.predicted_only.sum() == 5
    assert np.isnan(series.innovation[series.predicted_only]).all()


def test_basket_matches_pykalman(synthetic_prices: tuple[np.ndarray, np.ndarray]) -> None:
    y, x1 = synthetic_prices
    rng = np.random.default_rng(3)
    x2 = 30.0 + np.cumsum(rng.normal(0, 0.3, len(y)))
    y = y + 0.4 * x2
    q = np.diag([1e-5, 2e-5, 1e-3])
    q[0, 1] = q[1, 0] = 5e-6
    mean, cov = np.array([0.5, 0.1, 0.0]), np.eye(3) * 5.0
    basket = BasketFilter(mean, cov, q, 0.2)
    ours = []
    for a, b, c in zip(y, x1, x2, strict=True):
        basket.update(a, (b, c))
        ours.append((basket.mean, basket.cov))
    design = np.column_stack([x1, x2, np.ones_like(x1)])
    means, covs = pykalman_filter(y, design, mean=mean, cov=cov, trans_cov=q, obs_cov=0.2)
    assert_close(np.array([m for m, _ in ours]), means)
    assert_close(np.array([c for _, c in ours]).reshape(-1, 9), covs.reshape(-1, 9))


def test_basket_of_one_equals_pair_filter(real_prices: tuple[np.ndarray, np.ndarray]) -> None:
    y, x = real_prices
    basket = BasketFilter((0.0, 0.0), np.eye(2) * 100.0, Q2, 30.0, adaptive_r=0.99)
    pair = PairFilter((0.0, 0.0), (np.eye(2) * 100.0).tolist(), Q2.tolist(), 30.0, adaptive_r=0.99)
    for a, b in zip(y, x, strict=True):
        zb = basket.update(a, (b,))
        zp = pair.update(a, b)
        assert zb == pytest.approx(zp, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(basket.mean, [pair.beta, pair.alpha], rtol=1e-9)
    np.testing.assert_allclose(basket.cov, pair.cov, rtol=1e-9)
    assert basket.obs_cov == pytest.approx(pair.obs_cov, rel=1e-9)


def test_full_state_noise_matrix_matches_pykalman(
    synthetic_prices: tuple[np.ndarray, np.ndarray],
) -> None:
    y, x = synthetic_prices
    q = np.array([[2e-5, -1e-5], [-1e-5, 1e-3]])
    series = filter_pair(
        y, x, trans_cov=q, obs_cov=0.09, mean=(1.0, 0.0), cov=((4.0, 0.0), (0.0, 100.0))
    )
    means, covs = pykalman_filter(
        y,
        np.column_stack([x, np.ones_like(x)]),
        mean=np.array([1.0, 0.0]),
        cov=np.diag([4.0, 100.0]),
        trans_cov=q,
        obs_cov=0.09,
    )
    assert_close(np.column_stack([series.beta, series.alpha]), means)
    assert_close(series.cov.reshape(-1, 4), covs.reshape(-1, 4))
