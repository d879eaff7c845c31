"""The ``[control]`` section: pairs added, changed and removed while the daemon runs.

```toml
[control]
enabled = true          # false: every control request is refused, on every transport
mqtt = true             # listen on <root>/v1/control, reply on <root>/v1/control/reply
token_env = "HEDGER_CONTROL_TOKEN"   # or token = "..."; MQTT requests must carry it
history = 2000          # bar closes held for warming a new pair (0: new pairs start cold)
```

Without the table the daemon still holds ``history``'s default of bars, and WebSocket control
is there for a server with a token (``[bus.websocket] token``); MQTT control is off. Over MQTT
anyone the broker lets publish on the control topic can send a request, so the broker's ACL
decides who may (``deploy/mosquitto-control.acl``); with ``token`` set, a request must also
carry ``"token"``. A pair added at run time takes the file's ``[filter]`` defaults, overridden
by the request's keys, exactly as a ``[pairs]`` table does, and the file's ``[lots]`` for its
hedges; its position is the request's ``position``, written as in ``[positions]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from msgspec import Meta

from hedger.config.alarm import alarm_params
from hedger.config.pipeline import FILTER_KEYS, filter_params
from hedger.config.positions import with_positions
from hedger.config.schema import NonEmpty, Secret, Table, check_keys, decode, secret, sub_table
from hedger.core.actors import PairSpec
from hedger.core.topics import PairId
from hedger.engine.alarm import AlarmParams

DEFAULT_HISTORY = 2000
"""Bar closes held by default: 2,000 bars are 33 min of 1 s bars, 8 years of daily bars;
an OLS warm-up needs 20. Memory is one dict of the carried symbols' prices per bar."""
MAX_HISTORY = 1_000_000


class ControlTable(Table, frozen=True):
    """The ``[control]`` table as written."""

    enabled: bool = True
    mqtt: bool = True
    token: Secret | None = None
    token_env: NonEmpty | None = None
    history: Annotated[
        int, Meta(ge=0, le=MAX_HISTORY, description=f"an integer from 0 to {MAX_HISTORY}")
    ] = DEFAULT_HISTORY


@dataclass(frozen=True, slots=True)
class ControlSettings:
    """How the daemon takes control requests.

    enabled: False refuses every request; mqtt: subscribe to the MQTT control topic (needs
    ``[bus.mqtt]``); token: the secret an MQTT request must carry (None: the broker's ACL
    alone decides); history_bars: bar closes held for warming new pairs; filter_defaults:
    the file's ``[filter]`` table, the defaults of a pair added at run time; lots: the
    file's ``[lots]`` table, the lot sizes of its hedges; alarm: the file's ``[alarm]``
    parameters (None: alarms are off)."""

    enabled: bool = True
    mqtt: bool = False
    token: str | None = None
    history_bars: int = DEFAULT_HISTORY
    filter_defaults: Mapping[str, Any] = field(default_factory=dict)
    lots: Mapping[str, Any] = field(default_factory=dict)
    alarm: AlarmParams | None = field(default_factory=AlarmParams)

    def __repr__(self) -> str:
        shown = "None" if self.token is None else "'***'"
        return (
            f"ControlSettings(enabled={self.enabled}, mqtt={self.mqtt}, token={shown}, "
            f"history_bars={self.history_bars})"
        )


def control_settings(document: Mapping[str, Any]) -> ControlSettings:
    """The control settings of a daemon document (defaults without ``[control]``)."""
    defaults = dict(sub_table(document, "filter"))
    lots = dict(sub_table(document, "lots"))
    alarm = alarm_params(document)
    if "control" not in document:
        return ControlSettings(filter_defaults=defaults, lots=lots, alarm=alarm)
    table = decode(sub_table(document, "control"), ControlTable, "control")
    token = secret("control", "token", table.token, table.token_env)
    return ControlSettings(
        enabled=table.enabled,
        mqtt=table.enabled and table.mqtt,
        token=token,
        history_bars=table.history,
        filter_defaults=defaults,
        lots=lots,
        alarm=alarm,
    )


def pair_spec(
    pair: str,
    table: Mapping[str, Any],
    defaults: Mapping[str, Any],
    *,
    lots: Mapping[str, Any] | None = None,
    position: Any = None,
    alarm: AlarmParams | None = None,
) -> PairSpec:
    """The pair ``pair`` (``Y/X``) with filter keys ``table`` over ``defaults``, as a
    ``[pairs."Y/X"]`` table over ``[filter]``, its hedges' lot sizes from ``lots`` (a
    ``[lots]`` table), ``position`` as a ``[positions]`` value (None: none) and the
    detector's ``alarm`` parameters (None: no alarm); a bad id, an
    unknown key or a bad value is a :class:`~hedger.errors.ConfigError` naming the key."""
    pair_id = PairId.parse(pair)
    check_keys(f"pairs.{pair_id}", table, FILTER_KEYS)
    params = filter_params({**defaults, **table}, len(pair_id.xs), f"pairs.{pair_id}")
    document: dict[str, Any] = {"lots": dict(lots or {})}
    if position is not None:
        document["positions"] = {str(pair_id): position}
    return with_positions(document, [PairSpec(pair_id, params, alarm=alarm)])[0]
