#!/usr/bin/env bash
# Runs every test of c3n-edge (pytest for the model package, cargo test for the runtime), after
# setting up whatever is missing: Debian packages, the Python venv (.venv), the pinned pretrained
# weights and media (cache: $C3N_CACHE, default ~/.cache/c3n-edge) and the test artefacts
# (models/build/test-fixtures). Safe to re-run; each step is skipped when already done.
#
#   bash tests/run-all.sh            # everything
#   C3N_SKIP_SETUP=1 bash tests/run-all.sh   # tests only (setup already done)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export C3N_TEST_ARTIFACTS="$ROOT/models/build/test-fixtures"
export PYTHONPATH="$ROOT/models${PYTHONPATH:+:$PYTHONPATH}"
step() { printf '\n==> %s  [%s]\n' "$*" "$(date +%T)"; }

if [ -z "${C3N_SKIP_SETUP:-}" ]; then
  bash "$ROOT/tests/setup.sh"
fi
# shellcheck disable=SC1091
. "$ROOT/.venv/bin/activate"

step "test artefacts -> $C3N_TEST_ARTIFACTS"
python tests/fixtures/make_contract_model.py "$C3N_TEST_ARTIFACTS"
python tests/fixtures/make_frontend_ref.py "$C3N_TEST_ARTIFACTS"
python tests/fixtures/make_pipeline_clip.py "$C3N_TEST_ARTIFACTS"
(cd models && python -m c3n.export --config edge --frames 5 1 --out-dir build \
   --reference-dir "$C3N_TEST_ARTIFACTS" 2>&1 | grep -v -i warning)
[ -d models/build/avs-composites-small ] || \
  (cd models && python -m c3n.data.composites build/avs-composites-small --small --seed 7)

step "Python evaluator on the small composite test split (reference for tests/eval_parity.rs)"
mkdir -p "$C3N_TEST_ARTIFACTS/eval_parity"
(cd models && python -m c3n.evaluate build/avs-composites-small --split test --model c3n-edge-t5.onnx --json) \
  > "$C3N_TEST_ARTIFACTS/eval_parity/python.jsonl"
echo "$ROOT/models/build/avs-composites-small" > "$C3N_TEST_ARTIFACTS/eval_parity/dataset.txt"
echo "$ROOT/models/c3n-edge-t5.onnx" > "$C3N_TEST_ARTIFACTS/eval_parity/model.txt"

step "pytest (models/tests)"
(cd models && python -m pytest tests -q -rs)

step "cargo test"
cargo test --locked 2>&1
# Video files in and out (feature ffmpeg: FFmpeg's libraries; only this crate and ffmpeg-sys are
# rebuilt, the other dependencies keep their features).
step "cargo test --features ffmpeg (video-file input and mp4 output)"
cargo test --locked --features ffmpeg --test run_pipeline --test display 2>&1
if [ -n "${C3N_TEST_MQTT_FEATURES:-}" ]; then
  # opt-in: the mqtt-broker feature changes shared dependencies' features, so this rebuilds most
  # of the dependency tree (~20 CPU-minutes)
  step "cargo test: MQTT over TLS and the embedded broker (features mqtt-tls, mqtt-broker)"
  cargo test --locked --features mqtt-tls,mqtt-broker --test mqtt_broker 2>&1
else
  echo "*** SKIP: MQTT over TLS and the embedded broker (tests/mqtt_broker.rs, features mqtt-tls," \
       "mqtt-broker): the mqtt-broker feature changes shared dependencies' features and rebuilds" \
       "tract (~20 CPU-minutes), which does not fit the CI budget; run with C3N_TEST_MQTT_FEATURES=1 ***"
fi
step "V4L2 capture against the vivid driver in a qemu VM (tests/vm/run.sh)"
bash tests/vm/run.sh
step "ONNX Runtime CPU backend: parity tests (cargo test --features ort, the onnxruntime wheel's library)"
ORT_DYLIB_PATH="$(python -c 'import onnxruntime, pathlib; print(next((pathlib.Path(onnxruntime.__file__).parent / "capi").glob("libonnxruntime.so.*")))')" \
  cargo test --locked --features ort --test engine_tract 2>&1
step "systemd unit: systemd-analyze verify + security (tests/systemd.sh)"
bash tests/systemd.sh
# aarch64 (Jetson): cross build (profile aarch64-ci), the library's unit tests + two integration
# tests under qemu-user, and a real tract inference on the shipped model compared with this
# x86_64 build's events (target/debug/c3n-edge from the cargo test steps above).
step "aarch64 cross build, tests and a real inference under qemu-user (tests/aarch64.sh)"
bash tests/aarch64.sh
step "all tests passed"
