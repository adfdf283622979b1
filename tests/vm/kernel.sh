# Sourced by the VM build scripts (tests/vm/build-*.sh), from the repository root, with
# `set -euo pipefail`: Debian's own amd64 kernel (toolchain-and-test-infra.md §7.3), downloaded
# with apt-get, sha256-checked against the apt index, extracted (not installed) and depmod'ed,
# cached in $CACHE (default $C3N_CACHE/vm, shared by every VM test). Sets PKG, KVER, KROOT,
# MODDIR and VMLINUZ; defines vm_modules.
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
