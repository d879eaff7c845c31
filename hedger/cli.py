"""The ``hedger`` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from hedger import __version__, calibrate_command, evaluate_command, matrix_command
from hedger.config import load_toml, pipeline_config
from hedger.daemon_config import DaemonConfig, daemon_config
from hedger.demo import DEFAULT_FILE, render, run_demo
from hedger.demo_live import run_live_demo
from hedger.engine import FilterParams, InputMode
from hedger.errors import ConfigError, HedgerError
from hedger.logs import configure_logging, get_logger
from hedger.node import Node
from hedger.replay import format_summary, replay
from hedger.subscribe import run_subscribe


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="hedger",
        description="Dynamic hedge ratios for stat-arb desks: a Kalman filter on every bar.",
    )
    parser.add_argument("--version", action="version", version=f"hedger {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="replay a recorded price file through the engine and show how the ratio moved",
        description=(
            "Replay a wide bar CSV (a time column, then one price column per symbol) through "
            "the hedge filter and print a table of the hedge ratio over time with a summary."
        ),
    )
    demo.add_argument(
        "--file",
        type=Path,
        default=DEFAULT_FILE,
        help="wide bar CSV (.csv or .csv.gz); default: S&P 500 / NASDAQ daily closes 1999-2018",
    )
    demo.add_argument(
        "--pair", help="Y/X: the hedged symbol, then the hedge (default: the first two columns)"
    )
    demo.add_argument(
        "--mode",
        choices=[m.value for m in InputMode],
        default=InputMode.LEVELS.value,
        help="input transform (default: levels)",
    )
    demo.add_argument(
        "--delta",
        type=float,
        default=1e-7,
        help=(
            "state noise, Q = delta/(1-delta) I (default 1e-7, which suits index levels in the "
            "thousands; Q scales with 1/price^2, so ETF prices near $30 want about 1e-4)"
        ),
    )
    demo.add_argument("--rows", type=_positive_int, default=24, help="table rows to show (24)")
    demo.add_argument(
        "--live",
        action="store_true",
        help="instead, run the daemon on a synthetic pair with a WebSocket server, live",
    )
    demo.add_argument(
        "--seconds", type=float, default=10.0, help="how long the live demo runs (10)"
    )
    demo.add_argument("--seed", type=int, default=1, help="the live demo's market seed (1)")
    _add_replay(commands)
    matrix_command.add_parser(commands)
    calibrate_command.add_parser(commands)
    evaluate_command.add_parser(commands)
    run = commands.add_parser(
        "run",
        help="run the daemon: live feeds, one filter per pair, events on the bus",
        description=(
            "Run the hedger daemon from a TOML config ([[feeds]], [pairs], [bars], [bus], "
            "[daemon], [logging]; see deploy/hedger.toml). SIGTERM or Ctrl-C drains and exits 0."
        ),
    )
    run.add_argument("--config", type=Path, required=True, help="the daemon's TOML file")
    run.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="overrides [logging]"
    )
    sub = commands.add_parser(
        "subscribe",
        help="show the latest hedge ratios of a running daemon (MQTT), live",
        description=(
            "Subscribe to a daemon's retained hedge-ratio topics and show them as a live table "
            "(or JSON lines with --json). Gaps in a pair's seq are reported. Ctrl-C exits."
        ),
    )
    sub.add_argument("pairs", nargs="*", metavar="PAIR", help="pairs (Y/X); default: all")
    sub.add_argument(
        "--broker", default="mqtt://127.0.0.1:1883", help="MQTT broker URL (mqtt://host:port)"
    )
    sub.add_argument("--root", default="hedger", help="the daemon's topic root (hedger)")
    sub.add_argument("--json", action="store_true", help="print events as JSON lines")
    sub.add_argument("--count", type=_at_least_one, help="exit after this many new hedge ratios")
    return parser


def _add_replay(commands: Any) -> None:
    replay = commands.add_parser(
        "replay",
        help="run recorded tick or bar files through the pipeline, events as JSON Lines",
        description=(
            "Replay recorded files (long tick CSV 'ts,symbol,price[,size]', wide bar CSV, JSON "
            "Lines; any of them .gz) through bars and filters, writing hedge_ratio and spread "
            "events as JSON Lines. The same input always gives byte-identical output."
        ),
    )
    replay.add_argument("files", nargs="+", type=Path, metavar="FILE", help="recorded file(s)")
    replay.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="Y/X",
        help="a pair (hedged/hedge) or a basket Y/X1+X2; repeat for more",
    )
    replay.add_argument("--config", type=Path, help="TOML file with [bars], [filter], [pairs]")
    replay.add_argument("--bar", help="bar length: 250ms, 1s, 1min, 1d (default 1s)")
    replay.add_argument(
        "--max-age", help="a leg older than this at a bar close is stale (default: one bar)"
    )
    replay.add_argument(
        "--price-source", choices=["trade", "mid"], help="bars from trades or quote mids"
    )
    replay.add_argument("--mode", choices=[m.value for m in InputMode], help="input transform")
    replay.add_argument("--delta", type=float, help="state noise, Q = delta/(1-delta) I")
    replay.add_argument("--obs-cov", type=float, help="observation noise R (its start if adaptive)")
    replay.add_argument(
        "--fixed-r", action="store_true", help="keep R fixed (default: learn it from the data)"
    )
    replay.add_argument("--init", choices=["ols", "diffuse"], help="initialisation (default ols)")
    replay.add_argument("--warmup", type=int, help="observations of the warm-up (default 20)")
    replay.add_argument("--out", type=Path, help="write events here (default: stdout)")
    replay.add_argument(
        "--speed", type=float, help="pace the replay at N times real time (default: flat out)"
    )
    replay.add_argument(
        "--ts-unit",
        choices=["auto", "iso", "s", "ms", "us", "ns"],
        default="auto",
        help="unit of numeric timestamps (default: detected from the first row)",
    )
    replay.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "replay":
            return _replay(args)
        if args.command == "matrix":
            return matrix_command.run(args)
        if args.command == "calibrate":
            return calibrate_command.run(args)
        if args.command == "evaluate":
            return evaluate_command.run(args)
        if args.command == "run":
            return _run(args)
        if args.command == "subscribe":
            if not args.broker.startswith(("mqtt://", "mqtts://")):
                raise ConfigError("broker", f"must look like mqtt://host:port, got {args.broker}")
            try:
                return asyncio.run(
                    run_subscribe(
                        args.broker,
                        args.root,
                        args.pairs,
                        as_json=args.json,
                        max_messages=args.count,
                    )
                )
            except KeyboardInterrupt:
                return 0  # Ctrl-C is how a subscriber ends
    except HedgerError as exc:
        print(f"hedger {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``hedger demo | head``): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 1


def _demo(args: argparse.Namespace) -> int:
    if args.live:
        configure_logging("warning")
        return asyncio.run(run_live_demo(args.seconds, args.seed))
    mode = InputMode(args.mode)
    params = FilterParams(mode=mode, delta=args.delta)
    y_sym, x_sym, rows, rejects, elapsed = run_demo(args.file, args.pair, mode, params)
    render(sys.stdout, y_sym, x_sym, rows, rejects, elapsed, mode, args.rows)
    return 0


def _replay(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    document = load_toml(args.config) if args.config else {}
    overrides: dict[str, Any] = {}
    for key, value in (
        ("mode", args.mode),
        ("delta", args.delta),
        ("obs_cov", args.obs_cov),
        ("init", args.init),
        ("warmup", args.warmup),
    ):
        if value is not None:
            overrides[key] = value
    if args.fixed_r:
        overrides["adaptive_r"] = False
    bars: dict[str, Any] = {}
    for key, value in (
        ("length", args.bar),
        ("max_age", args.max_age),
        ("source", args.price_source),
    ):
        if value is not None:
            bars[key] = value
    config = pipeline_config(
        document, extra_pairs=tuple(args.pair), filter_overrides=overrides, bar_overrides=bars
    )
    if args.speed is not None and not args.speed > 0:
        raise ConfigError("speed", f"must be > 0, got {args.speed}")
    progress = _progress_line if sys.stderr.isatty() else None
    out: BinaryIO
    if args.out is None:
        out = sys.stdout.buffer
        summary = replay(
            args.files,
            config,
            out,
            ts_unit=args.ts_unit,
            speed=args.speed,
            progress=progress,
            logger=get_logger("replay"),
        )
    else:
        try:
            out = args.out.open("wb")
        except OSError as exc:
            raise ConfigError("out", f"{args.out}: {exc.strerror}") from None
        with out:
            summary = replay(
                args.files,
                config,
                out,
                ts_unit=args.ts_unit,
                speed=args.speed,
                progress=progress,
                logger=get_logger("replay"),
            )
    if progress is not None:
        sys.stderr.write("\n")
    print(format_summary(summary), file=sys.stderr)
    return 0


def _run(args: argparse.Namespace) -> int:
    config = daemon_config(load_toml(args.config))
    configure_logging(args.log_level or config.log_level, json=config.log_json)
    log = get_logger("daemon")
    try:
        return asyncio.run(_run_daemon(config, log))
    except (BaseExceptionGroup, OSError, ValueError) as error:
        # a transport that cannot start (port in use, an address the client refuses)
        leaf = _first_leaf(error)
        if not isinstance(leaf, OSError | ValueError):
            raise
        print(f"hedger run: {leaf}", file=sys.stderr)
        return 2 if isinstance(leaf, HedgerError) else 1


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


async def _run_daemon(config: DaemonConfig, log: Any) -> int:
    node = Node(config, log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await node.run(stop)
    return 0


def _progress_line(ticks: int, events: int, seconds: float) -> None:
    rate = ticks / seconds if seconds > 0 else 0.0
    sys.stderr.write(f"\r{ticks:,} ticks, {events:,} events, {rate:,.0f} ticks/s ")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
