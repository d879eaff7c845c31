"""One bar's output, as the pipeline hands it on: the bank's arrays and the events of the pairs
outside it, turned into per-pair events, their JSON lines, or one batch message, in bulk.

:class:`BarOutput` is the one value a bar close produces. Its three views agree by
construction and by test:

- :meth:`BarOutput.events`: the per-pair event tuples (:mod:`hedger.core.events`), in the
  pipeline's pair order: for each pair its ratio, its spread, then its alarms;
- :meth:`BarOutput.lines`: the same events encoded, byte for byte ``encode(event)``, built
  from whole columns (numbers formatted by one orjson call per column) without a Python
  object per event;
- :meth:`BarOutput.message`: the batch message ``<root>/v1/bar``, every pair of the bar in
  one compact JSON object (pairs listed once, each field an array).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from hedger.core.actors import PairActor
from hedger.core.bar_bank import BankBar
from hedger.core.events import AlarmEvent, Event, HedgeRatioEvent, SpreadEvent, encode
from hedger.core.topics import SCHEMA_VERSION, PairId
from hedger.engine.kernels.bar import (
    ALPHA,
    BETA,
    HAS_QTY,
    HEDGE,
    INNOVATION,
    INNOVATION_STD,
    MARK_X,
    MARK_Y,
    NOTIONAL,
    OUTLIER,
    P00,
    P01,
    P11,
    PNL,
    POSITION,
    SPREAD,
    STALE,
    WARM,
    ZSCORE,
)
from hedger.errors import ConfigError

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_FEW = 8
"""Up to this many pairs in a bar, its lines are encoded event by event: cheaper than the
column machinery's fixed cost (a one-pair replay of 1 s bars)."""


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value)


class BankLayout:
    """What never changes about a bank's pairs, prepared once: ids, legs, modes, which have
    an intercept or a position, their places in the pipeline's pair order, and the constant
    pieces of their JSON."""

    def __init__(self, actors: Sequence[PairActor], positions: Sequence[int]) -> None:
        self.actors = list(actors)
        self.positions = np.asarray(positions, dtype=np.int64)
        """Each bank pair's place in the pipeline's order."""
        self.pair_ids = [actor.pair_id for actor in actors]
        self.legs = [actor.pair.legs for actor in actors]
        self.modes = [actor.params.mode.value for actor in actors]
        self.intercept = np.array([a.params.has_intercept for a in actors], dtype=np.bool_)
        self.has_position = np.array([a.spec.position is not None for a in actors], np.bool_)
        ids = [_dumps(pair) for pair in self.pair_ids]
        self._ratio_head = [b'{"type":"hedge_ratio","version":%d,"pair":%s,"seq":' % (
            SCHEMA_VERSION, pair) for pair in ids]  # fmt: skip
        self._spread_head = [b'{"type":"spread","version":%d,"pair":%s,"seq":' % (
            SCHEMA_VERSION, pair) for pair in ids]  # fmt: skip
        self._mode = [b',"mode":%s,"beta":' % _dumps(mode) for mode in self.modes]
        self._key_y = [b',"prices":{%s:' % _dumps(y) for y, _ in self.legs]
        self._key_x = [b",%s:" % _dumps(x) for _, x in self.legs]


def _tokens(values: np.ndarray) -> list[bytes]:
    """Each number of ``values`` (n,) as JSON (NaN and infinities as null), as orjson writes
    it inside an event."""
    if values.shape[0] == 0:
        return []
    return orjson.dumps(values, option=_NUMPY)[1:-1].split(b",")


def _booleans(mask: np.ndarray) -> list[bytes]:
    out: list[bytes] = np.where(mask, b"true", b"false").tolist()
    return out


def _concatenated(n: int, parts: Sequence[bytes | list[bytes]]) -> bytes:
    """The n concatenations of ``parts`` (a constant piece, or a list of n pieces whose i-th
    belongs to text i), one after the other: one list filled by slices, one join."""
    width = len(parts)
    pieces: list[bytes] = [b""] * (width * n)
    for k, part in enumerate(parts):
        pieces[k::width] = [part] * n if isinstance(part, bytes) else part
    return b"".join(pieces)


def _joined(n: int, parts: Sequence[bytes | list[bytes]]) -> list[bytes]:
    """n JSON texts, text i the concatenation of ``parts`` (a constant piece, or a list of n
    pieces whose i-th is text i's): one list filled by slices, one join, one split (JSON from
    orjson never holds a raw newline)."""
    return _concatenated(n, [*parts, b"\n"]).split(b"\n")[:-1]


@dataclass
class BarOutput:
    """One bar's output: ``bank`` (None without a bank) over ``layout``, and ``others``: the
    events of the pairs outside the bank (baskets, watched pairs) with their place in the
    pipeline's order."""

    ts: int
    ts_init: int
    layout: BankLayout | None
    bank: BankBar | None
    others: list[tuple[int, tuple[Event, ...]]] = field(default_factory=list)

    @property
    def n_pairs(self) -> int:
        """Pairs that took part in the bar."""
        return (0 if self.bank is None else len(self.bank.members)) + len(self.others)

    @property
    def n_events(self) -> int:
        """Events of the bar (two per pair, and the alarms)."""
        bank = self.bank
        n = 0 if bank is None else 2 * len(bank.members) + len(bank.alarms)
        return n + sum(len(events) for _, events in self.others)

    def alarms(self) -> list[AlarmEvent]:
        """The bar's alarm events, in pair order."""
        bank_alarms = [] if self.bank is None else self.bank.alarms
        found = [(int(self._position(j)), e) for j, e in bank_alarms]
        for position, events in self.others:
            if len(events) > 2:  # a pair's ratio and spread, then its alarms
                found.extend((position, e) for e in events if isinstance(e, AlarmEvent))
        if not found:
            return []
        found.sort(key=lambda item: item[0])
        return [event for _, event in found]

    def _position(self, j: int) -> int:
        assert self.layout is not None
        return int(self.layout.positions[j])

    # per-pair events

    def events(self) -> list[Event]:
        """Every event of the bar as tuples, in the pipeline's pair order."""
        grouped = self._grouped(self.bank_events())
        return [event for _, events in grouped for event in events]

    def _grouped(
        self, bank_items: list[tuple[int, Sequence[Any]]]
    ) -> list[tuple[int, Sequence[Any]]]:
        """Bank pairs' items and the others' events merged by pipeline place."""
        if not self.others:
            return bank_items
        merged = bank_items + [(p, list(events)) for p, events in self.others]
        merged.sort(key=lambda item: item[0])
        return merged

    def bank_events(self) -> list[tuple[int, Sequence[Any]]]:
        """The bank's pairs' events (ratio, spread, then alarms) with their pipeline place."""
        bank, layout = self.bank, self.layout
        if bank is None or layout is None:
            return []
        out, ts, ts_init = bank.out, self.ts, self.ts_init
        # NaN as math.nan itself, as the Python path writes it (tuples of events then compare
        # equal, NaN fields included: tuple comparison tries identity first)
        nan, isnan = math.nan, math.isnan
        columns = [[nan if isnan(v) else v for v in row.tolist()] for row in out]
        flags, qty, seqs = bank.flags.tolist(), bank.qty.tolist(), bank.seq.tolist()
        alarms: dict[int, list[AlarmEvent]] = {}
        for j, event in bank.alarms:
            alarms.setdefault(j, []).append(event)
        items: list[tuple[int, Sequence[Any]]] = []
        for c, j in enumerate(bank.members.tolist()):
            pair, (y, x) = layout.pair_ids[j], layout.legs[j]
            f, seq = flags[c], seqs[c]
            p00 = columns[P00][c]
            cov: tuple[tuple[float, ...], ...] = (
                ((p00, columns[P01][c]), (columns[P01][c], columns[P11][c]))
                if layout.intercept[j]
                else ((p00,),)
            )
            hedge = columns[HEDGE][c]
            ratio = HedgeRatioEvent(
                pair, seq, ts, (columns[BETA][c],), columns[ALPHA][c], cov, (math.sqrt(p00),),
                bool(f & WARM), bool(f & STALE), bool(f & OUTLIER), layout.modes[j],
                None if math.isnan(hedge) else (hedge,),
                {y: _none(columns[MARK_Y][c]), x: _none(columns[MARK_X][c])}, ts_init,
            )  # fmt: skip
            if layout.has_position[j]:
                has_qty = bool(f & HAS_QTY)
                ratio = ratio._replace(
                    position=columns[POSITION][c],
                    hedge_qty=(qty[c],) if has_qty else None,
                    hedge_notional=(columns[NOTIONAL][c],) if has_qty else None,
                )
            if bank.combination is not None and c in bank.combination:
                ratio = ratio._replace(combination=bank.combination[c])
            spread = SpreadEvent(
                pair, seq, ts, columns[SPREAD][c], columns[INNOVATION][c],
                columns[INNOVATION_STD][c], columns[ZSCORE][c], bool(f & OUTLIER),
                columns[PNL][c], ts_init,
            )  # fmt: skip
            items.append((int(layout.positions[j]), [ratio, spread, *alarms.get(j, ())]))
        return items

    # the same, encoded in bulk

    def entries(self) -> list[Entry]:
        """Every event of the bar as (kind, pair, seq, payload, event), in :meth:`events`'
        order: the bank's ratios and spreads encoded in bulk (``event`` None), the rest
        (alarms, the events of pairs outside the bank) with their event (``payload`` then
        ``encode(event)``)."""
        bank, layout = self.bank, self.layout
        items: list[tuple[int, Sequence[Any]]] = []
        if bank is not None and layout is not None and len(bank.members):
            ratios, spreads = self._ratio_lines(bank, layout), self._spread_lines(bank, layout)
            ids, positions = layout.pair_ids, layout.positions.tolist()
            alarms: dict[int, list[Entry]] = {}
            for j, event in bank.alarms:
                alarms.setdefault(j, []).append(_entry(event))
            members, seqs = bank.members.tolist(), bank.seq.tolist()
            for c, (j, seq) in enumerate(zip(members, seqs, strict=True)):
                pair = ids[j]
                group: list[Entry] = [
                    ("ratio", pair, seq, ratios[c], None),
                    ("spread", pair, seq, spreads[c], None),
                ]
                if j in alarms:
                    group.extend(alarms[j])
                items.append((positions[j], group))
        if self.others:
            items += [(p, [_entry(e) for e in events]) for p, events in self.others]
            items.sort(key=lambda item: item[0])
        return [entry for _, group in items for entry in group]

    def lines(self) -> list[bytes]:
        """``[encode(e) for e in self.events()]``, built column by column."""
        bank, layout = self.bank, self.layout
        if bank is None or layout is None or len(bank.members) == 0:
            return [encode(e) for _, events in self._grouped([]) for e in events]
        ratios, spreads = self._ratio_lines(bank, layout), self._spread_lines(bank, layout)
        if not self.others and not bank.alarms:
            lines: list[bytes] = [b""] * (2 * len(ratios))
            lines[0::2], lines[1::2] = ratios, spreads
            return lines
        alarms: dict[int, list[bytes]] = {}
        for j, event in bank.alarms:
            alarms.setdefault(j, []).append(encode(event))
        items: list[tuple[int, Sequence[Any]]] = [
            (int(layout.positions[j]), [ratios[c], spreads[c], *alarms.get(j, ())])
            for c, j in enumerate(bank.members.tolist())
        ]
        merged = items + [(p, [encode(e) for e in events]) for p, events in self.others]
        merged.sort(key=lambda item: item[0])
        return [line for _, group in merged for line in group]

    def text(self) -> bytes:
        """The bar's events as JSON Lines (each line ``encode(event)``, each ended by a
        newline): a replay's output. Built in one join when every pair of the bar is in the
        bank and has the same JSON shape (the common case), else from :meth:`lines`."""
        bank, layout = self.bank, self.layout
        if bank is None:  # the others come in the pipeline's order
            return b"".join([encode(e) + b"\n" for _, events in self.others for e in events])
        if len(bank.members) <= _FEW:
            return b"".join(encode(e) + b"\n" for e in self.events())
        if bank is not None and layout is not None and not self.others and not bank.alarms:
            members = bank.members
            intercept = layout.intercept[members]
            position = layout.has_position[members]
            n = len(members)
            one_shape = bool(intercept.all() or not intercept.any()) and not position.any()
            if n and one_shape:
                everyone = np.arange(n)
                ratio = self._ratio_parts(bank, layout, everyone, bool(intercept[0]), False)
                spread = self._spread_parts(bank, layout)
                return _concatenated(n, [*ratio, b"\n", *spread, b"\n"])
        lines = self.lines()
        return b"\n".join(lines) + b"\n" if lines else b""

    def _ratio_lines(self, bank: BankBar, layout: BankLayout) -> list[bytes]:
        """The ratio events, grouped by the shape of their JSON (with an intercept or not,
        with a position or not), each group encoded in bulk."""
        index = bank.members
        intercept = layout.intercept[index]
        with_position = layout.has_position[index]
        lines: list[bytes] = [b""] * len(index)
        for has_intercept in (True, False):
            for has_position in (False, True):
                chosen = np.flatnonzero(
                    (intercept == has_intercept) & (with_position == has_position)
                )
                if len(chosen) == 0:
                    continue
                parts = self._ratio_parts(bank, layout, chosen, has_intercept, has_position)
                encoded = _joined(len(chosen), parts)
                if len(chosen) == len(index):
                    return encoded
                for c, text in zip(chosen.tolist(), encoded, strict=True):
                    lines[c] = text
        return lines

    def _ratio_parts(
        self,
        bank: BankBar,
        layout: BankLayout,
        chosen: np.ndarray,
        intercept: bool,
        position: bool,
    ) -> list[bytes | list[bytes]]:
        out = bank.out.take(chosen, axis=1)
        pairs = bank.members[chosen].tolist()
        flags = bank.flags[chosen]
        n = len(pairs)
        every = n == len(layout.pair_ids)  # all the bank's pairs, in order: its own lists
        cov: list[bytes | list[bytes]] = [b',"cov":[[', _tokens(out[P00])]
        if intercept:
            p01 = _tokens(out[P01])
            cov += [b",", p01, b"],[", p01, b",", _tokens(out[P11])]
        cov.append(b"]]")
        parts: list[bytes | list[bytes]] = [
            layout._ratio_head if every else [layout._ratio_head[j] for j in pairs],
            _tokens(bank.seq[chosen]),
            b',"ts":%d,"ts_init":%d' % (self.ts, self.ts_init),
            layout._mode if every else [layout._mode[j] for j in pairs],
            _tokens(out[BETA]),
            b',"alpha":',
            _tokens(out[ALPHA]),
            *cov,
            b',"beta_std":',
            _tokens(np.sqrt(out[P00])),
            b',"hedge":',
            _tokens(out[HEDGE]),
            layout._key_y if every else [layout._key_y[j] for j in pairs],
            _tokens(out[MARK_Y]),
            layout._key_x if every else [layout._key_x[j] for j in pairs],
            _tokens(out[MARK_X]),
            b'},"warm":',
            _booleans(flags & WARM),
            b',"stale":',
            _booleans(flags & STALE),
            b',"outlier":',
            _booleans(flags & OUTLIER),
        ]
        if position:
            has_qty = (flags & HAS_QTY) != 0
            qty = bank.qty[chosen].tolist()
            notional = _tokens(out[NOTIONAL])
            parts += [
                b',"position":',
                _tokens(out[POSITION]),
                b',"hedge_qty":',
                [b"%d" % q if ok else b"null" for q, ok in zip(qty, has_qty.tolist(), strict=True)],
                b',"hedge_notional":',
                [t if ok else b"null" for t, ok in zip(notional, has_qty.tolist(), strict=True)],
            ]
        combination = bank.combination
        if combination:
            fields = [combination.get(c) for c in chosen.tolist()]
            parts.append(
                [b"" if f is None else b',"combination":' + orjson.dumps(f) for f in fields]
            )
        parts.append(b"}")
        return parts

    def _spread_lines(self, bank: BankBar, layout: BankLayout) -> list[bytes]:
        return _joined(len(bank.members), self._spread_parts(bank, layout))

    def _spread_parts(self, bank: BankBar, layout: BankLayout) -> list[bytes | list[bytes]]:
        out, pairs = bank.out, bank.members.tolist()
        parts: list[bytes | list[bytes]] = [
            (
                layout._spread_head
                if len(pairs) == len(layout.pair_ids)
                else [layout._spread_head[j] for j in pairs]
            ),
            _tokens(bank.seq),
            b',"ts":%d,"ts_init":%d,"spread":' % (self.ts, self.ts_init),
            _tokens(out[SPREAD]),
            b',"innovation":',
            _tokens(out[INNOVATION]),
            b',"innovation_std":',
            _tokens(out[INNOVATION_STD]),
            b',"zscore":',
            _tokens(out[ZSCORE]),
            b',"hedged_pnl":',
            _tokens(out[PNL]),
            b',"outlier":',
            _booleans(bank.flags & OUTLIER),
            b"}",
        ]
        return parts

    # one message for the whole bar

    def message(self, seq: int) -> bytes:
        """The batch message of the bar (``seq``: the bar's number, from 1, per daemon)."""
        body: dict[str, Any] = {
            "type": "bar",
            "version": SCHEMA_VERSION,
            "seq": seq,
            "ts": self.ts,
            "ts_init": self.ts_init,
        }
        bank, layout = self.bank, self.layout
        columns: dict[str, Any] = {}
        if bank is not None and layout is not None:
            out, index, flags = bank.out, bank.members, bank.flags
            intercept = layout.intercept[index]
            cov: Any
            if intercept.all():
                cov = np.stack([out[P00], out[P01], out[P01], out[P11]], axis=1).reshape(-1, 2, 2)
            elif not intercept.any():
                cov = out[P00].reshape(-1, 1, 1)
            else:
                cov = [
                    [[a, b], [b, c]] if i else [[a]]
                    for a, b, c, i in zip(
                        out[P00].tolist(), out[P01].tolist(), out[P11].tolist(),
                        intercept.tolist(), strict=True,
                    )
                ]  # fmt: skip
            ids = layout.pair_ids
            rows = index.tolist()
            columns = {
                "pairs": ids if len(rows) == len(ids) else [ids[j] for j in rows],
                "pair_seq": bank.seq,
                "mode": layout.modes if len(rows) == len(ids) else [layout.modes[j] for j in rows],
                "beta": out[BETA],
                "alpha": out[ALPHA],
                "cov": cov,
                "beta_std": np.sqrt(out[P00]),
                "hedge": out[HEDGE],
                "price_y": out[MARK_Y],
                "price_x": out[MARK_X],
                "warm": (flags & WARM) != 0,
                "stale": (flags & STALE) != 0,
                "outlier": (flags & OUTLIER) != 0,
                "spread": out[SPREAD],
                "innovation": out[INNOVATION],
                "innovation_std": out[INNOVATION_STD],
                "zscore": out[ZSCORE],
                "hedged_pnl": out[PNL],
            }
            if layout.has_position[index].any():
                has_position = layout.has_position[index].tolist()
                has_qty = ((flags & HAS_QTY) != 0).tolist()
                columns["position"] = [
                    _none(v) if p else None
                    for v, p in zip(out[POSITION].tolist(), has_position, strict=True)
                ]
                columns["hedge_qty"] = [
                    q if ok else None for q, ok in zip(bank.qty.tolist(), has_qty, strict=True)
                ]
                columns["hedge_notional"] = [
                    _none(v) if ok else None
                    for v, ok in zip(out[NOTIONAL].tolist(), has_qty, strict=True)
                ]
        if self.others:
            columns = self._with_others(columns)
        body.update(columns)
        return orjson.dumps(body, option=_NUMPY)

    def _with_others(self, columns: dict[str, Any]) -> dict[str, Any]:
        """The columns as lists, the pairs outside the bank appended (baskets: a list of
        values where a pair has one)."""
        merged = {key: _as_list(value) for key, value in columns.items()}
        with_positions = "position" in merged or any(
            isinstance(e, HedgeRatioEvent) and e.position is not None
            for _, events in self.others
            for e in events
        )
        keys = [*_BAR_KEYS, *(_POSITION_KEYS if with_positions else ())]
        for key in keys:
            merged.setdefault(key, [None] * len(merged.get("pairs", [])))
        for _, events in self.others:
            ratio = next((e for e in events if isinstance(e, HedgeRatioEvent)), None)
            spread = next((e for e in events if isinstance(e, SpreadEvent)), None)
            if ratio is None or spread is None:
                continue
            d = {**spread.to_dict(), **ratio.to_dict()}
            values = {
                "pairs": ratio.pair, "pair_seq": ratio.seq, "mode": ratio.mode,
                "beta": d["beta"], "alpha": d["alpha"], "cov": d["cov"],
                "beta_std": d["beta_std"], "hedge": d["hedge"],
                "price_y": _first(ratio.prices), "price_x": _rest(ratio.prices),
                "warm": ratio.warm, "stale": ratio.stale, "outlier": ratio.outlier,
                "spread": spread.spread, "innovation": spread.innovation,
                "innovation_std": spread.innovation_std, "zscore": spread.zscore,
                "hedged_pnl": spread.hedged_pnl, "position": d.get("position"),
                "hedge_qty": d.get("hedge_qty"), "hedge_notional": d.get("hedge_notional"),
            }  # fmt: skip
            for key in keys:
                merged[key].append(values[key])
        return merged


_BAR_KEYS = (
    "pairs", "pair_seq", "mode", "beta", "alpha", "cov", "beta_std", "hedge", "price_y",
    "price_x", "warm", "stale", "outlier", "spread", "innovation", "innovation_std", "zscore",
    "hedged_pnl",
)  # fmt: skip
"""The arrays of a batch message, in order (then ``position``, ``hedge_qty`` and
``hedge_notional`` when a pair of the bar has a position)."""


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, np.ndarray):
        listed: list[Any] = orjson.loads(orjson.dumps(value, option=_NUMPY))
        return listed
    return list(value)


def _first(prices: Any) -> float | None:
    if prices is None:
        return None
    value = next(iter(prices.values()))
    return None if value is None else float(value)


def _rest(prices: Any) -> list[float | None] | None:
    if prices is None:
        return None
    return list(prices.values())[1:]


def _none(value: float) -> float | None:
    return None if math.isnan(value) else value


def ratios_of_bar(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``hedge_ratio`` events a decoded batch message carries, one per pair, as the
    per-pair topics would (JSON objects; ``position``, ``hedge_qty`` and ``hedge_notional``
    only where the bar gives one of them). Raises ``ValueError`` on a message that is not a
    well-formed batch message."""
    if message.get("type") != "bar":
        raise ValueError("not a bar message")
    try:
        pairs = message["pairs"]
        n = len(pairs)
        columns = {key: message[key] for key in _BAR_KEYS}
        extra = {key: message.get(key) or [None] * n for key in _POSITION_KEYS}
        if any(len(v) != n for v in (*columns.values(), *extra.values())):
            raise ValueError("the bar's arrays differ in length")
        ratios = []
        for i, pair in enumerate(pairs):
            legs = PairId.parse(pair).legs
            price_x = columns["price_x"][i]
            prices = [columns["price_y"][i], *(price_x if isinstance(price_x, list) else [price_x])]
            ratio = {
                "type": "hedge_ratio", "version": message["version"], "pair": pair,
                "seq": columns["pair_seq"][i], "ts": message["ts"], "ts_init": message["ts_init"],
                "mode": columns["mode"][i], "beta": columns["beta"][i],
                "alpha": columns["alpha"][i], "cov": columns["cov"][i],
                "beta_std": columns["beta_std"][i], "hedge": columns["hedge"][i],
                "prices": dict(zip(legs, prices, strict=True)), "warm": columns["warm"][i],
                "stale": columns["stale"][i], "outlier": columns["outlier"][i],
            }  # fmt: skip
            if any(extra[key][i] is not None for key in _POSITION_KEYS):
                ratio.update({key: extra[key][i] for key in _POSITION_KEYS})
            ratios.append(ratio)
    except (KeyError, TypeError, ConfigError) as exc:
        raise ValueError(f"malformed bar message: {exc}") from None
    return ratios


_POSITION_KEYS = ("position", "hedge_qty", "hedge_notional")

Entry = tuple[str, str, int, bytes, Event | None]
"""(kind, pair, seq, payload, event) of one event of a bar (see :meth:`BarOutput.entries`)."""

_KIND = {"hedge_ratio": "ratio", "spread": "spread", "alarm": "alarm"}


def _entry(event: Event) -> Entry:
    return (_KIND[event.type], event.pair, event.seq, encode(event), event)
