"""The shipped broker configuration works: mosquitto starts with it and carries QoS 1 traffic."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiomqtt

from tests.mosquitto import find_mosquitto, free_port
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[1]


async def test_shipped_mosquitto_conf_starts_and_carries_a_burst(tmp_path: Path) -> None:
    """A persistent subscriber that is away during a burst of 3,000 QoS 1 messages gets them
    all when it returns. Checked when written: with mosquitto's defaults (a queue of 1,000 per
    client) the same run never completes, the rest having been dropped."""
    port = free_port()
    text = (ROOT / "deploy" / "mosquitto.conf").read_text()
    text = text.replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1")
    text = text.replace(
        "persistence_location /var/lib/mosquitto/", f"persistence_location {tmp_path}/"
    )
    assert f"listener {port}" in text and str(tmp_path) in text
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)
    tmp_path.chmod(0o777)
    broker = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stderr=subprocess.PIPE)

    async def listening() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert broker.poll() is None, broker.stderr.read() if broker.stderr else ""
            return False
        writer.close()
        return True

    try:
        await eventually(listening, timeout=20.0, what="mosquitto listening")
        async with asyncio.timeout(20):
            n = 3000  # three times the default per-client queue of 1000
            async with aiomqtt.Client(
                "127.0.0.1", port, identifier="sub", clean_session=False
            ) as sub:
                await sub.subscribe("burst/#", qos=1)
            async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=1000) as pub:
                await asyncio.gather(
                    *(pub.publish(f"burst/{i % 7}", str(i), qos=1) for i in range(n))
                )
            got = 0
            async with aiomqtt.Client(
                "127.0.0.1", port, identifier="sub", clean_session=False
            ) as sub:
                async for _ in sub.messages:
                    got += 1
                    if got == n:
                        break
            assert got == n
    finally:
        broker.terminate()
        broker.wait(10)
