"""Who runs the pipeline: the asyncio daemon (feeds, clock, bridges, background refits) and the
replay of recorded files."""

from hedger.runtime.daemon import Daemon
from hedger.runtime.replay import ReplaySummary, replay

__all__ = ["Daemon", "ReplaySummary", "replay"]
