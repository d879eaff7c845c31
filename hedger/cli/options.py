"""Argument types and options that several subcommands share."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from feeds.files.timestamps import DATE_PATTERN, is_date_pattern
from hedger.core.bars import parse_duration_ns
from hedger.core.topics import PairId
from hedger.engine import InputMode
from hedger.errors import ConfigError

T = TypeVar("T")

LOG_LEVELS = ("debug", "info", "warning", "error")
TS_UNITS = ("auto", "iso", "s", "ms", "us", "ns")
"""``--ts-unit``: how numeric timestamps of tick files are read (``auto``: from the first row)."""


def pair_label(pair: PairId) -> str:
    """A pair as people read it: ``BRK B/SPY``, symbols as written (``str(pair)``, the id,
    escapes them: ``BRK%20B/SPY``, for topics, events and config keys)."""
    return f"{pair.y}/{'+'.join(pair.xs)}"


def add_drop_repeats(parser: argparse.ArgumentParser) -> None:
    """``--drop-repeats``: drop the rows of a wide file that repeat the row before exactly."""
    parser.add_argument(
        "--drop-repeats",
        action="store_true",
        help="drop rows whose prices all repeat the row before (holidays filled forward)",
    )


def add_date_format(parser: argparse.ArgumentParser) -> None:
    """``--date-format``: a strftime pattern of a file's text dates, for the files whose
    dates fit both m/d/Y and d/m/Y (the common forms are read without it)."""
    parser.add_argument(
        "--date-format",
        metavar="PATTERN",
        type=date_pattern,
        help=(
            "strftime pattern of the file's dates, e.g. %%d/%%m/%%Y or '%%m/%%d/%%Y %%H:%%M' "
            "(default: ISO, Y/m/d, m/d/Y and d/m/Y read as they come; needed only when the "
            "dates fit both m/d/Y and d/m/Y)"
        ),
    )


def date_pattern(text: str) -> str:
    """An argparse type: a strftime pattern with at least one directive (the check of
    ``date_format`` in config too: :func:`feeds.files.timestamps.is_date_pattern`)."""
    if not is_date_pattern(text):
        raise argparse.ArgumentTypeError(f"{DATE_PATTERN}, got {text!r}")
    return text


def add_mode(parser: argparse.ArgumentParser, default: InputMode | None = InputMode.LEVELS) -> None:
    """``--mode``: the input transform of the filter (levels, log, changes, returns)."""
    parser.add_argument(
        "--mode",
        choices=[m.value for m in InputMode],
        default=None if default is None else default.value,
        help="input transform" + ("" if default is None else f" (default: {default.value})"),
    )


def check_bar(text: str) -> str:
    """``--bar`` checked by the one bar rule's parser before any file is read, so every
    command refuses what the pipeline would (also on a wide file, which keeps its own rows):
    a :class:`ConfigError` naming ``--bar``."""
    parse_duration_ns(text, "--bar")
    return text


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


PLOT_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")
"""The image formats ``--plot`` writes (matplotlib picks the format from the suffix)."""


def output_path(key: str, path: Path | None, suffixes: tuple[str, ...] = ()) -> Path | None:
    """Check an output path before any work is done: not a directory, in a directory that
    exists, and (with ``suffixes``) with one of those suffixes; else a :class:`ConfigError`
    naming ``key`` (``"out"``, ``"plot"``, ``"write"``)."""
    if path is None:
        return None
    if path.is_dir():
        raise ConfigError(key, f"{path} is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(key, f"{path}: the directory {parent} does not exist")
    if path.exists() and not path.is_file():
        raise ConfigError(key, f"{path} is not a regular file")
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(
            key, f"{path}: the file name must end in {', '.join(suffixes)}, got {path.suffix!r}"
        )
    return path


def write_to(path: Path | None, write: Callable[[BinaryIO], T]) -> T:
    """``write(stdout)``, or ``write(file)`` with ``path`` opened for writing and closed after;
    a path that cannot be opened is a :class:`ConfigError` naming ``out``."""
    if path is None:
        return write(sys.stdout.buffer)
    try:
        out = path.open("wb")
    except OSError as exc:
        raise ConfigError("out", f"{path}: {exc.strerror}") from None
    with out:
        return write(out)
