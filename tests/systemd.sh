#!/usr/bin/env bash
# Static checks of systemd/c3n-edge.service: installs it with systemd/install.sh into a staging
# root, then `systemd-analyze verify --root` (must print nothing: verify exits 0 even on unknown
# keys, so any output is a failure) and `systemd-analyze security --offline` (exposure score must
# stay <= $C3N_SECURITY_MAX, default 2.0; the score is recorded in README "Jetson deployment").
# systemd does not need to run as PID 1: both commands work offline on a root directory.
#
#   bash tests/systemd.sh [path/to/c3n-edge]     # default: target/debug/c3n-edge
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-${CARGO_TARGET_DIR:-target}/debug/c3n-edge}"
MAX="${C3N_SECURITY_MAX:-2.0}"
if ! command -v systemd-analyze >/dev/null; then
  if [ "${CI:-}" = true ]; then echo "FAIL tests/systemd.sh: systemd-analyze missing (Debian package systemd)" >&2; exit 1; fi
  echo "SKIP tests/systemd.sh: systemd-analyze missing (apt-get install systemd)" >&2; exit 0
fi
ROOT=$(mktemp -d /tmp/c3n-systemd-root.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
DESTDIR="$ROOT" bash systemd/install.sh --bin "$BIN" --no-start >/dev/null
# the targets the unit refers to (network-online.target, multi-user.target, sysinit.target, ...)
mkdir -p "$ROOT/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$ROOT/usr/lib/systemd/"
out=$(systemd-analyze verify --root="$ROOT" c3n-edge.service 2>&1) || { echo "$out" >&2; echo "FAIL: systemd-analyze verify" >&2; exit 1; }
if [ -n "$out" ]; then echo "$out" >&2; echo "FAIL: systemd-analyze verify printed warnings" >&2; exit 1; fi
echo "ok: systemd-analyze verify c3n-edge.service (no warnings)"
score=$(systemd-analyze security --offline=yes --root="$ROOT" c3n-edge.service 2>&1 | sed -n 's/.*Overall exposure level for c3n-edge.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || { echo "FAIL: no exposure score from systemd-analyze security" >&2; exit 1; }
echo "systemd-analyze security: exposure $score (max allowed $MAX)"
awk -v s="$score" -v m="$MAX" 'BEGIN { exit !(s <= m) }' || { echo "FAIL: exposure $score > $MAX" >&2; exit 1; }
