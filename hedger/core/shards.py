"""Which shard runs which pair: rendezvous (highest random weight) hashing of pair ids.

Each pair goes to the shard whose hash of ``(shard, pair id)`` is the highest, so every
daemon computes the same assignment from the pair ids alone (no coordinator), and when the
number of shards changes from N to N + 1 only the pairs the new shard wins move to it (about
1/(N + 1) of them); none moves between the old shards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from hedger.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(
                "shard", f"must be i/N with 0 <= i < N, got {self.index}/{self.count}"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/N"`` (``--shard 0/3``); a :class:`ConfigError` for anything else."""
        index, slash, count = text.strip().partition("/")
        if not slash or not index.isdigit() or not count.isdigit():
            raise ConfigError("shard", f"must be i/N such as 0/3, got {text!r}")
        return cls(int(index), int(count))

    def owns(self, pair_id: str) -> bool:
        """Whether this shard runs ``pair_id``."""
        return shard_of(pair_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _weight(shard: int, pair_id: str) -> int:
    digest = hashlib.blake2b(f"{shard}\x00{pair_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_of(pair_id: str, count: int) -> int:
    """The shard (0..count-1) that runs ``pair_id`` among ``count``."""
    if count < 1:
        raise ConfigError("shard", f"the number of shards must be >= 1, got {count}")
    return max(range(count), key=lambda shard: _weight(shard, pair_id))


def owned(pair_ids: Iterable[str], shard: Shard) -> list[str]:
    """The pair ids of ``pair_ids`` that ``shard`` runs, in their order."""
    return [pair_id for pair_id in pair_ids if shard.owns(pair_id)]
