"""Input transforms: raw prices of Y and its k hedges to one observation ``(y, x_1..x_k)``.

Differenced modes remember the previous step's prices. A step with a missing leg (``None``)
yields no observation and forgets that leg's previous price, so a change is never taken across
a gap of unequal length on the two legs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from hedger.engine.kernels.jit import jitable
from hedger.engine.params import InputMode
from hedger.errors import BadInputError

MAX_ABS_PRICE = 1e15
"""Larger magnitudes are rejected: no instrument trades there, and squares of such numbers
times a diffuse prior would overflow the filter's arithmetic."""


@jitable
def usable_price(price: float, positive: bool) -> bool:
    """The one price rule: can ``price`` be a price? Finite, ``|price| <= MAX_ABS_PRICE``, and,
    when ``positive`` (the log modes), > 0; levels and changes of spreads or futures may
    legitimately be <= 0. The bar builder, its compiled twin, the price-table loader and the
    filters all judge prices by this function (NaN fails every comparison, so it is refused)."""
    if positive:
        return 0.0 < price <= MAX_ABS_PRICE
    return -MAX_ABS_PRICE <= price <= MAX_ABS_PRICE


def check_price(value: float, *, positive: bool) -> float:
    """Return ``value`` as a float, or raise :class:`BadInputError` if it cannot be a price.

    NaN, infinities and magnitudes above :data:`MAX_ABS_PRICE` are always rejected; zero and
    negative values only when ``positive`` (log modes), since levels and changes of spreads or
    futures may legitimately be <= 0.
    """
    try:
        price = float(value)
    except (TypeError, ValueError):
        raise BadInputError("not_a_number", value) from None
    if usable_price(price, positive):
        return price
    if math.isnan(price):
        raise BadInputError("nan", value)
    if math.isinf(price):
        raise BadInputError("inf", value)
    if abs(price) > MAX_ABS_PRICE:
        raise BadInputError("out_of_range", value, f"|price| must be <= {MAX_ABS_PRICE:g}")
    raise BadInputError("non_positive", value, "log modes need prices > 0")


class InputTransform:
    """Stateful map from raw prices to observations for one :class:`InputMode`.

    ``apply`` validates every price first and raises :class:`BadInputError` before touching its
    memory, so a rejected step leaves the transform exactly as it was.
    """

    __slots__ = ("_legs", "_mode", "_previous")

    def __init__(self, mode: InputMode, n_legs: int) -> None:
        self._mode = mode
        self._legs = n_legs
        self._previous: list[float | None] = [None] * (n_legs + 1)

    @property
    def mode(self) -> InputMode:
        """The transform's input mode."""
        return self._mode

    def memory(self) -> list[float | None]:
        """The previous step's prices (Y first) that a differenced mode remembers."""
        return list(self._previous)

    def restore(self, memory: Sequence[float | None]) -> None:
        """Resume with ``memory`` (from :meth:`memory`) as the previous step's prices."""
        if len(memory) != self._legs + 1:
            raise ValueError(f"expected {self._legs + 1} remembered prices, got {len(memory)}")
        self._previous = list(memory)

    def apply(
        self, y: float | None, xs: Sequence[float | None]
    ) -> tuple[float, tuple[float, ...]] | None:
        """Map prices (Y, then k hedges; ``None`` = no price this step) to ``(y, xs)``.

        Returns ``None`` when no observation can be formed this step: a leg is missing, or a
        differenced mode has no previous price yet.
        """
        if len(xs) != self._legs:
            raise BadInputError("shape", xs, f"expected {self._legs} hedge price(s)")
        positive = self._mode.logarithmic
        raw = [None if p is None else check_price(p, positive=positive) for p in (y, *xs)]
        if self._mode is InputMode.LEVELS:
            return _observation(raw)
        if self._mode is InputMode.LOG:
            return _observation([None if p is None else math.log(p) for p in raw])
        previous, self._previous = self._previous, raw
        if self._mode is InputMode.CHANGES:
            diffs = [
                None if p is None or q is None else p - q
                for p, q in zip(raw, previous, strict=True)
            ]
        else:
            diffs = [
                None if p is None or q is None else math.log(p / q)
                for p, q in zip(raw, previous, strict=True)
            ]
        return _observation(diffs)


def _observation(values: list[float | None]) -> tuple[float, tuple[float, ...]] | None:
    present = [v for v in values if v is not None]
    if len(present) != len(values):
        return None
    return present[0], tuple(present[1:])
