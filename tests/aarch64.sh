#!/usr/bin/env bash
# aarch64 (Jetson) cross build and a real run under qemu-user, without docker
# (toolchain-and-test-infra.md §6; .cargo/config.toml):
#   1. installs the cross toolchain, qemu-user-static and the arm64 multiarch libraries if missing;
#   2. rustup target add aarch64-unknown-linux-gnu (SKIP, or FAIL with CI=true, if it cannot);
#   3. cargo build --target aarch64-unknown-linux-gnu (debug; dependencies at opt-level 3);
#   4. under qemu-aarch64-static: `c3n-edge run` with tract on the shipped model
#      models/c3n-edge-t1.onnx over the real clip assets/clips/bbb-bird (--max-clips 2), checking
#      that it emits valid JSON events and that they match the x86_64 build's events (type, label,
#      score to 1e-3).
#   The test suite itself is not run under qemu by default: it adds the dev-dependencies'
#   aarch64 build and every test's run under emulation. C3N_AARCH64_UNIT_TESTS=1
#   adds `cargo test --lib` (the library's unit tests) under qemu.
# Own target dir (the host build cache cannot be reused for another target):
#   C3N_AARCH64_TARGET_DIR (default target/aarch64-cross).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=aarch64-unknown-linux-gnu
step() { printf '\n==> %s  [%s]\n' "$*" "$(date +%T)"; }
skip() {
  if [ "${CI:-}" = true ]; then echo "FAIL tests/aarch64.sh: $*" >&2; exit 1; fi
  echo "SKIP tests/aarch64.sh: $*" >&2; exit 0
}
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

need=""
command -v aarch64-linux-gnu-gcc >/dev/null || need="$need gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross"
command -v qemu-aarch64-static >/dev/null || need="$need qemu-user-static"
if [ -n "$need" ]; then
  step "apt-get install$need"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $need || skip "cannot install$need"
fi
if ! dpkg -s libc6:arm64 libstdc++6:arm64 libasound2-dev:arm64 >/dev/null 2>&1; then
  step "arm64 multiarch libraries (libc6, libstdc++6, libasound2-dev)"
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends libc6:arm64 libstdc++6:arm64 libasound2-dev:arm64 \
    || skip "cannot install the arm64 multiarch libraries"
fi
step "rustup target add $TARGET"
rustup target add "$TARGET" || skip "rustup cannot add the $TARGET target (offline? no rustup?)"

export CARGO_TARGET_DIR="${C3N_AARCH64_TARGET_DIR:-$ROOT/target/aarch64-cross}"
export CARGO_BUILD_BUILD_DIR="$CARGO_TARGET_DIR"
step "cargo build --target $TARGET (target dir $CARGO_TARGET_DIR)"
t0=$(date +%s)
cargo build --locked --target "$TARGET" --bin c3n-edge
echo "aarch64 build: $(( $(date +%s) - t0 )) s"
BIN="$CARGO_TARGET_DIR/$TARGET/debug/c3n-edge"
file "$BIN" 2>/dev/null | grep -q 'ARM aarch64' || { command -v file >/dev/null && { echo "FAIL: $BIN is not an aarch64 ELF" >&2; exit 1; }; }

if [ "${C3N_AARCH64_UNIT_TESTS:-}" = 1 ]; then
  step "library unit tests under qemu-aarch64-static"
  t0=$(date +%s)
  cargo test --locked --target "$TARGET" --lib
  echo "aarch64 unit tests: $(( $(date +%s) - t0 )) s"
fi

step "c3n-edge run (tract, models/c3n-edge-t1.onnx, bbb-bird, 2 windows) under qemu"
OUT=$(mktemp -d /tmp/c3n-aarch64.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
ARGS=(run "file://$ROOT/assets/clips/bbb-bird/frames/%05d.png" --audio "file://$ROOT/assets/clips/bbb-bird/audio.wav"
      --model "$ROOT/models/c3n-edge-t1.onnx" --backend tract --max-clips 2)
t0=$(date +%s)
qemu-aarch64-static "$BIN" "${ARGS[@]}" --events "$OUT/aarch64.jsonl"
echo "aarch64 run under qemu: $(( $(date +%s) - t0 )) s"
HOST="${C3N_HOST_BIN:-$ROOT/target/debug/c3n-edge}"
[ -x "$HOST" ] || cargo build --locked --bin c3n-edge --target-dir "$ROOT/target" >/dev/null 2>&1 || true
python3 - "$OUT/aarch64.jsonl" "$HOST" "${ARGS[@]}" <<'PY'
import json, subprocess, sys, os
path, host, args = sys.argv[1], sys.argv[2], sys.argv[3:]
ev = [json.loads(l) for l in open(path) if l.strip()]
assert ev, f"no events from the aarch64 run in {path}"
lab = lambda e: (e.get("after") or {}).get("label")
sc = lambda e: (e.get("after") or {}).get("score")
print(f"aarch64: {len(ev)} events: " + ", ".join(f"{e.get('type')}:{lab(e)}" for e in ev))
if os.access(host, os.X_OK):
    ref = subprocess.run([host, *args, "--events", "-"], check=True, capture_output=True, text=True).stdout
    hv = [json.loads(l) for l in ref.splitlines() if l.strip()]
    key = lambda e: (e.get("type"), lab(e))
    assert [key(e) for e in ev] == [key(e) for e in hv], f"aarch64 events differ from x86_64: {ev} vs {hv}"
    for a, b in zip(ev, hv):
        if isinstance(sc(a), (int, float)):
            assert abs(sc(a) - sc(b)) <= 1e-3, (a, b)
    print(f"x86_64 ({host}): same {len(hv)} events (type, label, score to 1e-3)")
else:
    print(f"note: no x86_64 binary at {host}; events not compared", file=sys.stderr)
PY
step "aarch64 ok"
