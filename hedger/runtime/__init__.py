"""Who runs the pipeline: the asyncio daemon (feeds, clock, bridges, background refits) and the
replay of recorded files."""
