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

1. the device (identifiers, name, manufacturer, model, software version) and its entities (nine,
   plus one count sensor per tracked category)
   with the right domains, units, device/state classes and event types;
2. states follow what c3n-edge published: the fps / mask rate / latency sensors equal the rounded
   values of the state topic, the binary sensor goes on while a sounding object is reported and
   off again, the event entity fires for every event c3n-edge published, in order (type, id,
   label, score), the image entity serves the latest snapshot JPEG byte for byte;
3. switch.turn_off in HA pauses detection (detect/set from HA, detect/state and state.detect,
   no new/update events after the pause took effect, the binary sensor off);
4. HA restarted while c3n-edge runs, with the retained discovery configs cleared meanwhile: HA's
   birth `online` makes c3n-edge republish discovery and states, and the entities come back live
   (not restored, not unavailable); switch.turn_on in the restarted HA resumes detection (new
   events reach it);
5. SIGTERM to c3n-edge: `offline` makes every entity unavailable;
6. HA's logs have no WARNING or ERROR line (besides the two known startup warnings), so
   "Invalid discovery", schema, template or event-type errors fail the test.

Exit status 0 when everything holds; on failure the logs' tails are printed. Helpers:
ha_common.py (failures, polling), ha_mqtt.py (the recorder), ha_server.py (Home Assistant).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from ha_common import GUARDS, Failure, check, connects, free_port, log, number, wait_for
from ha_mqtt import Recorder
from ha_server import HA, make_token, write_ha_config

CAMERA = "bird"
NODE = f"c3n-edge-{CAMERA}"
DISCOVERY_PREFIX = "homeassistant"
# unique_id suffix -> (domain, discovery component)
ENTITIES = {
    "fps": "sensor",
    "mask_rate": "sensor",
    "inference_ms": "sensor",
    "frames_bad": "sensor",
    "audio_gaps": "sensor",
    "frames_skipped": "sensor",
    "sound": "binary_sensor",
    "event": "event",
    "snapshot": "image",
    "detect": "switch",
}
# the tracked categories (issue 15, `[events] labels`): one count sensor each
LABELS = ("bird", "animal", "dog")
ENTITIES.update({f"count_{label}": "sensor" for label in LABELS})


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
        await wait_for("mosquitto to listen", 10, lambda: connects(mqtt_port))
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
        a = (await attrs("mask_rate"))["attributes"]
        check(a.get("unit_of_measurement") == "masks/s" and a.get("state_class") == "measurement",
              f"mask rate sensor attributes {a}")
        a = (await attrs("inference_ms"))["attributes"]
        check(a.get("unit_of_measurement") == "ms" and a.get("device_class") == "duration"
              and a.get("state_class") == "measurement", f"latency sensor attributes {a}")
        for key in ("frames_bad", "audio_gaps", "frames_skipped"):
            a = (await attrs(key))["attributes"]
            check(a.get("state_class") == "total_increasing", f"{key} sensor attributes {a}")
            cat = ents[f"{NODE}_{key}"].get("entity_category")
            check(cat == "diagnostic", f"{key}: entity category {cat!r}, expected 'diagnostic'")
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
            rate = number(await ha.state(eid["mask_rate"]))
            lat = number(await ha.state(eid["inference_ms"]))
            bad = number(await ha.state(eid["frames_bad"]))
            gaps = number(await ha.state(eid["audio_gaps"]))
            skipped = number(await ha.state(eid["frames_skipped"]))
            return (fps is not None and lat is not None
                    and bad == last["frames_bad"] and gaps == last["audio_gaps"]
                    and skipped == last["frames_skipped"]
                    and math.isclose(fps, round(last["fps"], 2), abs_tol=1e-9)
                    and rate is not None
                    and math.isclose(rate, round(last["mask_rate"], 2), abs_tol=1e-9)
                    and math.isclose(lat, round(last["inference_ms"], 1), abs_tol=1e-9)
                    and (fps, lat))

        fps, lat = await wait_for("the sensors to show the latest state topic's fps, mask_rate "
                                  "and inference_ms", 180, sensors_follow, 0.5)
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


async def _state_is(ha: HA, entity_id: str, want: str) -> bool:
    s = await ha.state(entity_id)
    return bool(s) and s["state"] == want


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", help="the c3n-edge binary")
    p.add_argument("--root", default=str(Path(__file__).resolve().parents[2]),
                   help="repository root (assets/clips/bbb-bird, the shipped model)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args()
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
