"""``hedger demo --live``: the daemon at work with nothing installed. A synthetic pair with a
known, drifting true beta streams ticks in real time; the pair's filter actor publishes on the
embedded bus and on a WebSocket server on 127.0.0.1; the terminal shows the hedge ratio beside
the truth until the time is up (or Ctrl-C)."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import Any, TextIO

import orjson

from hedger.config.daemon import DaemonConfig, WebSocketSettings
from hedger.config.feeds import SyntheticFeedSettings
from hedger.config.pipeline import BarSettings, PipelineConfig
from hedger.core.actors import PairSpec
from hedger.core.bus import Message
from hedger.core.topics import PairId
from hedger.engine import FilterParams, OlsWarmupInit
from hedger.logs import get_logger
from hedger.runtime.daemon import Daemon

_BAR_NS = 250_000_000


def live_config(seed: int) -> DaemonConfig:
    """A one-pair daemon: the synthetic market, 250 ms bars, an ephemeral WebSocket port."""
    params = FilterParams(intercept=False, delta=2.5e-7 / 4, init=OlsWarmupInit(n_obs=8))
    pipeline = PipelineConfig(
        BarSettings(_BAR_NS, 4 * _BAR_NS), (PairSpec(PairId("YYY", ("XXX",)), params),)
    )
    feed = SyntheticFeedSettings(
        y="YYY", xs=("XXX",), seed=seed, rate=40.0, alpha=0.0, sigma_x=0.002, beta_vol=0.002
    )
    return DaemonConfig(
        pipeline=pipeline,
        feeds=(feed,),
        websocket=WebSocketSettings(port=0),
        metrics_interval_s=3600.0,
        bar_grace_ns=50_000_000,
        shutdown_timeout_s=2.0,
    )


async def run_live_demo(seconds: float, seed: int, out: TextIO = sys.stdout) -> int:
    """Run the demo daemon for ``seconds``, printing a line per second."""
    node = Daemon(live_config(seed), get_logger("demo"))
    market = node.feeds[0].market  # type: ignore[attr-defined]
    latest: list[dict[str, Any]] = []

    def on_message(message: Message) -> None:
        if message.kind == "ratio" and message.payload:
            latest[:] = [orjson.loads(message.payload)]

    node.bus.subscribe(on_message)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = asyncio.create_task(node.run(stop))
    ws = node.bridges[0]
    await asyncio.sleep(0.3)
    url = getattr(ws, "url", "")
    out.write(
        "hedger demo --live: a synthetic pair YYY/XXX whose true beta drifts (sd 0.002 per "
        "sqrt(s)),\n250 ms bars, events on the embedded bus and on the WebSocket server "
        f"{url}\n(try: python -m websockets {url} , then send "
        '{"action":"subscribe","pairs":["*"]})\n\n'
    )
    out.write(f"{'time':>6}{'seq':>7}{'beta':>10}{'+-2 sd':>9}{'true beta':>11}{'error':>9}\n")
    started = time.monotonic()
    while not stop.is_set() and time.monotonic() - started < seconds:
        await asyncio.wait([asyncio.ensure_future(stop.wait())], timeout=1.0)
        if latest:
            e = latest[0]
            true = market.true_betas(e["ts"])[0] if market.generated else float("nan")
            beta, std = e["beta"], e["beta_std"]
            out.write(
                f"{time.monotonic() - started:>5.0f}s{e['seq']:>7}{beta:>10.4f}"
                f"{2 * std:>9.4f}{true:>11.4f}{beta - true:>+9.4f}"
                f"{'  warming up' if not e['warm'] else ''}\n"
            )
            out.flush()
    stop.set()
    await runner
    metrics = node.metrics()
    out.write(
        f"\n{int(metrics['ticks_in']):,} ticks, {int(metrics['bars']):,} bars, "
        f"{int(metrics['events_published']):,} events published; stopped cleanly.\n"
    )
    return 0
