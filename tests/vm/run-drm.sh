#!/usr/bin/env bash
# DRM/KMS output against real kernel drivers: boots the VM of build-drm-initramfs.sh under qemu
# (TCG, as the V4L2 VM: docs/toolchain-and-test-infra.md §7.3) once per display device:
#   bochs:  -device bochs-display (EDID prefers 1280x720), kernel driver `bochs` (scans out VRAM);
#   virtio: -device virtio-gpu-pci (1280x720), kernel driver `virtio_gpu` (the host sees a
#           picture only after DIRTYFB).
# The guest (examples/drm_vmtest.rs) shows four pictures (a prior screen, display://0 in the
# preferred mode, the prior screen restored, display://0?...&mode=800x600); for each one this
# script grabs the real scanout with the qemu monitor's `screendump` and has `drm_vmtest check`
# compare it with the renderer's picture for that mode, then lets the guest go on. Prints the
# wall times. C3N_DRM_GPUS="bochs" runs only one device.
#
# Prerequisites (Debian): qemu-system-x86, busybox-static, kmod, python3 (monitor socket).
# Missing: a loud SKIP, or a failure with CI=true.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${C3N_CACHE:-$HOME/.cache/c3n-edge}/vm"
start=$(date +%s)

missing=""
for t in qemu-system-x86_64 depmod python3; do
  command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
[ -x /bin/busybox ] || missing="$missing /bin/busybox"
if [ -n "$missing" ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "DRM VM test: CI=true but missing:$missing (tests/setup.sh installs them)" >&2
    exit 1
  fi
  echo "*** SKIP DRM VM test (tests/vm/run-drm.sh): missing$missing (apt-get install qemu-system-x86 busybox-static kmod python3) ***" >&2
  exit 0
fi

bash tests/vm/build-drm-initramfs.sh
D="$CACHE/drm"
echo "VM build $(( $(date +%s) - start )) s"
QEMU=""
FIFO="$D/console.in"
cleanup() { [ -n "$QEMU" ] && kill "$QEMU" 2>/dev/null; exec 3>&- || true; rm -f "$FIFO"; }
trap cleanup EXIT

# screendump MONITOR FILE: the current scanout as PPM, through the human monitor
screendump() {
  python3 - "$1" "$2" <<'PY'
import os, socket, sys, time
mon, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
for _ in range(100):
    try:
        s.connect(mon); break
    except OSError:
        time.sleep(0.1)
s.settimeout(120)
def prompt():
    buf = b""
    while not buf.rstrip().endswith(b"(qemu)"):
        d = s.recv(4096)
        if not d:
            sys.exit("monitor closed")
        buf += d
    return buf.decode(errors="replace")
prompt()
s.sendall(("screendump %s\n" % out).encode())
reply = prompt()
if not os.path.exists(out):
    sys.exit("screendump wrote nothing: " + reply)
PY
}

# run_vm NAME DRIVER QEMU-DEVICE: one boot, four screendumps checked
run_vm() {
  local name=$1 driver=$2 device=$3
  local out="$D/$name" log="$D/$name/console.log" mon="$D/$name/monitor.sock"
  rm -rf "$out"; mkdir -p "$out"
  rm -f "$FIFO"; mkfifo "$FIFO"
  exec 3<>"$FIFO"   # read-write: opening does not block, and qemu never sees EOF
  local boot; boot=$(date +%s)
  timeout "${C3N_VM_TIMEOUT:-300}" qemu-system-x86_64 -accel tcg -m 512 -smp 1 \
    -kernel "$D/vmlinuz" -initrd "$D/initrd.gz" \
    -append "console=ttyS0 loglevel=3 panic=-1" \
    -display none -no-reboot -nodefaults -serial stdio -device "$device" \
    -monitor "unix:$mon,server,nowait" <&3 > "$log" 2>&1 &
  QEMU=$!
  die() {
    echo "DRM VM test ($name): FAIL: $* (console: $log)" >&2
    grep -E 'C3N_|drm:|driver:|connector|->|refused' "$log" >&2 || tail -n 30 "$log" >&2
    exit 1
  }
  # wait_for PATTERN: until the console shows PATTERN (or a failure, or qemu ends)
  wait_for() {
    local deadline=$(( $(date +%s) + ${C3N_VM_TIMEOUT:-300} ))
    until grep -q "$1" "$log" 2>/dev/null; do
      grep -q 'C3N_VM_FAIL' "$log" && die "$(grep -m1 'C3N_VM_FAIL' "$log")"
      kill -0 "$QEMU" 2>/dev/null || die "qemu ended before '$1'"
      [ "$(date +%s)" -lt "$deadline" ] || die "timed out waiting for '$1'"
      sleep 0.5
    done
  }
  wait_for "^driver: "
  grep -q "^driver: $driver" "$log" || die "card0 is driven by $(grep -m1 '^driver: ' "$log"), not $driver"
  local phase size shot
  for phase in prior auto restored mode; do
    wait_for "C3N_DRM_SHOWN $phase "
    size=$(grep -m1 "C3N_DRM_SHOWN $phase " "$log" | awk '{print $3}' | tr -d '\r')
    shot="$out/$phase.ppm"
    screendump "$mon" "$shot" || die "screendump of phase $phase failed"
    echo "$name, phase $phase: guest shows $size; screendump header: $(head -n 2 "$shot" | tr '\n' ' ')"
    "$D/drm_vmtest" check "$phase" "$shot" "$out" \
      || die "phase $phase: the screen is not the expected picture (see $out/$phase-*.png)"
    echo go >&3
  done
  wait_for 'C3N_VM_PASS'
  wait "$QEMU" || true
  QEMU=""
  exec 3>&-
  grep -E 'C3N_|driver:|drm:|connector|->|refused' "$log" | tr -d '\r'
  grep -q 'C3N_VM_FAIL' "$log" && die "guest reported a failure"
  echo "DRM VM test ($name, driver $driver): PASS in $(( $(date +%s) - boot )) s"
}

for gpu in ${C3N_DRM_GPUS:-bochs virtio}; do
  case $gpu in
    bochs) run_vm bochs bochs-drm "bochs-display,xres=1280,yres=720" ;;
    virtio) run_vm virtio virtio_gpu "virtio-gpu-pci,xres=1280,yres=720" ;;
    *) echo "unknown GPU $gpu (bochs, virtio)" >&2; exit 2 ;;
  esac
done
echo "DRM VM test: PASS (total with build $(( $(date +%s) - start )) s)"
