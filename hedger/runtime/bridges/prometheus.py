"""The ``/metrics`` page: the daemon's and a bridge's counters as Prometheus text, through
``prometheus_client``.

Counters (ever-growing counts: ticks, events, rejects, drops, reconnects) are typed
``counter`` and exposed as ``<name>_total``, as Prometheus names counters; levels (queue
lengths, clients connected, uptime, ``connected`` 0 or 1) are typed ``gauge``. Keys are named
``hedger_<key>`` with any character Prometheus does not allow replaced by ``_``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The text format :func:`render` writes."""

Kind = Literal["counter", "gauge"]

GAUGES = frozenset(
    {
        "uptime_seconds", "tick_queue", "queued", "inflight", "connected", "clients",
        "refit_pairs", "alarms_active",
    }
)  # fmt: skip
"""Metric keys (or the last part of a key after a bridge's name, ``mqtt_queued``) that are
levels, not counts."""

_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_:]")
_COUNTER_SUFFIX = "_total"


def metric_name(key: str, prefix: str = "hedger_") -> str:
    """A Prometheus metric name for a counter key: invalid characters become ``_`` and the
    prefix is added unless already there."""
    name = _INVALID_NAME_CHARS.sub("_", key)
    if not name.startswith(prefix):
        name = prefix + name
    return name


def metric_kind(key: str) -> Kind:
    """``gauge`` for the keys in :data:`GAUGES` (alone or after a bridge's name), else
    ``counter``."""
    if key in GAUGES or any(key.endswith("_" + gauge) for gauge in GAUGES):
        return "gauge"
    return "counter"


class CountersCollector(Collector):
    """A collector over counter dicts read at every scrape.

    ``described``: ``(name, kind, help, value)`` samples from the bridge itself, emitted
    first. ``counters``: more keys and values (the daemon's metrics), named by
    :func:`metric_name` and typed by :func:`metric_kind`; a name already emitted keeps its
    first value, and non-numbers are skipped.
    """

    def __init__(
        self,
        described: Callable[[], Iterable[tuple[str, Kind, str, float]]],
        counters: Callable[[], Mapping[str, float]] | None = None,
    ) -> None:
        self._described = described
        self._counters = counters

    def collect(self) -> Iterable[Metric]:
        """The metric families of one scrape."""
        seen: set[str] = set()
        samples = list(self._described())
        for key, value in sorted((self._counters() if self._counters else {}).items()):
            if key and not isinstance(value, bool) and isinstance(value, int | float):
                samples.append((metric_name(key), metric_kind(key), "", float(value)))
        for name, kind, help_text, value in samples:
            base = name.removesuffix(_COUNTER_SUFFIX) if kind == "counter" else name
            if base in seen:
                continue
            seen.add(base)
            text = help_text or f"hedger {base.removeprefix('hedger_')}."
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(base, text, value=value)


def render(collector: Collector) -> str:
    """The Prometheus text page of ``collector``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()
