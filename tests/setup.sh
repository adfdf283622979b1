#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (with Rust and Python 3.11) for c3n-edge: Debian packages,
# the Python venv with the pinned model-package requirements, the pinned pretrained weights and
# media (sha256-verified, cached in $C3N_CACHE, default ~/.cache/c3n-edge). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
step() { printf '\n==> %s  [%s]\n' "$*" "$(date +%T)"; }

# Debian packages needed only when the tool they provide is missing (python3 from pyenv or
# Debian both work if they can create a venv with pip).
missing=""
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || missing="$missing python3-venv"
# live capture (v4l crate bindgen, alsa-sys) and its tests (ALSA file plugin, vivid VM)
[ -f /usr/lib/llvm-14/lib/libclang.so ] || ls /usr/lib/x86_64-linux-gnu/libclang*.so >/dev/null 2>&1 || missing="$missing libclang-dev"
pkg-config --exists alsa 2>/dev/null || missing="$missing libasound2-dev"
command -v qemu-system-x86_64 >/dev/null || missing="$missing qemu-system-x86"
[ -x /bin/busybox ] || missing="$missing busybox-static"
command -v depmod >/dev/null || missing="$missing kmod"
if [ -n "$missing" ]; then
  step "apt-get install$missing"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

if [ ! -x .venv/bin/python ] || ! cmp -s models/requirements.txt .venv/.requirements.txt; then
  step "Python venv .venv (models/requirements.txt; torch pulls its CUDA wheels, ~3 GB)"
  python3 -m venv .venv
  .venv/bin/pip install -q -r models/requirements.txt
  cp models/requirements.txt .venv/.requirements.txt
fi

step "pretrained weights and media (python -m c3n.fetch)"
(cd models && "$ROOT/.venv/bin/python" -m c3n.fetch all >/dev/null)
step "setup done"
