#!/usr/bin/env bash
# Installs c3n-edge as a systemd service (README "Jetson deployment"):
#   /usr/local/bin/c3n-edge, /usr/local/share/c3n-edge/models/*.onnx,
#   /etc/systemd/system/c3n-edge.service, /etc/c3n-edge/c3n-edge.env and c3n-edge.toml (kept if present),
#   /usr/local/share/doc/c3n-edge/README.md; then daemon-reload + enable --now (when systemd runs).
#
#   sudo systemd/install.sh [--bin target/release/c3n-edge] [--no-start]
#   DESTDIR=/tmp/pkgroot systemd/install.sh --bin target/debug/c3n-edge   # staging, no systemctl
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/c3n-edge
START=1
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; shift 2 ;;
    --no-start) START=0; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
DESTDIR="${DESTDIR:-}"
if [ ! -x "$BIN" ]; then
  echo "install.sh: binary $BIN not found or not executable; build it first:" >&2
  echo "  cargo build --release [--features tensorrt] [--target aarch64-unknown-linux-gnu]" >&2
  exit 1
fi
install -D -m 0755 "$BIN" "$DESTDIR/usr/local/bin/c3n-edge"
for m in models/c3n-edge-t5.onnx models/c3n-edge-t1.onnx models/c3n-edge-t5-int8.onnx; do
  [ -f "$m" ] && install -D -m 0644 "$m" "$DESTDIR/usr/local/share/c3n-edge/$m"
done
install -D -m 0644 systemd/c3n-edge.service "$DESTDIR/etc/systemd/system/c3n-edge.service"
if [ ! -e "$DESTDIR/etc/c3n-edge/c3n-edge.env" ]; then
  install -D -m 0644 systemd/c3n-edge.env "$DESTDIR/etc/c3n-edge/c3n-edge.env"
else
  echo "install.sh: keeping existing $DESTDIR/etc/c3n-edge/c3n-edge.env"
fi
if [ ! -e "$DESTDIR/etc/c3n-edge/c3n-edge.toml" ]; then
  # commented sample, every key at its default (read by the service through ConfigurationDirectory)
  install -D -m 0644 systemd/c3n-edge.toml "$DESTDIR/etc/c3n-edge/c3n-edge.toml"
else
  echo "install.sh: keeping existing $DESTDIR/etc/c3n-edge/c3n-edge.toml"
fi
install -D -m 0644 README.md "$DESTDIR/usr/local/share/doc/c3n-edge/README.md"
echo "installed c3n-edge into ${DESTDIR:-/}"
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  if [ "$START" = 1 ]; then
    systemctl enable --now c3n-edge.service
    echo "started; follow it with: journalctl -u c3n-edge -f"
  else
    echo "enable and start with: systemctl enable --now c3n-edge"
  fi
else
  echo "systemd is not running here (or DESTDIR is set): not enabling the service"
fi
