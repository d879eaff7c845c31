"""The ``[positions]`` and ``[lots]`` tables: what the desk holds, so that events carry the
integer shares to hedge it with.

```toml
[positions]                          # shares of Y held per pair (signed: short < 0) ...
"SPY/DIA" = 1000
"XLE/USO+UNG" = { notional = 250000 }   # ... or a notional in Y's currency

[lots]                               # lot size of a hedge symbol, in shares (default 1)
DIA = 1
USO = 100
```
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from hedger.config.schema import Table, decode, sub_table
from hedger.core.actors import PairSpec
from hedger.core.topics import PairId
from hedger.engine import Position
from hedger.errors import ConfigError


class PositionTable(Table, frozen=True):
    """A position written as a table: ``{ shares = ... }`` or ``{ notional = ... }``."""

    shares: float | None = None
    notional: float | None = None


def with_positions(document: Mapping[str, Any], specs: Sequence[PairSpec]) -> list[PairSpec]:
    """``specs`` with the document's ``[positions]`` and the lot sizes of their hedges from
    ``[lots]``; a position for a pair that is not run, or a bad number, is a
    :class:`ConfigError` naming the key."""
    lots = _lots(sub_table(document, "lots"))
    table = sub_table(document, "positions")
    by_id = {str(spec.pair): spec for spec in specs}
    positions: dict[str, Position] = {}
    for name, value in table.items():
        key = f"positions.{name}"
        pair_id = str(PairId.parse(name))
        if pair_id not in by_id:
            raise ConfigError(key, f"no such pair is run (pairs: {', '.join(sorted(by_id))})")
        positions[pair_id] = _position(value, key)
    result = []
    for spec in specs:
        pair_id = str(spec.pair)
        position = positions.get(pair_id, spec.position)
        hedge_lots = tuple(lots.get(x, 1) for x in spec.pair.xs)
        result.append(replace(spec, position=position, lots=hedge_lots))
    return result


def _position(value: Any, key: str) -> Position:
    if isinstance(value, bool):
        raise ConfigError(key, "must be a number of shares or a table { notional = ... }")
    if isinstance(value, int | float):
        shares: float | None = float(value)
        notional: float | None = None
    elif isinstance(value, dict):
        written = decode(value, PositionTable, key)
        shares, notional = written.shares, written.notional
    else:
        raise ConfigError(key, "must be a number of shares or a table { notional = ... }")
    for number in (shares, notional):
        if number is not None and not math.isfinite(number):
            raise ConfigError(key, f"must be a finite number, got {number}")
    try:
        return Position(shares=shares, notional=notional)
    except ConfigError as exc:
        raise ConfigError(key, exc.problem) from None


def _lots(table: Mapping[str, Any]) -> dict[str, int]:
    lots = {}
    for symbol, value in table.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"lots.{symbol}", f"must be a whole number of shares >= 1, got {value!r}"
            )
        lots[str(symbol)] = value
    return lots
