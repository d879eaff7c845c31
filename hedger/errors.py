"""The project's error hierarchy.

Every error hedger raises on purpose derives from :class:`HedgerError` and carries its data as
attributes, so callers (the CLI, a pipeline's reject counter) can report it without parsing text.
"""

from __future__ import annotations


class HedgerError(Exception):
    """Base class of every error hedger raises on purpose."""


class ConfigError(HedgerError, ValueError):
    """A parameter or configuration value is invalid.

    Attributes:
        key: the dotted name of the offending setting (``"delta"``, ``"pairs.AAPL/SPY.r"``).
        problem: what is wrong with it, in a few words.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class BadInputError(HedgerError, ValueError):
    """An observation cannot enter the filter; the filter state is left untouched.

    Attributes:
        reason: a short machine-readable reason (``"nan"``, ``"inf"``, ``"non_positive"``,
            ``"shape"``), used as a counter label by pipelines.
        value: the offending value.
    """

    def __init__(self, reason: str, value: object, detail: str = "") -> None:
        text = f"bad input ({reason}): {value!r}"
        super().__init__(f"{text}: {detail}" if detail else text)
        self.reason = reason
        self.value = value


class DataFileError(HedgerError, OSError):
    """A data file cannot be read at all (missing, unreadable, no usable header).

    Attributes:
        path: the file's path as given.
        problem: what is wrong with it.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class TransportError(HedgerError):
    """A transport (a feed's or a bridge's connection, a server, a broker URL) cannot be set
    up or used: a bad URL or option, an address that cannot be bound, a component used after
    it was closed.

    Attributes:
        transport: which transport (``"mqtt"``, ``"websocket"``, ...).
        address: where, with any password redacted (``"mqtt://bob:***@broker:1883"``); may
            be empty.
        problem: what is wrong, in a few words.
    """

    def __init__(self, transport: str, address: str, problem: str) -> None:
        where = f"{transport} {address}" if address else transport
        super().__init__(f"{where}: {problem}")
        self.transport = transport
        self.address = address
        self.problem = problem
