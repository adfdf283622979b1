#!/bin/sh
# /init of the systemd test VM's initramfs (busybox; built by tests/vm/systemd.sh). Assembles the
# guest's root and execs systemd as PID 1:
#   /            tmpfs with empty /var, /run, /tmp, /root, /home (bin, sbin, lib, lib64 -> usr/...)
#   /usr, /etc   the host's, over virtio-9p read-only, each under an overlayfs whose upper layer is
#                a tmpfs (so install.sh can write /usr/local and /etc)
#   /srv/c3n-edge-src    the repository (read-only): install.sh, models, the clip, the guest script
#   /srv/c3n-edge-stage  the stripped c3n-edge binary (read-only)
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
die() { echo "C3N_SYSVM_FAIL init: $*"; poweroff -f; sleep 10; }
for m in virtio_pci 9pnet_virtio 9p overlay; do modprobe "$m" || die "modprobe $m"; done

opts=trans=virtio,version=9p2000.L,cache=loose,msize=512000,ro
mount9p() {  # tag dir: the virtio channel may appear just after modprobe returns
  i=0
  until mount -t 9p -o "$opts" "$1" "$2" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 50 ] && die "mount 9p tag $1"
    sleep 0.1
  done
}
mount -t tmpfs -o mode=0755 rw /rw
mount -t tmpfs -o mode=0755 root /newroot
cd /newroot || die "cd /newroot"
mkdir -p usr etc proc sys dev run tmp var/lib var/cache var/log var/tmp root home mnt \
  srv/c3n-edge-src srv/c3n-edge-stage
chmod 1777 tmp var/tmp
chmod 0700 root
ln -s usr/bin bin; ln -s usr/sbin sbin; ln -s usr/lib lib; ln -s usr/lib64 lib64
for d in usr etc; do
  mount9p "$d" "/lower/$d"
  mkdir -p "/rw/$d/upper" "/rw/$d/work"
  mount -t overlay overlay -o "lowerdir=/lower/$d,upperdir=/rw/$d/upper,workdir=/rw/$d/work" "/newroot/$d" \
    || die "overlay on /$d"
done
mount9p src /newroot/srv/c3n-edge-src
mount9p stage /newroot/srv/c3n-edge-stage

# hermetic /etc (in the upper layer only): no fstab mounts, a machine id (not a "first boot"),
# and nothing left of an earlier c3n-edge install on the host
echo "# c3n-edge systemd VM test: no mounts" > etc/fstab
tr -d '-' < /proc/sys/kernel/random/uuid > etc/machine-id
rm -rf etc/c3n-edge etc/systemd/system/c3n-edge.service etc/systemd/system/c3n-edge.service.d \
  etc/systemd/system/multi-user.target.wants/c3n-edge.service
cat > etc/systemd/system/c3n-vmtest.target <<'EOF'
[Unit]
Description=c3n-edge VM test (basic.target + the test driver, nothing of multi-user.target)
Requires=basic.target
After=basic.target
Wants=c3n-vmtest.service
AllowIsolate=yes
EOF
cat > etc/systemd/system/c3n-vmtest.service <<'EOF'
[Unit]
Description=c3n-edge VM test driver (tests/vm/systemd-guest.sh)
[Service]
Type=exec
ExecStart=/bin/bash /srv/c3n-edge-src/tests/vm/systemd-guest.sh
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TTYReset=no
TTYVHangup=no
EOF

mount --move /dev /newroot/dev
mount --move /sys /newroot/sys
mount --move /proc /newroot/proc
exec switch_root /newroot /lib/systemd/systemd
