#!/usr/bin/env python3
"""Generates the bad-input corpus of tests/bad_input.rs: broken models, WAVs, images, configs and
eval trees, plus the cases that run `c3n-edge` on them (cases.json).

    python3 tests/bad_input/make_corpus.py OUT_DIR MODEL.onnx

Standard library only (the files are written byte by byte), deterministic, a few seconds. Each
case in OUT_DIR/cases.json:

    name      unique id
    args      c3n-edge arguments ({dir} = OUT_DIR, {model} = the real model, {root} = the repository)
    exit      expected exit status (0 ok, 1 error, 2 usage error)
    stderr    substrings stderr must contain (the bad file or flag is named)
    protect   files that exist before the run and must be byte-identical after it
    fsize     optional RLIMIT_FSIZE in bytes (a full disk)
    memory    optional address-space limit in bytes, instead of the runner's default
    term_after_s  optional: send SIGTERM after this many seconds; the run must stop cleanly
    lines_whole   optional file whose content must be whole JSON lines only

The runner adds the memory limit (prlimit --as) and the timeout.
"""
import json
import os
import shutil
import struct
import sys
import zlib

# RLIMIT_FSIZE of the full-disk case: more than one event line of the bbb-bird clip, less than all
FULL_DISK_BYTES = 6000


def png(w, h, rgb=(90, 120, 200), ihdr_wh=None):
    """An RGB8 PNG; `ihdr_wh` overrides the declared size (a lying header)."""
    raw = b"".join(b"\0" + bytes(rgb) * w for _ in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    dw, dh = ihdr_wh or (w, h)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", dw, dh, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def big_png(w, h):
    """A real, valid RGB8 PNG of w×h pixels (flat colour with a few lines), compressed row by row
    so that neither this script nor the file is large (13000² -> ~0.5 MB, ~2 s)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    flat, line = b"\0" + bytes((90, 120, 200)) * w, b"\0" + bytes((90, 200, 200)) * w
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(line if y % 97 == 0 else flat) for y in range(h)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def wav(tag=1, channels=1, rate=16000, bits=16, data=None, declared=None, fmt_size=16, extra=b""):
    """A WAV file with the given header fields; `declared` overrides the data chunk size."""
    if data is None:
        # 3 s of a 440 Hz square-ish tone
        n = rate * 3 if rate < 100_000 else 1000
        data = b"".join(struct.pack("<h", 8000 if (i // 18) % 2 else -8000) for i in range(n))
    align = channels * (bits // 8)
    fmt = struct.pack("<HHIIHH", tag, channels, rate & 0xFFFFFFFF, (rate * align) & 0xFFFFFFFF,
                      align & 0xFFFF, bits)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", fmt_size) + fmt + extra + b"data"
            + struct.pack("<I", len(data) if declared is None else declared) + data)
    return b"RIFF" + struct.pack("<I", len(body) & 0xFFFFFFFF) + body


def main():
    out, model = sys.argv[1], os.path.abspath(sys.argv[2])
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    cases = []

    def put(rel, data):
        p = os.path.join(out, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def case(name, args, exit, stderr=(), protect=(), **kw):
        cases.append(dict(name=name, args=args, exit=exit, stderr=list(stderr), protect=list(protect), **kw))

    # ---- good inputs the bad ones are combined with: 3 small frames, 3 s of audio
    for i in range(3):
        put(f"frames/{i:05d}.png", png(48, 32, (40 * i, 100, 160)))
    put("good.wav", wav())
    frames = "file://{dir}/frames/%05d.png"
    audio = "file://{dir}/good.wav"
    run = ["run", frames, "--audio", audio, "--model", "{model}", "--events", "{dir}/ev.jsonl"]

    def run_with(*extra, model="{model}", video=frames, aud=audio, events="{dir}/ev.jsonl"):
        return ["run", video, "--audio", aud, "--model", model, "--events", events, *extra]

    case("good_run", run, 0)

    # ---- models
    put("models/empty.onnx", b"")
    put("models/garbage.onnx", bytes((i * 73 + 11) % 256 for i in range(4096)))
    put("models/text.onnx", b"this is not a model\n")
    with open(model, "rb") as f:
        real = f.read()
    put("models/truncated.onnx", real[:100_000])
    os.makedirs(os.path.join(out, "models/dir.onnx"))
    # metadata edits of the same length keep the protobuf valid
    put("models/no_schema.onnx", real.replace(b"c3n.schema", b"c3n.schemX", 1))
    put("models/rate_1hz.onnx", real.replace(b"\x0516000", b"\x0500001", 1))
    for m, why in [("empty", "empty.onnx"), ("garbage", "garbage.onnx"), ("text", "text.onnx"),
                   ("truncated", "truncated.onnx"), ("dir", "dir.onnx"), ("missing", "missing.onnx"),
                   ("no_schema", "no_schema.onnx"), ("rate_1hz", "rate_1hz.onnx")]:
        path = "{dir}/models/" + why
        case(f"model_{m}_run", run_with(model=path), 1, [why])
        case(f"model_{m}_info", ["model-info", path], 1, [why])
    case("model_info_no_schema_key", ["model-info", "{dir}/models/no_schema.onnx"], 1, ["c3n.schema"])

    # ---- WAVs (errors)
    bad_wavs = {
        "empty": (b"", "empty"),
        "riff_only": (b"RIFF", "too short"),
        "text": (b"hello, this is text, not audio\n", "not a RIFF/WAVE"),
        "ogg": (b"OggS" + bytes(60), "Ogg"),
        "header_cut": (wav()[:30], "truncated"),
        "fmt_overlong": (wav(fmt_size=0xFFFFFFF0), "truncated"),
        "rate_2g": (wav(rate=2147483647, data=bytes(320_000)), "sample rate 2147483647"),
        "rate_1hz": (wav(rate=1, data=bytes(40)), "sample rate 1 Hz"),
        "channels_0": (wav(channels=0, data=bytes(64)), "0 channels"),
        "channels_65535": (wav(channels=65535, bits=8, data=bytes(64)), "65535 channels"),
        "bits_12": (wav(bits=12, data=bytes(64)), "12-bit"),
        "mp3_tag": (wav(tag=0x55, data=bytes(64)), "format tag 0x0055"),
        "list_overlong": (b"RIFF\0\0\0\0WAVELIST\xff\xff\xff\x7f" + bytes(32), "LIST"),
        "data_first": (b"RIFF\0\0\0\0WAVEdata\x04\0\0\0\0\0\0\0", "before any fmt"),
        "rf64": (b"RF64\xff\xff\xff\xffWAVE" + bytes(64), "RF64"),
    }
    for name, (data, msg) in bad_wavs.items():
        p = put(f"wav/{name}.wav", data)
        case(f"wav_{name}", run_with(aud=f"file://{{dir}}/wav/{name}.wav"), 1, [f"{name}.wav", msg],
             protect=[p.replace(out, "{dir}")])
    # over the 1 GiB WAV limit (a sparse file): refused from its size, before it is read
    with open(os.path.join(out, "wav/over_1gib.wav"), "wb") as f:
        f.write(wav(data=bytes(64), declared=(1 << 30)))
        f.truncate((1 << 30) + 100)
    case("wav_over_size_limit", run_with(aud="file://{dir}/wav/over_1gib.wav"), 1,
         ["over_1gib.wav: 1073741924 bytes, more than the 1073741824 a WAV file may have"])
    os.makedirs(os.path.join(out, "wav/dir.wav"))
    case("wav_directory", run_with(aud="file://{dir}/wav/dir.wav"), 1, ["dir.wav", "not a regular file"])
    os.mkfifo(os.path.join(out, "wav/fifo.wav"))
    case("wav_fifo", run_with(aud="file://{dir}/wav/fifo.wav"), 1, ["fifo.wav", "not a regular file"])
    os.symlink("/dev/zero", os.path.join(out, "wav/zero.wav"))
    case("wav_dev_zero", run_with(aud="file://{dir}/wav/zero.wav"), 1, ["zero.wav", "not a regular file"])
    case("wav_missing", run_with(aud="file://{dir}/wav/missing.wav"), 1, ["missing.wav"])

    # ---- WAVs that are usable, with a loud warning
    ok_wavs = {
        "cut_short": (wav(declared=0x7FFFFFFF), "cut short"),
        "no_samples": (wav(data=b""), "no samples"),
        "tenth_second": (wav(data=bytes(3200)), "only 0.100 s"),
        "nan": (wav(tag=3, bits=32, data=b"".join(struct.pack("<f", v) for v in
                                                  [0.1, float("nan"), float("inf")] * 16000)),
                "NaN or infinite"),
        "float64_stereo": (wav(tag=3, bits=64, channels=2, data=bytes(16 * 48000)), None),
        "u8_44k": (wav(bits=8, rate=44100, data=bytes([128, 200]) * 44100), None),
    }
    for name, (data, msg) in ok_wavs.items():
        put(f"wav/{name}.wav", data)
        case(f"wav_ok_{name}", run_with(aud=f"file://{{dir}}/wav/{name}.wav"), 0,
             [f"{name}.wav", msg] if msg else [])

    # ---- image sequences
    def seq(name, files):
        for i, data in files.items():
            put(f"seq/{name}/{i:05d}.png", data)
        return f"file://{{dir}}/seq/{name}/%05d.png"

    good = png(48, 32)
    case("seq_corrupt_frame", run_with(video=seq("corrupt", {0: good, 1: good, 2: b"\x89PNG broken"})), 1,
         ["00002.png"])
    case("seq_empty_frame", run_with(video=seq("emptyframe", {0: good, 1: b""})), 1, ["00001.png"])
    case("seq_truncated_frame", run_with(video=seq("trunc", {0: good, 1: good[:40]})), 1, ["00001.png"])
    # --on-bad-frame (issue 27): skip completes and names the frame, stop is the default's exit
    wrong = seq("wrongsize", {0: good, 1: png(32, 48), 2: good})
    case("seq_wrong_size_frame", run_with(video=wrong), 1, ["00001.png", "32x48 pixels", "first frame is 48x32"])
    for name, video, frame in [("corrupt", "file://{dir}/seq/corrupt/%05d.png", "00002.png"),
                               ("trunc", "file://{dir}/seq/trunc/%05d.png", "00001.png"),
                               ("wrongsize", wrong, "00001.png")]:
        case(f"seq_{name}_skip", run_with("--on-bad-frame", "skip", video=video), 0,
             [frame, "skipping a bad frame", "1 bad frame in a row skipped"])
        case(f"seq_{name}_stop", run_with("--on-bad-frame", "stop", video=video), 1, [frame])
    case("seq_corrupt_config_skip", run_with("--config", "{dir}/skip.toml", video="file://{dir}/seq/corrupt/%05d.png"),
         0, ["00002.png", "skipping a bad frame"])
    put("skip.toml", b'[input]\non_bad_frame = "skip"\n')
    case("flag_on_bad_frame_bad", run_with("--on-bad-frame", "ignore"), 2, ["--on-bad-frame", "ignore"])
    case("seq_huge_header", run_with(video=seq("huge", {0: png(4, 4, ihdr_wh=(60000, 60000))})), 1,
         ["00000.png: 60000×60000 pixels, over [input] max_pixels 16777216 (4096×4096)"])
    # a real 13000² PNG (0.5 MB; decoding it took 3 GB): refused from its header, under 600 MB
    case("seq_huge_real_13000", run_with(video=seq("huge13k", {0: big_png(13000, 13000), 1: good})), 1,
         ["00000.png: 13000×13000 pixels, over [input] max_pixels 16777216 (4096×4096)"],
         memory=600_000_000)
    # [input] max_pixels: a 48×32 frame (1536 px) passes at 1536 and is refused at 1535
    put("config_max_pixels_1536.toml", b"[input]\nmax_pixels = 1536\n")
    put("config_max_pixels_1535.toml", b"[input]\nmax_pixels = 1535\n")
    case("seq_at_max_pixels", run_with("--config", "{dir}/config_max_pixels_1536.toml"), 0)
    case("seq_over_max_pixels", run_with("--config", "{dir}/config_max_pixels_1535.toml"), 1,
         ["frames/00000.png: 48×32 pixels, over [input] max_pixels 1535\n"])
    case("seq_gap", run_with(video=seq("gap", {0: good, 1: good, 3: good, 4: good})), 0,
         ["00002.png is missing", "2 later files", "frame 2"])
    case("seq_starts_at_2", run_with(video=seq("late", {2: good, 3: good})), 1,
         ["00002.png (number 2)", "start at 0 or 1"])
    seq("fifo", {0: good, 1: good})
    os.mkfifo(os.path.join(out, "seq/fifo/00002.png"))
    put("seq/fifo/00003.png", good)
    case("seq_fifo", run_with(video="file://{dir}/seq/fifo/%05d.png"), 0,
         ["00002.png is not a regular file", "frame 2"])
    case("seq_no_match", run_with(video="file://{dir}/seq/nothing/%05d.png"), 1, ["no file matches"])

    # ---- URIs and flags
    for name, uri, msg in [("rtsp", "rtsp://host/x", "rtsp"), ("txt", "file://notes.txt", "notes.txt"),
                           ("two_fields", "file://a/%d_%d.png", "more than one"),
                           ("empty_file", "file://", "empty path"), ("percent_n", "file://a/%n.png", "%"),
                           ("empty", "", "empty")]:
        case(f"uri_{name}", run_with(video=uri), 1, [msg])
    for value in ["1e-9", "1e-300", "0", "-1", "nan", "inf", "abc", "1e6"]:
        case(f"flag_input_rate_{value}", run_with(f"--input-rate={value}"), 2, ["--input-rate", value])
    case("flag_input_loop_-2", run_with("--input-loop=-2"), 2, ["--input-loop", "-2"])
    for value in ["2", "nan", "-0.5"]:
        case(f"flag_alpha_{value}", run_with(f"--alpha={value}"), 2, ["--alpha", value])
    for name, cam in [("space", "front door"), ("slash", "a/b"), ("empty", ""), ("plus", "cam+")]:
        case(f"flag_camera_{name}", run_with("--camera-name", cam), 1, ["camera name", repr(cam)[1:-1]])
    case("flag_threads_0", run_with("--threads", "0"), 2, ["--threads"])
    case("flag_backend", run_with("--backend", "bogus"), 1, ["bogus"])
    case("flag_overlay_format", run_with("--overlay-format", "gif", "--overlay", "{dir}/ov"), 1, ["gif"])
    case("flag_mqtt_url", run_with("--mqtt", "http://x"), 1, ["http://x"])
    case("flag_output_scheme", run_with("--output", "ftp://x"), 1, ["ftp"])
    case("flag_output_display_index", run_with("--output", "display://x"), 1, ["display://x"])
    case("flag_output_display_mode", run_with("--output", "display://0?backend=drm&mode=64x48:16"), 1,
         ["framebuffer geometry", "backend=drm give WxH"])

    # ---- outputs that would destroy something
    put("old_events.jsonl", b'{"previous": "results"}\n')
    case("events_kept_on_model_typo", run_with(model="{dir}/models/typo.onnx", events="{dir}/old_events.jsonl"),
         1, ["typo.onnx"], protect=["{dir}/old_events.jsonl"])
    case("events_kept_on_bad_audio", run_with(aud="file://{dir}/wav/text.wav", events="{dir}/old_events.jsonl"),
         1, ["text.wav"], protect=["{dir}/old_events.jsonl"])
    case("events_is_audio", run_with(events="{dir}/good.wav"), 1, ["--events", "good.wav", "audio input"],
         protect=["{dir}/good.wav"])
    case("events_is_model", run_with(events="{model}"), 1, ["--events", "model input"], protect=["{model}"])
    case("events_is_frame", run_with(events="{dir}/frames/00001.png"), 1, ["--events", "00001.png"],
         protect=["{dir}/frames/00001.png"])
    case("events_is_dir", run_with(events="{dir}/frames"), 1, ["frames", "is a directory"])
    case("events_dir_missing", run_with(events="{dir}/no/such/ev.jsonl"), 1, ["no/such", "does not exist"])
    case("overlay_is_frame_dir", run_with("--overlay", "{dir}/frames/"), 1, ["--overlay", "frame directory"],
         protect=[f"{{dir}}/frames/{i:05d}.png" for i in range(3)])
    case("output_is_frame_dir", run_with("--output", "file://{dir}/frames/%06d.png"), 1,
         ["--output", "frame directory"], protect=[f"{{dir}}/frames/{i:05d}.png" for i in range(3)])
    put("regular_file", b"x")
    case("output_under_regular_file", run_with("--output", "file://{dir}/regular_file/%05d.jpg"), 1,
         ["regular_file: exists and is not a directory"])
    case("overlay_under_regular_file", run_with("--overlay", "{dir}/regular_file/ov"), 1,
         ["regular_file is a file, not a directory"])
    # a full disk (RLIMIT_FSIZE): the error names the file, and no half line is left
    bbb = "file://{root}/assets/clips/bbb-bird"
    case("events_disk_full", run_with("--input-loop", "2", video=bbb + "/frames/%05d.png",
                                      aud=bbb + "/audio.wav", events="{dir}/full.jsonl"), 1,
         ["full.jsonl", "File too large"], fsize=FULL_DISK_BYTES, lines_whole="{dir}/full.jsonl")
    # SIGTERM stops an endless run cleanly
    case("sigterm_endless_loop", run_with("--input-loop", "-1", events="/dev/null"), 0, [], term_after_s=4)

    # ---- configs
    cfgs = {
        "syntax": (b"[events\ncamera = 1", "config_syntax.toml"),
        "unknown_key": (b"[events]\ncamra = \"x\"\n", "camra"),
        "wrong_type": (b"[events]\nmin_frames = \"three\"\n", "min_frames"),
        "camera_space": (b"[events]\ncamera = \"front door\"\n", "front door"),
        "threshold": (b"[post]\nthreshold = 2.0\n", "threshold"),
        "binary": (bytes(range(256)) * 4, "config_binary.toml"),
        "huge_int": (b"[events]\nmin_frames = 99999999999999999999999\n", "config_huge_int.toml"),
        "max_pixels_0": (b"[input]\nmax_pixels = 0\n", "input.max_pixels = 0"),
    }
    for name, (data, msg) in cfgs.items():
        put(f"config_{name}.toml", data)
        case(f"config_{name}", ["config", f"{{dir}}/config_{name}.toml"], 1, [msg])
        case(f"config_{name}_run", run_with("--config", f"{{dir}}/config_{name}.toml"), 1, [msg])
    case("config_missing", ["config", "{dir}/nope.toml"], 1, ["nope.toml"])
    case("config_directory", ["config", "{dir}/frames"], 1, ["frames"])

    # ---- eval trees
    def tree(name, csv, files=()):
        root = os.path.join(out, "eval", name)
        os.makedirs(os.path.join(root, "Single-source"), exist_ok=True)
        if csv is not None:
            put(f"eval/{name}/Single-source/s4_meta_data.csv", csv)
        for f in files:
            put(f"eval/{name}/Single-source/{f}", b"")
        return f"{{dir}}/eval/{name}"

    header = b"id,vid,category,split\n"
    case("eval_missing_dir", ["eval", "{dir}/eval/none", "--model", "{model}", "--quiet"], 1, ["eval/none"])
    os.makedirs(os.path.join(out, "eval/empty"))
    case("eval_no_subset", ["eval", "{dir}/eval/empty", "--model", "{model}", "--quiet"], 1, ["Single-source"])
    case("eval_header_only", ["eval", tree("header_only", header), "--model", "{model}", "--quiet"], 1,
         ["no test clips"])
    case("eval_no_test_rows", ["eval", tree("train_only", header + b"clip_a,x,dog,train\n"), "--model",
                               "{model}", "--quiet"], 1, ["no test clips"])
    case("eval_csv_garbage", ["eval", tree("garbage", bytes(range(256))), "--model", "{model}", "--quiet"],
         1, ["s4_meta_data.csv"])
    # bad UTF-8 in the first data record: line 2 (the header is line 1), column 3
    case("eval_csv_bad_utf8", ["eval", tree("bad_utf8", header + b"clip_a,x,d\xffog,test\n"), "--model",
                               "{model}", "--quiet"], 1,
         ["s4_meta_data.csv: line 2, column 3: invalid UTF-8"])
    case("eval_missing_files", ["eval", tree("missing", header + b"clip_a,x,dog,test\n"), "--model",
                                "{model}", "--quiet"], 1, ["clip_a"])
    case("eval_no_csv", ["eval", tree("no_csv", None), "--model", "{model}", "--quiet"], 1, ["csv"])

    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"model": model, "cases": cases}, f, indent=1)
    print(f"{len(cases)} cases in {out}")


if __name__ == "__main__":
    main()
