"""hedger: dynamic hedge ratios for stat-arb desks.

A Kalman filter re-estimates hedge ratios on every bar; hedger runs it as a library, over
recorded files, and as a daemon that publishes every update as an event. This package exports
the library (the seed's :class:`KalmanOLS` and the engine's filter) and the errors; the layers
have their own: :mod:`hedger.engine` (the math), :mod:`hedger.core` (ticks, bars, pipeline,
events, bus), :mod:`hedger.config`, :mod:`hedger.runtime` (the daemon, replay),
:mod:`hedger.research` (price tables, evaluation) and :mod:`feeds`.
"""

from hedger.compat import KalmanOLS
from hedger.engine import (
    DiffuseInit,
    FilterParams,
    FilterStep,
    GivenInit,
    HedgeFilter,
    InputMode,
    OlsWarmupInit,
    PairFilter,
    Position,
    bar_hedge,
    hedge_quantities,
    round_to_lot,
    shares_hedge,
)
from hedger.errors import BadInputError, ConfigError, DataFileError, HedgerError, TransportError

__version__ = "0.1.0"

__all__ = [
    "BadInputError",
    "ConfigError",
    "DataFileError",
    "DiffuseInit",
    "FilterParams",
    "FilterStep",
    "GivenInit",
    "HedgeFilter",
    "HedgerError",
    "InputMode",
    "KalmanOLS",
    "OlsWarmupInit",
    "PairFilter",
    "Position",
    "TransportError",
    "__version__",
    "bar_hedge",
    "hedge_quantities",
    "round_to_lot",
    "shares_hedge",
]
