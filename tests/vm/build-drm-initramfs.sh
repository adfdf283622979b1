#!/usr/bin/env bash
# Builds the DRM/KMS test VM (tests/vm/run-drm.sh): Debian's own amd64 kernel (tests/vm/kernel.sh,
# shared with the V4L2 VM), an initramfs with two DRM drivers and their dependencies: `bochs`
# (QEMU's bochs-display / standard VGA; drivers/gpu/drm/tiny/bochs.ko, scans out of VRAM) and
# `virtio-gpu` (virtio-gpu-pci; a host-side resource updated only on DIRTYFB), busybox, and the statically
# linked examples/drm_vmtest.rs. Output: $C3N_CACHE/vm/drm/{vmlinuz,initrd.gz} and the host copy
# of the test binary $C3N_CACHE/vm/drm/drm_vmtest (its `check` side compares the screendumps).
# Needs: apt-get, dpkg-deb, depmod (kmod), busybox-static, gzip, a Rust toolchain and glibc's
# static libraries (libc6-dev).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE="${C3N_CACHE:-$HOME/.cache/c3n-edge}/vm"
mkdir -p "$CACHE/drm"
# Debian kernel package, extracted: sets KVER, KROOT, MODDIR; defines vm_modules
. tests/vm/kernel.sh

# static test binary; same features as the V4L2 VM's (build-initramfs.sh), so both examples link
# against the same c3n-edge library unit
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
vm_static_example drm_vmtest

INIT="$CACHE/drm/initramfs"
vm_busybox_root "$INIT" sh mount modprobe poweroff echo sleep cat ls dmesg
strip -o "$INIT/bin/drm_vmtest" "$VM_BIN"
cp "$INIT/bin/drm_vmtest" "$CACHE/drm/drm_vmtest"
nmods=$(vm_modules "$INIT" bochs virtio-gpu virtio_pci)
# fbdev emulation off (drm_kms_helper's fbdev_emulation=0): no /dev/fb0, so display://0 has to
# find /dev/dri/card0 on its own
cat > "$INIT/init" <<'INIT_EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# both drivers are loaded; the one whose device qemu has binds (card0)
if modprobe drm_kms_helper fbdev_emulation=0 && modprobe bochs && modprobe virtio_pci \
   && modprobe virtio-gpu; then
  i=0; while [ ! -e /dev/dri/card0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  echo "drm: $(ls /sys/class/drm | tr '\n' ' ')"
  /bin/drm_vmtest guest || echo "C3N_VM_FAIL: test exited with $?"
else
  echo "C3N_VM_FAIL: modprobe of the DRM drivers failed"
fi
poweroff -f
INIT_EOF
chmod +x "$INIT/init"
vm_pack "$INIT" "$CACHE/drm/initrd.gz"
cp "$VMLINUZ" "$CACHE/drm/vmlinuz"
echo "kernel $KVER, modules: $nmods ($(echo $(cd "$INIT/lib/modules/$KVER" && find . -name '*.ko' -printf '%f ')))," \
     "initrd $(du -h "$CACHE/drm/initrd.gz" | cut -f1)"
