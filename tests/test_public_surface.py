"""The public surface: every name a package exports in ``__all__`` is there, and the feeds
package loads a transport's client only when that transport is asked for."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = [
    "hedger",
    "hedger.engine",
    "hedger.core",
    "hedger.config",
    "hedger.runtime",
    "hedger.research",
    "hedger.cli",
    "feeds",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_resolves(name: str) -> None:
    package = importlib.import_module(name)
    assert package.__all__, name
    for export in package.__all__:
        assert getattr(package, export) is not None, f"{name}.{export}"


def test_reading_files_does_not_load_the_network_clients() -> None:
    code = (
        "import sys; from feeds import read_ticks; "
        "print(sorted(m for m in ('aiomqtt', 'websockets') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
