# Sourced by the VM tests (`. tests/vm/kernel.sh`): Debian's current amd64 kernel package for the
# running release (linux-image-amd64 -> linux-image-X.Y.Z-N-amd64), downloaded with apt-get,
# sha256-checked against the apt index, extracted (not installed) and depmod-ed under
# $C3N_CACHE/vm/kernel-$KVER (the same cache layout as build-initramfs.sh, so the VM tests share
# one download). Sets KVER, KROOT (extracted package root), MODDIR (its lib/modules/$KVER) and
# VMLINUZ. Needs apt-get, apt-cache, dpkg-deb, depmod (kmod), sha256sum.
# shellcheck shell=bash
KCACHE="${C3N_CACHE:-$HOME/.cache/c3n-edge}/vm"
mkdir -p "$KCACHE"
_kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$_kpkg" ] || { echo "cannot resolve linux-image-amd64 (apt-get update?)" >&2; return 1; }
KVER=${_kpkg#linux-image-}
_ksha=$(apt-cache show "$_kpkg" | awk '/^SHA256:/ {print $2; exit}')
_kdeb=$(ls "$KCACHE"/"${_kpkg}"_*_amd64.deb 2>/dev/null | head -n1 || true)
if [ -z "$_kdeb" ] || [ "$(sha256sum "$_kdeb" | cut -d' ' -f1)" != "$_ksha" ]; then
  rm -f "$KCACHE"/"${_kpkg}"_*_amd64.deb
  (cd "$KCACHE" && apt-get download "$_kpkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  _kdeb=$(ls "$KCACHE"/"${_kpkg}"_*_amd64.deb | head -n1)
fi
echo "$_ksha  $_kdeb" | sha256sum -c --quiet - || { echo "sha256 mismatch for $_kdeb" >&2; return 1; }
KROOT="$KCACHE/kernel-$KVER"
if [ ! -f "$KROOT/.done" ]; then
  rm -rf "$KROOT"; mkdir -p "$KROOT"
  dpkg-deb -x "$_kdeb" "$KROOT"
  depmod -b "$KROOT" "$KVER"
  touch "$KROOT/.done"
fi
MODDIR="$KROOT/lib/modules/$KVER"
VMLINUZ="$KROOT/boot/vmlinuz-$KVER"
unset _kpkg _ksha _kdeb
