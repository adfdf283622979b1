#!/usr/bin/env python3
"""One-process soak: one `c3n-edge run` for the whole run, on looping input with MQTT (a real
mosquitto) and the preview server, under faults; samples resources and counts events and faults.

    .venv/bin/python tests/soak/soak.py --minutes 60 [--bin target/release/c3n-edge] [--out build/soak]
    .venv/bin/python tests/soak/soak.py --minutes 5 --ci     # one verdict line, exit status 0/1
    .venv/bin/python tests/soak/soak.py --minutes 5 --ci --paced --input-rate 2   # the test command's

What it does:
* input: the shipped bbb-bird clip (10 frames + WAV) copied into OUT/frames and looped forever
  (`--input-loop -1`; a looped file skips bad frames by default, `--on-bad-frame skip`), to MQTT
  (`--mqtt`, camera `soak`, QoS 1 from OUT/soak.toml) and the preview server (`--output
  http://…?auth=none`), events also to OUT/events.jsonl;
* faults, every `--fault-scale` × (60 s, 240 s, 300 s): the broker is killed (SIGKILL) and started
  again 5 s later; a garbage frame (a PNG signature and text); a 13000×13000 PNG (mid-grey, 0.5
  MB, written once; c3n-edge refuses it from its header, over `[input] max_pixels`). A bad frame
  replaces one frame file (the middle one) until the run has read it, at most `--hold-s`, then the
  good file is put back; one bad frame at a time. The default scale is minutes / 20, at most 1:
  the hour runs the faults above, a 5-minute run kills the broker every 15 s and injects every
  60 s / 75 s;
* every `--sample-s` (default 10 s × scale, at least 2.5 s): RSS, threads and open fds of the
  c3n-edge process (/proc), its `/api/state` (frames, frames_bad), events emitted (lines of the
  events file) and received by the subscriber, the client's counters from the `state` topic;
* at the end: the bad frame restored, the broker started if it was down, the run given two more
  model windows and its MQTT reconnection, then SIGTERM; the subscriber waits for its `offline`.

How it counts, exactly (see inject.py and broker.py):
* bad frames: an inotify watch on the frame directory counts the opens of the swapped file
  between the renames that put a bad frame in and the good one back: the run's reads of bad
  frames, whatever its speed. c3n-edge's `frames_bad` (its final `state` message) must equal
  them, and so must its "skipping a bad frame" warnings naming the file (those of the 13000²
  frame naming max_pixels); every injected frame must have been read at least once;
* events: the subscriber keeps a persistent session (clean session 0, QoS 1) with a broker that
  saves it every second, so it misses nothing while it or the broker reconnects; the set of event
  payloads received must equal the lines of the events file (duplicate QoS 1 deliveries are
  counted apart). c3n-edge's own `dropped` / `unconfirmed` counters explain a difference;
  `resent` counts its events sent again after a broker kill (a source of duplicates).

Verdict (exit status 1 if a target fails): the process never exited by itself (restarts = 0; one
that does is restarted so that the run goes on, and counted), it exited 0 at SIGTERM, events
emitted = events received, every fault counted; and, for runs of 60 minutes or more, an RSS slope
over the last 2/3 of the run (the last 40 minutes of an hour) of at most 1 MB per 10 minutes.
Shorter runs report the slope only. Outputs: OUT/soak.csv, OUT/soak.png, OUT/summary.md (the
table, also printed unless `--ci`), logs OUT/*.log.

Needs mosquitto (Debian `mosquitto`), Linux (inotify, /proc) and Pillow (in the project venv).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from broker import Broker, Subscriber
from inject import Injector, OpenWatch, big_png
from report import plot, rss_slope, write_csv

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIP = os.path.join(ROOT, "assets/clips/bbb-bird")
PREFIX, CAMERA = "c3n", "soak"  # the default topic prefix, the camera name given
SLOPE_MAX = 1.0  # MB per 10 minutes, target of runs >= 60 min


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stats(pid):
    """(RSS MB, threads, fds) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            st = dict(line.split(":", 1) for line in f if ":" in line)
        return int(st["VmRSS"].split()[0]) / 1024, int(st["Threads"]), len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, KeyError, ValueError):
        return None


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return [line.rstrip(b"\n") for line in f]
    except OSError:
        return []


def get(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read()
    except (OSError, ValueError):
        return None


def get_json(url):
    """The JSON object at `url`, or {} (no answer, not yet a state)."""
    try:
        v = json.loads(get(url) or b"null")
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


class LogTap(threading.Thread):
    """Copies a c3n-edge process's stderr into the log, counting its "skipping a bad frame"
    warnings that name the victim file (`warned`), and those of them that name max_pixels."""

    def __init__(self, stream, log, victim):
        super().__init__(daemon=True)
        self.stream, self.log, self.victim = stream, log, victim
        self.warned, self.warned_pixels, self.tail = 0, 0, []

    def run(self):
        for raw in self.stream:
            self.log.write(raw)
            line = raw.decode(errors="replace")
            if "skipping a bad frame" in line and self.victim in line:
                self.warned += 1
                self.warned_pixels += "max_pixels" in line
            self.tail = (self.tail + [line.rstrip()])[-5:]
        self.log.flush()


class Edge:
    """The c3n-edge process; `start` again after an exit is a restart. Each process writes its
    events to EVENTS.part, appended to EVENTS when it ends."""

    def __init__(self, argv, events, log, victim):
        self.argv, self.events, self.log, self.victim = argv, events, log, victim
        self.proc, self.taps, self.started, self.exits = None, [], 0.0, []

    def start(self):
        self.proc = subprocess.Popen(self.argv + ["--events", self.events + ".part"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.taps.append(LogTap(self.proc.stderr, self.log, self.victim))
        self.taps[-1].start()
        self.started = time.time()

    def reaped(self):
        """The exit status if the process ended (its events kept), else None."""
        rc = self.proc.poll()
        if rc is not None:
            self.taps[-1].join(timeout=5)
            self.keep_events()
            self.exits.append(rc)
        return rc

    def keep_events(self):
        part = self.events + ".part"
        if os.path.exists(part):
            with open(self.events, "ab") as f, open(part, "rb") as g:
                f.write(g.read())
            os.remove(part)

    def terminate(self, timeout=60):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.taps[-1].join(timeout=5)
        self.keep_events()
        return rc

    def warned(self, pixels=False):
        return sum(t.warned_pixels if pixels else t.warned for t in self.taps)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/debug/c3n-edge"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/c3n-edge-t5.onnx"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build/soak"))
    ap.add_argument("--fault-scale", type=float, default=None,
                    help="multiplies the fault intervals and the sample period (default: minutes/20, at most 1)")
    ap.add_argument("--sample-s", type=float, default=None, help="default 10 s x scale, at least 2.5 s")
    ap.add_argument("--hold-s", type=float, default=None,
                    help="longest a bad frame stays in place unread (default: the garbage interval)")
    ap.add_argument("--ci", action="store_true", help="print only a one-line verdict")
    ap.add_argument("--paced", action="store_true",
                    help="release the looped clip at wall-clock pace (`--paced`: stream mode, a camera's "
                         "load) instead of as fast as the engine goes (window mode, the default)")
    ap.add_argument("--input-rate", type=float, default=None, help="frames per second of the clip (default 1)")
    a = ap.parse_args()
    a.scale = a.fault_scale if a.fault_scale else min(1.0, a.minutes / 20)
    a.kill_s, a.bad_s, a.huge_s = 60 * a.scale, 240 * a.scale, 300 * a.scale
    a.sample_s = a.sample_s or max(2.5, 10 * a.scale)
    a.hold_s = a.hold_s or a.bad_s
    return a


def main():
    a = parse_args()
    try:  # checked now, not after an hour of soaking: the plot needs it
        import PIL  # noqa: F401
    except ImportError:
        sys.exit("soak.py needs Pillow for its plot: run it with the project venv, .venv/bin/python tests/soak/soak.py")
    for path in (a.bin, a.model):
        if not os.path.isfile(path):
            sys.exit(f"soak.py: {path} not found (--bin, --model)")
    say = (lambda *_: None) if a.ci else (lambda s: print(s, flush=True))

    work = os.path.abspath(a.out)
    shutil.rmtree(work, ignore_errors=True)
    frames = os.path.join(work, "frames")
    shutil.copytree(os.path.join(CLIP, "frames"), frames)
    names = sorted(os.listdir(frames))
    victim = os.path.join(frames, names[len(names) // 2])
    huge = big_png(13000, 13000)
    with open(os.path.join(work, "huge-13000.png"), "wb") as f:  # for inspection; injected from memory
        f.write(huge)
    with open(os.path.join(work, "soak.toml"), "w") as f:
        f.write("# written by tests/soak/soak.py: events at QoS 1, so that none is lost silently\n"
                "[mqtt]\nqos = 1\n")
    events = os.path.join(work, "events.jsonl")
    mqtt_port, http_port = free_port(), free_port()
    api = f"http://127.0.0.1:{http_port}"

    broker = Broker(mqtt_port, work)
    broker.start()
    sub = Subscriber(mqtt_port, PREFIX, CAMERA)
    sub.start()
    if not sub.subscribed.wait(10):
        broker.kill()
        sys.exit("soak.py: the subscriber could not subscribe (mosquitto.log)")
    time.sleep(1.5)  # the broker has saved the subscriber's session (autosave every second)
    watch = OpenWatch(frames, os.path.basename(victim))
    watch.start()
    log = open(os.path.join(work, "c3n-edge.log"), "ab")
    edge = Edge([a.bin, "run", f"file://{frames}/%05d.png", "--audio", f"file://{CLIP}/audio.wav",
                 "--model", a.model, "--config", os.path.join(work, "soak.toml"), "--input-loop", "-1",
                 "--mqtt", f"mqtt://127.0.0.1:{mqtt_port}", "--camera-name", CAMERA,
                 "--output", f"{api}?auth=none", "--log", "info"]
                + (["--paced"] if a.paced else [])
                + (["--input-rate", f"{a.input_rate:g}"] if a.input_rate else []),
                events, log, os.path.basename(victim))
    garbage = b"\x89PNG\r\n\x1a\n garbage injected by soak.py"
    t0 = time.time()
    inj = Injector(victim, {"garbage": garbage, "huge": huge}, os.path.join(work, ".swap"), watch, a.hold_s, t0)
    edge.start()

    rows, restarts, broker_kills, bad_before, last_api = [], 0, 0, 0, {}
    next_sample, next_kill = t0 + a.sample_s, t0 + a.kill_s
    next_bad, next_huge, broker_back = t0 + a.bad_s, t0 + a.huge_s, None
    end = t0 + a.minutes * 60

    def sample(now):
        st = proc_stats(edge.proc.pid) or (0, 0, 0)
        api_state = get_json(f"{api}/api/state")
        if api_state:
            last_api.update(api_state)
        preview = len(get(f"{api}/snapshot.jpg") or b"")
        mq = sub.mqtt_counters()
        with sub.lock:
            received, dups = len(sub.events), sub.duplicates
        part = len(read_lines(events + ".part"))
        rows.append(dict(t_s=round(now - t0, 1), age_s=round(now - edge.started), rss_mb=round(st[0], 1),
                         threads=st[1], fds=st[2], frames=last_api.get("frames", 0),
                         frames_bad=bad_before + last_api.get("frames_bad", 0), bad_reads=inj.bad_reads(),
                         emitted=len(read_lines(events)) + part, received=received, duplicates=dups,
                         published=mq.get("published", 0), dropped=mq.get("dropped", 0),
                         queued=mq.get("queued", 0), unconfirmed=mq.get("unconfirmed", 0),
                         resent=mq.get("resent", 0),
                         connects=mq.get("connects", 0), broker_kills=broker_kills, restarts=restarts,
                         preview_bytes=preview))
        r = rows[-1]
        say(f"{r['t_s']:7.0f} s  rss {r['rss_mb']:6.1f} MB  thr {r['threads']:3d}  fds {r['fds']:3d}  "
            f"emitted {r['emitted']:5d}  received {r['received']:5d}  dropped {r['dropped']:3d}  "
            f"bad {r['frames_bad']:3d}/{r['bad_reads']:3d} read  connects {r['connects']:3d}  restarts {restarts}")

    try:
        while time.time() < end:
            now = time.time()
            rc = edge.reaped()
            if rc is not None:  # a failure: counted, and restarted so that the run goes on
                restarts += 1
                bad_before += last_api.get("frames_bad", 0)
                last_api.clear()
                say(f"c3n-edge exited ({rc}) at {now - t0:.0f} s: " + " | ".join(edge.taps[-1].tail[-2:]))
                edge.start()
            if now >= next_kill and broker_back is None:
                broker.kill()
                broker_kills += 1
                broker_back, next_kill = now + 5, now + a.kill_s
            if broker_back and now >= broker_back:
                broker.start()
                broker_back = None
            if now >= next_bad:
                inj.due("garbage")
                next_bad += a.bad_s
            if now >= next_huge:
                inj.due("huge")
                next_huge += a.huge_s
            inj.step(now)
            if now >= next_sample:
                next_sample += a.sample_s
                sample(now)
            time.sleep(0.05 if inj.current else 0.2)
        # the end: bad frame out, broker up, the run's state caught up, then SIGTERM
        caught_up = inj.finish()
        if not broker.up():
            broker.start()
        clips = get_json(f"{api}/api/state").get("clips", 0)
        until = time.time() + 60
        while time.time() < until:
            st = get_json(f"{api}/api/state")
            with sub.lock:
                connected = sub.state_at > broker.started_at and (sub.state.get("mqtt") or {}).get("connected")
            if st.get("clips", 0) >= clips + 2 and connected:
                break
            time.sleep(0.2)
        sample(time.time())
        term_at = time.time()
        exit_rc = edge.terminate()
        until = time.time() + 15
        while time.time() < until and not (sub.available == "offline" and sub.available_at > term_at):
            time.sleep(0.1)
        time.sleep(1)
    finally:
        if edge.proc.poll() is None:
            edge.terminate(timeout=10)
        log.close()
        sub.stop = watch.stop = True
        broker.kill()
    write_csv(rows, os.path.join(work, "soak.csv"))
    plot(rows, os.path.join(work, "soak.png"))
    ok = verdict(a, rows, edge, sub, inj, watch, dict(restarts=restarts, exit_rc=exit_rc, caught_up=caught_up,
                                                       bad_before=bad_before, broker_kills=broker_kills,
                                                       events=events, last_api=last_api, work=work,
                                                       first_frame=names[0]))
    sys.exit(0 if ok else 1)


def verdict(a, rows, edge, sub, inj, watch, x):
    """Prints the table (unless --ci) and the verdict line; writes summary.md; True if it passes."""
    emitted = read_lines(x["events"])
    with sub.lock:
        received, deliveries, dups, connects, resumed = set(sub.events), sub.deliveries, sub.duplicates, \
            sub.connects, sub.resumed
        final = dict(sub.state)
    mq = final.get("mqtt") or {}
    missing = len(set(emitted) - received)
    extra = len(received - set(emitted))
    frames_bad = x["bad_before"] + final.get("frames_bad", x["last_api"].get("frames_bad", 0))
    reads, reads_huge = inj.bad_reads(), inj.bad_reads("huge")
    kinds = {k: sum(1 for r in inj.records if r["kind"] == k) for k in ("garbage", "huge")}
    unread = sum(1 for r in inj.records if not r["reads"])
    warned, warned_pixels = edge.warned(), edge.warned(pixels=True)
    first = next((r for r in rows if r["age_s"] >= 30 and r["rss_mb"] > 0), rows[0])
    last = rows[-1]
    slope, w_start, w_n = rss_slope(rows)
    steady = [r for r in rows if r["age_s"] >= 30 and r["rss_mb"] > 0] or rows

    def rng(key):
        return f"{min(r[key] for r in steady)}–{max(r[key] for r in steady)}"

    slope_s = "n/a" if slope is None else f"{slope:+.2f}"
    checks = [
        ("restarts", x["restarts"] == 0, f"restarts {x['restarts']}"),
        ("exit", x["exit_rc"] == 0, f"exit at SIGTERM {x['exit_rc']}"),
        ("events", len(emitted) == len(set(emitted)) and missing == 0 and extra == 0,
         f"events emitted {len(emitted)} / received {len(received)} (missing {missing}, extra {extra})"),
        ("faults", x["caught_up"] and not watch.overflow and unread == 0 and frames_bad == reads == warned
         and warned_pixels == reads_huge and len(inj.records) > 0,
         f"bad frames injected {len(inj.records)} ({unread} unread), read {reads}, frames_bad {frames_bad}, "
         f"warned {warned}"),
    ]
    if a.minutes >= 60:
        checks.append(("rss", slope is not None and slope <= SLOPE_MAX, f"RSS slope {slope_s} MB/10 min"))
    table = [
        f"| soak {a.minutes:g} min (fault scale {a.scale:g}) | value |", "|---|---|",
        f"| c3n-edge processes / restarts (exits by itself) / exit status at SIGTERM | "
        f"{1 + x['restarts']} / {x['restarts']} / {x['exit_rc']} |",
        f"| RSS (MB) at {first['t_s']:.0f} s / at the end ({last['t_s']:.0f} s) | "
        f"{first['rss_mb']} / {last['rss_mb']} |",
        f"| RSS slope, least squares over {w_start / 60:.1f}–{last['t_s'] / 60:.1f} min ({w_n} samples) | "
        f"{slope_s} MB per 10 min |",
        f"| threads / open fds (30 s after start on) | {rng('threads')} / {rng('fds')} |",
        f"| events emitted (events.jsonl) / received by the subscriber (distinct) | {len(emitted)} / {len(received)} |",
        f"| subscriber: deliveries / duplicates (QoS 1) / connects / sessions resumed | "
        f"{deliveries} / {dups} / {connects} / {resumed} |",
        f"| c3n-edge MQTT counters (final state): published / dropped / unconfirmed / resent / rejected / "
        f"connects | {mq.get('published')} / {mq.get('dropped')} / {mq.get('unconfirmed')} / "
        f"{mq.get('resent')} / {mq.get('rejected')} / "
        f"{mq.get('connects')} |",
        f"| broker kills | {x['broker_kills']} |",
        f"| bad frames injected: garbage / 13000² (unread) | {kinds['garbage']} / {kinds['huge']} ({unread}) |",
        f"| reads of bad frames (inotify) / frames_bad (final state) / warnings naming the frame (max_pixels) | "
        f"{reads} / {frames_bad} / {warned} ({warned_pixels} of {reads_huge}) |",
        f"| frames analysed / passes over the clip (opens of the first frame) | "
        f"{last['frames']} / {watch.opens[x['first_frame']]} |",
        f"| preview snapshot served at the last sample | {last['preview_bytes'] > 0} |",
    ]
    failed = [d for _, good, d in checks if not good]
    line = (f"soak {'PASS' if not failed else 'FAIL'} ({a.minutes:g} min): "
            + "; ".join(d for _, _, d in checks)
            + f"; RSS {first['rss_mb']}→{last['rss_mb']} MB, slope {slope_s} MB/10 min"
            + (f" — failed: {', '.join(n for n, good, _ in checks if not good)}" if failed else ""))
    with open(os.path.join(x["work"], "summary.md"), "w") as f:
        f.write("\n".join(table) + "\n\n" + line + "\n")
    if not a.ci:
        print("\n" + "\n".join(table) + f"\n\nCSV {x['work']}/soak.csv, plot {x['work']}/soak.png, "
              f"logs {x['work']}/*.log\n")
    print(line, flush=True)
    return not failed


if __name__ == "__main__":
    main()
