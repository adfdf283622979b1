#!/usr/bin/env python3
"""Soak benchmark (not a CI test): `c3n-edge run` for a long time on looping input with MQTT (a
real mosquitto) and the preview server, under faults, sampling resources and event counts.

    .venv/bin/python tests/soak/soak.py --minutes 60 [--bin target/release/c3n-edge] [--out build/soak]

What it does:
* input: the shipped bbb-bird clip (frames + WAV) copied into OUT/frames and looped forever
  (`--input-loop -1`), to MQTT (`--mqtt`, camera `soak`) and the preview server (`--output
  http://…`, polled every sample), events also to OUT/events.jsonl;
* faults: the broker is killed (SIGKILL) every `--broker-kill-s` (default 60 s) and restarted
  5 s later; every `--bad-frame-s` (default 240 s) one frame of the sequence is replaced by
  garbage until the run reads it (at most 30 s). Under `--on-bad-frame stop` (given: a looped
  file skips bad frames by default) a frame that cannot be decoded ends the run (after its window
  in progress is analysed), so the script restarts c3n-edge, as systemd's
  Restart=on-failure would, and checks that the exit named the bad frame;
* every `--sample-s` (default 10 s): RSS, threads and open fds of the c3n-edge process (from
  /proc), events emitted (lines of events.jsonl), events received by an independent MQTT
  subscriber, and the client's own counters from the retained `state` topic (published, dropped,
  queued, unconfirmed, connects);
* at the end: a summary table (Markdown) and OUT/soak.csv, OUT/soak.png (Pillow line plots).

Needs mosquitto (Debian `mosquitto`) and Pillow (in the project venv). Standard library otherwise;
the MQTT subscriber speaks MQTT 3.1.1 over a plain socket.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIP = os.path.join(ROOT, "assets/clips/bbb-bird")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ minimal MQTT 3.1.1 subscriber


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
    """Counts PUBLISHes on `events_topic` and keeps the latest `state_topic` JSON; reconnects."""

    def __init__(self, port, events_topic, state_topic):
        super().__init__(daemon=True)
        self.port, self.events_topic, self.state_topic = port, events_topic, state_topic
        self.received, self.state, self.connects, self.stop = 0, {}, 0, False
        self.lock = threading.Lock()

    def run(self):
        while not self.stop:
            try:
                self.session()
            except OSError:
                pass
            time.sleep(0.5)

    def session(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            var = _utf8("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 30)  # clean session
            payload = _utf8(f"soak-sub-{os.getpid()}")
            s.sendall(bytes([0x10]) + _remaining_length(len(var) + len(payload)) + var + payload)
            body = _utf8(self.events_topic) + b"\x00" + _utf8(self.state_topic) + b"\x00"
            s.sendall(bytes([0x82]) + _remaining_length(2 + len(body)) + struct.pack(">H", 1) + body)
            with self.lock:
                self.connects += 1
            s.settimeout(10)
            last_ping = time.time()
            buf = b""
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
                buf += chunk
                buf = self.parse(buf)

    def parse(self, buf):
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
            kind, body, buf = buf[0], buf[i:i + n], buf[i + n:]
            if kind >> 4 == 3:  # PUBLISH (QoS 0 as subscribed)
                tlen = struct.unpack(">H", body[:2])[0]
                topic = body[2:2 + tlen].decode(errors="replace")
                payload = body[2 + tlen:]
                with self.lock:
                    if topic == self.events_topic:
                        self.received += 1
                    elif topic == self.state_topic:
                        try:
                            self.state = json.loads(payload)
                        except ValueError:
                            pass
        return buf


# ------------------------------------------------------------------ processes


class Broker:
    def __init__(self, port, work):
        self.port, self.proc = port, None
        self.conf = os.path.join(work, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.log = open(os.path.join(work, "mosquitto.log"), "ab")

    def start(self):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", self.conf], stdout=self.log, stderr=self.log)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def proc_stats(pid):
    """(RSS MB, threads, fds) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            st = dict(line.split(":", 1) for line in f if ":" in line)
        rss = int(st["VmRSS"].split()[0]) / 1024
        threads = int(st["Threads"])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return rss, threads, fds
    except (OSError, KeyError, ValueError):
        return None


def keep_events(events):
    """Append a finished run's `events.part` to `events` and remove it (else it would be counted
    again until the next run truncates it). A run that failed at start wrote none."""
    part = events + ".part"
    if os.path.exists(part):
        with open(events, "ab") as f, open(part, "rb") as g:
            f.write(g.read())
        os.remove(part)


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


# ------------------------------------------------------------------ plot (Pillow)


def plot(rows, path):
    from PIL import Image, ImageDraw

    panels = [("RSS (MB)", ["rss_mb"]), ("threads / fds", ["threads", "fds"]),
              ("events (cumulative)", ["emitted", "received", "dropped"])]
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44)]
    w, ph, m = 900, 220, 60
    img = Image.new("RGB", (w, ph * len(panels) + 20), "white")
    d = ImageDraw.Draw(img)
    t_max = max(r["t_s"] for r in rows) or 1
    for p, (title, keys) in enumerate(panels):
        top = 10 + p * ph
        x0, x1, y0, y1 = m, w - 20, top + 20, top + ph - 30
        vals = [r[k] for r in rows for k in keys]
        lo, hi = min(vals), max(vals)
        if hi == lo:
            hi = lo + 1
        d.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
        d.text((x0, top + 4), title, fill=(0, 0, 0))
        d.text((4, y0), f"{hi:.0f}", fill=(0, 0, 0))
        d.text((4, y1 - 10), f"{lo:.0f}", fill=(0, 0, 0))
        d.text((x1 - 60, y1 + 4), f"{t_max / 60:.1f} min", fill=(0, 0, 0))
        for k, key in enumerate(keys):
            pts = [(x0 + (x1 - x0) * r["t_s"] / t_max, y1 - (y1 - y0) * (r[key] - lo) / (hi - lo)) for r in rows]
            if len(pts) > 1:
                d.line(pts, fill=colours[k], width=2)
            d.text((x0 + 200 + 110 * k, top + 4), key, fill=colours[k])
    img.save(path)


# ------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/debug/c3n-edge"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/c3n-edge-t5.onnx"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build/soak"))
    ap.add_argument("--sample-s", type=float, default=10)
    ap.add_argument("--broker-kill-s", type=float, default=60)
    ap.add_argument("--bad-frame-s", type=float, default=240)
    a = ap.parse_args()
    try:  # checked now, not after an hour of soaking: the plot needs it
        import PIL  # noqa: F401
    except ImportError:
        sys.exit("soak.py needs Pillow for its plot: run it with the project venv, .venv/bin/python tests/soak/soak.py")

    work = os.path.abspath(a.out)
    shutil.rmtree(work, ignore_errors=True)
    frames = os.path.join(work, "frames")
    shutil.copytree(os.path.join(CLIP, "frames"), frames)
    victim = os.path.join(frames, sorted(os.listdir(frames))[len(os.listdir(frames)) // 2])
    with open(victim, "rb") as f:
        victim_bytes = f.read()
    events = os.path.join(work, "events.jsonl")
    mqtt_port, http_port = free_port(), free_port()
    broker = Broker(mqtt_port, work)
    broker.start()
    time.sleep(0.5)
    sub = Subscriber(mqtt_port, "c3n/soak/events", "c3n/soak/state")
    sub.start()
    log = open(os.path.join(work, "c3n-edge.log"), "ab")

    def start_run():
        # the events file is appended across restarts: count its lines before each start
        args = [a.bin, "run", f"file://{frames}/%05d.png", "--audio", f"file://{CLIP}/audio.wav",
                "--model", a.model, "--input-loop", "-1", "--on-bad-frame", "stop",
                "--mqtt", f"mqtt://127.0.0.1:{mqtt_port}",
                "--camera-name", "soak", "--output", f"http://127.0.0.1:{http_port}?auth=none",
                "--events", events + ".part", "--log", "info"]
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    emitted_before = 0
    run, run_started = start_run(), time.time()
    rows, restarts, bad_named, broker_kills, injected = [], 0, 0, 0, 0
    t0 = time.time()
    next_sample, next_kill, next_bad = t0 + a.sample_s, t0 + a.broker_kill_s, t0 + a.bad_frame_s
    broker_down_until, bad_until = None, None
    end = t0 + a.minutes * 60
    try:
        while time.time() < end:
            now = time.time()
            if run.poll() is not None:
                err = run.stderr.read().decode(errors="replace")
                log.write(err.encode())
                restarts += 1
                bad_named += os.path.basename(victim) in err
                emitted_before += count_lines(events + ".part")
                keep_events(events)
                if bad_until:  # restore the frame before restarting
                    with open(victim, "wb") as f:
                        f.write(victim_bytes)
                    bad_until = None
                run, run_started = start_run(), time.time()
            if now >= next_kill and broker_down_until is None:
                broker.kill()
                broker_kills += 1
                broker_down_until = now + 5
                next_kill = now + a.broker_kill_s
            if broker_down_until and now >= broker_down_until:
                broker.start()
                broker_down_until = None
            if now >= next_bad and bad_until is None:
                with open(victim, "wb") as f:
                    f.write(b"\x89PNG\r\n\x1a\n garbage injected by soak.py")
                injected += 1
                bad_until = now + 30
                next_bad = now + a.bad_frame_s
            if bad_until and now >= bad_until:
                with open(victim, "wb") as f:
                    f.write(victim_bytes)
                bad_until = None
            if now >= next_sample:
                next_sample += a.sample_s
                st = proc_stats(run.pid) or (0, 0, 0)
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/snapshot.jpg", timeout=2) as r:
                        preview = len(r.read())
                except OSError:
                    preview = 0
                with sub.lock:
                    mq = dict(sub.state.get("mqtt", {}))
                    received = sub.received
                rows.append(dict(t_s=round(now - t0, 1), age_s=round(now - run_started), rss_mb=round(st[0], 1),
                                 threads=st[1], fds=st[2],
                                 emitted=emitted_before + count_lines(events + ".part"), received=received,
                                 published=mq.get("published", 0), dropped=mq.get("dropped", 0),
                                 queued=mq.get("queued", 0), unconfirmed=mq.get("unconfirmed", 0),
                                 connects=mq.get("connects", 0), restarts=restarts, preview_bytes=preview))
                r = rows[-1]
                print(f"{r['t_s']:7.0f} s  rss {r['rss_mb']:6.1f} MB  threads {r['threads']:3d}  fds {r['fds']:3d}  "
                      f"emitted {r['emitted']:6d}  received {r['received']:6d}  dropped {r['dropped']:4d}  "
                      f"connects {r['connects']:3d}  restarts {restarts}", flush=True)
            time.sleep(0.2)
    finally:
        run.send_signal(signal.SIGTERM)
        try:
            run.wait(timeout=30)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait()
        log.write(run.stderr.read())  # the last process's log, as for the restarted ones
        log.close()
        keep_events(events)  # the last run's events too
        sub.stop = True
        broker.kill()
    if not rows:
        sys.exit("no samples")
    with open(os.path.join(work, "soak.csv"), "w") as f:
        f.write(",".join(rows[0]) + "\n")
        for r in rows:
            f.write(",".join(str(v) for v in r.values()) + "\n")
    plot(rows, os.path.join(work, "soak.png"))
    # RSS once a process has warmed up (30 s after each start)
    steady = [r for r in rows if r["rss_mb"] > 0 and r["age_s"] >= 30] or rows

    def rng(key, rs=steady):
        return f"{min(r[key] for r in rs)}–{max(r[key] for r in rs)}"

    last = rows[-1]
    print(f"\n| soak {a.minutes:g} min | value |\n|---|---|")
    print(f"| RSS (MB), 30 s or more after each (re)start | {rng('rss_mb')} |")
    print(f"| threads | {rng('threads')} |")
    print(f"| open fds | {rng('fds')} |")
    print(f"| events emitted (events.jsonl) | {last['emitted']} |")
    print(f"| events received by a subscriber | {last['received']} |")
    print(f"| client counters (last process): published / dropped / queued / unconfirmed | "
          f"{last['published']} / {last['dropped']} / {last['queued']} / {last['unconfirmed']} |")
    print(f"| broker kills / client connects (last process) / subscriber connects | "
          f"{broker_kills} / {last['connects']} / {sub.connects} |")
    print(f"| bad frames injected → restarts (exit named the frame) | "
          f"{injected} → {restarts} ({bad_named}) |")
    print(f"| preview snapshot served at the last sample | {last['preview_bytes'] > 0} |")
    print(f"\nCSV {work}/soak.csv, plot {work}/soak.png, logs {work}/*.log")


if __name__ == "__main__":
    main()
