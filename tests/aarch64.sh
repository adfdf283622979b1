#!/usr/bin/env bash
# aarch64 (Jetson) cross build, tests and a real inference under qemu-user, without docker
# (docs/toolchain-and-test-infra.md §6; .cargo/config.toml). Part of tests/run-all.sh (CI).
#   1. installs what is missing (in CI, tests/setup.sh already has): the cross C compiler and
#      libc, qemu-user-static, and the arm64 multiarch libc6 + libasound2-dev (the default `live`
#      feature links libasound; qemu's loader /lib/ld-linux-aarch64.so.1 comes from libc6:arm64);
#   2. rustup target add aarch64-unknown-linux-gnu.
#   A missing prerequisite is a loud SKIP, or a failure with CI=true.
#   3. ONE cargo invocation, profile `aarch64-ci` (Cargo.toml: nothing optimised, no debug info),
#      default features (`live`: alsa-sys links the arm64 libasound, v4l2-sys-mit runs bindgen on
#      the arm64 kernel headers), builds the c3n-edge binary, the library's unit tests and the
#      integration tests frontend_parity and engine_tract. One invocation, one feature resolution:
#      built on its own, the binary would not get the dev-dependencies' features and cargo would
#      compile the tract stack a second time for the tests. Linked with the toolchain's rust-lld
#      (gcc -fuse-ld=lld) where it has one: ~2 instead of ~8 CPU-s for each of the 4 executables.
#   4. runs tests under qemu (the cargo runner, `-cpu cortex-a76`): only those whose results can
#      differ by architecture (SIMD kernels, libm, float reductions), on the small models; the
#      full-size parity stays on x86_64 (issue 28). The integration tests go by name (QEMU_TESTS
#      below; checked against --list, so that a renamed one fails the step instead of running
#      nothing, and a new one runs here only once it is added):
#      * the library's unit tests, all of them (98, 5-14 s under qemu): the resampler (rubato's
#        FFT resampler) and the log-mel front end, both on rustfft's NEON code, are nearly all of
#        that time and can differ by architecture, as can post-processing, metrics and the frame
#        split's clip mean; the rest (config, URIs, events …) take ~1 s, and a filter by module
#        path would break silently when a module is renamed.
#      * frontend_parity::clip_patches_match_python_reference: the log-mel front end (rustfft's
#        NEON vs AVX paths, the arm64 glibc's log) vs the Python reference, ~3 s.
#      * frontend_parity::vggish_patches_match_python_reference: the same for the VGGish front
#        end (log offset 0.01, examples back to back; issue 24), ~1 s.
#      * engine_tract::tract_matches_onnxruntime_t1_multithreaded: tract's arm64 kernels
#        (convolutions, matrix products, the C3IM head's softmax/sigmoid; 2 threads) on the T = 1
#        contract model vs onnxruntime, ~4 s.
#      Not here (x86_64 only): the parity tests on the full-size untrained exports
#      (tract_matches_pytorch_c3n_edge_t1/_t5, and the three frame-split tests on the t5 graph:
#      engine_tract took 384 s under qemu on a quiet 2-core machine with them, 32 min on a
#      loaded one): their kernels are the batch-1 ones that the T = 1 tests above and step 5 run
#      (a T = 5 model runs frame by frame at batch 1), the split's scheduling and clip mean are
#      plain Rust (the clip mean is a unit test above); tract_matches_onnxruntime_t5 (~11 s: the
#      same kernels at batch 5); the model-contract error paths and the metadata parsing
#      (architecture-independent). The other integration tests start the c3n-edge binary as a
#      child process, which needs binfmt_misc (not available in the CI containers) to run an
#      aarch64 executable.
#   5. `c3n-edge run` with tract (2 threads) on the shipped model models/c3n-edge-t1.onnx (the
#      full-size graph) over the real clip assets/clips/bbb-bird (1 window, --min-frames 1 so that
#      it emits events, --update-interval 0 so that every frame's object is compared, and no
#      throttle threshold can turn on a 1e-3 difference), checking that it emits events and that they equal the x86_64 build's (type,
#      label, score and c3im_score to 1e-3, box to 1 px): that x86_64 binary is $C3N_HOST_BIN, else
#      ${CARGO_TARGET_DIR:-target}/debug/c3n-edge (in CI: the one `cargo test` built), built if missing.
#   Each step prints its wall time, CPU time (this script's children) and the load average.
# `--build-only`: steps 1-3 only (tests/run-all.sh runs them at low priority beside the host
# tests, where the CPU is partly idle, then runs this script whole: the build is then a no-op).
# Own target dir (a host build cache cannot serve another target): C3N_AARCH64_TARGET_DIR
# (default target/aarch64-cross). Cold on 2 cores: see README "Jetson deployment".
set -euo pipefail
BUILD_ONLY=""
case "${1:-}" in
  "") ;;
  --build-only) BUILD_ONLY=1 ;;
  *) echo "usage: bash tests/aarch64.sh [--build-only]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=aarch64-unknown-linux-gnu
PROFILE=aarch64-ci
QEMU=(qemu-aarch64-static -cpu cortex-a76) # same as the cargo runner in .cargo/config.toml
HOST_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
HOST_BUILD_DIR="${CARGO_BUILD_BUILD_DIR:-$HOST_TARGET_DIR}"
export C3N_TEST_ARTIFACTS="${C3N_TEST_ARTIFACTS:-$ROOT/models/build/test-fixtures}"
[ -d "$C3N_TEST_ARTIFACTS" ] || unset C3N_TEST_ARTIFACTS # the tests then SKIP loudly (FAIL with CI=true)
step() { printf '\n==> %s  [%s]\n' "$*" "$(date +%T)"; }
skip() {
  if [ "${CI:-}" = true ]; then echo "FAIL tests/aarch64.sh: $*" >&2; exit 1; fi
  echo "SKIP tests/aarch64.sh: $*" >&2; exit 0
}
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
WORK=$(mktemp -d /tmp/c3n-aarch64.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
T0=$(date +%s); t=$T0; tc=0
lap() { # wall, CPU (user + sys of the finished children: the shell's `times`) and load
  local now c; now=$(date +%s); times >"$WORK/times"
  c=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/)
    printf "%d", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$WORK/times")
  echo "aarch64 $1: $(( now - t )) s, $(( c - tc )) CPU-s, load $(cut -d' ' -f1-3 /proc/loadavg)"
  t=$now; tc=$c
}

need=""
command -v aarch64-linux-gnu-gcc >/dev/null || need="$need gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
command -v qemu-aarch64-static >/dev/null || need="$need qemu-user-static"
dpkg-query -W -f='${Status}' libc6:arm64 2>/dev/null | grep -q "install ok installed" || need="$need libc6:arm64"
dpkg-query -W -f='${Status}' libasound2-dev:arm64 2>/dev/null | grep -q "install ok installed" || need="$need libasound2-dev:arm64"
if [ -n "$need" ]; then
  step "apt-get install$need"
  case "$need" in *:arm64*) $SUDO dpkg --add-architecture arm64 || skip "cannot add the arm64 dpkg architecture";; esac
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null \
    || skip "cannot install$need"
fi
step "rustup target add $TARGET"
rustup target add "$TARGET" || skip "rustup cannot add the $TARGET target (offline? no rustup?)"
lap "prerequisites"

export CARGO_TARGET_DIR="${C3N_AARCH64_TARGET_DIR:-$ROOT/target/aarch64-cross}"
export CARGO_BUILD_BUILD_DIR="$CARGO_TARGET_DIR"
# rust-lld through gcc (the toolchain's gcc-ld/ld.lld wrapper): GNU ld takes ~8 CPU-s for each of
# the ~100 MB unoptimised executables, rust-lld ~2. Without it (another toolchain layout): GNU ld.
GCC_LD="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld"
if [ -x "$GCC_LD/ld.lld" ] && [ "$GCC_LD" = "${GCC_LD// /}" ]; then
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS:-} -C link-arg=-fuse-ld=lld -C link-arg=-B$GCC_LD"
else
  echo "no $GCC_LD/ld.lld: linking with GNU ld"
fi
CARGO=(cargo test --locked --target "$TARGET" --profile "$PROFILE")
# The integration tests that run under qemu, by name (the reasons are in the header):
# <test target>:<test name>.
QEMU_TESTS=(
  frontend_parity:clip_patches_match_python_reference
  frontend_parity:vggish_patches_match_python_reference
  engine_tract:tract_matches_onnxruntime_t1_multithreaded
)
QEMU_TARGETS=(); BUILD=(--lib)
for e in "${QEMU_TESTS[@]}"; do
  case " ${QEMU_TARGETS[*]} " in *" ${e%%:*} "*) ;; *) QEMU_TARGETS+=("${e%%:*}"); BUILD+=(--test "${e%%:*}");; esac
done
step "cargo build: binary + tests for $TARGET, profile $PROFILE (target dir $CARGO_TARGET_DIR)"
"${CARGO[@]}" --no-run "${BUILD[@]}"
BIN="$CARGO_TARGET_DIR/$TARGET/$PROFILE/c3n-edge"
python3 - "$BIN" <<'PY'
import sys
head = open(sys.argv[1], "rb").read(20)
# ELF, 64-bit, little-endian, e_machine EM_AARCH64 (183)
assert head[:4] == b"\x7fELF" and head[4] == 2 and head[5] == 1 and int.from_bytes(head[18:20], "little") == 183, \
    f"{sys.argv[1]} is not an aarch64 ELF executable"
PY
lap "build"
if [ -n "$BUILD_ONLY" ]; then
  step "aarch64 build done (--build-only)"
  exit 0
fi

step "library unit tests under qemu-user (all of them)"
"${CARGO[@]}" --lib
lap "unit tests"

step "integration tests under qemu-user: ${QEMU_TESTS[*]}"
for target in "${QEMU_TARGETS[@]}"; do
  names=()
  for e in "${QEMU_TESTS[@]}"; do [ "${e%%:*}" = "$target" ] && names+=("${e#*:}"); done
  listed=$("${CARGO[@]}" --test "$target" -- --list --format terse 2>"$WORK/list.err") \
    || { cat "$WORK/list.err" >&2; exit 1; }
  for n in "${names[@]}"; do # a renamed test must fail here, not run nothing
    grep -qxF "$n: test" <<<"$listed" \
      || { echo "FAIL tests/aarch64.sh: QEMU_TESTS names $target:$n, which $target does not have" >&2; exit 1; }
  done
  "${CARGO[@]}" --test "$target" -- --exact "${names[@]}"
done
lap "integration tests"

step "c3n-edge run (tract, models/c3n-edge-t1.onnx, bbb-bird, 1 window) under qemu-user vs x86_64"
OUT=$WORK
ARGS=(run "file://$ROOT/assets/clips/bbb-bird/frames/%05d.png" --audio "file://$ROOT/assets/clips/bbb-bird/audio.wav"
      --model "$ROOT/models/c3n-edge-t1.onnx" --backend tract --threads 2 --max-clips 1 --min-frames 1
      --update-interval 0)
HOST="${C3N_HOST_BIN:-$HOST_TARGET_DIR/debug/c3n-edge}"
if [ -n "${C3N_HOST_BIN:-}" ] && [ ! -x "$HOST" ]; then
  echo "FAIL tests/aarch64.sh: C3N_HOST_BIN=$HOST is not an executable" >&2; exit 1
fi
if [ ! -x "$HOST" ]; then
  echo "no x86_64 binary at $HOST: building it"
  CARGO_TARGET_DIR="$HOST_TARGET_DIR" CARGO_BUILD_BUILD_DIR="$HOST_BUILD_DIR" cargo build --locked --bin c3n-edge
fi
"$HOST" "${ARGS[@]}" --events "$OUT/x86_64.jsonl"
"${QEMU[@]}" "$BIN" "${ARGS[@]}" --events "$OUT/aarch64.jsonl"
python3 "$ROOT/tests/compare_events.py" "$OUT/aarch64.jsonl" "$OUT/x86_64.jsonl" --tol 1e-3 --box-px 1 \
  --names aarch64 "x86_64 ($HOST)"
lap "run"
echo "aarch64 total: $(( $(date +%s) - T0 )) s"
step "aarch64 ok"
