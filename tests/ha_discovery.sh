#!/usr/bin/env bash
# c3n-edge's Home Assistant MQTT discovery against a real Home Assistant 2024.3.3: mosquitto,
# `hass` and `c3n-edge run` on the bbb-bird clip, all on 127.0.0.1 (tests/ha/ha_discovery.py says
# what is checked). Sets up, once, a venv with the pinned Home Assistant (tests/ha/requirements.txt)
# in $C3N_CACHE/ha-venv-<hash> (default ~/.cache/c3n-edge; ~490 MB), builds c3n-edge (debug) and
# runs the test.
#
#   bash tests/ha_discovery.sh [--keep]      # --keep: keep the work directory (logs, messages)
#   bash tests/ha_discovery.sh --install-only   # the venv only (tests/run-all.sh installs it in
#                                               # the background while the Rust builds run)
#
# Prerequisites: mosquitto, python3 3.11 or 3.12 with venv (C3N_HA_PYTHON picks another
# interpreter), PyPI for the first run. A missing one: loud SKIP, or a failure when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
T=ha_discovery
INSTALL_ONLY=""
if [ "${1:-}" = --install-only ]; then INSTALL_ONLY=1; shift; fi
skip() {
  if [ "${CI:-}" = true ]; then
    echo "FAIL $T: CI=true but $*" >&2
    exit 1
  fi
  echo "*** SKIP $T: $* ***" >&2
  exit 0
}

command -v mosquitto >/dev/null 2>&1 ||
  skip "mosquitto is not installed (apt-get install mosquitto; tests/setup.sh installs it)"
PY=${C3N_HA_PYTHON:-python3}
"$PY" -c 'import sys, venv, ensurepip; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' \
  >/dev/null 2>&1 ||
  skip "Home Assistant 2024.3 needs Python 3.11 or 3.12 with venv and ensurepip; $PY is" \
       "$("$PY" --version 2>/dev/null || echo "not found") (set C3N_HA_PYTHON)"

CACHE=${C3N_CACHE:-$HOME/.cache/c3n-edge}
REQ=tests/ha/requirements.txt
KEY=$({ cat "$REQ"; "$PY" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-12)
VENV="$CACHE/ha-venv-$KEY"
if [ ! -f "$VENV/.complete" ]; then
  t0=$(date +%s)
  echo "$T: installing Home Assistant (tests/ha/requirements.txt) into $VENV" >&2
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  "$PY" -m venv "$VENV"
  # --no-compile: HA compiles only the modules it imports, at its first start (saves ~2 min)
  if ! "$VENV/bin/pip" install -q --disable-pip-version-check --no-compile -r "$REQ"; then
    rm -rf "$VENV"
    skip "pip could not install $REQ (no access to PyPI?)"
  fi
  touch "$VENV/.complete"
  echo "$T: Home Assistant installed in $(($(date +%s) - t0)) s" >&2
fi
[ -z "$INSTALL_ONLY" ] || exit 0

cargo build -q --locked --bin c3n-edge   # a no-op after `cargo test` (run-all.sh)
BIN="${CARGO_TARGET_DIR:-target}/debug/c3n-edge"
exec "$VENV/bin/python" tests/ha/ha_discovery.py --bin "$BIN" "$@"
