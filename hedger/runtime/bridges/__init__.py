"""Bridges: transports that carry bus messages out of the process (MQTT, WebSocket)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hedger.runtime.bridges.mqtt import MqttBridge

__all__ = ["MqttBridge"]


def __getattr__(name: str) -> Any:
    # MqttBridge on first use: importing the package (or its WebSocket bridge) does not load
    # aiomqtt
    if name == "MqttBridge":
        from hedger.runtime.bridges.mqtt import MqttBridge  # noqa: PLC0415

        return MqttBridge
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
