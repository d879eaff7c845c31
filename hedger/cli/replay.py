"""``hedger replay``: recorded tick or bar files through the pipeline, events as JSON Lines."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from feeds.files.readers import file_symbols
from hedger.cli.options import (
    LOG_LEVELS,
    TS_UNITS,
    add_date_format,
    add_drop_repeats,
    add_mode,
    output_path,
    progress_line,
    write_to,
)
from hedger.config.pipeline import load_toml, pipeline_config
from hedger.errors import ConfigError, DataFileError
from hedger.logs import configure_logging, get_logger
from hedger.research.prices import FirstReject, no_rows_problem
from hedger.runtime.replay import ReplaySummary, format_summary, replay

HELP = "run recorded tick or bar files through the pipeline, events as JSON Lines"
DESCRIPTION = (
    "Replay recorded files (long tick CSV 'ts,symbol,price[,size]', wide bar CSV, JSON "
    "Lines; any of them .gz) through bars and filters, writing hedge_ratio and spread "
    "events as JSON Lines. The same input always gives byte-identical output."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hedger replay``."""
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="recorded file(s)")
    parser.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="Y/X",
        help="a pair (hedged/hedge) or a basket Y/X1+X2; repeat for more",
    )
    parser.add_argument("--config", type=Path, help="TOML file with [bars], [filter], [pairs]")
    parser.add_argument("--bar", help="bar length: 250ms, 1s, 1min, 1d (default 1s)")
    parser.add_argument(
        "--max-age", help="a leg older than this at a bar close is stale (default: one bar)"
    )
    parser.add_argument(
        "--price-source", choices=["trade", "mid"], help="bars from trades or quote mids"
    )
    add_mode(parser, default=None)
    parser.add_argument("--delta", type=float, help="state noise, Q = delta/(1-delta) I")
    parser.add_argument("--obs-cov", type=float, help="observation noise R (its start if adaptive)")
    parser.add_argument(
        "--fixed-r", action="store_true", help="keep R fixed (default: learn it from the data)"
    )
    parser.add_argument("--init", choices=["ols", "diffuse"], help="initialisation (default ols)")
    parser.add_argument("--warmup", type=int, help="observations of the warm-up (default 20)")
    parser.add_argument("--out", type=Path, help="write events here (default: stdout)")
    parser.add_argument(
        "--speed", type=float, help="pace the replay at N times real time (default: flat out)"
    )
    parser.add_argument(
        "--ts-unit",
        choices=TS_UNITS,
        default="auto",
        help="unit of numeric timestamps (default: detected from the first row)",
    )
    add_date_format(parser)
    add_drop_repeats(parser)
    parser.add_argument("--log-level", default="warning", choices=LOG_LEVELS)


def _given(pairs: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    return {key: value for key, value in pairs if value is not None}


def run(args: argparse.Namespace) -> int:
    """Replay ``args.files``; the summary goes to stderr."""
    configure_logging(args.log_level)
    output_path("out", args.out)
    document = load_toml(args.config) if args.config else {}
    overrides = _given(
        (
            ("mode", args.mode),
            ("delta", args.delta),
            ("obs_cov", args.obs_cov),
            ("init", args.init),
            ("warmup", args.warmup),
        )
    )
    if args.fixed_r:
        overrides["adaptive_r"] = False
    bars = _given((("length", args.bar), ("max_age", args.max_age), ("source", args.price_source)))
    config = pipeline_config(
        document, extra_pairs=tuple(args.pair), filter_overrides=overrides, bar_overrides=bars
    )
    if args.speed is not None and not args.speed > 0:
        raise ConfigError("speed", f"must be > 0, got {args.speed}")
    check_symbols(args.files, [leg for spec in config.pairs for leg in spec.pair.legs])
    progress = progress_line if sys.stderr.isatty() else None
    logger = PassOnFirstReject(get_logger("replay"))

    def replay_into(out: BinaryIO) -> ReplaySummary:
        return replay(
            args.files,
            config,
            out,
            ts_unit=args.ts_unit,
            speed=args.speed,
            progress=progress,
            logger=logger,
            date_format=args.date_format,
            drop_repeats=args.drop_repeats,
        )

    summary = write_to(args.out, replay_into)
    if progress is not None:
        sys.stderr.write("\n")
    check_some_input(args.files, summary, logger)
    print(format_summary(summary), file=sys.stderr)
    return 0


def check_symbols(files: Sequence[Path], legs: Sequence[str]) -> None:
    """Every leg must be a symbol of some file; else a :class:`ConfigError` naming the
    missing symbol(s) and the files' symbols (read before any event is written)."""
    seen: set[str] = set()
    complete = True
    for path in files:
        symbols, whole = file_symbols(path, legs)
        seen |= symbols
        complete = complete and whole
    missing = [leg for leg in dict.fromkeys(legs) if leg not in seen]
    if missing:
        names = ", ".join(repr(leg) for leg in missing)
        known = ", ".join(repr(s) for s in sorted(seen)) or "none"
        where = ", ".join(str(path) for path in files)
        raise ConfigError("pair", f"no symbol {names} in {where} (its symbols: {known})")


def check_some_input(files: Sequence[Path], summary: ReplaySummary, first: FirstReject) -> None:
    """A run with no usable tick is an error: every row rejected (the reasons and the first
    bad row), or no rows at all."""
    where = ", ".join(str(path) for path in files)
    if summary.ticks == 0 and not summary.rejects:
        raise DataFileError(where, "has no rows (a header only?)")
    if summary.events == 0 and summary.rejects:
        raise DataFileError(where, no_rows_problem(summary.rejects, first))


class PassOnFirstReject(FirstReject):
    """A logger that passes everything on and keeps the first reject it was told of."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self._inner = inner

    def warning(self, event: str, **kw: Any) -> Any:
        super().warning(event, **kw)
        return self._inner.warning(event, **kw)

    def info(self, event: str, **kw: Any) -> Any:
        return self._inner.info(event, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
