"""A running daemon: feeds -> one bounded tick queue -> the pipeline -> the bus -> bridges.

Everything after the tick queue runs in one task, in one order (the same core as a replay);
feeds and bridges each run in their own tasks, so a slow consumer never blocks the feeds. The
bar clock is the wall clock for live feeds and the data itself for recorded files, exactly as
in a replay.

Start-up: bridges that listen (the WebSocket server) are bound before anything else starts,
so a port in use ends the run at once with a :class:`~hedger.errors.TransportError`.

Shutdown (SIGTERM or SIGINT request it): the feeds stop, the ticks already queued are
processed, the open bar is closed and its events published, the bridges drain and close, and
the MQTT bridge publishes ``offline`` before it disconnects; all of it against one deadline,
:data:`SHUTDOWN_SHARE` of ``shutdown_timeout`` on the clock. A task that ignores its cancel
(a client library mid-connect) is logged and left behind rather than waited for. A bridge
task or the core that ends while running ends the run the same way, and its error is raised.

With ``[state]`` (:mod:`hedger.runtime.state`) the core journals every input it takes and
commits the journal before it waits for the next one (the only moment its output can leave),
checkpoints after bar closes once what came before went out, and at start resumes from the
last checkpoint and the journal after it, then catches up on the backlog its broker held on
event time before the clock closes bars again.

Time comes only from the injected :class:`~hedger.runtime.clock.Clock`: its wall time closes
bars (after ``bar_grace``, so that a tick a little late still lands in its bar: the bar
builder is ``clocked``, a tick of the next bar does not close the current one), its monotonic
time paces the metrics and measures uptime and the shutdown timeout. Tests pass a
:class:`~hedger.runtime.clock.TestClock` and advance it.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from feeds.protocol import Feed
from feeds.reconnect import Backoff
from hedger.config.daemon import DaemonConfig
from hedger.config.state import StateSettings
from hedger.core.bus import Bridge, Bus, Message
from hedger.core.failures import Failures
from hedger.core.lifecycle import Lifecycle, State
from hedger.core.matrix_actor import MatrixActor
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick
from hedger.errors import ConfigError
from hedger.runtime.clock import Clock, LiveClock
from hedger.runtime.control import Controller, ControlRequest, Reply
from hedger.runtime.feeds import build_feed
from hedger.runtime.refit import Refitter
from hedger.runtime.state.journal import Clocked, Close, Flush, Input, JournalError
from hedger.runtime.state.keeper import Resumed, StateKeeper


def _live(config: DaemonConfig) -> bool:
    """Whether a feed is live (not a recorded file): then the wall clock closes bars."""
    return any(settings.kind != "file" for settings in config.feeds)


class _BarTime:
    """A bar-clock reading in the tick queue: close bars whose end is at or before ``ts``."""

    __slots__ = ("ts",)

    def __init__(self, ts: int) -> None:
        self.ts = ts


class _Acked:
    """A tick of a feed that acknowledges to its source only once the tick is durable
    (journalled): the core tells the feed after each commit."""

    __slots__ = ("feed", "tick")

    def __init__(self, tick: Tick, feed: Any) -> None:
        self.tick = tick
        self.feed = feed


class _Control:
    """A checked control request in the tick queue, applied by the core between two items."""

    __slots__ = ("reply", "request")

    def __init__(self, request: ControlRequest, reply: Reply) -> None:
        self.request = request
        self.reply = reply


_STOP = object()
_FLUSH = Flush()

CAUGHT_UP_QUIET = 3
"""A resumed daemon catching up on its broker's backlog has caught up once this many bar-clock
readings pass with no tick between them (the backlog is in; a quiet market)."""

STALL_INTERVALS = 3
"""A live feed that has delivered no tick for this many metrics intervals is stalled."""

SHUTDOWN_SHARE = 0.7
"""The share of ``shutdown_timeout`` the daemon's own shutdown (queued ticks, the open bar,
draining, closing the bridges) may take; the rest is left to the process (the CLI ends what
is left behind, then exits), so that the whole exit fits in ``shutdown_timeout``."""

FEED_BACKOFF = Backoff(initial=0.5, maximum=30.0)
"""The delays before a live feed that failed or ended is started again (on the clock)."""


def _known_pairs_of(fanout: Any) -> Callable[[tuple[str, ...]], None]:
    """Keeps a WebSocket fan-out's known pairs (what a subscribe may name) the running ones."""

    def update(ids: tuple[str, ...]) -> None:
        fanout.known = frozenset(ids)

    return update


class Daemon(Lifecycle):
    """One daemon's components and counters, with the lifecycle feeds and bridges have
    (:class:`~hedger.core.lifecycle.State` in :attr:`state`).

    Two ways to run it: ``async with Daemon(...) as daemon:`` (it runs in a task of its own
    from entry, once ``RUNNING``, until the block ends or :meth:`close`, which drains and
    stops it), or ``await daemon.run(stop)`` until the event ``stop`` is set (the CLI, with
    the signal handlers setting it).

    ``clock``: where all time comes from (the host's, :class:`LiveClock`, if None).
    ``feeds``: feeds to run instead of those the configuration builds, one per configured
    feed and of its kind (which still names it and picks the bar clock): for tests and
    programs that embed the daemon. A live feed that fails or ends is started again after a
    :data:`FEED_BACKOFF` delay: a configured one is built again, a given one entered again.

    Health: a live feed is down while it has failed or ended (until restarted), while its
    connection is being retried (``DEGRADED``), or once stalled (no tick for
    :data:`STALL_INTERVALS` metrics intervals). The retained status is ``online``, or
    ``degraded: <names>`` naming the feeds down (and bridges that cannot serve); metrics carry
    ``feed_up_<name>`` (1 or 0) and ``feed_errors_<name>`` (failures and ends), feeds named
    by kind (``kind-i`` when a kind repeats).
    """

    def __init__(
        self,
        config: DaemonConfig,
        logger: Any,
        *,
        clock: Clock | None = None,
        feeds: Sequence[Feed] | None = None,
    ) -> None:
        super().__init__()
        self._stop = asyncio.Event()
        self._running = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self.config = config
        self.log = logger
        self.clock = clock if clock is not None else LiveClock()
        self.rejects = Rejects(logger)
        self.failures = Failures(logger)
        self._now = 0
        """The clock's time when the core took its current input (ns)."""
        self._catching_up = False
        self._quiet_bar_times = 0
        self.bus = Bus(
            root=config.root,
            failures=self.failures,
            per_pair=config.per_pair,
            bar_message=config.bar_message,
        )
        self.bridges: list[Bridge] = []
        for bridge in self._bridges():
            self.add_bridge(bridge)
        bars = config.pipeline.bars
        self.pipeline = Pipeline(
            config.pipeline.pairs,
            bars.length_ns,
            bars.max_age_ns,
            self.bus.publish,
            self.rejects,
            price_source=bars.source,
            symbols=config.matrix.symbols if config.matrix is not None else (),
            positive_symbols=(
                config.matrix.symbols
                if config.matrix is not None and config.matrix.params.mode.logarithmic
                else ()
            ),
            failures=self.failures,
            max_skew_ns=bars.max_skew_ns,
            # recorded files run on the data's clock, as a replay: ts_init is the bar's close;
            # live, the time the core took the input that closed the bar (journalled with it)
            clock=self._core_now if _live(config) else None,
            emit_bar=self.bus.publish_bar,
        )
        self.matrix: MatrixActor | None = None
        if config.matrix is not None:
            self.matrix = MatrixActor(
                config.matrix.symbols,
                config.matrix.params,
                bars.max_age_ns,
                self.bus.publish_matrix,
            )
            self.pipeline.bar_listeners.append(("matrix", self.matrix.handle_bar))
        self.refitter: Refitter | None = None
        if config.refit is not None:
            self.refitter = Refitter(config.refit, logger)
            self.refitter.attach(self.pipeline.actors)
        self.queue: asyncio.Queue[Tick | _BarTime | object] = asyncio.Queue(config.tick_queue)
        self.control = self._control()
        self.keeper: StateKeeper | None = None
        self.resumed: Resumed | None = None
        if config.state is not None:
            self.keeper = self._keeper(config.state)
            self._serve_replays()
        given = feeds is not None
        if feeds is None:
            feeds = [build_feed(settings, logger, self.clock) for settings in config.feeds]
        elif len(feeds) != len(config.feeds):
            raise ValueError(f"{len(feeds)} feeds given for {len(config.feeds)} configured")
        self.feeds = list(feeds)
        self._given_feeds = given
        kinds = [settings.kind for settings in config.feeds]
        self.feed_names = [
            kind if kinds.count(kind) == 1 else f"{kind}-{i}" for i, kind in enumerate(kinds)
        ]
        self.wall_clock = _live(config)
        self.pipeline.bars.clocked = self.wall_clock
        self._started_mono_ns = self.clock.monotonic_ns()
        self.feed_errors: Counter[str] = Counter()
        """Failures and ends of each live feed (by name); a recorded file's end is not one."""
        self._feed_live = [True] * len(self.feeds)
        """Whether each feed is serving: not failed or ended, and a restarted one has ticked."""
        self._last_tick_mono = [self._started_mono_ns] * len(self.feeds)
        self._finished: set[int] = set()
        """Feeds of recorded data that ended cleanly (not down: their data is all in)."""
        self._status: str | None = None
        self._rng = random.Random(0)
        self._feeds_running = len(self.feeds)

    def _core_now(self) -> int:
        return self._now

    def _keeper(self, settings: StateSettings) -> StateKeeper:
        """Checkpoints and journals ([state]); the retained pair states go to MQTT only."""
        from hedger.runtime.bridges.mqtt import MqttBridge  # noqa: PLC0415 (only when configured)

        mqtt = [bridge for bridge in self.bridges if isinstance(bridge, MqttBridge)]

        def publish_state(message: Message) -> None:
            for bridge in mqtt:
                bridge.outbox.put(message)

        bars = self.config.pipeline.bars
        try:
            return self._new_keeper(settings, bars, publish_state)
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise ConfigError("state.dir", f"{settings.dir!r} cannot be used: {why}") from None
        except JournalError as exc:
            raise ConfigError("state.dir", str(exc)) from None

    def _new_keeper(
        self, settings: StateSettings, bars: Any, publish_state: Callable[[Message], None]
    ) -> StateKeeper:
        return StateKeeper(
            settings,
            self.pipeline,
            self.bus,
            self.log,
            time_ns=self.clock.time_ns,
            monotonic_ns=self.clock.monotonic_ns,
            settings_key={
                "bar_ns": bars.length_ns,
                "max_age_ns": bars.max_age_ns,
                "max_skew_ns": bars.max_skew_ns,
                "source": bars.source.value,
                "clock": "wall" if _live(self.config) else "data",
            },
            root=self.config.root,
            publish_state=publish_state,
        )

    def _serve_replays(self) -> None:
        """Gap fill: the bridges answer replay requests from the event journal."""
        journal = self.keeper.events if self.keeper is not None else None
        if journal is None:
            return
        from hedger.runtime.bridges.mqtt import MqttBridge  # noqa: PLC0415 (only when configured)
        from hedger.runtime.bridges.ws import WebSocketBridge  # noqa: PLC0415

        for bridge in self.bridges:
            if isinstance(bridge, WebSocketBridge):
                bridge.core.replay = journal.lookup
                bridge.core.replay_oldest = journal.oldest_seq
            elif isinstance(bridge, MqttBridge):
                bridge.replay = journal.lookup
                bridge.replay_oldest = journal.oldest_seq

    def _take(self, record: Input, now: int) -> None:
        """The core takes one input at ``now`` (live, or replayed from the journal)."""
        self._now = now
        if isinstance(record, Tick):
            self.pipeline.on_tick(record)
        elif isinstance(record, Close):
            self.pipeline.bars.close_until(record.ts)
        elif isinstance(record, Clocked):
            self.pipeline.bars.set_clocked(record.on)
        else:
            self.pipeline.flush()

    def _resume(self) -> None:
        """Before going live: resume from the state directory (a checkpoint, then the journal
        after it); a pair whose saved state did not fit starts cold, on a new actor, which
        the refitter watches too."""
        if self.keeper is None:
            return
        self.resumed = resumed = self.keeper.resume(self._take)
        if self.refitter is not None:
            cold = [a for a in self.pipeline.actors if a.pair_id in resumed.fresh]
            self.refitter.attach([a for a in cold if a.bar_listener is None])
        if self.wall_clock and (resumed.checkpoint is not None or resumed.replayed):
            self._catch_up(True, self.clock.time_ns())

    def _catch_up(self, on: bool, now: int) -> None:
        """Start (``on``) or end the catch-up of a resumed daemon on the wall clock: the
        ticks its broker held while it was down close their bars on event time (as a
        replay) until it has caught up (a tick of the clock's current bar, or a whole bar
        with no tick), then the clock closes bars again. Journalled, as every input."""
        self._catching_up = on
        self._quiet_bar_times = 0
        record = Clocked(not on)
        if self.keeper is not None:
            self.keeper.journal(record, now)
        self._take(record, now)
        self.log.info("catching up" if on else "caught up", bars=self.pipeline.bars_closed)

    def _delivered(self) -> bool:
        """Whether every bridge has delivered everything published (its outbox is empty):
        a checkpoint then covers only events that went out."""
        return all(not len(bridge.outbox) for bridge in self.bridges)

    def _checkpoint_now(self, durable: Counter[Any]) -> None:
        """A due checkpoint, once the bridges delivered what the bars before it published
        (a crash then loses no event: the journal after it publishes the rest again); one
        overdue ten times over is taken anyway, what is undelivered logged."""
        keeper = self.keeper
        assert keeper is not None
        if not self._delivered():
            if not keeper.checkpoint_overdue():
                return
            waiting = {bridge.name: len(bridge.outbox) for bridge in self.bridges}
            self.log.warning("checkpoint with events undelivered", undelivered=waiting)
        self._commit(durable)
        keeper.checkpoint()

    def add_bridge(self, bridge: Bridge) -> None:
        """Run ``bridge`` with the daemon (before :meth:`run`): it gets every message from now
        on and is drained and closed at shutdown."""
        self.bridges.append(bridge)
        self.bus.attach(bridge)

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
                    ca_file=cfg.mqtt.ca_file,
                    cert_file=cfg.mqtt.cert_file,
                    key_file=cfg.mqtt.key_file,
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
                    pairs=[str(spec.pair) for spec in cfg.pipeline.pairs],
                    max_clients=cfg.websocket.max_clients,
                    max_pairs_per_client=cfg.websocket.max_pairs_per_client,
                    outbox_capacity=cfg.outbox,
                    metrics_provider=self.metrics,
                    logger=self.log,
                )
            )
        return bridges

    def _control(self) -> Controller:
        """The control channel (:mod:`hedger.runtime.control`): held bars for warm starts,
        requests from the WebSocket server (with a token) and the MQTT control topic (with
        ``[control]``), applied on the core task."""
        settings = self.config.control
        self.pipeline.keep_history(settings.history_bars)
        control = Controller(
            self.pipeline,
            self.bus,
            settings,
            self.rejects,
            self.log,
            refitter=self.refitter,
        )
        control.enqueue = self._enqueue_control
        transports = []
        if self.config.websocket is not None:
            from hedger.runtime.bridges.ws import WebSocketBridge  # noqa: PLC0415 (only when configured)

            for bridge in self.bridges:
                if isinstance(bridge, WebSocketBridge):
                    bridge.core.control = control.hook("websocket")
                    control.on_pairs.append(_known_pairs_of(bridge.core))
                    if self.config.websocket.token is not None:
                        transports.append("websocket")
        if self.config.mqtt is not None and settings.mqtt:
            from hedger.runtime.bridges.mqtt import MqttBridge  # noqa: PLC0415 (only when configured)

            for bridge in self.bridges:
                if isinstance(bridge, MqttBridge):
                    bridge.control = control.hook("mqtt", token=settings.token)
                    transports.append("mqtt")
        if settings.mqtt and settings.token is None and "mqtt" in transports:
            self.log.warning(
                "MQTT control without [control] token: the broker's ACL alone decides who may "
                "change pairs (see deploy/mosquitto-control.acl)"
            )
        self.log.info(
            "control",
            transports=transports if settings.enabled else [],
            history_bars=settings.history_bars,
        )
        return control

    def _enqueue_control(self, request: ControlRequest, reply: Reply) -> bool:
        if super().state is not State.RUNNING:
            return False
        try:
            self.queue.put_nowait(_Control(request, reply))
        except asyncio.QueueFull:
            return False
        return True

    def metrics(self) -> dict[str, float]:
        """Counters: ticks, bars, updates, events, rejects by reason, contained failures by
        pair (``actor_errors_<pair>``, their sum ``actor_errors``), alarms raised and pairs
        with an active alarm, queues, bridges'."""
        stats = self.pipeline.stats
        values: dict[str, float] = {
            "uptime_seconds": (self.clock.monotonic_ns() - self._started_mono_ns) / 1e9,
            "ticks_in": stats.ticks_in,
            "bars": self.pipeline.bars_closed,
            "updates": self.pipeline.updates,
            "events_published": stats.events,
            "tick_queue": self.queue.qsize(),
            "duplicates": self.pipeline.duplicates,
            "actor_errors": self.failures.total,
            "alarms_raised": stats.alarms_raised,
            "alarms_active": sum(bool(actor.active_alarms) for actor in self.pipeline.actors),
        }
        for key, count in sorted(stats.actor_errors.items()):
            values[f"actor_errors_{key}"] = count
        if self.matrix is not None:
            values["matrix_bars"] = self.matrix.seq
        if self.refitter is not None:
            values.update(self.refitter.metrics())
        if self.keeper is not None:
            values.update(self.keeper.metrics())
        values.update(self.control.metrics())
        for reason, count in self.rejects.counts.items():
            values[f"rejected_{reason}"] = count
        for i, name in enumerate(self.feed_names):
            values[f"feed_up_{name}"] = 1 if self.feed_up(i) else 0
            values[f"feed_errors_{name}"] = self.feed_errors[name]
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
            **({"shard": str(self.config.shard)} if self.config.shard is not None else {}),
        )
        # what listens is bound first: a port in use ends the run before anything started
        for bridge in self.bridges:
            begin = getattr(bridge, "start", None)
            if begin is not None and inspect.iscoroutinefunction(begin):
                await begin()
        self._resume()
        tasks: list[asyncio.Task[Any]] = []

        def spawn(work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
            task = asyncio.create_task(work, name=name)
            tasks.append(task)
            return task

        bridge_tasks = [spawn(bridge.run(), f"bridge-{bridge.name}") for bridge in self.bridges]
        core = spawn(self._core(), "core")
        feed_tasks = [spawn(self._feed(i), f"feed-{i}") for i in range(len(self.feeds))]
        side = [spawn(self._metrics(), "metrics")]
        if self.refitter is not None:
            side.append(spawn(self.refitter.run(), "refit"))
        if self.wall_clock:
            side.append(spawn(self._close_bars(), "bar-clock"))
        self._set_state(State.RUNNING)
        self._running.set()
        # an alarm a previous run left retained (it crashed, or stopped with one active) was
        # raised by a detector that is gone: this run's detectors raise their own
        for actor in self.pipeline.actors:
            if not actor.active_alarms:  # a resumed pair's active alarm is still its own
                self.bus.clear_retained("alarm", actor.pair_id)
        self._publish_status()
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([stopping, core, *bridge_tasks], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        ended = [t for t in (core, *bridge_tasks) if t.done() and not t.cancelled()]
        failure = next((e for t in ended if (e := t.exception()) is not None), None)
        if ended and failure is None:
            failure = RuntimeError(f"{ended[0].get_name()} ended on its own")
        self._set_state(State.STOPPING)
        self.log.info("stopping", **({"error": str(failure)} if failure else {}))
        self.control.log_forgotten()
        # one deadline for the whole shutdown, on the clock: nothing waits past it
        budget_s = self.config.shutdown_timeout_s * SHUTDOWN_SHARE
        deadline = self.clock.monotonic_ns() + round(budget_s * 1e9)
        for task in feed_tasks + side:
            task.cancel()
        if failure is None:
            await self._within(deadline, self._finish_core(core))
            self.bus.publish_metrics(self.metrics())
            await self._drain(deadline)
            if self.keeper is not None and core.done() and not core.cancelled():
                if self._delivered():
                    self.keeper.checkpoint()  # the next start resumes here, replaying nothing
                else:  # the next start replays the journal since the last one, publishing
                    self.log.warning("no checkpoint at shutdown: events undelivered")
        for task in bridge_tasks:
            task.cancel()
        await self._close_bridges(deadline)
        if self.keeper is not None:
            self.keeper.close()
        stuck = [t.get_name() for t in tasks if not t.done()]
        if stuck:
            await self._within(deadline, asyncio.wait(tasks))
            stuck = [t.get_name() for t in tasks if not t.done()]
        if stuck:  # left behind: a task that ignores cancelling must not hold the exit
            self.log.warning("stuck at shutdown", tasks=stuck)
        self._set_state(State.STOPPED)
        self.log.info(
            "stopped",
            shutdown_s=round((self.clock.monotonic_ns() - deadline) / 1e9 + budget_s, 3),
            **{k: v for k, v in self.metrics().items() if k != "uptime_seconds"},
        )
        if failure is not None:
            raise failure

    def _left_s(self, deadline: int) -> float:
        return max(0.0, (deadline - self.clock.monotonic_ns()) / 1e9)

    async def _within(self, deadline: int, work: Awaitable[Any]) -> tuple[bool, Any]:
        """Await ``work`` until ``deadline`` (monotonic ns on the clock), else cancel it."""
        return await self.clock.within(self._left_s(deadline), work)

    async def _finish_core(self, core: asyncio.Task[None]) -> None:
        """The ticks already queued are processed and the open bar closed."""
        await self.queue.put(_STOP)
        await core

    def feed_up(self, index: int) -> bool:
        """Whether feed ``index`` is serving: entered and iterating, its connection (if it
        has one) not being retried, and not stalled (a live feed with no tick for
        :data:`STALL_INTERVALS` metrics intervals)."""
        if not self._feed_live[index]:
            return False
        if getattr(self.feeds[index], "state", None) is State.DEGRADED:
            return False
        if self.config.feeds[index].kind == "file":
            return True
        stall_ns = round(STALL_INTERVALS * self.config.metrics_interval_s * 1e9)
        return self.clock.monotonic_ns() - self._last_tick_mono[index] < stall_ns

    def down(self) -> list[str]:
        """The names of the feeds down and of the bridges that cannot serve (while running)."""
        if super().state is not State.RUNNING:
            return []
        names = [
            name
            for i, name in enumerate(self.feed_names)
            if i not in self._finished and not self.feed_up(i)
        ]
        names += [
            bridge.name
            for bridge in self.bridges
            if getattr(bridge, "state", None) is State.DEGRADED
        ]
        return names

    @property
    def state(self) -> State:
        """``DEGRADED`` while running with a feed down (failed, ended, stalled, or its
        connection being retried) or a bridge that cannot serve; otherwise the run's own
        state."""
        state = super().state
        if state is State.RUNNING and self.down():
            return State.DEGRADED
        return state

    def status(self) -> str:
        """The status line: ``online``, or ``degraded: <names>`` (see :meth:`down`)."""
        down = self.down()
        return f"degraded: {', '.join(down)}" if down else "online"

    def _publish_status(self, *, again: bool = False) -> None:
        """Publish the status (retained) if it changed since it was last published, or if it
        is not ``online`` and ``again`` (each metrics interval: a broker that reconnected
        heard the bridge's own ``online``)."""
        if super().state is not State.RUNNING:
            return
        status = self.status()
        if status != self._status or (again and status != "online"):
            self._status = status
            self.bus.publish_status(status)
            level = "info" if status == "online" else "warning"
            getattr(self.log, level)("status", status=status)

    async def _open(self) -> None:
        """Start :meth:`run` in a task; return once its tasks are up (``RUNNING``), or raise
        what ended it before. A failure after that (a port in use, found when a bridge binds)
        ends the run and is raised by :meth:`close`."""
        runner = self._runner = asyncio.create_task(self.run(self._stop), name="daemon")
        running = asyncio.create_task(self._running.wait())
        await asyncio.wait({runner, running}, return_when=asyncio.FIRST_COMPLETED)
        running.cancel()
        if runner.done():
            runner.result()

    async def close(self) -> None:
        """Stop (feeds, queue, open bar, drain, bridges) and wait until ``STOPPED``; raises
        what ended the run if it failed. Idempotent."""
        self._stop.set()
        if self._runner is not None:
            await asyncio.shield(self._runner)

    async def _drain(self, deadline: int) -> None:
        """Let the bridges deliver what is waiting, until ``deadline`` (monotonic ns)."""
        timeout = self._left_s(deadline)
        drains = asyncio.gather(*(bridge.drain(timeout) for bridge in self.bridges))
        in_time, drained = await self._within(deadline, drains)
        for i, bridge in enumerate(self.bridges):
            if not (in_time and drained is not None and drained[i]):
                # what is still queued anywhere in the bridge (a WebSocket bridge's client
                # queues too), not only its outbox
                left = bridge.metrics().get("queued", len(bridge.outbox))
                self.log.warning("undelivered at shutdown", bridge=bridge.name, left=int(left))

    async def _close_bridges(self, deadline: int) -> None:
        for bridge in self.bridges:
            close = getattr(bridge, "close", None)
            if close is None:
                continue
            try:
                closed, _ = await self._within(deadline, close())
            except Exception as exc:
                self.log.warning("bridge close failed", bridge=bridge.name, error=repr(exc))
                continue
            if not closed:
                self.log.warning("bridge not closed by the shutdown deadline", bridge=bridge.name)

    async def _feed(self, index: int) -> None:
        """Run feed ``index`` into the tick queue. A live feed that fails or ends is started
        again after a backoff delay on the clock (reset once a run has delivered a tick);
        recorded data that ends closes its last bar once every feed has ended."""
        name = self.feed_names[index]
        live = self.config.feeds[index].kind != "file"
        put = self.queue.put
        failures = 0
        while True:
            feed = self.feeds[index]
            ticks = 0
            try:
                async with feed:
                    # a first run is up once entered, a restarted one once it delivers
                    self._feed_live[index] = not failures
                    self._last_tick_mono[index] = self.clock.monotonic_ns()
                    acked = getattr(feed, "acknowledges", False)
                    async for tick in feed:
                        if not ticks:
                            self._feed_live[index] = True
                            self._publish_status()
                        ticks += 1
                        self._last_tick_mono[index] = self.clock.monotonic_ns()
                        await put(_Acked(tick, feed) if acked else tick)
                getattr(self.log, "warning" if live else "info")("feed ended", feed=name)
            except asyncio.CancelledError:
                self._feed_live[index] = False
                raise
            except Exception as exc:
                self.feed_errors[name] += 1
                self.log.error("feed failed", feed=name, error=repr(exc))
            else:
                if live:
                    self.feed_errors[name] += 1
                else:
                    self._finished.add(index)
            self._feed_live[index] = False
            if not live:
                break
            self._publish_status()
            failures = 0 if ticks else failures
            delay = FEED_BACKOFF.delay(failures, self._rng)
            failures += 1
            self.log.info("feed restarting", feed=name, delay_s=round(delay, 3))
            await self.clock.sleep_s(delay)
            if not self._given_feeds:
                self.feeds[index] = build_feed(self.config.feeds[index], self.log, self.clock)
        self._feeds_running -= 1
        if not self.wall_clock and self._feeds_running == 0:
            await put(_BarTime(-1))  # recorded data ended: close its last bar

    async def _core(self) -> None:
        """Take the queue's items in order. With [state], every input is journalled, and
        the journals are committed before the core waits for the next item (the only moment
        its output can leave: the bridges run while it waits), then the feeds that wait for
        it are told their ticks are durable."""
        queue = self.queue
        clock = self.clock
        take = self._take
        keeper = self.keeper
        journal = keeper.journal if keeper is not None else None
        bars = self.pipeline.bars
        bar_ns, grace = bars.bar_ns, self.config.bar_grace_ns
        durable: Counter[Any] = Counter()
        while True:
            if queue.empty():
                self._commit(durable)
            item = await queue.get()
            now = clock.time_ns()
            record: Input
            if isinstance(item, Tick | _Acked):
                tick = item if isinstance(item, Tick) else item.tick
                if isinstance(item, _Acked):
                    durable[item.feed] += 1
                if keeper is not None and keeper.redelivered_tick(tick):
                    continue
                if self._catching_up:
                    self._quiet_bar_times = 0
                    if tick.ts_event // bar_ns >= (now - grace) // bar_ns:
                        self._catch_up(False, now)  # a tick of the clock's bar: caught up
                if journal is not None:
                    journal(tick, now)
                closed = bars.bars_closed
                take(tick, now)
                if keeper is not None and bars.bars_closed != closed and keeper.checkpoint_due():
                    self._checkpoint_now(durable)  # bars closing on event time (catch-up)
                continue
            if isinstance(item, _Control):
                self._now = now
                self.control.apply(item.request, item.reply)
                continue
            if isinstance(item, _BarTime):
                if self._catching_up and item.ts >= 0:
                    self._quiet_bar_times += 1
                    if self._quiet_bar_times < CAUGHT_UP_QUIET:
                        continue  # the backlog's bars close on its ticks
                    self._catch_up(False, now)
                # recorded data that ended closes its last bar
                record = _FLUSH if item.ts < 0 else Close(item.ts)
            elif item is _STOP:
                record = _FLUSH
            else:
                continue
            if keeper is not None and item is not _STOP and keeper.checkpoint_due():
                self._checkpoint_now(durable)  # before the close: the last bar went out
            if journal is not None:
                journal(record, now)
            take(record, now)
            if item is _STOP:
                self._commit(durable)
                return

    def _commit(self, durable: Counter[Any]) -> None:
        """Commit the journals, then acknowledge the ticks they now hold to their feeds."""
        if self.keeper is not None:
            self.keeper.commit()
        for feed, count in durable.items():
            feed.durable(count)
        durable.clear()

    async def _close_bars(self) -> None:
        """Live feeds: close each bar ``bar_grace`` after its end on the wall clock."""
        bar_ns = self.config.pipeline.bars.length_ns
        grace = self.config.bar_grace_ns
        clock = self.clock
        await self.queue.put(_BarTime(clock.time_ns() - grace))  # the clock's open bar
        while True:
            next_close = (clock.time_ns() - grace) // bar_ns * bar_ns + bar_ns + grace
            await clock.sleep_until_ns(next_close)
            await self.queue.put(_BarTime(clock.time_ns() - grace))

    async def _metrics(self) -> None:
        interval_ns = round(self.config.metrics_interval_s * 1e9)
        while True:
            await self.clock.sleep_ns(interval_ns)
            self._publish_status(again=True)
            self.bus.publish_metrics(self.metrics())
