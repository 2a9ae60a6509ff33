#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Build the "debian" test guest: debootstrap bookworm (systemd, openssh-server, DHCP through
# systemd-networkd, user admin/admin with passwordless sudo, like Tart's published images) on a
# GPT raw disk whose ESP holds systemd-boot, the cloud kernel and its initrd: it boots through
# OVMF. SSH host keys are generated at first boot, so clones don't share them. The disk is made
# without mounting it (sgdisk + mkfs.vfat/mtools + mkfs.ext4 -d). Cached under
# guests/cache/debian-<hash of this script>/ (disk.img, cmdline). The guest has Tart's guest
# agent units enabled (guest/install.sh) and Debian's qemu-guest-agent; the directory printed
# is that build plus the current tart-guest-agent binary (guests/inject-agent.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
HASH=$(cat "$0" "$HERE"/../guest/install.sh "$HERE"/../guest/*.service | sha256sum | cut -c1-12)
OUT=$HERE/cache/debian-$HASH
if [ -f "$OUT/.done" ]; then exec "$HERE/inject-agent.sh" debian "$OUT"; fi
"$HERE/../scripts/install-deps.sh"
mkdir -p "$HERE/cache"
exec 9>"$HERE/cache/.debian.lock"; flock 9
if [ -f "$OUT/.done" ]; then exec "$HERE/inject-agent.sh" debian "$OUT"; fi
W=$(mktemp -d "$HERE/cache/.debian-build.XXXXXX")
# debootstrap mounts proc/sys in the target; a build killed midway must not leave them behind.
cleanup() { for m in proc sys dev/pts dev; do umount -l "$W/rootfs/$m" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
ROOT=$W/rootfs; MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
debootstrap --variant=minbase \
  --include=systemd-sysv,udev,dbus,linux-image-cloud-amd64,initramfs-tools,openssh-server,iproute2,systemd-boot,systemd-boot-efi,sudo,netbase,fdisk,qemu-guest-agent \
  bookworm "$ROOT" "$MIRROR" >"$W/debootstrap.log" 2>&1 || { tail -20 "$W/debootstrap.log" >&2; exit 1; }
echo tart-debian > $ROOT/etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 tart-debian\n' > $ROOT/etc/hosts
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' > $ROOT/etc/systemd/network/20-wired.network
chroot $ROOT systemctl enable systemd-networkd >/dev/null 2>&1
chroot $ROOT useradd -m -s /bin/bash -G sudo admin
echo 'admin:admin' | chroot $ROOT chpasswd
echo 'admin ALL=(ALL) NOPASSWD:ALL' > $ROOT/etc/sudoers.d/admin; chmod 440 $ROOT/etc/sudoers.d/admin
# Tart's guest agent, run as admin as in Tart's images; its binary comes in inject-agent.sh.
"$HERE/../guest/install.sh" --root "$ROOT" --user admin --binary none >/dev/null
# Host keys: none in the image, generated at first boot before sshd starts.
rm -f $ROOT/etc/ssh/ssh_host_*
cat > $ROOT/etc/systemd/system/tart-ssh-host-keys.service <<'U'
[Unit]
Description=Generate SSH host keys at first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
[Install]
WantedBy=multi-user.target
U
mkdir -p $ROOT/etc/systemd/system/ssh.service.d
printf '[Unit]\nWants=tart-ssh-host-keys.service\nAfter=tart-ssh-host-keys.service\n' \
  > $ROOT/etc/systemd/system/ssh.service.d/tart-host-keys.conf
chroot $ROOT systemctl enable tart-ssh-host-keys.service >/dev/null 2>&1
# Boot faster under TCG: nothing waits for a network that user-mode networking always has.
chroot $ROOT systemctl mask systemd-networkd-wait-online.service e2scrub_reap.service >/dev/null 2>&1 || true
echo 'PARTLABEL=root / ext4 rw,discard,errors=remount-ro 0 1' > $ROOT/etc/fstab
rm -rf $ROOT/var/cache/apt/archives/*.deb $ROOT/var/lib/apt/lists/*

# GPT raw disk: p1 = ESP (systemd-boot, kernel, initrd), p2 = ext4 root. No mounts.
OUTD=$W/out; mkdir -p $OUTD; IMG=$OUTD/disk.img; TOTAL=2560; ESP_MIB=128
PARTUUID=6a9f3c2e-1d4b-4c55-9a1e-7f00dbeef002
KVER=$(ls $ROOT/boot | sed -n 's/^vmlinuz-//p' | sort -V | tail -1)
truncate -s ${TOTAL}M $IMG
sgdisk -n1:2048:+${ESP_MIB}M -t1:ef00 -c1:esp -n2:0:0 -t2:8304 -c2:root -u2:$PARTUUID $IMG >/dev/null
P2_START=$(sgdisk -i2 $IMG | sed -n 's/^First sector: \([0-9]*\).*/\1/p')
P2_END=$(sgdisk -i2 $IMG | sed -n 's/^Last sector: \([0-9]*\).*/\1/p')
mkfs.vfat -F 32 -n ESP -C $W/esp $((ESP_MIB*1024)) >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i $W/esp ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i $W/esp $ROOT/usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
mcopy -i $W/esp $ROOT/boot/vmlinuz-$KVER ::/vmlinuz
mcopy -i $W/esp $ROOT/boot/initrd.img-$KVER ::/initrd.img
# console=tty0 too: the screen shows the login prompt of tty1 (the serial console stays ttyS0)
CMDLINE="root=PARTUUID=$PARTUUID rw console=tty0 console=ttyS0,115200 quiet no_timer_check"
printf 'default debian.conf\ntimeout 0\nconsole-mode keep\n' > $W/loader.conf
printf 'title Debian\nlinux /vmlinuz\ninitrd /initrd.img\noptions %s\n' "$CMDLINE" > $W/debian.conf
mcopy -i $W/esp $W/loader.conf ::/loader/loader.conf
mcopy -i $W/esp $W/debian.conf ::/loader/entries/debian.conf
dd if=$W/esp of=$IMG bs=1M seek=1 conv=notrunc,sparse status=none
mkfs.ext4 -q -L root -d $ROOT $W/root.ext4 $(((P2_END - P2_START + 1) / 2))k >/dev/null
dd if=$W/root.ext4 of=$IMG bs=512 seek=$P2_START conv=notrunc,sparse status=none
echo "$CMDLINE" > $OUTD/cmdline
touch $OUTD/.done
rm -rf "$OUT"; mv $OUTD "$OUT"
exec "$HERE/inject-agent.sh" debian "$OUT"
