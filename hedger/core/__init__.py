"""The deterministic, synchronous path that replay and the daemon share: ticks and rejects, the
bar rule (and its compiled twin), the pair actors, the pipeline (the one entry point), events,
topics and the in-process bus. Nothing here does I/O or reads a clock."""
