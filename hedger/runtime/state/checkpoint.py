"""Checkpoints on disk: one file per checkpoint, written so that a crash at any instant leaves
either the new file whole or the previous one.

A checkpoint file is a one-line JSON header, then the body, the daemon's state as msgpack
(floats as IEEE doubles, NaN included: exact)::

    {"format": "hedger-checkpoint", "version": 1, "bytes": 51234, "sha256": "…", …}\\n<body>

Writing: to a temporary file in the same directory, fsync, rename over
``checkpoint.bin`` (the previous one first renamed ``checkpoint.prev.bin``), fsync the
directory. Loading: the header must name this format and version and the body must have
its length and digest, else the file is set aside (renamed ``*.bad-<ns>``, with the reason
logged) and the previous checkpoint is tried: a torn or foreign file is never loaded.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import orjson

FORMAT = "hedger-checkpoint"
VERSION = 1
CURRENT = "checkpoint.bin"
PREVIOUS = "checkpoint.prev.bin"

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


class CheckpointError(ValueError):
    """A checkpoint file that must not be loaded; ``reason`` says why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Loaded:
    """A verified checkpoint: its body, the file it came from, its header."""

    body: dict[str, Any]
    path: Path
    header: dict[str, Any]


def encode_checkpoint(body: dict[str, Any], **header: Any) -> bytes:
    """A checkpoint file's bytes for ``body`` (plain values), with ``header`` fields added to
    the header line."""
    data = _encoder.encode(body)
    head = {
        "format": FORMAT,
        "version": VERSION,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        **header,
    }
    return orjson.dumps(head) + b"\n" + data


def decode_checkpoint(blob: bytes, path: Path) -> Loaded:
    """The checkpoint in ``blob`` (read from ``path``), verified; :class:`CheckpointError` if
    it is torn, foreign, of another version or corrupt."""
    end = blob.find(b"\n")
    if end < 0:
        raise CheckpointError(path, "no header line (torn or not a checkpoint)")
    try:
        header = orjson.loads(blob[:end])
    except orjson.JSONDecodeError:
        raise CheckpointError(path, "the header is not JSON (not a checkpoint)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(path, "not a hedger checkpoint")
    if header.get("version") != VERSION:
        raise CheckpointError(path, f"schema version {header.get('version')!r}, not {VERSION}")
    data = blob[end + 1 :]
    if len(data) != header.get("bytes"):
        raise CheckpointError(
            path, f"{len(data)} bytes of body, the header says {header.get('bytes')}"
        )
    if hashlib.sha256(data).hexdigest() != header.get("sha256"):
        raise CheckpointError(path, "the checksum does not match (corrupt)")
    try:
        body = _decoder.decode(data)
    except msgspec.DecodeError:
        raise CheckpointError(path, "the body does not decode") from None
    if not isinstance(body, dict):
        raise CheckpointError(path, "the body is not a table")
    return Loaded(body, path, header)


class CheckpointStore:
    """The checkpoints of one daemon in ``directory`` (created if missing)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.current = self.directory / CURRENT
        self.previous = self.directory / PREVIOUS
        self.written = 0
        self.last_bytes = 0

    def save(self, body: dict[str, Any], **header: Any) -> Path:
        """Write ``body`` as the current checkpoint, atomically and durably."""
        blob = encode_checkpoint(body, **header)
        temporary = self.directory / f".{CURRENT}.{os.getpid()}.tmp"
        with open(temporary, "wb") as file:
            file.write(blob)
            file.flush()
            os.fsync(file.fileno())
        if self.current.exists():
            os.replace(self.current, self.previous)
        os.replace(temporary, self.current)
        _fsync_directory(self.directory)
        self.written += 1
        self.last_bytes = len(blob)
        return self.current

    def load(self, set_aside: list[tuple[Path, str]] | None = None) -> Loaded | None:
        """The newest checkpoint that verifies (the current one, else the previous), None if
        there is none. Files that fail are renamed ``*.bad-<ns>`` and listed in
        ``set_aside`` with the reason."""
        for path in (self.current, self.previous):
            try:
                blob = path.read_bytes()
            except FileNotFoundError:
                continue
            try:
                return decode_checkpoint(blob, path)
            except CheckpointError as exc:
                self.set_aside(path, exc.reason, set_aside)
        return None

    def set_aside(self, path: Path, reason: str, log: list[tuple[Path, str]] | None = None) -> Path:
        """Rename a checkpoint that must not be loaded out of the way (kept for a post-mortem)."""
        moved = path.with_name(f"{path.name}.bad-{time.time_ns()}")
        os.replace(path, moved)
        if log is not None:
            log.append((moved, reason))
        return moved


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
