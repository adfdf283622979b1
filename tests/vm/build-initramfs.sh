#!/usr/bin/env bash
# Builds the V4L2 test VM (docs/toolchain-and-test-infra.md §7.3): Debian's own amd64 kernel
# (downloaded with apt-get, sha256-checked against the apt index, extracted, not installed), an
# initramfs with the vivid module and its dependencies (from modules.dep), busybox, and the
# statically linked test binary examples/v4l2_vmtest.rs. Output: $C3N_CACHE/vm/{vmlinuz,initrd.gz}.
# Cache: $C3N_CACHE (default ~/.cache/c3n-edge). Needs: apt-get, dpkg-deb, depmod (kmod),
# busybox-static, gzip, a Rust toolchain and glibc's static libraries (libc6-dev).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE="${C3N_CACHE:-$HOME/.cache/c3n-edge}/vm"
mkdir -p "$CACHE"

# Debian kernel package, extracted: sets KVER, KROOT, MODDIR; defines vm_modules
. tests/vm/kernel.sh

# static test binary (the dependency units are the same as those `cargo test` builds, checked
# with `cargo +nightly build --unit-graph`: this compiles our own crate once more and links)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
vm_static_example v4l2_vmtest

INIT="$CACHE/initramfs"
vm_busybox_root "$INIT" sh mount modprobe rmmod insmod poweroff echo sleep cat ls uname dmesg
strip -o "$INIT/bin/v4l2_vmtest" "$VM_BIN"
# vivid and everything it depends on, per modules.dep
nmods=$(vm_modules "$INIT" vivid)
cat > "$INIT/init" <<'INIT_EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
if modprobe vivid n_devs=1 node_types=0x1; then
  i=0; while [ ! -e /dev/video0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  /bin/v4l2_vmtest /dev/video0 || echo "C3N_VM_FAIL: test exited with $?"
else
  echo "C3N_VM_FAIL: modprobe vivid failed"
fi
poweroff -f
INIT_EOF
chmod +x "$INIT/init"
vm_pack "$INIT" "$CACHE/initrd.gz"
cp "$VMLINUZ" "$CACHE/vmlinuz"
echo "kernel $KVER, modules: $nmods, initrd $(du -h "$CACHE/initrd.gz" | cut -f1)"
