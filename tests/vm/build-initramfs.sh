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

# the running Debian release's current kernel package (linux-image-amd64 -> linux-image-X.Y.Z-N-amd64)
PKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$PKG" ] || { echo "cannot resolve linux-image-amd64 (apt-get update?)" >&2; exit 1; }
KVER=${PKG#linux-image-}
SHA=$(apt-cache show "$PKG" | awk '/^SHA256:/ {print $2; exit}')
DEB=$(ls "$CACHE"/"${PKG}"_*_amd64.deb 2>/dev/null | head -n1 || true)
if [ -z "$DEB" ] || [ "$(sha256sum "$DEB" | cut -d' ' -f1)" != "$SHA" ]; then
  rm -f "$CACHE"/"${PKG}"_*_amd64.deb
  (cd "$CACHE" && apt-get download "$PKG" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  DEB=$(ls "$CACHE"/"${PKG}"_*_amd64.deb | head -n1)
fi
echo "$SHA  $DEB" | sha256sum -c --quiet - || { echo "sha256 mismatch for $DEB" >&2; exit 1; }

KROOT="$CACHE/kernel-$KVER"
if [ ! -f "$KROOT/.done" ]; then
  rm -rf "$KROOT"; mkdir -p "$KROOT"
  dpkg-deb -x "$DEB" "$KROOT"
  depmod -b "$KROOT" "$KVER"
  touch "$KROOT/.done"
fi
MODDIR="$KROOT/lib/modules/$KVER"

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
mods=$(awk -F: '$1 ~ /\/vivid\.ko/ {print $1; print $2}' "$MODDIR/modules.dep" | tr ' ' '\n' | sed '/^$/d' | sort -u)
[ -n "$mods" ] || { echo "vivid not in $MODDIR/modules.dep" >&2; exit 1; }
for m in $mods; do
  mkdir -p "$INIT/lib/modules/$KVER/$(dirname "$m")"
  cp "$MODDIR/$m" "$INIT/lib/modules/$KVER/$m"
done
cp "$MODDIR"/modules.{dep,dep.bin,alias,alias.bin,symbols,symbols.bin,builtin,builtin.bin,order} \
   "$INIT/lib/modules/$KVER/" 2>/dev/null || true
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
echo "kernel $KVER, modules: $(echo $mods | wc -w), initrd $(du -h "$CACHE/initrd.gz" | cut -f1)"
