"""The online HedgeFilter: transforms, initialisation and warm-up, bad input, missing legs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedger.engine import (
    DiffuseInit,
    FilterParams,
    GivenInit,
    HedgeFilter,
    InputMode,
    OlsWarmupInit,
)
from hedger.errors import BadInputError, ConfigError


def snapshot(hf: HedgeFilter) -> dict[str, object]:
    return hf.snapshot()


@pytest.mark.parametrize("mode", list(InputMode))
@pytest.mark.parametrize(
    ("y", "x"), [(math.nan, 10.0), (10.0, math.inf), (-math.inf, 10.0), (10.0, "abc")]
)
def test_non_finite_prices_are_rejected_and_change_nothing(
    mode: InputMode, y: object, x: object
) -> None:
    hf = HedgeFilter(FilterParams(mode=mode, init=DiffuseInit()))
    for t in range(5):
        hf.step(100.0 + t, 98.0 + 0.5 * t)
    before = snapshot(hf)
    with pytest.raises(BadInputError) as err:
        hf.step(y, x)  # type: ignore[arg-type]
    assert err.value.reason in {"nan", "inf", "not_a_number", "out_of_range"}
    assert snapshot(hf) == before


@pytest.mark.parametrize("mode", [InputMode.LOG, InputMode.RETURNS])
@pytest.mark.parametrize("bad", [0.0, -1.5])
def test_non_positive_prices_are_rejected_in_log_modes(mode: InputMode, bad: float) -> None:
    hf = HedgeFilter(FilterParams(mode=mode, init=DiffuseInit()))
    hf.step(100.0, 50.0)
    hf.step(101.0, 50.5)
    before = snapshot(hf)
    with pytest.raises(BadInputError, match="non_positive"):
        hf.step(bad, 50.0)
    assert snapshot(hf) == before


@pytest.mark.parametrize("mode", [InputMode.LEVELS, InputMode.CHANGES])
def test_non_positive_prices_are_fine_where_they_make_sense(mode: InputMode) -> None:
    hf = HedgeFilter(FilterParams(mode=mode, init=DiffuseInit()))
    for y, x in [(-1.0, 2.0), (-0.5, 2.5), (0.0, 3.0)]:
        hf.step(y, x)
    assert hf.observations == (3 if mode is InputMode.LEVELS else 2)


def test_missing_leg_runs_predict_only() -> None:
    q = 1e-3
    hf = HedgeFilter(
        FilterParams(
            delta=q / (1 + q), adaptive_r=None, init=GivenInit((1.0, 0.0), ((1.0, 0.0), (0.0, 1.0)))
        )
    )
    first = hf.step(10.0, 9.0)
    gap = hf.step(None, 9.5)
    assert gap.predicted_only and not first.predicted_only
    assert gap.betas == first.betas and gap.alpha == first.alpha
    np.testing.assert_allclose(np.array(gap.cov), np.array(first.cov) + q * np.eye(2), rtol=1e-12)
    assert math.isnan(gap.innovation) and math.isnan(gap.zscore) and math.isnan(gap.loglik)
    assert hf.observations == 1


def test_changes_mode_never_differences_across_a_gap() -> None:
    hf = HedgeFilter(FilterParams(mode=InputMode.CHANGES, init=DiffuseInit()))
    assert hf.step(10.0, 5.0).predicted_only  # priming: no previous prices
    assert not hf.step(11.0, 5.5).predicted_only
    assert hf.step(12.0, None).predicted_only
    # X's previous price is gone, so the next step cannot form a change either.
    assert hf.step(13.0, 6.0).predicted_only
    step = hf.step(14.0, 6.5)
    assert not step.predicted_only
    assert step.forecast + step.innovation == pytest.approx(1.0)


def test_ols_warmup_replaces_the_state_by_ols() -> None:
    rng = np.random.default_rng(5)
    x = 40 + np.cumsum(rng.normal(0, 1, 60))
    y = 1.3 * x + 2.0 + rng.normal(0, 0.5, 60)
    hf = HedgeFilter(FilterParams(init=OlsWarmupInit(n_obs=30), adaptive_r=0.99))
    steps = [hf.step(a, b) for a, b in zip(y, x, strict=True)]
    assert [s.warm for s in steps] == [False] * 29 + [True] * 31
    design = np.column_stack([x[:30], np.ones(30)])
    coef, rss = np.linalg.lstsq(design, y[:30], rcond=None)[:2]
    s2 = float(rss[0]) / 28
    np.testing.assert_allclose([steps[29].beta, steps[29].alpha], coef, rtol=1e-9)
    np.testing.assert_allclose(steps[29].cov, s2 * np.linalg.inv(design.T @ design), rtol=1e-8)
    # the next step predicts from the OLS state with the OLS residual variance as R
    assert steps[30].obs_cov == pytest.approx(s2, rel=1e-12)


def test_warm_flags_for_given_and_diffuse() -> None:
    given_init = HedgeFilter(FilterParams(init=GivenInit((0.0, 0.0), ((1.0, 0.0), (0.0, 1.0)))))
    assert given_init.step(1.0, 2.0).warm
    diffuse = HedgeFilter(FilterParams(init=DiffuseInit(warmup_steps=3)))
    assert [diffuse.step(1.0 + t, 2.0 + t * t).warm for t in range(4)] == [False, False, True, True]


def test_basket_filter_via_hedge_filter() -> None:
    rng = np.random.default_rng(9)
    x1 = 50 + np.cumsum(rng.normal(0, 1, 400))
    x2 = 20 + np.cumsum(rng.normal(0, 1, 400))
    y = 0.6 * x1 + 1.5 * x2 + 3.0 + rng.normal(0, 0.1, 400)
    hf = HedgeFilter(FilterParams(n_legs=2, delta=1e-7, init=OlsWarmupInit(n_obs=20)))
    for a, b, c in zip(y, x1, x2, strict=True):
        step = hf.step(a, [b, c])
    np.testing.assert_allclose(step.betas, [0.6, 1.5], atol=0.02)
    assert len(step.cov) == 3 and len(step.beta_std) == 2


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"n_legs": 0}, "n_legs"),
        ({"mode": "prices"}, "mode"),
        ({"delta": 1.0}, "delta"),
        ({"delta": -0.1}, "delta"),
        ({"obs_cov": 0.0}, "obs_cov"),
        ({"obs_cov": math.nan}, "obs_cov"),
        ({"adaptive_r": 1.0}, "adaptive_r"),
        ({"trans_cov": ((1.0, 0.5), (0.4, 1.0))}, "trans_cov"),
        ({"trans_cov": ((1.0,),)}, "trans_cov"),
        ({"init": GivenInit((0.0,), ((1.0,),))}, "init.mean"),
        ({"init": GivenInit((0.0, 0.0), ((1.0, 2.0), (2.0, 1.0)))}, "init.cov"),
        ({"init": OlsWarmupInit(n_obs=3)}, "init.n_obs"),
        ({"init": DiffuseInit(variance=-1.0)}, "init.variance"),
    ],
)
def test_bad_parameters_name_the_key(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        FilterParams(**kwargs)  # type: ignore[arg-type]
    assert err.value.key == key
    assert key in str(err.value)


def test_mode_defaults_for_the_intercept() -> None:
    assert FilterParams(mode=InputMode.LEVELS).n_states == 2
    assert FilterParams(mode=InputMode.RETURNS).n_states == 1
    assert FilterParams(mode=InputMode.RETURNS, intercept=True).n_states == 2


@settings(max_examples=100, deadline=None)
@given(
    prices=st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        ),
        max_size=30,
    ),
    mode=st.sampled_from(list(InputMode)),
)
def test_arbitrary_input_never_corrupts_the_state(
    prices: list[tuple[float | None, float | None]], mode: InputMode
) -> None:
    """Whatever arrives, a step either succeeds with a finite PSD state or raises
    BadInputError and changes nothing."""
    hf = HedgeFilter(FilterParams(mode=mode, init=DiffuseInit(variance=1e4)))
    for y, x in prices:
        before = snapshot(hf)
        try:
            step = hf.step(y, x)
        except BadInputError:
            assert snapshot(hf) == before
            continue
        cov = np.array(step.cov)
        assert np.all(np.isfinite(cov)) and np.all(np.isfinite(step.betas))
        assert math.isfinite(step.alpha) and step.obs_cov > 0
        assert cov[0, 0] >= 0 and abs(cov[0, -1]) <= math.sqrt(cov[0, 0] * cov[-1, -1])
