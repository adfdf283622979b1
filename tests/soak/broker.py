"""The soak's MQTT side: a mosquitto that keeps its sessions across SIGKILL (persistence saved every
second) and an independent MQTT 3.1.1 subscriber with a persistent session (standard library).

Why both: the broker is killed every minute. A subscriber with a clean session loses what c3n-edge
publishes between the broker's restart and the subscriber's own reconnect (c3n-edge may well
reconnect first). With `clean session = 0` and a fixed client id, the broker keeps the
subscriber's subscriptions and queues QoS 1 messages for it while it is away; with persistence the
session also survives the broker's SIGKILL (saved every second, and the subscription is made
before c3n-edge starts). QoS 1 may deliver a message twice (a redelivery after a reconnect), so
events are counted by payload (each event line is unique: it carries its object id and frame
time) and duplicate deliveries are counted apart.
"""
import json
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections import Counter


class Broker:
    """mosquitto on 127.0.0.1:`port`, persistence in `work` saved every second."""

    def __init__(self, port, work):
        self.port, self.proc, self.started_at = port, None, 0.0
        self.conf = os.path.join(work, "mosquitto.conf")
        with open(self.conf, "w") as f:
            # `user`: mosquitto started as root would drop to `mosquitto`, who cannot write here
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {pwd.getpwuid(os.getuid()).pw_name}\n"
                    f"persistence true\npersistence_location {work}/\nautosave_interval 1\n")
        self.log = open(os.path.join(work, "mosquitto.log"), "ab")

    def start(self):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", self.conf], stdout=self.log, stderr=self.log)
        self.started_at = time.time()

    def up(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.up():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def _remaining_length(n):
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


class Subscriber(threading.Thread):
    """Subscribes (QoS 1, persistent session) to c3n-edge's events, state and availability topics
    and reconnects whenever the connection drops.

    events: Counter of event payloads received; deliveries / duplicates: every event PUBLISH and
    those whose payload had been received before; state (+ state_at): the latest state JSON;
    available (+ available_at): the latest availability payload; connects / resumed: connections
    made and how many of them found their session (CONNACK session present)."""

    def __init__(self, port, prefix, camera):
        super().__init__(daemon=True)
        self.port = port
        self.events_topic, self.state_topic = f"{prefix}/{camera}/events", f"{prefix}/{camera}/state"
        self.available_topic = f"{prefix}/available"
        self.client_id = f"soak-sub-{os.getpid()}"
        self.events, self.deliveries, self.duplicates = Counter(), 0, 0
        self.state, self.state_at, self.available, self.available_at = {}, 0.0, "", 0.0
        self.connects, self.resumed, self.stop = 0, 0, False
        self.subscribed = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        while not self.stop:
            try:
                self.session()
            except OSError:
                pass
            time.sleep(0.2)

    def session(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            var = _utf8("MQTT") + bytes([4, 0x00]) + struct.pack(">H", 30)  # clean session 0
            payload = _utf8(self.client_id)
            s.sendall(bytes([0x10]) + _remaining_length(len(var) + len(payload)) + var + payload)
            # subscribed again on every connection (harmless when the session kept them)
            body = b"".join(_utf8(t) + b"\x01" for t in (self.events_topic, self.state_topic,
                                                          self.available_topic))
            s.sendall(bytes([0x82]) + _remaining_length(2 + len(body)) + struct.pack(">H", 1) + body)
            s.settimeout(2)
            last_ping, buf = time.time(), b""
            while not self.stop:
                if time.time() - last_ping > 10:
                    s.sendall(b"\xc0\x00")
                    last_ping = time.time()
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                buf = self.parse(s, buf + chunk)

    def parse(self, s, buf):
        while len(buf) >= 2:
            mult, n, i = 1, 0, 1
            while True:
                if i >= len(buf):
                    return buf
                b = buf[i]
                n += (b & 127) * mult
                mult *= 128
                i += 1
                if not b & 128:
                    break
            if len(buf) < i + n:
                return buf
            head, body, buf = buf[0], buf[i:i + n], buf[i + n:]
            kind = head >> 4
            if kind == 2:  # CONNACK
                with self.lock:
                    self.connects += 1
                    self.resumed += body[0] & 1
            elif kind == 9:  # SUBACK
                self.subscribed.set()
            elif kind == 3:  # PUBLISH
                self.on_publish(s, head, body)
        return buf

    def on_publish(self, s, head, body):
        qos = (head >> 1) & 3
        tlen = struct.unpack(">H", body[:2])[0]
        topic = body[2:2 + tlen].decode(errors="replace")
        pos = 2 + tlen
        pid = body[pos:pos + 2] if qos else b""
        payload = bytes(body[pos + (2 if qos else 0):])
        with self.lock:
            if topic == self.events_topic:
                self.deliveries += 1
                self.duplicates += payload in self.events
                self.events[payload] += 1
            elif topic == self.state_topic:
                try:
                    self.state, self.state_at = json.loads(payload), time.time()
                except ValueError:
                    pass
            elif topic == self.available_topic:
                self.available, self.available_at = payload.decode(errors="replace"), time.time()
        if qos == 1:  # PUBACK once counted
            s.sendall(b"\x40\x02" + pid)

    def mqtt_counters(self):
        with self.lock:
            return dict(self.state.get("mqtt") or {})
