"""A running daemon: feeds -> one bounded tick queue -> the pipeline -> the bus -> bridges.

Everything after the tick queue runs in one task, in one order (the same core as a replay);
feeds and bridges each run in their own tasks, so a slow consumer never blocks the feeds. The
bar clock is the wall clock for live feeds and the data itself for recorded files, exactly as
in a replay.

Shutdown (SIGTERM or SIGINT request it): the feeds stop, the ticks already queued are
processed, the open bar is closed and its events published, the bridges drain within the
configured timeout, and the MQTT bridge publishes ``offline`` before it disconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

from hedger.config.daemon import DaemonConfig
from hedger.core.bus import Bridge, Bus
from hedger.core.lifecycle import State
from hedger.core.matrix_actor import MatrixActor
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick
from hedger.runtime.feeds import build_feed
from hedger.runtime.refit import Refitter


class _Clock:
    """A bar-clock reading in the tick queue: close bars whose end is at or before ``ts``."""

    __slots__ = ("ts",)

    def __init__(self, ts: int) -> None:
        self.ts = ts


_STOP = object()


class Daemon:
    """One daemon's components and counters; :attr:`state` is the lifecycle state feeds and
    bridges have (:class:`~hedger.core.lifecycle.State`)."""

    def __init__(self, config: DaemonConfig, logger: Any) -> None:
        self.state = State.STARTING
        self.config = config
        self.log = logger
        self.rejects = Rejects(logger)
        self.bus = Bus(root=config.root)
        self.bridges: list[Bridge] = self._bridges()
        for bridge in self.bridges:
            self.bus.attach(bridge)
        bars = config.pipeline.bars
        self.pipeline = Pipeline(
            config.pipeline.pairs,
            bars.length_ns,
            bars.max_age_ns,
            self.bus.publish,
            self.rejects,
            price_source=bars.source,
            symbols=config.matrix.symbols if config.matrix is not None else (),
        )
        self.matrix: MatrixActor | None = None
        if config.matrix is not None:
            self.matrix = MatrixActor(
                config.matrix.symbols,
                config.matrix.params,
                bars.max_age_ns,
                self.bus.publish_matrix,
            )
            self.pipeline.bar_listeners.append(self.matrix.handle_bar)
        self.refitter: Refitter | None = None
        if config.refit is not None:
            self.refitter = Refitter(config.refit, logger)
            self.refitter.attach(self.pipeline.actors)
        self.queue: asyncio.Queue[Tick | _Clock | object] = asyncio.Queue(config.tick_queue)
        self.feeds = [build_feed(settings, logger) for settings in config.feeds]
        self.wall_clock = any(settings.kind != "file" for settings in config.feeds)
        self.started_ns = time.time_ns()
        self.feed_errors: Counter[str] = Counter()
        self._feeds_running = len(self.feeds)

    def _bridges(self) -> list[Bridge]:
        bridges: list[Bridge] = []
        cfg = self.config
        if cfg.mqtt is not None:
            from hedger.runtime.bridges.mqtt import MqttBridge  # noqa: PLC0415 (only when configured)

            bridges.append(
                MqttBridge(
                    cfg.mqtt.url,
                    root=cfg.root,
                    qos=cfg.mqtt.qos,
                    username=cfg.mqtt.username,
                    password=cfg.mqtt.password,
                    tls=cfg.mqtt.tls,
                    client_id=cfg.mqtt.client_id,
                    outbox_capacity=cfg.outbox,
                    logger=self.log,
                    keepalive=cfg.mqtt.keepalive,
                )
            )
        if cfg.websocket is not None:
            from hedger.runtime.bridges.ws import WebSocketBridge  # noqa: PLC0415 (only when configured)

            bridges.append(
                WebSocketBridge(
                    cfg.websocket.host,
                    cfg.websocket.port,
                    token=cfg.websocket.token,
                    client_queue=cfg.websocket.client_queue,
                    outbox_capacity=cfg.outbox,
                    metrics_provider=self.metrics,
                    logger=self.log,
                )
            )
        return bridges

    def metrics(self) -> dict[str, float]:
        """Counters: ticks, bars, updates, events, rejects by reason, queues, bridges'."""
        stats = self.pipeline.stats
        values: dict[str, float] = {
            "uptime_seconds": (time.time_ns() - self.started_ns) / 1e9,
            "ticks_in": stats.ticks_in,
            "bars": self.pipeline.bars.bars_closed,
            "updates": sum(actor.seq for actor in self.pipeline.actors),
            "events_published": stats.events,
            "tick_queue": self.queue.qsize(),
            "duplicates": self.pipeline.bars.duplicates,
        }
        if self.matrix is not None:
            values["matrix_bars"] = self.matrix.seq
        if self.refitter is not None:
            values.update(self.refitter.metrics())
        for reason, count in self.rejects.counts.items():
            values[f"rejected_{reason}"] = count
        for feed in self.feeds:
            for reason, count in feed.rejects.counts.items():
                values[f"rejected_{reason}"] = values.get(f"rejected_{reason}", 0) + count
            values["feed_reconnects"] = values.get("feed_reconnects", 0) + getattr(
                feed, "reconnects", 0
            )
        for bridge in self.bridges:
            for key, value in bridge.metrics().items():
                values[f"{bridge.name}_{key}"] = value
        return values

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down in order."""
        if not self.bridges and not self.bus.subscribers:
            self.log.warning("no transport configured: events are computed but go nowhere")
        self.log.info(
            "starting",
            pairs=[str(spec.pair) for spec in self.config.pipeline.pairs],
            matrix=list(self.matrix.symbols) if self.matrix is not None else None,
            feeds=[settings.kind for settings in self.config.feeds],
            bridges=[bridge.name for bridge in self.bridges],
            clock="wall" if self.wall_clock else "data",
        )
        async with asyncio.TaskGroup() as group:
            bridge_tasks = [
                group.create_task(bridge.run(), name=f"bridge-{bridge.name}")
                for bridge in self.bridges
            ]
            core = group.create_task(self._core(), name="core")
            feed_tasks = [
                group.create_task(self._feed(i), name=f"feed-{i}") for i in range(len(self.feeds))
            ]
            side = [group.create_task(self._metrics(), name="metrics")]
            if self.refitter is not None:
                side.append(group.create_task(self.refitter.run(), name="refit"))
            if self.wall_clock:
                side.append(group.create_task(self._clock(), name="clock"))
            self.state = State.RUNNING
            await stop.wait()
            self.state = State.STOPPING
            self.log.info("stopping")
            for task in feed_tasks + side:
                task.cancel()
            await self.queue.put(_STOP)
            await core
            self.bus.publish_metrics(self.metrics())
            deadline = self.config.shutdown_timeout_s
            drained = await asyncio.gather(*(b.drain(deadline) for b in self.bridges))
            for bridge, ok in zip(self.bridges, drained, strict=True):
                if not ok:
                    self.log.warning(
                        "undelivered at shutdown", bridge=bridge.name, left=len(bridge.outbox)
                    )
            for task in bridge_tasks:
                task.cancel()
        for bridge in self.bridges:
            close = getattr(bridge, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(close(), timeout=self.config.shutdown_timeout_s)
        self.state = State.STOPPED
        self.log.info(
            "stopped", **{k: v for k, v in self.metrics().items() if k != "uptime_seconds"}
        )

    async def _feed(self, index: int) -> None:
        feed = self.feeds[index]
        kind = self.config.feeds[index].kind
        put = self.queue.put
        try:
            async with feed:
                async for tick in feed:
                    await put(tick)
            self.log.info("feed ended", feed=kind)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.feed_errors[kind] += 1
            self.log.error("feed failed", feed=kind, error=repr(exc))
        self._feeds_running -= 1
        if not self.wall_clock and self._feeds_running == 0:
            await put(_Clock(-1))  # recorded data ended: close its last bar

    async def _core(self) -> None:
        get = self.queue.get
        on_tick = self.pipeline.on_tick
        bars = self.pipeline.bars
        while True:
            item = await get()
            if isinstance(item, Tick):
                on_tick(item)
            elif isinstance(item, _Clock):
                if item.ts < 0:
                    self.pipeline.flush()  # recorded data ended: close its last bar
                else:
                    bars.close_until(item.ts)
            elif item is _STOP:
                self.pipeline.flush()
                return

    async def _clock(self) -> None:
        bar_ns = self.config.pipeline.bars.length_ns
        grace = self.config.bar_grace_ns
        while True:
            now = time.time_ns()
            next_close = (now - grace) // bar_ns * bar_ns + bar_ns + grace
            await asyncio.sleep(max(0.0, (next_close - now) / 1e9))
            await self.queue.put(_Clock(time.time_ns() - grace))

    async def _metrics(self) -> None:
        while True:
            await asyncio.sleep(self.config.metrics_interval_s)
            self.bus.publish_metrics(self.metrics())
