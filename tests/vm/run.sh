#!/usr/bin/env bash
# Boots the V4L2 test VM (build-initramfs.sh) under qemu with TCG (not KVM: it hangs on these
# machines, docs/toolchain-and-test-infra.md §7.3) and checks the console for C3N_VM_PASS.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${C3N_CACHE:-$HOME/.cache/c3n-edge}/vm"
bash tests/vm/build-initramfs.sh
LOG="$CACHE/console.log"
start=$(date +%s)
# TCG on a loaded 2-core machine: a run takes 20-35 s here; C3N_VM_TIMEOUT (s) bounds it
rc=0
timeout "${C3N_VM_TIMEOUT:-180}" qemu-system-x86_64 -accel tcg -m 512 -smp 1 -kernel "$CACHE/vmlinuz" \
  -initrd "$CACHE/initrd.gz" -append "console=ttyS0 loglevel=3 panic=-1" \
  -nographic -no-reboot -nodefaults -serial stdio > "$LOG" 2>&1 || rc=$?
echo "VM ran $(( $(date +%s) - start )) s; console:"
[ "$rc" -eq 124 ] && echo "V4L2 VM test: qemu killed after ${C3N_VM_TIMEOUT:-180} s" >&2
grep -E 'C3N_|mode |unplugged|rmmod|modprobe|modes' "$LOG" || tail -n 30 "$LOG"
if grep -q '^C3N_VM_PASS' "$LOG" && ! grep -q 'C3N_VM_FAIL' "$LOG"; then
  echo "V4L2 VM test: PASS"
else
  echo "V4L2 VM test: FAIL (full console: $LOG)" >&2
  exit 1
fi
