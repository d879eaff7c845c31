"""``hedger run``: the daemon, from a TOML config, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from hedger.cli.options import LOG_LEVELS
from hedger.config.daemon import DaemonConfig, daemon_config, with_shard
from hedger.config.pipeline import load_toml
from hedger.core.shards import Shard
from hedger.errors import HedgerError, TransportError
from hedger.logs import configure_logging, get_logger
from hedger.runtime.daemon import Daemon

HELP = "run the daemon: live feeds, one filter per pair, events on the bus"
DESCRIPTION = (
    "Run the hedger daemon from a TOML config ([[feeds]], [pairs], [bars], [bus], "
    "[daemon], [logging]; see deploy/hedger.toml). SIGTERM or Ctrl-C drains and exits 0."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hedger run``."""
    parser.add_argument("--config", type=Path, required=True, help="the daemon's TOML file")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="overrides [logging]")
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="run only the pairs shard I of N owns (rendezvous hashing of pair ids; "
        "overrides [shard])",
    )


def run(args: argparse.Namespace) -> int:
    """Run the daemon; a transport that cannot start is one line on stderr and exit status 1."""
    if args.shard is None:
        config = daemon_config(load_toml(args.config))
    else:
        config = with_shard(daemon_config_unsharded(args.config), Shard.parse(args.shard))
    configure_logging(args.log_level or config.log_level, json=config.log_json)
    log = get_logger("daemon")
    try:
        status = _run_bounded(_run_daemon(config, log), config.shutdown_timeout_s)
    except (BaseExceptionGroup, OSError, ValueError, TransportError) as error:
        # a transport that cannot start (port in use, an address the client refuses)
        leaf = _first_leaf(error)
        if not isinstance(leaf, OSError | ValueError | TransportError):
            raise
        print(f"hedger run: {leaf}", file=sys.stderr)
        transport = isinstance(leaf, TransportError) or not isinstance(leaf, HedgerError)
        return 1 if transport else 2
    # Stopped by a signal, everything delivered or counted and logged: exit now. The
    # interpreter's own teardown (0.5-0.9 s with the compiled kernels loaded) would otherwise
    # push the exit past shutdown_timeout.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


_CLEANUP_SHARE = 0.1
"""The share of ``shutdown_timeout`` (at most 0.5 s) that tasks left running when the daemon
returns (a client's connection still closing) get to end after their cancel; the daemon's
own shutdown takes :data:`~hedger.runtime.daemon.SHUTDOWN_SHARE` of it."""


def _run_bounded(main: Coroutine[Any, Any, int], timeout_s: float) -> int:
    """``asyncio.run(main)``, except that tasks left running when it returns get a bounded
    moment to end after their cancel, instead of holding the exit forever."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        deadline = loop.time() + min(0.5, _CLEANUP_SHARE * timeout_s)
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.wait(left, timeout=deadline - loop.time()))
        gens = loop.create_task(loop.shutdown_asyncgens())
        loop.run_until_complete(asyncio.wait([gens], timeout=max(0.0, deadline - loop.time())))
        loop.close()


def daemon_config_unsharded(path: Path) -> DaemonConfig:
    """The config file's daemon with every pair (its own [shard] left out: ``--shard``
    replaces it)."""
    document = dict(load_toml(path))
    document.pop("shard", None)
    return daemon_config(document)


async def _run_daemon(config: DaemonConfig, log: Any) -> int:
    daemon = Daemon(config, log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await daemon.run(stop)
    return 0
