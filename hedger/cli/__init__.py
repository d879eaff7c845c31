"""The ``hedger`` command: one module per subcommand, :func:`main` the entry point."""

from hedger.cli.main import main

__all__ = ["main"]
