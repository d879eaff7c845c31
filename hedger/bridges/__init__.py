"""Bridges: transports that carry bus messages out of the process (MQTT, WebSocket)."""
