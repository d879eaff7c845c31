"""The bank's vectorised path (blocks of primed filters with finite inputs) against its
general path and against single pair filters."""

from __future__ import annotations

import numpy as np
import pytest

from hedger.engine import PairBank, PairFilter, kernels
from hedger.engine.kernels import bank as bank_kernel

P = kernels.BANK_BLOCK + 37  # two blocks: one can be vectorised while the other is not


def make_bank(shared: bool, adaptive: bool, singular: bool, seed: int) -> PairBank:
    rng = np.random.default_rng(seed)
    # singular prior whose off-diagonal rounds up (sqrt(10)^2 > 10): the p01 clamp fires
    root = float(np.sqrt(10.0))
    cov = ((2.0, root), (root, 5.0)) if singular else np.eye(2) * 100.0
    if shared:
        return PairBank(
            P,
            cov=cov,
            trans_cov=np.zeros((2, 2)) if singular else ((1e-4, 3e-6), (3e-6, 1e-5)),
            obs_cov=0.5,
            adaptive_r=0.98 if adaptive else None,
        )
    q = rng.choice([0.0, 1e-6, 1e-3], size=(P, 3))
    if singular:
        q[:] = 0.0
    q[:, 1] = rng.uniform(-0.5, 0.5, P) * np.sqrt(q[:, 0] * q[:, 2])
    trans = np.stack([q[:, 0], q[:, 1], q[:, 1], q[:, 2]], axis=1).reshape(P, 2, 2)
    return PairBank(
        P,
        cov=cov,
        trans_cov=trans,
        obs_cov=rng.uniform(0.01, 10.0, P),
        intercept=rng.random(P) < 0.7,
        adaptive_r=np.where(rng.random(P) < 0.5, 0.0, 0.98) if adaptive else None,
    )


def inputs(t: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = 100.0 + rng.normal(0.0, 1.0 + t % 5, P)
    y = 1.5 * x + 5.0 + rng.normal(0.0, 1.0, P)
    if t % 5 == 2:  # a stale leg in the second block only: the first stays vectorised
        x[kernels.BANK_BLOCK + 3] = np.nan
    if t % 9 == 4:
        y[11] = np.nan
    if t == 6:
        x[:] = 0.0
    return y, x


@pytest.mark.parametrize("singular", [False, True])
@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("shared", [False, True])
def test_vectorised_blocks_equal_the_general_loop_bit_for_bit(
    shared: bool, adaptive: bool, singular: bool
) -> None:
    bank = make_bank(shared, adaptive, singular, seed=1)
    assert bank._shared_params == shared
    state, params, primed = bank._state.copy(), bank._params.copy(), bank._primed.copy()
    e, s, z = np.empty(P), np.empty(P), np.empty(P)
    rng = np.random.default_rng(2)
    for t in range(120):
        y, x = inputs(t, rng)
        bank.step(y, x)
        bank_kernel._bank_rows_general(state, params, primed, y, x, e, s, z, 0, P)
        np.testing.assert_array_equal(bank._state, state, strict=True)
        np.testing.assert_array_equal(bank._primed, primed, strict=True)
        np.testing.assert_array_equal(bank.innovation, e, strict=True)
        np.testing.assert_array_equal(bank.innovation_var, s, strict=True)
        np.testing.assert_array_equal(bank.zscore, z, strict=True)


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("shared", [False, True])
def test_vectorised_bank_equals_single_filters(shared: bool, adaptive: bool) -> None:
    bank = make_bank(shared, adaptive, singular=False, seed=3)
    params = bank._params
    picks = [0, 1, 11, kernels.BANK_BLOCK - 1, kernels.BANK_BLOCK + 3, P - 1]
    singles = {
        i: PairFilter(
            (0.0, 0.0),
            ((100.0, 0.0), (0.0, 100.0)),
            ((params[0, i], params[1, i]), (params[1, i], params[2, i])),
            float(bank.obs_cov[i]),
            intercept=bool(params[4, i]),
            adaptive_r=float(params[5, i]) or None,
        )
        for i in picks
    }
    rng = np.random.default_rng(4)
    for t in range(60):
        y, x = inputs(t, rng)
        bank.step(y, x)
        for i, single in singles.items():
            if np.isnan(y[i]) or np.isnan(x[i]):
                single.predict()
                assert np.isnan(bank.zscore[i])
            else:
                zs = single.update(float(y[i]), float(x[i]))
                assert abs(bank.zscore[i] - zs) <= 1e-12 * max(1.0, abs(zs))
    for i, single in singles.items():
        np.testing.assert_allclose(bank.beta[i], single.beta, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(bank.alpha[i], single.alpha, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(bank.cov[i], single.cov, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(bank.obs_cov[i], single.obs_cov, rtol=1e-12)
