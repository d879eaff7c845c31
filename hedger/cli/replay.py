"""``hedger replay``: recorded tick or bar files through the pipeline, events as JSON Lines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, BinaryIO

from hedger.cli.options import LOG_LEVELS, TS_UNITS, add_mode, progress_line, write_to
from hedger.config.pipeline import load_toml, pipeline_config
from hedger.errors import ConfigError
from hedger.logs import configure_logging, get_logger
from hedger.runtime.replay import format_summary, replay

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
    parser.add_argument("--log-level", default="warning", choices=LOG_LEVELS)


def _given(pairs: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    return {key: value for key, value in pairs if value is not None}


def run(args: argparse.Namespace) -> int:
    """Replay ``args.files``; the summary goes to stderr."""
    configure_logging(args.log_level)
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
    progress = progress_line if sys.stderr.isatty() else None

    def replay_into(out: BinaryIO) -> str:
        summary = replay(
            args.files,
            config,
            out,
            ts_unit=args.ts_unit,
            speed=args.speed,
            progress=progress,
            logger=get_logger("replay"),
        )
        return format_summary(summary)

    report = write_to(args.out, replay_into)
    if progress is not None:
        sys.stderr.write("\n")
    print(report, file=sys.stderr)
    return 0
