"""Settings: TOML parsed and validated into frozen values (the pipeline's, the daemon's). Every
error names its key; nothing here imports the runtime. ``schema`` turns a table into a typed
struct (msgspec) and its errors into one line; ``pipeline``, ``daemon``, ``feeds`` and
``refit`` hold the sections; ``edit`` changes a config file in place (``calibrate --write``)."""

from hedger.config.daemon import DaemonConfig, daemon_config
from hedger.config.pipeline import BarSettings, PipelineConfig, load_toml, pipeline_config

__all__ = [
    "BarSettings",
    "DaemonConfig",
    "PipelineConfig",
    "daemon_config",
    "load_toml",
    "pipeline_config",
]
