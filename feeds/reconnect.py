"""Reconnect delays shared by every transport that reconnects (websocket feeds, the MQTT tick
feed, the subscriber, the MQTT bridge)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: ``initial * factor**attempt`` capped at ``maximum`` seconds, each
    scaled by a random factor in [1 - jitter, 1] so that many clients do not reconnect in
    step."""

    initial: float = 0.1
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The delay before reconnect number ``attempt`` (0-based), in seconds."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return base * (1.0 - self.jitter * rng.random())
