"""The combined hedge (:mod:`hedger.engine.combine`): weights against hand-derived values, the
convexity that makes a combination worth having, no look-ahead, the live rolling member
against the offline fit, and checkpoints that resume exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedger.engine.combine import (
    CombineParams,
    HedgeCombiner,
    RollingHedge,
    combine_path,
    min_variance_weights,
    reweigh_many,
)
from hedger.engine.units import hedged_pnl
from hedger.errors import ConfigError
from hedger.research.baselines import forward_fill, observations, rolling_fits


def _market(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prices y, x (n,) and three member hedge paths (n, 3) around the true ratio 1.3."""
    rng = np.random.default_rng(seed)
    x = 100.0 + np.cumsum(rng.normal(0.0, 1.0, n))
    y = 1.3 * x + np.cumsum(rng.normal(0.0, 0.5, n))
    hedges = np.column_stack(
        [1.3 + np.cumsum(rng.normal(0.0, 0.01, n)) + bias for bias in (0.0, 0.1, -0.2)]
    )
    return y, x, hedges


def test_two_member_weights_by_hand() -> None:
    s11, s22, s12 = 4.0, 1.0, 0.5
    moment = np.array([[s11, s12], [s12, s22]])
    w = min_variance_weights(moment, shrink=0.0, long_only=False)
    assert w is not None
    w1 = (s22 - s12) / (s11 + s22 - 2.0 * s12)  # d/dw of w'Sw with w2 = 1 - w1
    np.testing.assert_allclose(w, [w1, 1.0 - w1], rtol=0, atol=1e-15)
    # shrinkage adds shrink * c to the diagonal, c = (trace - sum / 2) / 1 = 2
    c = (s11 + s22 - (s11 + s22 + 2 * s12) / 2.0) / 1.0
    ws = min_variance_weights(moment, shrink=0.5, long_only=False)
    assert ws is not None
    w1s = (s22 + 0.5 * c - s12) / (s11 + s22 + 2 * 0.5 * c - 2.0 * s12)
    np.testing.assert_allclose(ws, [w1s, 1.0 - w1s], rtol=0, atol=1e-15)
    far = min_variance_weights(moment, shrink=1e9, long_only=False)
    assert far is not None
    np.testing.assert_allclose(far, [0.5, 0.5], atol=1e-8)


def test_long_only_clips_a_short_weight_and_renormalises() -> None:
    # member 2 moves with member 1 but more: unconstrained weights short member 2
    moment = np.array([[1.0, 1.2, 0.2], [1.2, 1.5, 0.2], [0.2, 0.2, 1.0]])
    raw = min_variance_weights(moment, shrink=0.0, long_only=False)
    clipped = min_variance_weights(moment, shrink=0.0, long_only=True)
    assert raw is not None and clipped is not None
    assert raw[1] < 0.0
    expected = np.maximum(raw, 0.0) / np.maximum(raw, 0.0).sum()
    np.testing.assert_allclose(clipped, expected, rtol=0, atol=1e-15)
    assert min_variance_weights(np.ones((3, 3)), 1.0, True) is None  # members identical
    assert min_variance_weights(np.ones((1, 1)), 1.0, True) is None  # one member


def test_equal_weighting_never_moves() -> None:
    y, x, hedges = _market(300)
    path = combine_path(hedges, y, x, CombineParams(weighting="equal"))
    np.testing.assert_array_equal(path.weights, np.full((300, 3), 1.0 / 3.0))
    np.testing.assert_allclose(path.hedge, hedges.mean(axis=1), rtol=0, atol=1e-15)


def test_the_online_weights_are_the_minimum_variance_of_the_forgotten_moment() -> None:
    y, x, hedges = _market(200, seed=3)
    params = CombineParams(half_life=50.0, shrink=0.3, long_only=False, min_obs=10)
    path = combine_path(hedges, y, x, params)
    pnl = np.column_stack([hedged_pnl(y, x, hedges[:, i]) for i in range(3)])
    lam = 0.5 ** (1.0 / 50.0)
    for t in (9, 10, 57, 199):  # P&L starts at bar 1: bar 10 is the 10th observation
        rows = pnl[1 : t + 1]
        ages = lam ** np.arange(len(rows))[::-1]
        moment = (rows * ages[:, None]).T @ rows / ages.sum()
        expected = min_variance_weights(moment, 0.3, False) if len(rows) >= 10 else None
        want = np.full(3, 1.0 / 3.0) if expected is None else expected
        np.testing.assert_allclose(path.weights[t], want, rtol=1e-10, atol=1e-12)
        assert math.isclose(path.hedge[t], float(want @ hedges[t]), rel_tol=1e-12)


def test_the_combined_pnl_is_the_weighted_pnl_of_the_members() -> None:
    y, x, hedges = _market(400, seed=5)
    path = combine_path(hedges, y, x)
    pnl = np.column_stack([hedged_pnl(y, x, hedges[:, i]) for i in range(3)])
    combined = hedged_pnl(y, x, path.hedge)
    expected = np.einsum("ti,ti->t", path.weights[:-1], pnl[1:])
    np.testing.assert_allclose(combined[1:], expected, rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_members=st.integers(2, 6),
    spread=st.floats(0.001, 0.5),
)
def test_a_combination_is_never_worse_than_the_average_of_its_members(
    seed: int, n_members: int, spread: float
) -> None:
    rng = np.random.default_rng(seed)
    n = 250
    x = 50.0 + np.cumsum(rng.normal(0.0, 1.0, n))
    y = 0.8 * x + np.cumsum(rng.normal(0.0, 0.3, n))
    hedges = 0.8 + rng.normal(0.0, spread, (n, n_members)).cumsum(axis=0) / np.sqrt(n)
    path = combine_path(hedges, y, x, CombineParams(weighting="equal"))
    variances = [np.var(hedged_pnl(y, x, hedges[:, i])[1:], ddof=1) for i in range(n_members)]
    combined = np.var(hedged_pnl(y, x, path.hedge)[1:], ddof=1)
    assert combined <= np.mean(variances) * (1.0 + 1e-12)


def test_weights_and_hedge_at_a_close_do_not_depend_on_later_prices() -> None:
    y, x, hedges = _market(500, seed=7)
    t = 320
    before = combine_path(hedges, y, x)
    y2, x2 = y.copy(), x.copy()
    y2[t + 1 :] += np.random.default_rng(1).normal(0.0, 5.0, len(y) - t - 1)
    x2[t + 1 :] *= 1.2
    after = combine_path(hedges, y2, x2)
    np.testing.assert_array_equal(before.weights[: t + 1], after.weights[: t + 1])
    np.testing.assert_array_equal(before.hedge[: t + 1], after.hedge[: t + 1])
    assert not np.array_equal(before.weights[t + 1 :], after.weights[t + 1 :])


def test_a_member_without_a_hedge_is_left_out_and_the_weights_renormalised() -> None:
    combiner = HedgeCombiner(3)
    combiner.weights = np.array([0.5, 0.3, 0.2])
    assert math.isclose(combiner.combine([1.0, math.nan, 2.0]), (0.5 + 0.4) / 0.7)
    assert math.isnan(combiner.combine([math.nan] * 3))
    assert not combiner.observe([1.0, math.nan, 0.0])  # a bar without every P&L: skipped
    assert combiner.observations == 0


def test_a_combiner_resumes_from_its_snapshot_exactly() -> None:
    y, x, hedges = _market(300, seed=9)
    pnl = np.column_stack([hedged_pnl(y, x, hedges[:, i]) for i in range(3)])
    whole = HedgeCombiner(3)
    first, second = HedgeCombiner(3), HedgeCombiner(3)
    for t in range(300):
        whole.observe(pnl[t])
        if t < 150:
            first.observe(pnl[t])
        else:
            if t == 150:
                second.restore(first.snapshot())
            second.observe(pnl[t])
    np.testing.assert_array_equal(whole.weights, second.weights)
    assert whole.snapshot() == second.snapshot()
    with pytest.raises(ValueError, match="2 members"):
        HedgeCombiner(2).restore(whole.snapshot())


def test_the_live_rolling_member_is_the_offline_rolling_fit() -> None:
    """Bar by bar, the hedge evaluate's rolling OLS on changes holds (the fit carried over
    bars without one), with missing prices and a stretch where X does not move at all."""
    rng = np.random.default_rng(11)
    n = 900
    x = 100.0 + np.cumsum(rng.normal(size=n))
    y = 1.3 * x + np.cumsum(rng.normal(size=n))
    y[[50, 51, 300]] = np.nan  # missing prices: missing changes in the window
    x[500:700] = x[500]  # X stops trading: its changes are exact zeros, no fit is possible
    oy, ox = observations(y, x, differenced=True)
    for window in (20, 40, 125):
        offline = forward_fill(rolling_fits(oy, ox, window)[0])
        live = RollingHedge(window)
        online = np.array([live.update(a, b) for a, b in zip(oy, ox, strict=True)])
        np.testing.assert_array_equal(np.isfinite(online), np.isfinite(offline))
        both = np.isfinite(offline)
        np.testing.assert_allclose(online[both], offline[both], rtol=1e-12, atol=1e-14)
        # the stretch without a fit carries the last one, not the window's rounding residue
        stale = slice(500 + window, 700)
        assert np.all(online[stale] == online[500 + window - 1])


def test_a_rolling_member_resumes_from_its_snapshot_exactly() -> None:
    rng = np.random.default_rng(12)
    changes = rng.normal(size=(200, 2))
    whole, first = RollingHedge(40), RollingHedge(40)
    for dy, dx in changes[:120]:
        whole.update(dy, dx)
        first.update(dy, dx)
    second = RollingHedge(40)
    second.restore(first.snapshot())
    assert second.hedge == whole.hedge
    for dy, dx in changes[120:]:
        assert second.update(dy, dx) == whole.update(dy, dx)
    with pytest.raises(ValueError, match="40 bars"):
        RollingHedge(20).restore(whole.snapshot())


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"weighting": "best"}, "weighting"),
        ({"half_life": 0.0}, "half_life"),
        ({"half_life": math.inf}, "half_life"),
        ({"shrink": -1.0}, "shrink"),
        ({"min_obs": 1}, "min_obs"),
    ],
)
def test_bad_parameters_are_refused_naming_the_key(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CombineParams(**kwargs)  # type: ignore[arg-type]
    assert caught.value.key == key
    with pytest.raises(ConfigError, match="window"):
        RollingHedge(2)


def test_many_combiners_reweighed_at_once_get_their_own_weights() -> None:
    """The batched solve a bank of pairs uses gives each combiner the weights its own solve
    gives (to rounding), across sizes, shrinkage, clipping and combiners not yet due."""
    rng = np.random.default_rng(21)
    settings_ = [
        (4, CombineParams()),
        (3, CombineParams(shrink=0.3, long_only=False)),
        (4, CombineParams(shrink=0.0)),  # no shrinkage: one by one
        (2, CombineParams(min_obs=500)),  # not due yet: untouched
        (4, CombineParams(weighting="equal")),
    ]
    batch, alone = [], []
    for k in range(60):
        n, params = settings_[k % len(settings_)]
        a, b = HedgeCombiner(n, params), HedgeCombiner(n, params)
        common = rng.normal(size=(80, 1))
        pnl = common + rng.normal(0.0, 0.05, (80, n)) * rng.uniform(0.2, 2.0, n)
        for row in pnl:
            a.accumulate(row)
            b.accumulate(row)
        batch.append(a)
        alone.append(b)
    reweigh_many(batch)
    for a, b in zip(batch, alone, strict=True):
        if b.reweigh_due:
            b.reweigh()
        np.testing.assert_allclose(a.weights, b.weights, rtol=1e-10, atol=1e-13)
    assert any(not np.allclose(c.weights, 1.0 / c.n_members) for c in batch)
