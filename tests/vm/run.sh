#!/usr/bin/env bash
# Boots the V4L2 test VM (build-initramfs.sh) under qemu with TCG (not KVM: it hangs on these
# machines, toolchain-and-test-infra.md §7.3) and checks the console for C3N_VM_PASS.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${C3N_CACHE:-$HOME/.cache/c3n-edge}/vm"
bash tests/vm/build-initramfs.sh
LOG="$CACHE/console.log"
start=$(date +%s)
timeout 180 qemu-system-x86_64 -accel tcg -m 512 -smp 1 -kernel "$CACHE/vmlinuz" \
  -initrd "$CACHE/initrd.gz" -append "console=ttyS0 loglevel=3 panic=-1" \
  -nographic -no-reboot -nodefaults -serial stdio > "$LOG" 2>&1 || true
echo "VM ran $(( $(date +%s) - start )) s; console:"
grep -E 'C3N_|mode |unplugged|rmmod|modprobe|modes' "$LOG" || tail -n 30 "$LOG"
if grep -q '^C3N_VM_PASS' "$LOG" && ! grep -q 'C3N_VM_FAIL' "$LOG"; then
  echo "V4L2 VM test: PASS"
else
  echo "V4L2 VM test: FAIL (full console: $LOG)" >&2
  exit 1
fi
