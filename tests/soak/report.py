"""The soak's outputs: the CSV of samples, the plot (Pillow) and the RSS trend."""


def write_csv(rows, path):
    with open(path, "w") as f:
        f.write(",".join(rows[0]) + "\n")
        for r in rows:
            f.write(",".join(str(v) for v in r.values()) + "\n")


def rss_slope(rows, frac=2 / 3):
    """Least-squares slope of RSS over the samples of the last `frac` of the run (the last 40
    minutes of an hour), in MB per 10 minutes; with the window's start (s) and sample count.
    None when fewer than 3 samples fall in the window."""
    t_end = rows[-1]["t_s"]
    start = t_end * (1 - frac)
    pts = [(r["t_s"], r["rss_mb"]) for r in rows if r["t_s"] >= start and r["rss_mb"] > 0]
    if len(pts) < 3:
        return None, start, len(pts)
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mr = sum(m for _, m in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    if var == 0:
        return None, start, n
    slope = sum((t - mt) * (m - mr) for t, m in pts) / var  # MB per s
    return slope * 600, start, n


def plot(rows, path):
    from PIL import Image, ImageDraw

    panels = [("RSS (MB)", ["rss_mb"]), ("threads / fds", ["threads", "fds"]),
              ("events (cumulative)", ["emitted", "received", "dropped"]),
              ("bad frames (cumulative)", ["bad_reads", "frames_bad"])]
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
