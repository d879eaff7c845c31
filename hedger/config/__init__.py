"""Settings: TOML parsed and validated into frozen values (the pipeline's, the daemon's). Every
error names its key; nothing here imports the runtime."""
