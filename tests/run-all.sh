#!/usr/bin/env bash
# Runs every test of c3n-edge (pytest for the model package, cargo test for the runtime), after
# setting up whatever is missing: Debian packages, the Python venv (.venv), the pinned pretrained
# weights and media (cache: $C3N_CACHE, default ~/.cache/c3n-edge) and the test artefacts
# (models/build/test-fixtures). Safe to re-run; each step is skipped when already done.
#
#   bash tests/run-all.sh            # everything
#   C3N_SKIP_SETUP=1 bash tests/run-all.sh   # tests only (setup already done)
#   bash tests/run-all.sh --full     # a release's run: also the full-size backbone checks
#                                    # (C3N_SLOW_TESTS=1: PVT-v2-b5, Swin-B, ResNet-50; README)
set -euo pipefail
case "${1:-}" in
  "") ;;
  --full) export C3N_SLOW_TESTS=1 ;;
  *) echo "usage: bash tests/run-all.sh [--full]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
ROOT=$PWD
export C3N_TEST_ARTIFACTS="$ROOT/models/build/test-fixtures"
export PYTHONPATH="$ROOT/models${PYTHONPATH:+:$PYTHONPATH}"
# Each step's wall time, printed as a table when the script ends (passed or failed).
STEP_NAMES=(); STEP_STARTS=(); T_START=$(date +%s)
step() {
  printf '\n==> %s  [%s]\n' "$*" "$(date +%T)"
  local name="$*"
  STEP_NAMES+=("${name:0:100}"); STEP_STARTS+=("$(date +%s)")
}
time_table() {  # time_table [EXIT_STATUS]
  local rc=${1:-$?} end i n
  end=$(date +%s); n=${#STEP_NAMES[@]}
  printf '\n%-8s  %s\n' "seconds" "step (tests/run-all.sh)"
  for ((i = 0; i < n; i++)); do
    local next=$end; ((i + 1 < n)) && next=${STEP_STARTS[i + 1]}
    printf '%8d  %s\n' $((next - STEP_STARTS[i])) "${STEP_NAMES[i]}"
  done
  [ -s "${BUILD_TIMES:-}" ] && cat "$BUILD_TIMES"
  printf '%8d  total (exit status %d)\n' $((end - T_START)) "$rc"
}
trap time_table EXIT

step "setup: Debian packages (tests/setup.sh packages)"
[ -n "${C3N_SKIP_SETUP:-}" ] || bash "$ROOT/tests/setup.sh" packages

# The Rust test builds need only the Debian packages: they run in the background while the venv
# is installed and the Python steps run (mostly download and single-threaded work), and the
# cargo steps below find them done. Their output is in $BUILD_LOG (printed if they fail).
BUILD_LOG=$(mktemp /tmp/c3n-cargo-build.XXXXXX.log)
# Two cargo test runs: the default features (what `cargo build` ships) and every optional feature
# at once. The test binaries whose feature run is a strict superset of their default run (their
# feature-gated tests only add cases) run in the feature build alone: building and running them
# twice cost minutes for nothing. run_pipeline runs in both: it checks the messages a build
# without `ffmpeg` gives. The library's unit tests run in both (feature-gated code on each side).
FEATURES=ffmpeg,mqtt-tls,mqtt-broker,window,ort
FEATURE_ONLY=(display mqtt_broker window engine_tract engine_stream imported_models contract_schema3
  contract_in_view)
FEATURE_TESTS=(--lib --test run_pipeline)
for t in "${FEATURE_ONLY[@]}"; do FEATURE_TESTS+=(--test "$t"); done
DEFAULT_TESTS=(--lib --bins)
for f in tests/*.rs; do
  t=$(basename "$f" .rs)
  case " ${FEATURE_ONLY[*]} " in *" $t "*) ;; *) DEFAULT_TESTS+=(--test "$t");; esac
done
# clippy (tests/lint.sh's fifth rule) runs last there, on the same dependency builds.
step "cargo builds in the background (cargo test --no-run, default and all optional features, clippy; log $BUILD_LOG)"
# Each build's wall time goes to $BUILD_TIMES, which the table at the end prints.
BUILD_TIMES=$(mktemp /tmp/c3n-cargo-times.XXXXXX)
timed() {  # timed LABEL COMMAND...
  local label=$1 t0 rc=0; shift; t0=$(date +%s)
  "$@" || rc=$?
  printf '%8d    background: %s\n' $(($(date +%s) - t0)) "$label" >> "$BUILD_TIMES"
  return "$rc"
}
( timed "cargo test --no-run, default features" cargo test --locked --no-run "${DEFAULT_TESTS[@]}" \
  && timed "cargo build (the binary)" cargo build --locked \
  && timed "cargo test --no-run, all optional features" \
    cargo test --locked --features "$FEATURES" --no-run "${FEATURE_TESTS[@]}" \
  && timed "cargo clippy, all targets and features" \
    cargo clippy --locked --all-targets --features "$FEATURES" -- -D warnings ) \
  > "$BUILD_LOG" 2>&1 &
BUILD_PID=$!
SOAK_PID=""; AARCH64_PID=""; HA_PID=""
# On any exit: the background jobs still running are stopped, then the table is printed.
stop_background() {
  local rc=$? p
  for p in "$BUILD_PID" "$SOAK_PID" "$AARCH64_PID" "$HA_PID"; do
    [ -n "$p" ] && { pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; }
  done
  time_table "$rc"
}
trap stop_background EXIT
# wait_job PID LOG WHAT: waits for a background job; if it failed, prints its log and fails.
wait_job() {
  if ! wait "$1"; then
    cat "$2"; echo "FAIL: $3 (log above, $2)" >&2; exit 1
  fi
}

step "setup: Python venv, weights and media (tests/setup.sh python)"
[ -n "${C3N_SKIP_SETUP:-}" ] || bash "$ROOT/tests/setup.sh" python
# shellcheck disable=SC1091
. "$ROOT/.venv/bin/activate"
# Home Assistant's venv (~50 s, mostly downloads) installs in the background too; its test step
# waits for it.
HA_LOG=$(mktemp /tmp/c3n-ha-install.XXXXXX.log)
( timed "Home Assistant venv (tests/ha_discovery.sh --install-only)" \
    bash tests/ha_discovery.sh --install-only ) > "$HA_LOG" 2>&1 &
HA_PID=$!

step "house rules: rustfmt, module graph, file length, ruff (tests/lint.sh; clippy is in the background builds)"
bash tests/lint.sh --no-clippy

step "test artefacts -> $C3N_TEST_ARTIFACTS, Python evaluator reference (tests/make-fixtures.sh)"
bash tests/make-fixtures.sh

step "pytest (models/tests)"
(cd models && python -m pytest tests -q -rs)

# cargo build / cargo test / the feature builds below share every dependency build (Cargo.toml
# "Feature unification"): a dependency update that breaks it would compile tract again per step
step "feature unification (tests/feature_unification.py)"
python tests/feature_unification.py
step "waiting for the background cargo builds"
wait_job "$BUILD_PID" "$BUILD_LOG" "cargo build"
BUILD_PID=""
grep -E '^\s*(Finished|warning: unused)' "$BUILD_LOG" || true
rm -f "$BUILD_LOG"
# The aarch64 cross build (tests/aarch64.sh --build-only: ~6 CPU-minutes, the last step's most)
# runs from here beside the host tests, which leave the CPU partly idle (the VMs use one core,
# Home Assistant and the soak little); the last step then finds it built. Not niced: beside
# another CPU-heavy job a nice 10 build got almost no CPU and the run waited for it at the end.
AARCH64_LOG=$(mktemp /tmp/c3n-aarch64-build.XXXXXX.log)
step "aarch64 cross build started in the background (tests/aarch64.sh --build-only; log $AARCH64_LOG)"
( timed "aarch64 cross build (tests/aarch64.sh --build-only)" \
    bash tests/aarch64.sh --build-only ) > "$AARCH64_LOG" 2>&1 &
AARCH64_PID=$!
step "cargo test (default features; ${DEFAULT_TESTS[*]})"
# includes the bad-input suite (tests/bad_input.rs: the binary on every case that
# tests/bad_input/make_corpus.py generates, under prlimit and a timeout) and the property tests of
# the parsers (tests/fuzz_parsers.rs, bounded by PROPTEST_CASES per property)
PROPTEST_CASES="${PROPTEST_CASES:-256}" cargo test --locked "${DEFAULT_TESTS[@]}" 2>&1
# The 5-minute one-process soak (issue 27; the 60-minute one is a benchmark, README "Unattended
# operation"): one c3n-edge, paced at 2 frames/s like a camera (about a third of a core), on MQTT
# and the preview while the broker is killed every 15 s and a garbage and a 13000² frame arrive
# every 60 s / 75 s. It runs beside the steps below and is waited for at the end. Its binary is a
# copy: the feature test build below replaces target/debug/c3n-edge.
SOAK_DIR=$(mktemp -d /tmp/c3n-soak.XXXXXX)
cp target/debug/c3n-edge "$SOAK_DIR/c3n-edge"
step "5-minute soak started in the background (tests/soak/soak.py --minutes 5 --paced; $SOAK_DIR)"
python tests/soak/soak.py --minutes 5 --ci --paced --input-rate 2 --bin "$SOAK_DIR/c3n-edge" \
  --out "$SOAK_DIR/out" > "$SOAK_DIR/verdict.txt" 2>&1 &
SOAK_PID=$!
# right after `cargo test`: it uses that debug binary (default features) as it is
step "Home Assistant 2024.3.3 against c3n-edge's MQTT discovery (tests/ha_discovery.sh)"
wait_job "$HA_PID" "$HA_LOG" "Home Assistant venv"
HA_PID=""
cat "$HA_LOG"; rm -f "$HA_LOG"
bash tests/ha_discovery.sh
# The optional cargo features, all in one build (this crate compiled once, not once per feature;
# tests/feature_unification.py checks that no shared dependency is rebuilt for it):
#   ffmpeg: video-file input and mp4 output (run_pipeline, display);
#   mqtt-tls (native-tls/OpenSSL), mqtt-broker (rumqttd): MQTT over TLS, the embedded broker;
#   window: window:// (SDL2) under Xvfb;
#   ort: the ONNX Runtime CPU backend's parity tests, with the onnxruntime wheel's library;
#   --lib: the unit tests behind those features too (the engine-cache key and GPU library probe behind `ort`).
step "cargo test --features $FEATURES (${FEATURE_TESTS[*]}: unit tests, video files, TLS, embedded broker, window://, ort parity)"
ORT_DYLIB_PATH="$(python -c 'import onnxruntime, pathlib; print(next((pathlib.Path(onnxruntime.__file__).parent / "capi").glob("libonnxruntime.so.*")))')" \
  cargo test --locked --features "$FEATURES" "${FEATURE_TESTS[@]}" 2>&1
# The same ort parity tests on the oldest (1.19.2) and the newest (1.32.0) PyPI onnxruntime CPU
# library (the test build above is reused; ~50 MB of wheels downloaded once into $C3N_CACHE).
step "ONNX Runtime versions: ort_cpu tests on the oldest and newest PyPI onnxruntime (tests/ort_versions.sh)"
bash tests/ort_versions.sh
step "V4L2 capture against the vivid driver in a qemu VM (tests/vm/run.sh)"
bash tests/vm/run.sh
step "display:// on DRM/KMS against the bochs driver in a qemu VM, screendumps (tests/vm/run-drm.sh)"
bash tests/vm/run-drm.sh
step "systemd unit: systemd-analyze verify + security (tests/systemd.sh)"
bash tests/systemd.sh
step "systemd unit under a real systemd (PID 1) in a qemu VM: readiness, hardening, watchdog, stop (tests/vm/systemd.sh)"
bash tests/vm/systemd.sh
# aarch64 (Jetson): cross build (profile aarch64-ci), the library's unit tests + two integration
# tests under qemu-user, and a real tract inference on the shipped model compared with this
# x86_64 build's events (target/debug/c3n-edge from the cargo test steps above).
step "waiting for the background aarch64 cross build"
wait_job "$AARCH64_PID" "$AARCH64_LOG" "aarch64 cross build"
AARCH64_PID=""
grep -E '^aarch64 ' "$AARCH64_LOG" || true
rm -f "$AARCH64_LOG"
step "aarch64 tests and a real inference under qemu-user (tests/aarch64.sh; its build is done)"
bash tests/aarch64.sh
step "waiting for the 5-minute soak (its verdict line; on failure also its table and log)"
soak_rc=0; wait "$SOAK_PID" || soak_rc=$?
SOAK_PID=""
cat "$SOAK_DIR/verdict.txt"
if [ "$soak_rc" -ne 0 ]; then
  cat "$SOAK_DIR/out/summary.md" 2>/dev/null || true
  tail -n 20 "$SOAK_DIR/out/c3n-edge.log" 2>/dev/null || true
  echo "FAIL: the 5-minute soak (exit status $soak_rc; outputs in $SOAK_DIR/out)" >&2; exit 1
fi
rm -rf "$SOAK_DIR"
step "all tests passed"
