"""The one way a config table becomes a typed value: :func:`decode` runs msgspec over a
:class:`Table` struct and turns its ValidationError into the project's one-line
:class:`ConfigError` naming the key (``pairs.A/B.delta: must be a number, got 'big'``), plus
the few helpers every section shares (unknown keys, sub-tables, durations, secrets from the
environment).

The words of a message come from the struct's annotations: a field's
``Meta(description=...)`` when it has one, else its type (``an integer >= 1``, ``true or
false``, ``debug, info, warning or error``), followed by the value found unless the field is
marked :data:`TERSE`. A field marked :data:`SECRET` never has its value in a message."""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

from hedger.core.bars import parse_duration_ns
from hedger.errors import ConfigError

T = TypeVar("T")

SECRET = Meta(extra={"secret": True})
"""Marks a field whose value must never appear in an error message (add it to the field's
``Annotated``)."""
TERSE = Meta(extra={"terse": True})
"""Marks a field whose error message is its description alone, without the value (a short
list of choices that the message names in full)."""

NonEmpty = Annotated[str, Meta(min_length=1)]
Symbols = Annotated[
    tuple[NonEmpty, ...], Meta(min_length=1, description="a non-empty list of symbols")
]
Duration = Annotated[str, Meta(description="a duration like 250ms, 1s, 1min, 1h, 1d")]
Secret = Annotated[str, Meta(min_length=1), SECRET]
Qos = Annotated[int, Meta(ge=0, le=2, description="0, 1 or 2"), TERSE]


class Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A config table as written: its keys are the fields (unknown keys are errors)."""


def known_keys(table_type: type[msgspec.Struct]) -> frozenset[str]:
    """The keys a table of ``table_type`` accepts (its tag field included)."""
    tag_field = table_type.__struct_config__.tag_field
    fields = {f.encode_name for f in msgspec.structs.fields(table_type)}
    return frozenset(fields | ({tag_field} if tag_field else set()))


def unknown_key(section: str, key: str, known: Iterable[str]) -> ConfigError:
    """The error of an unknown key ``key`` in ``section``."""
    return ConfigError(_join(section, key), f"unknown key (known: {', '.join(sorted(known))})")


def check_keys(section: str, table: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse the first key of ``table`` not in ``known``."""
    allowed = frozenset(known)
    for key in table:
        if key not in allowed:
            raise unknown_key(section, key, allowed)


def sub_table(document: Mapping[str, Any], key: str, section: str = "") -> dict[str, Any]:
    """``document[key]`` (an empty table when absent), refused unless it is a table."""
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(_join(section, key), "must be a table")
    return value


def decode(value: Any, table_type: type[T], section: str) -> T:
    """``value`` (a parsed TOML table) as ``table_type``, or a :class:`ConfigError` naming the
    key below ``section`` (``""`` for the document itself)."""
    try:
        return msgspec.convert(value, table_type)
    except msgspec.ValidationError as exc:
        raise _config_error(str(exc), value, table_type, section) from None


def duration_ns(value: str, key: str) -> int:
    """A :data:`Duration` in ns (> 0)."""
    return parse_duration_ns(value, key)


def seconds(value: str, key: str) -> float:
    """A :data:`Duration` in seconds."""
    return parse_duration_ns(value, key) / 1e9


def secret(section: str, name: str, value: str | None, env: str | None) -> str | None:
    """The secret ``section.name``, given in the file (``value``) or by the environment
    variable the file names (``env``, the key ``name_env``): the file's first; an unset or
    empty variable is an error naming the key, never a value."""
    if value is not None:
        return value
    if env is None:
        return None
    found = os.environ.get(env)
    if not found:
        raise ConfigError(f"{section}.{name}_env", f"environment variable {env} is not set")
    return found


_AT = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_FIELD = re.compile(r"field `([^`]*)`")
_MISSING = object()


def _config_error(message: str, value: Any, root: Any, section: str) -> ConfigError:
    match = _AT.match(message)
    assert match is not None  # the pattern matches any text
    problem, path = match["problem"], match["path"] or ""
    parts: list[str | int] = [name if name else int(index) for name, index in _PART.findall(path)]
    field = _FIELD.search(problem)
    if problem.startswith("Object contains unknown field") and field:
        node = _walk(root, value, parts)
        return unknown_key(_key(section, parts), field[1], _keys_of(node.type, node.value))
    if problem.startswith("Object missing required field") and field:
        parts.append(field[1])
        node = _walk(root, value, parts)
        return ConfigError(_key(section, parts), f"must be {_describe(node.type)}")
    node = _walk(root, value, parts)
    while parts and isinstance(parts[-1], int) and not _is_table(node.type):
        parts.pop()  # a bad element: name the list, say what the list must be
        node = _walk(root, value, parts)
    text = f"must be {_describe(node.type)}"
    quiet = node.secret or _marked(node.type, "terse") or isinstance(node.value, dict)
    if node.value is not _MISSING and not quiet:
        text += f", got {node.value!r}"
    return ConfigError(_key(section, parts), text)


def _join(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _key(section: str, parts: list[str | int]) -> str:
    key = section
    for part in parts:
        key = f"{key}[{part}]" if isinstance(part, int) else _join(key, part)
    return key or "config"


class _Node(typing.NamedTuple):
    type: Any
    value: Any
    secret: bool


def _walk(root: Any, value: Any, parts: list[str | int]) -> _Node:
    """The annotated type and the value at ``parts`` below ``root`` / ``value``."""
    node = _Node(root, value, False)
    for part in parts:
        base = _base(node.type, node.value)
        item = node.value
        if isinstance(part, int):
            args = typing.get_args(base)
            inner = args[0] if args else Any
            found = item[part] if isinstance(item, list) and part < len(item) else _MISSING
            node = _Node(inner, found, node.secret)
            continue
        found = item.get(part, _MISSING) if isinstance(item, dict) else _MISSING
        if isinstance(base, type) and issubclass(base, msgspec.Struct):
            config = base.__struct_config__
            if part == config.tag_field:
                node = _Node(_tag_choices(node.type), found, False)
                continue
            hints = typing.get_type_hints(base, include_extras=True)
            names = {f.encode_name: f.name for f in msgspec.structs.fields(base)}
            inner = hints.get(names.get(part, part), Any)
            node = _Node(inner, found, node.secret or _marked(inner, "secret"))
        else:
            node = _Node(Any, found, node.secret)
    return node


def _strip(tp: Any) -> tuple[Any, list[Meta]]:
    """``tp`` without its Annotated layers and None, and the Meta objects they held."""
    metas: list[Meta] = []
    while True:
        if typing.get_origin(tp) is Annotated:
            tp, *extra = typing.get_args(tp)
            metas.extend(m for m in extra if isinstance(m, Meta))
            continue
        members = _members(tp)
        if members is not None:
            rest = [m for m in members if m is not type(None)]
            if len(rest) == 1 and len(rest) < len(members):
                tp = rest[0]
                continue
        return tp, metas


def _members(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return None


def _base(tp: Any, value: Any) -> Any:
    """The type ``value`` is checked against: for a union of tagged tables, the member whose
    tag ``value`` carries (or the first)."""
    base, _ = _strip(tp)
    members = _members(base)
    if members is None:
        return base
    tables = [m for m in members if isinstance(m, type) and issubclass(m, msgspec.Struct)]
    for member in tables:
        config = member.__struct_config__
        if isinstance(value, dict) and value.get(config.tag_field) == config.tag:
            return member
    return tables[0] if tables else base


def _keys_of(tp: Any, value: Any) -> frozenset[str]:
    base = _base(tp, value)
    return known_keys(base) if isinstance(base, type) else frozenset()


def _tag_choices(tp: Any) -> Any:
    base, _ = _strip(tp)
    tags = [m.__struct_config__.tag for m in (_members(base) or (base,))]
    return Annotated[str, Meta(description=f"one of {', '.join(map(str, tags))}")]


def _marked(tp: Any, mark: str) -> bool:
    return any(m.extra and m.extra.get(mark) for m in _strip(tp)[1])


def _is_table(tp: Any) -> bool:
    base, _ = _strip(tp)
    members = _members(base) or (base,)
    return any(
        (isinstance(m, type) and issubclass(m, msgspec.Struct | dict))
        or typing.get_origin(m) is dict
        for m in members
    )


def _describe(tp: Any) -> str:
    """What a value of ``tp`` must be, in a few words."""
    base, metas = _strip(tp)
    for meta in metas:
        if meta.description:
            return meta.description
    members = _members(base)
    if members is not None:
        return _choices([_describe(m) for m in members if m is not type(None)])
    if typing.get_origin(base) is Literal:
        return _choices([_literal(v) for v in typing.get_args(base)])
    if _is_table(base):
        return "a table"
    if base is bool:
        return "true or false"
    bounds = "".join(
        f" {sign} {bound}"
        for meta in metas
        for sign, bound in ((">=", meta.ge), (">", meta.gt), ("<=", meta.le), ("<", meta.lt))
        if bound is not None
    )
    if base is int:
        return f"an integer{bounds}"
    if base is float:
        return f"a number{bounds}"
    if base is str:
        return "a non-empty string" if any(m.min_length for m in metas) else "a string"
    if typing.get_origin(base) in (tuple, list):
        return "a non-empty list" if any(m.min_length for m in metas) else "a list"
    return "valid"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _choices(words: list[str]) -> str:
    words = list(dict.fromkeys(words))
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} or {words[-1]}"
