"""The MQTT recorder of the Home Assistant discovery test (tests/ha/ha_discovery.py)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from ha_common import Failure


class Recorder:
    """Every message on the broker (`#`), with its arrival time (time.monotonic())."""

    def __init__(self, port: int):
        import paho.mqtt.client as mqtt

        self.msgs: list[tuple[float, str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(client_id="ha-test-recorder", clean_session=True)
        self.client.on_connect = lambda c, u, f, rc: c.subscribe("#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, q: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise Failure(f"MQTT recorder: no SUBACK from mosquitto on port {port}")

    def _on_message(self, _c, _u, m):
        with self.lock:
            self.msgs.append((time.monotonic(), m.topic, bytes(m.payload), bool(m.retain)))

    def on(self, topic: str, since: float = 0.0) -> list[tuple[float, bytes, bool]]:
        with self.lock:
            return [(t, p, r) for (t, tp, p, r) in self.msgs if tp == topic and t >= since]

    def texts(self, topic: str, since: float = 0.0) -> list[str]:
        return [p.decode("utf-8", "replace") for (_, p, _) in self.on(topic, since)]

    def jsons(self, topic: str, since: float = 0.0) -> list[tuple[float, dict]]:
        return [(t, json.loads(p)) for (t, p, _) in self.on(topic, since) if p]

    def publish(self, topic: str, payload: bytes, retain: bool) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(5)

    def summary(self) -> str:
        with self.lock:
            counts: dict[str, int] = {}
            for (_, tp, _, _) in self.msgs:
                counts[tp] = counts.get(tp, 0) + 1
        return "\n".join(f"  {n:5d} {t}" for t, n in sorted(counts.items()))

    def dump(self, path: Path) -> None:
        """Every message as JSON lines: time, topic, retain, text (or byte count)."""
        with self.lock, open(path, "w") as f:
            for (t, tp, p, r) in self.msgs:
                try:
                    text = p.decode("utf-8")
                except UnicodeDecodeError:
                    text = f"<{len(p)} bytes>"
                f.write(json.dumps({"t": round(t, 3), "topic": tp, "retain": r, "payload": text})
                        + "\n")

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
