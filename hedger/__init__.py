"""hedger: dynamic hedge ratios for stat-arb desks.

A Kalman filter re-estimates hedge ratios on every bar; hedger runs it as a library, over
recorded files, and as a daemon that publishes every update as an event.
"""

from hedger.compat import KalmanOLS
from hedger.engine import FilterParams, FilterStep, HedgeFilter, InputMode, PairFilter
from hedger.errors import BadInputError, ConfigError, DataFileError, HedgerError, TransportError

__version__ = "0.1.0"

__all__ = [
    "BadInputError",
    "ConfigError",
    "DataFileError",
    "FilterParams",
    "FilterStep",
    "HedgeFilter",
    "HedgerError",
    "InputMode",
    "KalmanOLS",
    "PairFilter",
    "TransportError",
    "__version__",
]
