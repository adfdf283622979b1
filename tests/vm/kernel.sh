# Sourced by the VM build scripts (tests/vm/build-*.sh), from the repository root, with
# `set -euo pipefail`: Debian's own amd64 kernel (docs/toolchain-and-test-infra.md §7.3), downloaded
# with apt-get, sha256-checked against the apt index, extracted (not installed) and depmod'ed,
# cached in $CACHE (default $C3N_CACHE/vm, shared by every VM test). Sets PKG, KVER, KROOT,
# MODDIR and VMLINUZ; defines vm_modules, vm_static_example, vm_busybox_root and vm_pack.
# shellcheck shell=bash
CACHE="${CACHE:-${C3N_CACHE:-$HOME/.cache/c3n-edge}/vm}"
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
VMLINUZ="$KROOT/boot/vmlinuz-$KVER"

# vm_modules INITRAMFS MODULE...: copies each module (file name without .ko, e.g. vivid) and
# everything it depends on (modules.dep lists the whole closure) into INITRAMFS/lib/modules/$KVER,
# with the depmod index files. Prints the number of modules copied.
vm_modules() {
  local init=$1; shift
  local mods="" m
  for m in "$@"; do
    local dep
    dep=$(awk -F: -v m="/$m.ko" 'index($1, m) == length($1) - length(m) + 1 {print $1; print $2}' "$MODDIR/modules.dep" \
          | tr ' ' '\n' | sed '/^$/d')
    [ -n "$dep" ] || { echo "$m not in $MODDIR/modules.dep" >&2; exit 1; }
    mods="$mods $dep"
  done
  mods=$(echo "$mods" | tr ' ' '\n' | sed '/^$/d' | sort -u)
  for m in $mods; do
    mkdir -p "$init/lib/modules/$KVER/$(dirname "$m")"
    cp "$MODDIR/$m" "$init/lib/modules/$KVER/$m"
  done
  cp "$MODDIR"/modules.{dep,dep.bin,alias,alias.bin,symbols,symbols.bin,builtin,builtin.bin,order} \
     "$init/lib/modules/$KVER/" 2>/dev/null || true
  echo "$mods" | wc -w
}

# vm_static_example NAME: builds examples/NAME.rs linked statically (+crt-static for the final
# binary only; features v4l2 without alsa, as Debian ships no static libasound.a; the dependency
# units are those `cargo test` builds, so only the c3n-edge lib and the example are compiled) and
# sets VM_BIN to it. Needs CARGO_TARGET_DIR.
vm_static_example() {
  local t0
  t0=$(date +%s)
  cargo rustc --locked --quiet --example "$1" --no-default-features --features v4l2 \
    -- -C target-feature=+crt-static
  echo "static $1 built in $(( $(date +%s) - t0 )) s"
  VM_BIN="$CARGO_TARGET_DIR/debug/examples/$1"
  ldd "$VM_BIN" 2>&1 | grep -Eq 'statically linked|not a dynamic' \
    || { echo "$VM_BIN is not statically linked" >&2; exit 1; }
}

# vm_busybox_root INITRAMFS APPLET...: a fresh initramfs tree (bin, sbin, proc, sys, dev, tmp,
# lib/modules/$KVER) with busybox and a link for each applet.
vm_busybox_root() {
  local init=$1 a; shift
  rm -rf "$init"
  mkdir -p "$init"/{bin,sbin,proc,sys,dev,tmp} "$init/lib/modules/$KVER"
  cp /bin/busybox "$init/bin/busybox"
  for a in "$@"; do ln -s busybox "$init/bin/$a"; done
}

# vm_pack INITRAMFS OUT: packs the tree as a gzip'ed newc cpio (busybox's cpio: Debian's `cpio`
# is not installed by default).
vm_pack() {
  (cd "$1" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$2"
}
