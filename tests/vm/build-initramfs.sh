#!/usr/bin/env bash
# Builds the V4L2 test VM (toolchain-and-test-infra.md §7.3): Debian's own amd64 kernel
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

# static test binary: +crt-static for the final binary only. Features v4l2 without alsa because
# Debian ships no static libasound.a; the dependency units are the same as those `cargo test`
# builds (checked with `cargo +nightly build --unit-graph`: only the c3n-edge lib and the example
# differ), so this step compiles our own crate once more and links, nothing else.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
t0=$(date +%s)
cargo rustc --locked --quiet --example v4l2_vmtest --no-default-features --features v4l2 \
  -- -C target-feature=+crt-static
echo "static v4l2_vmtest built in $(( $(date +%s) - t0 )) s"
BIN="$CARGO_TARGET_DIR/debug/examples/v4l2_vmtest"
ldd "$BIN" 2>&1 | grep -Eq 'statically linked|not a dynamic' \
  || { echo "$BIN is not statically linked" >&2; exit 1; }

INIT="$CACHE/initramfs"
rm -rf "$INIT"
mkdir -p "$INIT"/{bin,sbin,proc,sys,dev,tmp} "$INIT/lib/modules/$KVER"
cp /bin/busybox "$INIT/bin/busybox"
for a in sh mount modprobe rmmod insmod poweroff echo sleep cat ls uname dmesg; do
  ln -s busybox "$INIT/bin/$a"
done
strip -o "$INIT/bin/v4l2_vmtest" "$BIN"
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
(cd "$INIT" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$CACHE/initrd.gz"
cp "$KROOT/boot/vmlinuz-$KVER" "$CACHE/vmlinuz"
echo "kernel $KVER, modules: $nmods, initrd $(du -h "$CACHE/initrd.gz" | cut -f1)"
