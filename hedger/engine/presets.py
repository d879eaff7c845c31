"""Named filter settings that do not depend on the data: Chan's and the seed article's.

Both are members of the recommended combined hedge (:mod:`hedger.engine.combine`) beside the
calibrated filter, and candidates of ``hedger evaluate``.
"""

from __future__ import annotations

from hedger.engine.params import FilterParams, GivenInit, InputMode


def chan_params(mode: InputMode) -> FilterParams:
    """Chan's parameters for ``mode``: delta = 1e-4, a fixed R = Ve = 1e-3, started by hedger's
    default OLS warm-up (Chan's own zero prior would only change the first bars)."""
    return FilterParams(mode=mode, delta=1e-4, obs_cov=1e-3, adaptive_r=None)


def seed_params(mode: InputMode) -> FilterParams:
    """The seed article's defaults in ``mode``: Q = I, R = 1 fixed, prior N(0, I) for the
    first observation (the mode's default intercept)."""
    n = 1 + (1 if mode.default_intercept else 0)
    eye = tuple(tuple(1.0 if i == j else 0.0 for j in range(n)) for i in range(n))
    return FilterParams(
        mode=mode,
        trans_cov=eye,
        obs_cov=1.0,
        adaptive_r=None,
        init=GivenInit(mean=(0.0,) * n, cov=eye),
    )
