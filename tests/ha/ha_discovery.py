#!/usr/bin/env python3
"""c3n-edge's Home Assistant MQTT discovery against a real Home Assistant.

Run by tests/ha_discovery.sh with the Python of the Home Assistant venv it sets up
(tests/ha/requirements.txt: homeassistant, its MQTT requirement paho-mqtt, what its start needs).
Everything runs on 127.0.0.1 with free ports, in a fresh temporary directory:

* a mosquitto broker;
* Home Assistant (`hass --skip-pip`, no internet) with a minimal configuration.yaml, the MQTT
  config entry pre-written to .storage/core.config_entries (discovery on, birth message on
  `homeassistant/status`) and a long-lived access token made with HA's own auth manager;
* `c3n-edge run` on the real clip assets/clips/bbb-bird (shipped model, looped) with
  `--mqtt mqtt://127.0.0.1:PORT --camera-name bird`;
* an MQTT recorder (paho) that keeps every message on the broker with its arrival time.

It checks in Home Assistant itself (REST API and WebSocket API: device and entity registries,
states, state_changed events, image proxy, service calls):

1. the device (identifiers, name, manufacturer, model, software version) and its entities (six, plus
   one count sensor per tracked category)
   with the right domains, units, device/state classes and event types;
2. states follow what c3n-edge published: the fps / latency sensors equal the rounded values of
   the state topic, the binary sensor goes on while a sounding object is reported and off again,
   the event entity fires for every event c3n-edge published, in order (type, id, label,
   score), the image entity serves the latest snapshot JPEG byte for byte;
3. switch.turn_off in HA pauses detection (detect/set from HA, detect/state and state.detect,
   no new/update events after the pause took effect, the binary sensor off);
4. HA restarted while c3n-edge runs, with the retained discovery configs cleared meanwhile: HA's
   birth `online` makes c3n-edge republish discovery and states, and the entities come back live
   (not restored, not unavailable); switch.turn_on in the restarted HA resumes detection (new
   events reach it);
5. SIGTERM to c3n-edge: `offline` makes every entity unavailable;
6. HA's logs have no WARNING or ERROR line (besides the two known startup warnings), so
   "Invalid discovery", schema, template or event-type errors fail the test.

Exit status 0 when everything holds; on failure the logs' tails are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

CAMERA = "bird"
NODE = f"c3n-edge-{CAMERA}"
DISCOVERY_PREFIX = "homeassistant"
# unique_id suffix -> (domain, discovery component)
ENTITIES = {
    "fps": "sensor",
    "inference_ms": "sensor",
    "sound": "binary_sensor",
    "event": "event",
    "snapshot": "image",
    "detect": "switch",
}
# the tracked categories (issue 15, `[events] labels`): one count sensor each
LABELS = ("bird", "animal", "dog")
ENTITIES.update({f"count_{label}": "sensor" for label in LABELS})
# startup warnings of this setup that say nothing about c3n-edge
ALLOWED_LOG = [
    re.compile(r"\[homeassistant\.bootstrap\] Skipping pip installation of required modules"),
    re.compile(r"\[homeassistant\.bootstrap\] Support for the running Python version"),
]
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ (WARNING|ERROR|CRITICAL) ")


class Failure(Exception):
    """A check that did not hold."""


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Failure(what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# checks run at every poll of wait_for (HA's log, c3n-edge still running); each raises Failure
GUARDS: list = []


async def wait_for(what: str, timeout: float, cond, interval: float = 0.2):
    """Polls `cond` (sync or async) until it returns a truthy value, which is returned; runs
    GUARDS before each poll."""
    end = time.monotonic() + timeout
    while True:
        for g in GUARDS:
            g()
        v = cond()
        if asyncio.iscoroutine(v):
            v = await v
        if v:
            return v
        if time.monotonic() > end:
            raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


# --------------------------------------------------------------------------------------------
# MQTT recorder


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


# --------------------------------------------------------------------------------------------
# Home Assistant


def make_token(config_dir: Path) -> str:
    """A long-lived access token of a new admin user, made with HA's auth manager in a separate
    process (as `hass --script auth` does) and saved to config_dir/.storage."""
    out = subprocess.run(
        [sys.executable, __file__, "--make-token", str(config_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise Failure(f"making the HA access token failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


async def _make_token(config_dir: str) -> str:
    from datetime import timedelta

    from homeassistant.auth import auth_manager_from_config
    from homeassistant.auth.const import GROUP_ID_ADMIN
    from homeassistant.auth.models import TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers import device_registry as dr, entity_registry as er

    hass = HomeAssistant(config_dir)
    await asyncio.gather(dr.async_load(hass), er.async_load(hass))
    hass.auth = await auth_manager_from_config(hass, [{"type": "homeassistant"}], [])
    user = await hass.auth.async_create_user("c3n-edge test", group_ids=[GROUP_ID_ADMIN])
    refresh = await hass.auth.async_create_refresh_token(
        user,
        client_name="c3n-edge test",
        token_type=TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN,
        access_token_expiration=timedelta(days=1),
    )
    token = hass.auth.async_create_access_token(refresh)
    # hass never ran: force the stop, whose final-write stage saves the delayed auth store
    await hass.async_stop(force=True)
    return token


def write_ha_config(cfg: Path, http_port: int, mqtt_port: int) -> None:
    (cfg / ".storage").mkdir(parents=True)
    # No default_config (nothing that discovers or phones home); HA still sets up its default
    # integrations (frontend, ...), mqtt comes from its config entry.
    (cfg / "configuration.yaml").write_text(
        f"""homeassistant:
  name: c3n-edge test
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: DE
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: {http_port}
api:
logger:
  default: info
"""
    )
    entry = {
        "entry_id": "c3nedgetestmqttentry0000000000",
        "version": 1,
        "minor_version": 1,
        "domain": "mqtt",
        "title": f"127.0.0.1:{mqtt_port}",
        # discovery and the birth message on homeassistant/status are HA's defaults
        "data": {"broker": "127.0.0.1", "port": mqtt_port, "discovery": True},
        "options": {},
        "pref_disable_new_entities": False,
        "pref_disable_polling": False,
        "source": "user",
        "unique_id": None,
        "disabled_by": None,
    }
    (cfg / ".storage" / "core.config_entries").write_text(
        json.dumps(
            {
                "version": 1,
                "minor_version": 1,
                "key": "core.config_entries",
                "data": {"entries": [entry]},
            }
        )
    )


class HA:
    """A `hass` process, its REST API and a WebSocket connection recording state_changed."""

    def __init__(self, cfg: Path, port: int, token: str, work: Path):
        self.cfg, self.port, self.token, self.work = cfg, port, token, work
        self.proc: subprocess.Popen | None = None
        self.logs: list[Path] = []
        self.log_pos = 0
        self.session = None
        self.ws = None
        self.reader: asyncio.Task | None = None
        self.pending: dict[int, asyncio.Future] = {}
        self.next_id = 1
        self.changes: list[tuple[float, str, dict | None]] = []  # (time, entity_id, new_state)
        self.base = f"http://127.0.0.1:{port}"

    async def start(self) -> float:
        """Starts hass and waits for its API and WebSocket; returns the start time."""
        import aiohttp

        n = len(self.logs) + 1
        logf = self.work / f"home-assistant-{n}.log"
        self.logs.append(logf)
        self.log_pos = 0
        hass_bin = Path(sys.executable).parent / "hass"
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [str(hass_bin), "-c", str(self.cfg), "--skip-pip", "--log-file", str(logf),
             "--log-no-color"],
            stdout=open(self.work / f"hass-stdout-{n}.txt", "wb"),
            stderr=subprocess.STDOUT,
        )
        if self.session is None:
            self.session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.token}"})

        async def api_up():
            if self.proc.poll() is not None:
                raise Failure(f"hass exited with {self.proc.returncode} at start:\n{self.tail()}")
            try:
                async with self.session.get(f"{self.base}/api/") as r:
                    check(r.status != 401, "Home Assistant rejects the test's access token")
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for("Home Assistant's REST API", 180, api_up, 0.5)
        log(f"Home Assistant #{n} answers after {time.monotonic() - t0:.1f} s")
        self.ws = await self.session.ws_connect(f"{self.base}/api/websocket", max_msg_size=0)
        msg = await self.ws.receive_json()
        check(msg["type"] == "auth_required", f"websocket: {msg}")
        await self.ws.send_json({"type": "auth", "access_token": self.token})
        msg = await self.ws.receive_json()
        check(msg["type"] == "auth_ok", f"websocket auth: {msg}")
        self.reader = asyncio.create_task(self._read())
        await self.command({"type": "subscribe_events", "event_type": "state_changed"})
        return t0

    async def _read(self):
        import aiohttp

        async for m in self.ws:
            if m.type != aiohttp.WSMsgType.TEXT:
                break
            msg = json.loads(m.data)
            if msg.get("type") == "event":
                d = msg["event"]["data"]
                self.changes.append((time.monotonic(), d["entity_id"], d["new_state"]))
            elif msg.get("type") == "result" and msg.get("id") in self.pending:
                self.pending.pop(msg["id"]).set_result(msg)
        for f in self.pending.values():
            f.set_exception(Failure("websocket closed"))
        self.pending.clear()

    async def command(self, body: dict):
        i = self.next_id
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[i] = fut
        await self.ws.send_json({"id": i, **body})
        msg = await asyncio.wait_for(fut, 30)
        check(msg.get("success", False), f"websocket {body['type']}: {msg}")
        return msg.get("result")

    async def state(self, entity_id: str) -> dict | None:
        async with self.session.get(f"{self.base}/api/states/{entity_id}") as r:
            if r.status == 404:
                return None
            check(r.status == 200, f"GET /api/states/{entity_id}: HTTP {r.status}")
            return await r.json()

    async def service(self, domain: str, service: str, data: dict) -> None:
        async with self.session.post(f"{self.base}/api/services/{domain}/{service}",
                                     json=data) as r:
            check(r.status == 200, f"{domain}.{service}: HTTP {r.status} {await r.text()}")

    async def image(self, entity_id: str) -> tuple[int, str, bytes]:
        async with self.session.get(f"{self.base}/api/image_proxy/{entity_id}") as r:
            return r.status, r.headers.get("Content-Type", ""), await r.read()

    def changes_of(self, entity_id: str, since: float = 0.0) -> list[tuple[float, dict | None]]:
        return [(t, s) for (t, e, s) in self.changes if e == entity_id and t >= since]

    async def stop(self) -> None:
        if self.reader:
            await self.ws.close()
            await asyncio.wait([self.reader], timeout=5)
            self.reader = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Failure("hass did not stop within 60 s of SIGTERM")

    async def close(self) -> None:
        try:
            await self.stop()
        finally:
            if self.session:
                await self.session.close()

    def tail(self, n: int = 60) -> str:
        if not self.logs or not self.logs[-1].exists():
            return "(no log)"
        return "\n".join(self.logs[-1].read_text(errors="replace").splitlines()[-n:])

    def check_log(self) -> None:
        """Fails at the first new WARNING/ERROR line of HA's current log."""
        if not self.logs or not self.logs[-1].exists():
            return
        with open(self.logs[-1], "rb") as f:
            f.seek(self.log_pos)
            data = f.read()
        end = data.rfind(b"\n") + 1  # whole lines only
        self.log_pos += end
        for line in data[:end].decode(errors="replace").splitlines():
            if LOG_LINE.match(line) and not any(a.search(line) for a in ALLOWED_LOG):
                raise Failure(f"Home Assistant logged: {line}")

    def bad_log_lines(self) -> list[str]:
        bad = []
        for p in self.logs:
            if not p.exists():
                continue
            for line in p.read_text(errors="replace").splitlines():
                if LOG_LINE.match(line) and not any(a.search(line) for a in ALLOWED_LOG):
                    bad.append(f"{p.name}: {line}")
        return bad


# --------------------------------------------------------------------------------------------
# the test


def number(state: dict | None) -> float | None:
    try:
        return float(state["state"]) if state else None
    except (TypeError, ValueError):
        return None


async def run(args) -> None:
    root = Path(args.root).resolve()
    work = Path(tempfile.mkdtemp(prefix="c3n-ha-"))
    version = tomllib.loads((root / "Cargo.toml").read_text())["package"]["version"]
    procs: list[subprocess.Popen] = []
    recorder = None
    ha = None
    c3n = None
    t_start = time.monotonic()
    try:
        mqtt_port, http_port = free_port(), free_port()
        (work / "mosquitto.conf").write_text(
            f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        mosq = subprocess.Popen(
            ["mosquitto", "-c", str(work / "mosquitto.conf")],
            stdout=open(work / "mosquitto.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        procs.append(mosq)
        await wait_for("mosquitto to listen", 10, lambda: _connects(mqtt_port))
        recorder = Recorder(mqtt_port)

        cfg = work / "ha-config"
        write_ha_config(cfg, http_port, mqtt_port)
        token = make_token(cfg)
        ha = HA(cfg, http_port, token, work)
        GUARDS[:] = [ha.check_log]
        t_ha = await ha.start()
        await wait_for(
            "HA's birth message (homeassistant/status online)",
            60,
            lambda: "online" in recorder.texts(f"{DISCOVERY_PREFIX}/status", t_ha),
        )
        log("HA is connected to mosquitto (birth message seen)")

        # ---- c3n-edge
        events_file = work / "events.jsonl"
        c3n_log = work / "c3n-edge.log"
        c3n_cfg = work / "c3n-edge.toml"
        c3n_cfg.write_text("[events]\nlabels = [" + ", ".join(f'"{x}"' for x in LABELS) + "]\n")
        c3n = subprocess.Popen(
            [args.bin, "run", "--config", str(c3n_cfg), "file://assets/clips/bbb-bird/frames/%05d.png",
             "--audio", "file://assets/clips/bbb-bird/audio.wav", "--input-loop", "-1",
             "--camera-name", CAMERA, "--mqtt", f"mqtt://127.0.0.1:{mqtt_port}",
             "--events", str(events_file), "--log", "info"],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=open(c3n_log, "wb"),
        )
        procs.append(c3n)

        def alive():
            if c3n.poll() is not None:
                raise Failure(f"c3n-edge exited with {c3n.returncode}:\n"
                              f"{c3n_log.read_text(errors='replace')[-3000:]}")

        GUARDS[:] = [ha.check_log, alive]

        # ---- 1. registries
        async def registered():
            ents = await ha.command({"type": "config/entity_registry/list"})
            mine = {e["unique_id"]: e for e in ents
                    if e["platform"] == "mqtt" and e["unique_id"].startswith(NODE + "_")}
            return mine if len(mine) == len(ENTITIES) else None

        ents = await wait_for(f"the {len(ENTITIES)} c3n-edge entities in HA's entity registry", 120,
                              registered, 0.5)
        eid = {}
        for key, domain in ENTITIES.items():
            e = ents.get(f"{NODE}_{key}")
            check(e is not None, f"no entity with unique_id {NODE}_{key}: {sorted(ents)}")
            check(e["entity_id"].split(".")[0] == domain,
                  f"{key}: entity {e['entity_id']} is not in domain {domain}")
            eid[key] = e["entity_id"]
        device_ids = {e["device_id"] for e in ents.values()}
        check(len(device_ids) == 1 and None not in device_ids,
              f"entities are not on one device: {device_ids}")
        devices = await ha.command({"type": "config/device_registry/list"})
        dev = next((d for d in devices if d["id"] in device_ids), None)
        check(dev is not None, "the entities' device is not in the device registry")
        check(dev["identifiers"] == [["mqtt", NODE]], f"device identifiers {dev['identifiers']}")
        for k, want in [("name", f"c3n-edge {CAMERA}"), ("manufacturer", "c3n-edge"),
                        ("model", "C3N sounding-object detector"), ("sw_version", version)]:
            check(dev[k] == want, f"device {k} = {dev[k]!r}, expected {want!r}")
        log(f"device {dev['name']!r} {dev['identifiers']} with {sorted(eid.values())}")

        # ---- 2. states and attributes
        async def attrs(key):
            s = await ha.state(eid[key])
            check(s is not None, f"no state for {eid[key]}")
            return s

        a = (await attrs("fps"))["attributes"]
        check(a.get("unit_of_measurement") == "fps" and a.get("state_class") == "measurement",
              f"fps sensor attributes {a}")
        a = (await attrs("inference_ms"))["attributes"]
        check(a.get("unit_of_measurement") == "ms" and a.get("device_class") == "duration"
              and a.get("state_class") == "measurement", f"latency sensor attributes {a}")
        a = (await attrs("sound"))["attributes"]
        check(a.get("device_class") == "sound", f"binary sensor attributes {a}")
        a = (await attrs("event"))["attributes"]
        check(a.get("event_types") == ["new", "update", "end"], f"event entity attributes {a}")
        await wait_for("switch on (retained detect/state ON)", 30,
                       lambda: _state_is(ha, eid["detect"], "on"))

        state_topic = f"c3n/{CAMERA}/state"

        async def sensors_follow():
            raw = recorder.jsons(state_topic)
            if not raw or raw[-1][1]["clips"] < 1:
                return False
            last = raw[-1][1]
            fps = number(await ha.state(eid["fps"]))
            lat = number(await ha.state(eid["inference_ms"]))
            return (fps is not None and lat is not None
                    and math.isclose(fps, round(last["fps"], 2), abs_tol=1e-9)
                    and math.isclose(lat, round(last["inference_ms"], 1), abs_tol=1e-9)
                    and (fps, lat))

        fps, lat = await wait_for("the sensors to show the latest state topic's fps and "
                                  "inference_ms", 180, sensors_follow, 0.5)
        log(f"sensors: {fps} fps, {lat} ms (= c3n/{CAMERA}/state)")

        async def counts_follow():
            vals = {}
            for label in LABELS:
                got = number(await ha.state(eid[f"count_{label}"]))
                texts = recorder.texts(f"c3n/{CAMERA}/{label}", 0)
                if got is None or not texts or got != float(texts[-1]):
                    return False
                vals[label] = got
            return vals

        counts = await wait_for("the count sensors to show the latest c3n/<camera>/<label> counts", 60,
                                counts_follow, 0.5)
        log(f"count sensors: {counts}")

        events_topic = f"c3n/{CAMERA}/events"
        count_topic = f"c3n/{CAMERA}/all"
        await wait_for("the binary sensor on (a sounding object)", 120,
                       lambda: _state_is(ha, eid["sound"], "on"), 0.5)
        log("binary sensor: on during a sounding object")

        # event entity: it exists (discovery, on connect) seconds before the first window is
        # analysed, so it fires for every event c3n-edge published, in order
        def ha_events(since=0.0):
            out = []
            for t, s in ha.changes_of(eid["event"], since):
                if s and s["state"] not in ("unknown", "unavailable"):
                    a = s["attributes"]
                    out.append((t, a.get("event_type"), a.get("id"), a.get("label"),
                                a.get("score")))
            return out

        await wait_for("the event entity to fire", 60, lambda: ha_events())
        await asyncio.sleep(1.0)
        seen = [g[1:] for g in ha_events()]
        raw_ev = [(e["type"], e["after"]["id"], e["after"]["label"], e["after"]["score"])
                  for _, e in recorder.jsons(events_topic)]
        expect = raw_ev[:len(seen)]
        check(len(seen) == len(expect) and all(
            s[:3] == x[:3] and math.isclose(s[3], x[3], rel_tol=1e-6)
            for s, x in zip(seen, expect)),
            f"HA's event entity fired {seen}, c3n-edge published {expect}")
        check(any(s[0] == "new" for s in seen), f"no 'new' event in HA: {seen}")
        emitted = [json.loads(line) for line in events_file.read_text().splitlines()]
        check(all(any(e["after"]["id"] == s[1] and e["after"]["label"] == s[2] for e in emitted)
                  for s in seen), "HA has an event that c3n-edge did not emit")
        log(f"event entity: {len(seen)} events, as published, e.g. {seen[0]}")

        # image entity: the latest snapshot, byte for byte
        snap_topic = f"c3n/{CAMERA}/all/snapshot"

        async def image_matches():
            snaps = recorder.on(snap_topic)
            if not snaps:
                return False
            status, ctype, body = await ha.image(eid["snapshot"])
            return status == 200 and body == snaps[-1][1] and (ctype, len(body))

        ctype, size = await wait_for("the image entity to serve the latest all/snapshot", 60,
                                     image_matches, 0.5)
        check(ctype == "image/jpeg", f"image proxy content type {ctype}")
        log(f"image entity: {size} bytes of JPEG = c3n/{CAMERA}/all/snapshot")

        # ---- 3. the switch
        t_off = time.monotonic()
        await ha.service("switch", "turn_off", {"entity_id": eid["detect"]})
        await wait_for("detect/set OFF from HA", 10,
                       lambda: "OFF" in recorder.texts(f"c3n/{CAMERA}/detect/set", t_off))
        await wait_for("detect/state OFF and the switch off", 30,
                       lambda: "OFF" in recorder.texts(f"c3n/{CAMERA}/detect/state", t_off)
                       and _state_is(ha, eid["detect"], "off"))

        # windows analysed before the command still report their objects; the pause has taken
        # effect with the first window output without inference (state inference_ms ~ 0)
        def skipped():
            st = [(t, s) for t, s in recorder.jsons(state_topic, t_off)
                  if s["detect"] is False and s["clips"] > 0 and s["inference_ms"] < 1.0]
            return st[0] if st else None

        t_paused, st0 = await wait_for("a state with a window output without inference", 120,
                                       skipped, 0.5)

        def window(n):
            st = [(t, s) for t, s in recorder.jsons(state_topic, t_paused) if s["clips"] >= n]
            return st[0] if st else None

        # the events of the last analysed window may still be queued behind that state (the
        # MQTT client sends states before queued events): from two windows on, only `end`
        t_mark, _ = await wait_for("two more windows while paused", 60,
                                   lambda: window(st0["clips"] + 2), 0.5)
        _, st1 = await wait_for("four more windows while paused", 60,
                                lambda: window(st0["clips"] + 4), 0.5)
        check(st1["detect"] is False and st1["frames"] > st0["frames"],
              f"state while paused: {st1}")
        late = [e["type"] for t, e in recorder.jsons(events_topic, t_mark)]
        check(all(x == "end" for x in late), f"events after detection was paused: {late}")
        ha_late = [g[1] for g in ha_events(t_mark)]
        check(all(x == "end" for x in ha_late), f"HA events after the pause: {ha_late}")
        # no object left: the count is 0 and the binary sensor off
        await wait_for("the binary sensor off (no sounding object while paused)", 30,
                       lambda: _state_is(ha, eid["sound"], "off"))
        # the binary sensor followed the count topic: as many rises (0 -> n > 0) as it had
        # (one may have come before HA subscribed to the count topic)
        raw = [int(p) > 0 for (_, p, _) in recorder.on(count_topic)]
        raw_rises = sum(1 for a, b in zip(raw, raw[1:]) if b and not a)
        seq = [s["state"] for _, s in ha.changes_of(eid["sound"]) if s]
        ha_rises = sum(1 for a, b in zip(seq, seq[1:]) if b == "on" and a != "on")
        check(raw_rises >= 1 and raw_rises - 1 <= ha_rises <= raw_rises,
              f"binary sensor went on {ha_rises} times, c3n/{CAMERA}/all rose {raw_rises} times")
        log(f"switch off: detection paused ({st1['frames'] - st0['frames']} frames without "
            f"inference, events after it: {late})")
        # ---- 4. HA restart (detection still paused): birth -> republish
        await ha.stop()
        log("HA stopped; clearing the retained discovery configs")
        cfg_topics = [f"{DISCOVERY_PREFIX}/{d}/{NODE}/{k}/config" for k, d in ENTITIES.items()]
        for t in cfg_topics:
            check(any(p for (_, p, _) in recorder.on(t)), f"no discovery config on {t}")
            recorder.publish(t, b"", retain=True)
        t_ha2 = await ha.start()
        birth = await wait_for(
            "HA's birth message after the restart", 60,
            lambda: next((t for (t, p, _) in recorder.on(f"{DISCOVERY_PREFIX}/status", t_ha2)
                          if p == b"online"), None))
        await wait_for("c3n-edge to republish discovery after the birth", 30,
                       lambda: all(any(p for (_, p, _) in recorder.on(t, birth))
                                   for t in cfg_topics))

        async def back():
            for key in ENTITIES:
                s = await ha.state(eid[key])
                if (s is None or s["state"] == "unavailable"
                        or s["attributes"].get("restored")):
                    return False
            return (number(await ha.state(eid["fps"])) is not None
                    and await _state_is(ha, eid["detect"], "off")
                    and await _state_is(ha, eid["sound"], "off"))

        await wait_for("the entities live again after HA's restart", 60, back, 0.5)
        log("HA restart: birth -> discovery republished, entities live with states")

        # ---- 4b. the switch in the restarted HA: detection resumes, events reach HA again
        t_on = time.monotonic()
        await ha.service("switch", "turn_on", {"entity_id": eid["detect"]})
        await wait_for("detect/state ON and the switch on", 30,
                       lambda: "ON" in recorder.texts(f"c3n/{CAMERA}/detect/state", t_on)
                       and _state_is(ha, eid["detect"], "on"))
        await wait_for("a new or update event in HA after switch.turn_on", 180,
                       lambda: [g for g in ha_events(t_on) if g[1] != "end"], 0.5)
        log("switch on: detection resumed (new events in the restarted HA)")

        # ---- 5. c3n-edge stops: unavailable
        GUARDS.remove(alive)
        c3n.send_signal(signal.SIGTERM)
        rc = await asyncio.to_thread(c3n.wait, 120)
        check(rc == 0,
              f"c3n-edge exit status {rc}:\n{c3n_log.read_text(errors='replace')[-3000:]}")

        async def all_unavailable():
            for key in ENTITIES:
                s = await ha.state(eid[key])
                if s is None or s["state"] != "unavailable":
                    return False
            return True

        await wait_for("every entity unavailable after c3n-edge's offline", 30, all_unavailable)
        log("c3n-edge stopped: every entity unavailable")
        await ha.stop()

        # ---- 6. HA's logs
        bad = ha.bad_log_lines()
        check(not bad, "Home Assistant logged warnings/errors:\n" + "\n".join(bad[:40]))
        log(f"HA logs clean; ha_discovery passed in {time.monotonic() - t_start:.1f} s")
    except BaseException:
        if ha is not None:
            print(f"\n--- Home Assistant log (tail) ---\n{ha.tail()}", file=sys.stderr)
            bad = ha.bad_log_lines()
            if bad:
                print("--- HA warnings/errors ---\n" + "\n".join(bad[:40]), file=sys.stderr)
        clog = work / "c3n-edge.log"
        if clog.exists():
            print(f"--- c3n-edge log (tail) ---\n{clog.read_text(errors='replace')[-3000:]}",
                  file=sys.stderr)
        if recorder is not None:
            print(f"--- MQTT messages per topic ---\n{recorder.summary()}", file=sys.stderr)
            recorder.dump(work / "mqtt.jsonl")
        print(f"--- work directory kept: {work}", file=sys.stderr)
        args.keep = True
        raise
    finally:
        if ha is not None:
            await ha.close()
        if recorder is not None:
            recorder.stop()
        for p in reversed(procs):
            if p.poll() is None:
                p.kill()
                p.wait()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


async def _state_is(ha: HA, entity_id: str, want: str) -> bool:
    s = await ha.state(entity_id)
    return bool(s) and s["state"] == want


def _on_then_off(ha: HA, entity_id: str) -> bool:
    seq = [s["state"] for _, s in ha.changes_of(entity_id) if s]
    return "on" in seq and "off" in seq[seq.index("on"):]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", help="the c3n-edge binary")
    p.add_argument("--root", default=str(Path(__file__).resolve().parents[2]),
                   help="repository root (assets/clips/bbb-bird, the shipped model)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--make-token", metavar="CONFIG_DIR", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.make_token:
        print(asyncio.run(_make_token(args.make_token)))
        return 0
    if not args.bin:
        p.error("--bin is required")
    args.bin = str(Path(args.bin).resolve())
    try:
        asyncio.run(run(args))
    except Failure as e:
        print(f"\nFAIL ha_discovery: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
