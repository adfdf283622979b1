"""Bad frames for the soak, and the exact count of how often the run read them.

A looped image sequence reads each file once per pass (`File::open` in
`src/frontend/image.rs::read_rgb_limited`), so a bad frame left in place is read once per pass:
how many bad frames the run met depends on its speed. `OpenWatch` measures it without asking
c3n-edge: an inotify watch on the frame directory sees every open of a file (IN_OPEN) and every
rename onto it (IN_MOVED_TO), in the kernel's order. The frames are swapped by rename only
(`os.replace` of a file written outside the watched directory), so the opens of the victim after
the k-th rename onto it and before the (k+1)-th are exactly the reads of the k-th content put
there: renames 1, 3, 5, … put a bad frame in place, 2, 4, 6, … restore the good one. Closes are
watched too, only so that the kernel does not merge two opens of one file in a row into one event
(inotify merges identical consecutive events).

`Injector` puts one bad frame in place at a time (a fault falling due while another is in place
waits for it), keeps it there until the run has opened it (or at most `max_hold` seconds), then
restores the good frame. Its `bad_reads` is the number of reads of bad frames, to compare with
c3n-edge's `frames_bad` and with its log.
"""
import ctypes
import os
import select
import struct
import threading
import time
import zlib
from collections import Counter, deque

IN_CLOSE, IN_OPEN, IN_MOVED_TO, IN_Q_OVERFLOW = 0x18, 0x20, 0x80, 0x4000


class OpenWatch(threading.Thread):
    """inotify on `directory`: opens per file name (`opens`), and opens of `victim` per epoch
    (`epoch_opens[k]`: opens after the k-th rename onto it; `epoch`: renames seen so far)."""

    def __init__(self, directory, victim):
        super().__init__(daemon=True)
        self.victim = victim.encode()
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, directory.encode(), IN_OPEN | IN_CLOSE | IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), f"inotify on {directory}")
        self.opens, self.epoch_opens, self.epoch, self.overflow = Counter(), Counter(), 0, False
        self.lock = threading.Lock()
        self.stop = False

    def run(self):
        while not self.stop:
            if not select.select([self.fd], [], [], 0.2)[0]:
                continue
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            pos = 0
            with self.lock:
                while pos + 16 <= len(data):
                    _, mask, _, n = struct.unpack_from("iIII", data, pos)
                    name = data[pos + 16:pos + 16 + n].rstrip(b"\0")
                    pos += 16 + n
                    if mask & IN_Q_OVERFLOW:
                        self.overflow = True
                    elif mask & IN_MOVED_TO and name == self.victim:
                        self.epoch += 1
                    elif mask & IN_OPEN and name:
                        self.opens[name.decode()] += 1
                        if name == self.victim:
                            self.epoch_opens[self.epoch] += 1

    def reads(self, epoch):
        with self.lock:
            return self.epoch_opens[epoch]

    def caught_up(self, epoch):
        with self.lock:
            return self.epoch >= epoch


def big_png(width, height):
    """An RGB PNG of width × height, mid-grey with a darker band, as bytes; streamed through zlib
    row by row, so neither this process nor the file is large (13000² -> ~0.5 MB, a few s)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    grey = b"\x00" + b"\x80\x80\x80" * width
    band = b"\x00" + b"\x40\x40\x40" * width
    same = b"\x02" + bytes(3 * width)  # filter "Up": the row above again
    parts = []
    for y in range(height):
        row = grey if y == 0 else band if y == height // 2 else grey if y == height // 2 + 1 else same
        parts.append(z.compress(row))
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


class Injector:
    """Swaps bad frames in for the file `victim` (see the module docstring). `faults` maps a kind to
    its bytes; `records` lists every injection: kind, t_in, t_out (s since `t0`), reads."""

    def __init__(self, victim, faults, swap, watch, max_hold, t0):
        self.victim, self.faults, self.swap, self.watch = victim, faults, swap, watch
        with open(victim, "rb") as f:
            self.good = f.read()
        self.max_hold, self.t0 = max_hold, t0
        self.renames, self.pending, self.current, self.records = 0, deque(), None, []

    def _put(self, data):
        with open(self.swap, "wb") as f:
            f.write(data)
        os.replace(self.swap, self.victim)
        self.renames += 1
        return self.renames

    def due(self, kind):
        """A fault of `kind` falls due; not queued twice (a slow run would pile them up)."""
        if kind not in self.pending and not (self.current and self.current["kind"] == kind):
            self.pending.append(kind)

    def step(self, now, hold=True):
        """Restores a bad frame the run has read (or held `max_hold`); then injects the next one
        due (unless `hold` is false: the run is ending)."""
        c = self.current
        if c and (self.watch.reads(c["epoch"]) or now - c["since"] >= self.max_hold or not hold):
            self._put(self.good)
            c["t_out"] = round(now - self.t0, 1)
            self.current = None
        if self.current is None and self.pending and hold:
            kind = self.pending.popleft()
            epoch = self._put(self.faults[kind])
            self.current = dict(kind=kind, epoch=epoch, since=now, t_in=round(now - self.t0, 1), t_out=None)
            self.records.append(self.current)

    def finish(self, timeout=10):
        """Restores the good frame, waits for the watch to see every rename; fills in `reads`."""
        self.step(time.time(), hold=False)
        end = time.time() + timeout
        while not self.watch.caught_up(self.renames) and time.time() < end:
            time.sleep(0.05)
        for r in self.records:
            r["reads"] = self.watch.reads(r["epoch"])
        return self.watch.caught_up(self.renames)

    def bad_reads(self, kind=None):
        return sum(self.watch.reads(r["epoch"]) for r in self.records if kind in (None, r["kind"]))
