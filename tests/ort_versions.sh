#!/usr/bin/env bash
# The ONNX Runtime backend (`--backend cpu`) on the oldest and the newest PyPI onnxruntime CPU
# library: the `ort_cpu` parity tests of tests/engine_tract.rs (real C3N export and contract
# models vs PyTorch / onnxruntime outputs, error paths) run once per library.
#
# c3n-edge's floor is ONNX Runtime 1.17 (ort's C API 17, Cargo.toml); the oldest PyPI wheel that
# ships the C library (onnxruntime/capi/libonnxruntime.so.*) is 1.19 (1.17/1.18 wheels link it
# into the Python module only), so 1.19.2 is the oldest one CI can test. Wheels are fetched with
# pip (no install) into $C3N_CACHE/ort-libs and only the library is kept: ~50 MB of downloads,
# once. Needs the test build of tests/run-all.sh's feature step (same features: no rebuild) and
# its test artefacts ($C3N_TEST_ARTIFACTS). Run from tests/run-all.sh; alone:
#   C3N_TEST_ARTIFACTS=$PWD/models/build/test-fixtures bash tests/ort_versions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# oldest wheel with the C library; newest release when this was written (bump it with new releases)
VERSIONS=${C3N_ORT_VERSIONS:-"1.19.2 1.32.0"}
CACHE=${C3N_CACHE:-$HOME/.cache/c3n-edge}/ort-libs
PY=${PYTHON:-.venv/bin/python}
for v in $VERSIONS; do
  lib="$CACHE/$v/libonnxruntime.so.$v"
  if [ ! -f "$lib" ]; then
    tmp=$(mktemp -d)
    "$PY" -m pip download --quiet --no-deps --only-binary :all: "onnxruntime==$v" -d "$tmp"
    mkdir -p "$CACHE/$v"
    "$PY" - "$tmp" "$v" "$lib" <<'PYEOF'
import pathlib, sys, zipfile
tmp, v, lib = sys.argv[1:]
whl = next(pathlib.Path(tmp).glob(f"onnxruntime-{v}-*.whl"))
with zipfile.ZipFile(whl) as z:
    pathlib.Path(lib + ".part").write_bytes(z.read(f"onnxruntime/capi/libonnxruntime.so.{v}"))
pathlib.Path(lib + ".part").rename(lib)
PYEOF
    rm -rf "$tmp"
  fi
  printf '\n--> ort_cpu tests on onnxruntime %s (%s)\n' "$v" "$lib"
  log=$(mktemp)
  if ! ORT_DYLIB_PATH="$lib" CI=true cargo test --locked --features ffmpeg,mqtt-tls,mqtt-broker,window,ort \
       --test engine_tract ort_ -- --nocapture >"$log" 2>&1; then
    cat "$log"; rm -f "$log"; echo "FAIL: ort_cpu tests on onnxruntime $v" >&2; exit 1
  fi
  grep -E '^test |^test result|max abs diff' "$log" || true
  rm -f "$log"
done
