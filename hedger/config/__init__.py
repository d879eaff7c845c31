"""Settings: TOML parsed and validated into frozen values (the pipeline's, the daemon's). Every
error names its key; nothing here imports the runtime. ``schema`` turns a table into a typed
struct (msgspec) and its errors into one line; ``pipeline``, ``daemon``, ``feeds`` and
``refit`` hold the sections; ``edit`` changes a config file in place (``calibrate --write``)."""
