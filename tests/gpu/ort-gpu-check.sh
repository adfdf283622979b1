#!/usr/bin/env bash
# GPU check of the ONNX Runtime backend (cargo feature `tensorrt`) on a machine with an NVIDIA GPU.
# Not part of CI (CI has no GPU); README "Jetson deployment" gives the results of the runs so far.
#
# Needs:
#   C3N_BIN         c3n-edge built with `--features tensorrt` (default: target/debug/c3n-edge)
#   ORT_DYLIB_PATH  libonnxruntime.so of an ONNX Runtime >= 1.31 built with the CUDA provider
#                   (PyPI's onnxruntime-gpu, or one built for JetPack), with
#                   libonnxruntime_providers_{shared,cuda}.so beside it
#   the CUDA libraries that provider links (`ldd` must resolve them): on the loader path, or for
#                   CUDA 13 as the `nvidia-*` Python wheels of `python3` (found and added here)
#   C3N_MODEL       default models/c3n-edge-t5.onnx
# Checks, each a PASS or FAIL line (exit status 1 on any FAIL):
#   1. `bench-engines --backends cpu,cuda,tract`: the CUDA provider's mask logits and C3IM
#      scores against ONNX Runtime's CPU provider (the CPU provider matches the
#      PyTorch model to 4.9e-4, tests/engine_tract.rs) and latency of each, in one process;
#   2. `run` on assets/clips/bbb-bird with --backend cuda / cpu / tract: the same events
#      (tests/compare_events.py: type; score and c3im_score to 5e-3 for cuda, 1e-3 for tract;
#      box IoU >= 0.9; a different label
#      only where both runs' C3IM scores of the labels they chose agree to 1e-3 — the two classes
#      tie to that precision — each such near-tie reported and counted);
#   3. `--backend auto` where TensorRT is missing: the log says why TensorRT was skipped, the run
#      uses ort-cuda and gives the CUDA events; `--backend tensorrt` fails with an error naming
#      libnvinfer; `build-engine --backend auto` is a no-op;
#   4. with C3N_EVAL_DATA (an AVSBench-format folder): `eval` FP32 on cpu and cuda (mIoU and
#      F-score equal to 1e-3); with C3N_MODEL_FP16 (c3n.quantize --fp16-out) too, that model's
#      mIoU / F-score on cuda and cpu are reported (not asserted);
#   5. `bench --backend cuda` vs `--backend cpu`: per-stage latency of the whole pipeline.
# A check that cannot run here is a SKIP line on stderr, counted in the summary.
# Usage: bash tests/gpu/ort-gpu-check.sh [OUTDIR]   (logs and JSON files are written there)
set -uo pipefail
export RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUTDIR="${1:-$(mktemp -d /tmp/c3n-gpu.XXXXXX)}"
mkdir -p "$OUTDIR"
rm -f "$OUTDIR"/events-*.jsonl "$OUTDIR"/eval-*.jsonl "$OUTDIR"/*.log "$OUTDIR"/bench-*  # no stale results
BIN="${C3N_BIN:-$ROOT/target/debug/c3n-edge}"
MODEL="${C3N_MODEL:-$ROOT/models/c3n-edge-t5.onnx}"
FAILS=0 SKIPS=0
step() { printf '\n==> %s  [%s]\n' "$*" "$(date +%T)"; }
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
skip() { echo "SKIP ort-gpu-check $*" >&2; SKIPS=$((SKIPS + 1)); }

[ -x "$BIN" ] || { echo "FAIL: no c3n-edge binary at $BIN (C3N_BIN)"; exit 1; }
[ -f "${ORT_DYLIB_PATH:-}" ] || { echo "FAIL: ORT_DYLIB_PATH is not a file: '${ORT_DYLIB_PATH:-}'"; exit 1; }
[ -f "$MODEL" ] || { echo "FAIL: no model at $MODEL (C3N_MODEL)"; exit 1; }

step "GPU and libraries"
# informational (Tegra's nvidia-smi lacks some of these fields): the CUDA provider is the test
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv || nvidia-smi || true
wheel_dir() { # directory of library $1 in python3's nvidia-* wheels (PyPI's CUDA), if any
  python3 - "$1" <<'PY' 2>/dev/null
import pathlib, site, sys
for sp in site.getsitepackages():
    for p in sorted(pathlib.Path(sp, "nvidia").rglob(sys.argv[1])):
        print(p.parent); raise SystemExit
PY
}
add_dir() { case ":${LD_LIBRARY_PATH:-}:" in *":$1:"*) ;; *) LD_LIBRARY_PATH="$1${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}";; esac; }
add_dir "$(dirname "$ORT_DYLIB_PATH")"
export LD_LIBRARY_PATH
CUDA_EP="$(dirname "$ORT_DYLIB_PATH")/libonnxruntime_providers_cuda.so"
if [ ! -f "$CUDA_EP" ]; then fail "no $CUDA_EP (not an ONNX Runtime build with the CUDA provider?)"
else
  # what the loader cannot find, plus what the CUDA 13 provider opens at run time (NVRTC):
  # taken from python3's nvidia-* wheels where they are (PyPI's onnxruntime-gpu on x86_64)
  for lib in $(ldd "$CUDA_EP" 2>/dev/null | awk '/not found/ {print $1}') libnvrtc.so.13; do
    python3 -c "import ctypes, sys; ctypes.CDLL(sys.argv[1])" "$lib" 2>/dev/null && continue
    d=$(wheel_dir "$lib")
    if [ -n "$d" ]; then add_dir "$d"; export LD_LIBRARY_PATH; echo "$lib: from $d"; fi
  done
  if missing=$(ldd "$CUDA_EP" 2>&1 | grep "not found"); then fail "providers_cuda: $missing"
  else pass "libonnxruntime_providers_cuda.so resolves all its libraries"; fi
fi
"$BIN" --version
"$BIN" model-info "$MODEL" | head -5

step "1. bench-engines cpu,cuda,tract (model call only, one process; diffs against cpu)"
"$BIN" bench-engines --model "$MODEL" --backends cpu,cuda,tract --iters 10 --json >"$OUTDIR/bench-engines.jsonl" 2>"$OUTDIR/bench-engines.log"
rc=$?
cat "$OUTDIR/bench-engines.log" | tail -20
cat "$OUTDIR/bench-engines.jsonl"
if [ $rc -ne 0 ]; then fail "bench-engines exited $rc"; else
  python3 - "$OUTDIR/bench-engines.jsonl" <<'PY' && pass "bench-engines: cuda and tract agree with cpu" || fail "bench-engines parity"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
inf = float("inf")
for r in rows:  # serde_json writes an infinite diff (NaN output, size mismatch) as null
    for k in ("mask_max_abs_diff", "score_max_abs_diff"):
        r[k] = inf if r[k] is None else r[k]
for r in rows:
    print(f"{r['engine']}: load {r['load_s']:.2f} s, first {r['first_ms']:.1f} ms, mean {r['mean_ms']:.2f} ms, "
          f"min {r['min_ms']:.2f} ms, max |diff| mask_logits {r['mask_max_abs_diff']:.2e}, c3im_score {r['score_max_abs_diff']:.2e}")
assert [r["engine"] for r in rows] == ["ort-cpu", "ort-cuda", "tract"], [r["engine"] for r in rows]
# mask logits are pre-sigmoid (thresholded at 0); the CUDA provider may use TF32 convolutions
bad = [(r["engine"], r["mask_max_abs_diff"], r["score_max_abs_diff"]) for r in rows
       if r["mask_max_abs_diff"] > 1e-2 or r["score_max_abs_diff"] > 1e-3]
assert not bad, f"differences against ort-cpu above 1e-2 (mask logits) / 1e-3 (C3IM score): {bad}"
PY
fi

# TensorRT present? asked of the dynamic loader itself (loader path, LD_LIBRARY_PATH)
has_trt=""
python3 -c 'import ctypes; ctypes.CDLL("libnvinfer.so.10")' 2>/dev/null && has_trt=1
step "2. run on assets/clips/bbb-bird: cuda, cpu, tract"
ARGS=(run "file://$ROOT/assets/clips/bbb-bird/frames/%05d.png" --audio "file://$ROOT/assets/clips/bbb-bird/audio.wav"
      --model "$MODEL" --max-clips 2 --update-interval 0)  # every frame's events, compared
for b in cuda cpu tract auto; do
  if [ "$b" = auto ] && [ -n "$has_trt" ]; then skip "run --backend auto: TensorRT is present (step 3)"; continue; fi
  t0=$(date +%s%N)
  "$BIN" "${ARGS[@]}" --backend "$b" --log info --events "$OUTDIR/events-$b.jsonl" >"$OUTDIR/run-$b.log" 2>&1
  rc=$?
  echo "$b: exit $rc, $(( ($(date +%s%N) - t0) / 1000000 )) ms, $(cat "$OUTDIR/events-$b.jsonl" 2>/dev/null | wc -l) events"
  [ $rc -eq 0 ] || { fail "run --backend $b exited $rc"; tail -5 "$OUTDIR/run-$b.log"; }
done
compare() { # ENGINE REFERENCE TOLERANCE (tests/compare_events.py)
  python3 "$ROOT/tests/compare_events.py" "$OUTDIR/events-$1.jsonl" "$OUTDIR/events-$2.jsonl" \
    --tol "$3" --box-iou 0.9 --label-ties 1e-3 --names "$1" "$2"
}
compare cuda cpu 5e-3 && pass "run: cuda events equal cpu's (scores to 5e-3)" || fail "run: cuda vs cpu events"
compare tract cpu 1e-3 && pass "run: tract events equal cpu's (scores to 1e-3)" || fail "run: tract vs cpu events"

step "3. auto without TensorRT, tensorrt, build-engine"
if [ -n "$has_trt" ]; then
  skip "step 3: libnvinfer.so.10 is present here, and this step checks how c3n-edge behaves without" \
       "TensorRT; check \`--backend tensorrt\` and \`build-engine\` by hand (README \"Jetson deployment\")"
else
  grep -E "engine auto" "$OUTDIR/run-auto.log" | head -5
  if grep -q "engine auto: tensorrt skipped: .*libnvinfer" "$OUTDIR/run-auto.log" && grep -q "engine auto: using ort-cuda" "$OUTDIR/run-auto.log"; then
    pass "auto: TensorRT skipped with the reason (libnvinfer), then ort-cuda"
  else
    fail "auto: expected 'tensorrt skipped: …libnvinfer…' then 'using ort-cuda' in run-auto.log"
  fi
  compare auto cuda 5e-3 && pass "run: auto events equal cuda's" || fail "run: auto vs cuda events"
  "$BIN" "${ARGS[@]}" --backend tensorrt --events /dev/null >"$OUTDIR/run-tensorrt.log" 2>&1
  rc=$?
  tail -3 "$OUTDIR/run-tensorrt.log"
  if [ $rc -ne 0 ] && grep -q "libnvinfer" "$OUTDIR/run-tensorrt.log"; then pass "tensorrt: fails, naming libnvinfer"; else fail "tensorrt: exit $rc without naming libnvinfer"; fi
  "$BIN" build-engine --model "$MODEL" --backend auto >"$OUTDIR/build-engine.log" 2>&1
  rc=$?
  tail -3 "$OUTDIR/build-engine.log"
  [ $rc -eq 0 ] && pass "build-engine --backend auto without TensorRT: exit 0" || fail "build-engine --backend auto exited $rc"
fi

if [ -z "${C3N_EVAL_DATA:-}" ]; then
  skip "step 4 (eval): C3N_EVAL_DATA is not set (an AVSBench-format folder)"
else
  step "4. eval on $C3N_EVAL_DATA: FP32 on cpu and cuda, FP16 (${C3N_MODEL_FP16:-none}) on cuda"
  ev() { # name backend model
    "$BIN" eval "$C3N_EVAL_DATA" --model "$3" --backend "$2" --threads 8 --json --quiet >"$OUTDIR/eval-$1.jsonl" 2>"$OUTDIR/eval-$1.log" \
      || { fail "eval $1"; tail -3 "$OUTDIR/eval-$1.log"; }
  }
  ev fp32-cpu cpu "$MODEL"; ev fp32-cuda cuda "$MODEL"
  [ -n "${C3N_MODEL_FP16:-}" ] && ev fp16-cuda cuda "$C3N_MODEL_FP16" && ev fp16-cpu cpu "$C3N_MODEL_FP16"
  python3 - "$OUTDIR" <<'PY' && pass "eval: cuda FP32 mIoU/F-score equal cpu's to 1e-3" || fail "eval: cuda vs cpu"
import json, pathlib, sys
d = pathlib.Path(sys.argv[1])
runs = {p.stem[5:]: {r["subset"]: r for r in map(json.loads, p.read_text().splitlines())} for p in sorted(d.glob("eval-*.jsonl")) if p.stat().st_size}
print("| run | " + " | ".join(f"{s} mIoU | {s} F-score" for s in runs["fp32-cpu"]) + " |")
for name, r in runs.items():
    print(f"| {name} | " + " | ".join(f"{r[s]['miou']:.4f} | {r[s]['fscore']:.4f}" for s in runs["fp32-cpu"]) + f" | ({next(iter(r.values()))['clips']}+ clips)")
for s, ref in runs["fp32-cpu"].items():
    for m in ("miou", "fscore"):
        assert abs(runs["fp32-cuda"][s][m] - ref[m]) <= 1e-3, (s, m, runs["fp32-cuda"][s][m], ref[m])
PY
fi

step "5. bench (whole pipeline, synthetic input): cuda vs cpu"
for b in cuda cpu; do
  echo "--- bench --backend $b"
  "$BIN" bench --model "$MODEL" --backend "$b" --seconds 20 >"$OUTDIR/bench-$b.txt" 2>"$OUTDIR/bench-$b.log" \
    && cat "$OUTDIR/bench-$b.txt" || { fail "bench --backend $b"; tail -5 "$OUTDIR/bench-$b.log"; }
done

step "summary"
if [ $FAILS -eq 0 ]; then echo "ALL PASS, $SKIPS skipped ($OUTDIR)"; else echo "$FAILS FAIL(s), $SKIPS skipped ($OUTDIR)"; exit 1; fi
