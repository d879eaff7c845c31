"""A real mosquitto broker for tests, on a free loopback port.

:class:`MosquittoBroker` writes a throwaway config, runs ``mosquitto -c <config>`` as a child
process and waits until its port accepts connections. :meth:`~MosquittoBroker.stop` and
:meth:`~MosquittoBroker.start` take it down and bring it back on the same port (broker
outages); :meth:`~MosquittoBroker.kill` ends it abruptly (SIGKILL), as a crash would. With
persistence on, the database file (:attr:`~MosquittoBroker.persistence_file`) lives in the
broker's own temp directory and outlives stops and kills, so :meth:`~MosquittoBroker.start`
after a kill restores whatever the broker had saved before it died.

By default a test broker has the test settings below (persistence off unless asked for, no
queue or inflight limits). :meth:`MosquittoBroker.shipped` runs one with the options of the
shipped ``deploy/mosquitto.conf`` instead (:func:`shipped_settings`: everything but its
listener, persistence directory and logging), so that a test proves the shipped file.

The ``mosquitto`` fixture gives each test its own broker. Register it with
``pytest_plugins = ["tests.mosquitto"]`` in a test module or the root conftest. When the
mosquitto binary is missing the fixture fails the test (it never skips): the broker is part
of the test environment (``apt-get install mosquitto``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import pytest

INSTALL_HINT = "apt-get install mosquitto"
_SEARCH_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")
SHIPPED_CONF = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto.conf"
_OWN_OPTIONS = frozenset({"listener", "persistence_location", "log_dest", "log_type"})
"""Options a test broker always sets itself: its port, its temp directory, its log."""


class MosquittoNotFoundError(RuntimeError):
    """No mosquitto binary on this machine."""


def find_mosquitto() -> str:
    """The mosquitto binary: ``$MOSQUITTO``, then ``PATH``, then the usual sbin directories
    (``/usr/sbin`` is often not on a non-root user's ``PATH``)."""
    explicit = os.environ.get("MOSQUITTO")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise MosquittoNotFoundError(
                f"$MOSQUITTO={explicit!r} is not an executable; unset it to use the system's "
                f"mosquitto (`{INSTALL_HINT}`)"
            )
        return explicit
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in _SEARCH_PATHS:
        if os.access(candidate, os.X_OK):
            return candidate
    raise MosquittoNotFoundError(
        "the mosquitto MQTT broker is needed by the MQTT tests but is not installed: "
        f"run `{INSTALL_HINT}` (or set $MOSQUITTO to the broker binary)"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def shipped_settings(path: Path = SHIPPED_CONF) -> list[str]:
    """The option lines of the shipped broker config (``deploy/mosquitto.conf``), comments and
    blank lines left out, without the options a test broker sets itself (``listener``,
    ``persistence_location``, ``log_dest``, ``log_type``)."""
    settings = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and line.split()[0] not in _OWN_OPTIONS:
            settings.append(line)
    return settings


class MosquittoBroker:
    """One mosquitto process on ``host:port``; restartable on the same port.

    Args:
        port: the port to listen on (a free one by default).
        binary: the mosquitto executable (found by :func:`find_mosquitto` by default).
        startup_timeout: seconds to wait for the port to accept connections.
        persistence: keep the database in the broker's temp directory (mosquitto's default
            autosave: every 30 minutes, and at a clean stop). Ignored with ``settings``.
        settings: the broker's option lines instead of the test settings (the listener, the
            persistence directory and the logging are still the fixture's own); persistence
            is on when they say ``persistence true``.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str | None = None,
        startup_timeout: float = 10.0,
        persistence: bool = False,
        settings: Sequence[str] | None = None,
    ) -> None:
        self.binary = binary or find_mosquitto()
        self.port = port or free_port(self.host)
        self.startup_timeout = startup_timeout
        self.settings = None if settings is None else list(settings)
        if self.settings is not None:
            persistence = any(line.split() == ["persistence", "true"] for line in self.settings)
        self.persistence = persistence
        self._dir = Path(tempfile.mkdtemp(prefix="hedger-mosquitto-"))
        # mosquitto started as root drops to its own user, which must write its database here
        self._dir.chmod(0o777)
        self.config_path = self._dir / "mosquitto.conf"
        self.log_path = self._dir / "mosquitto.log"
        self.config_path.write_text(self._config())
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0

    @classmethod
    def shipped(
        cls, port: int | None = None, *, binary: str | None = None, startup_timeout: float = 10.0
    ) -> Self:
        """A broker with the options of the shipped ``deploy/mosquitto.conf``
        (:func:`shipped_settings`)."""
        return cls(
            port, binary=binary, startup_timeout=startup_timeout, settings=shipped_settings()
        )

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def persistence_file(self) -> Path:
        """Where mosquitto keeps its database (when persistence is on)."""
        return self._dir / "mosquitto.db"

    @property
    def pid(self) -> int | None:
        """The process id of the running broker (None when it is not running)."""
        return self._process.pid if self._process is not None and self.running else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _config(self) -> str:
        # Logging goes to stderr, which is a file we own: a pipe nobody drains would fill up
        # and stall the broker, and a log_dest file would be opened after mosquitto drops
        # root privileges, so it could not write into our private temp directory.
        if self.settings is not None:
            options = [
                *self.settings,
                *([f"persistence_location {self._dir}/"] if self.persistence else []),
            ]
        else:
            options = [
                "allow_anonymous true",
                *(
                    ["persistence true", f"persistence_location {self._dir}/"]
                    if self.persistence
                    else ["persistence false"]
                ),
                "max_queued_messages 1000000",
                "max_inflight_messages 0",
            ]
        return "\n".join(
            [
                f"listener {self.port} {self.host}",
                *options,
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "",
            ]
        )

    def log(self) -> str:
        """Everything mosquitto has logged since this object was made (all runs)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        """Start the broker (on the same port as before) and wait until it accepts
        connections; no-op when it is running."""
        if self.running:
            return
        self._close_log()
        self._log = self.log_path.open("ab")
        self._log.write(f"--- start {self.starts + 1} ---\n".encode())
        self._log.flush()
        self._process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        self.starts += 1
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._process.poll()
            if code is not None:
                self._process = None
                raise RuntimeError(
                    f"mosquitto exited with code {code} while starting on "
                    f"{self.host}:{self.port}; its log:\n{self.log()}"
                )
            if _accepts(self.host, self.port):
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"mosquitto did not accept connections on {self.host}:{self.port} within "
                    f"{self.startup_timeout:g} s; its log:\n{self.log()}"
                )
            time.sleep(0.01)

    def stop(self, timeout: float = 5.0) -> None:
        """Shut the broker down cleanly (SIGTERM; SIGKILL if it lingers); no-op when it is
        not running. Connected clients see their connection closed."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_log()

    def kill(self) -> None:
        """End the broker abruptly (SIGKILL), as a crash would: nothing is saved on the way
        out; :meth:`start` brings it back on the same port with the persistence file as it
        was last written."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._close_log()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the broker and delete its config, log and persistence file."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _close_log(self) -> None:
        log, self._log = self._log, None
        if log is not None:
            with contextlib.suppress(OSError):
                log.close()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"MosquittoBroker({self.url}, {state})"


@pytest.fixture
def mosquitto() -> Iterator[MosquittoBroker]:
    """A running mosquitto broker of this test's own, on a free loopback port."""
    try:
        binary = find_mosquitto()
    except MosquittoNotFoundError as exc:
        missing = str(exc)
    else:
        missing = ""
    if missing:
        pytest.fail(missing, pytrace=False)
    with MosquittoBroker(binary=binary) as broker:
        yield broker
