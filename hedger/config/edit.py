"""Edits of a config file that keep everything they do not change: comments, blank lines, the
order of the tables and the form each was written in (tomlkit). ``hedger calibrate --write``
puts a pair's table in with :func:`write_pair_table`."""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import InlineTable, Table

from hedger.config.pipeline import load_toml, pipeline_config
from hedger.errors import ConfigError


def put_pair_table(text: str, pair: str, table: str) -> str:
    """``text`` (a TOML document) with the pair's settings replaced by those of ``table``
    (a ``[pairs."Y/X"]`` table, comment lines allowed), whatever form ``[pairs]`` takes.

    A pair written as a ``[pairs."Y/X"]`` table is replaced where it stands (its comment
    lines go with it, except those after its last key, which stand before the next table); one
    written as an inline table stays inline, the first comment of ``table`` at the end of its
    line; one written with dotted keys (``"Y/X".delta = ...``) is removed and ``table``
    appended, as it is for a new pair. Inside a ``pairs = {...}`` inline table the pair can
    only be inline (and without the comment). Raises :class:`ConfigError` (key ``write``) when
    ``text`` is not TOML.
    """
    try:
        document = tomlkit.parse(text)
        new = tomlkit.parse(table)["pairs"][pair]
    except (TOMLKitError, KeyError) as exc:
        raise ConfigError("write", f"not valid TOML: {exc}") from None
    assert isinstance(new, Table)
    values = new.unwrap()
    pairs = document.get("pairs")
    if isinstance(pairs, InlineTable):
        pairs[pair] = _inline(values, None)
        return tomlkit.dumps(document)
    if isinstance(pairs, MutableMapping) and pair in pairs:
        current = pairs[pair]
        if isinstance(current, InlineTable):
            pairs[pair] = _inline(values, _first_comment(table))
            return tomlkit.dumps(document)
        if isinstance(current, Table) and not current.is_super_table():
            candidate = _replaced(document, pair, _with_tail(new, current))
            if candidate is not None:
                return candidate
        del pairs[pair]
    body = tomlkit.dumps(document)
    if body and not body.endswith("\n"):
        body += "\n"
    return body + ("\n" if body.strip() else "") + table


def _replaced(document: tomlkit.TOMLDocument, pair: str, new: Table) -> str | None:
    """The document with the pair's header table swapped for ``new`` in place, or None when
    tomlkit cannot do that without changing what the document means (a dotted table)."""
    expected = document.unwrap()
    expected["pairs"][pair] = new.unwrap()
    trial = tomlkit.parse(tomlkit.dumps(document))
    trial["pairs"][pair] = new
    text = tomlkit.dumps(trial)
    try:
        same = tomllib.loads(text) == expected
    except tomllib.TOMLDecodeError:
        same = False
    return text if same else None


def _with_tail(new: Table, old: Table) -> Table:
    """``new`` followed by the comments and blank lines that end ``old``: they stand before the
    next table and are more likely about it than about the old settings."""
    tail = []
    for key, item in reversed(old.value.body):
        if key is not None:
            break
        tail.append(item)
    for item in reversed(tail):
        new.value.append(None, item)
    return new


def _inline(values: dict[str, Any], comment: str | None) -> InlineTable:
    inline = tomlkit.inline_table()
    inline.update(values)
    if comment:
        inline.comment(comment)
    return inline


def _first_comment(table: str) -> str | None:
    for line in table.splitlines():
        if line.lstrip().startswith("#"):
            return line.lstrip().lstrip("#").strip()
    return None


def write_pair_table(path: Path, pair: str, table: str) -> None:
    """Put ``table`` into the TOML file ``path`` (created if missing) with
    :func:`put_pair_table`, then check the result is a valid configuration whose pair has
    exactly the settings of ``table`` and whose other content is unchanged, before it replaces
    the file (atomically, keeping the file's permissions)."""
    try:
        old = path.read_text() if path.exists() else ""
    except UnicodeDecodeError:
        raise ConfigError("write", f"{path}: is not UTF-8 text, so not a TOML file") from None
    except OSError as exc:
        raise ConfigError("write", f"{path}: {exc.strerror}") from None
    try:
        new = put_pair_table(old, pair, table)
    except ConfigError as exc:
        raise ConfigError("write", f"{path} would not be valid TOML: {exc.problem}") from None
    _check_edit(path, old, new, pair, table)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise ConfigError("write", f"{path}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(new)
        document = load_toml(tmp)
        try:
            pipeline_config(document, allowed_sections=frozenset(document))
        except ConfigError as exc:
            raise ConfigError("write", f"{path} would not be a valid config: {exc}") from None
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except ConfigError as exc:
        if exc.key == "config":  # load_toml names the temporary file
            raise ConfigError("write", f"{path} would not be valid TOML: {exc.problem}") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _check_edit(path: Path, old: str, new: str, pair: str, table: str) -> None:
    """Refuse an edit that would change anything but the pair's settings."""
    try:
        before, after = tomllib.loads(old), tomllib.loads(new)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("write", f"{path} would not be valid TOML: {exc}") from None
    pairs = before.get("pairs", {})
    if isinstance(pairs, dict):
        before["pairs"] = {**pairs, pair: tomllib.loads(table)["pairs"][pair]}
    if before != after:
        raise ConfigError("write", f"{path}: the [pairs] table could not be edited in place")
