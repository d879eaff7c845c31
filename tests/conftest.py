"""Shared fixtures: real prices shipped in examples/ and a seeded synthetic pair."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from tests.test_daemon import DaemonProcess

pytest_plugins = ["tests.mosquitto"]  # the `mosquitto` fixture: a real broker on a free port

ROOT = Path(__file__).resolve().parents[1]
SP500_NASDAQ = ROOT / "examples" / "sp500_nasdaq_daily.csv"


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """The daemons a test starts (``tests.test_daemon.start``), killed at its end if still
    running."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.kill()


def run_hedger(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``hedger ARGS...`` in a fresh interpreter, output captured as text (never raises on a
    non-zero exit: the tests look at it)."""
    return subprocess.run(
        [sys.executable, "-m", "hedger.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def load_sp500_nasdaq() -> tuple[np.ndarray, np.ndarray]:
    """Daily closes 1999-2018 (arch package, NCSA licence): (SP500, NASDAQ), each (5031,)."""
    with SP500_NASDAQ.open() as fh:
        rows = list(csv.DictReader(fh))
    return (
        np.array([float(r["SP500"]) for r in rows]),
        np.array([float(r["NASDAQ"]) for r in rows]),
    )


@pytest.fixture(scope="session")
def real_prices() -> tuple[np.ndarray, np.ndarray]:
    """(y, x) = (S&P 500, NASDAQ Composite) daily closes."""
    return load_sp500_nasdaq()


@pytest.fixture(scope="session")
def synthetic_prices() -> tuple[np.ndarray, np.ndarray]:
    """A cointegrated pair with a slowly drifting true beta, 2,000 steps, seed 7."""
    rng = np.random.default_rng(7)
    t = 2000
    x = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, t)))
    beta = 0.8 + np.cumsum(rng.normal(0.0, 0.002, t))
    y = beta * x + 5.0 + rng.normal(0.0, 0.3, t)
    return y, x
