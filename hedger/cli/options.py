"""Argument types and options that several subcommands share."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

LOG_LEVELS = ("debug", "info", "warning", "error")


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``, or a one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text}")
        return value

    return parse


def progress_line(ticks: int, events: int, seconds: float) -> None:
    """One self-overwriting progress line on stderr (a terminal only)."""
    rate = ticks / seconds if seconds > 0 else 0.0
    sys.stderr.write(f"\r{ticks:,} ticks, {events:,} events, {rate:,.0f} ticks/s ")
    sys.stderr.flush()
