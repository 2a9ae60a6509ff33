#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Build the "tiny" test guest from Debian packages: the Debian cloud kernel plus a busybox
# initramfs (udhcpc, dropbear with a test key), and a UEFI disk (GPT + ESP with systemd-boot)
# that boots the same kernel and initramfs behind the firmware. Cached under
# guests/cache/tiny-<hash of this script>/; prints that directory on stdout.
# See guests/README.md for the guest's interface (markers, cmdline switches). The directory
# printed is that build plus the current tart-guest-agent (guests/inject-agent.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
HASH=$(sha256sum "$0" | cut -c1-12)
OUT=$HERE/cache/tiny-$HASH
if [ -f "$OUT/.done" ]; then exec "$HERE/inject-agent.sh" tiny "$OUT"; fi
"$HERE/../scripts/install-deps.sh"
mkdir -p "$HERE/cache"
# One builder at a time (tests may call this in parallel).
exec 9>"$HERE/cache/.tiny.lock"; flock 9
if [ -f "$OUT/.done" ]; then exec "$HERE/inject-agent.sh" tiny "$OUT"; fi
W=$(mktemp -d "$HERE/cache/.tiny-build.XXXXXX"); trap 'rm -rf "$W"' EXIT
cd "$W"
KV=$(apt-cache depends linux-image-cloud-amd64 | sed -n 's/.*Depends: linux-image-\(.*\)$/\1/p' | head -1)
[ -n "$KV" ] || { echo "build-tiny: cannot resolve the cloud kernel version" >&2; exit 1; }
apt-get download -q -o APT::Sandbox::User=root "linux-image-$KV" busybox-static dropbear-bin libtomcrypt1 libtommath1 \
  systemd-boot-efi >/dev/null
for d in *.deb; do dpkg-deb -x "$d" x; done
depmod -b "$W/x" "$KV"

R=$W/r
mkdir -p $R/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,mnt,etc/dropbear,root/.ssh,lib/x86_64-linux-gnu,lib64,mods,tmp,var/run}
cp x/bin/busybox $R/bin/
for a in $(x/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"; done
cp x/usr/sbin/dropbear $R/usr/sbin/
cp x/usr/lib/x86_64-linux-gnu/libtomcrypt.so.1 x/usr/lib/x86_64-linux-gnu/libtommath.so.1 $R/lib/x86_64-linux-gnu/
cp -L /lib/x86_64-linux-gnu/{libz.so.1,libcrypt.so.1,libc.so.6,libgmp.so.10} $R/lib/x86_64-linux-gnu/
cp -L /lib64/ld-linux-x86-64.so.2 $R/lib64/
# Modules in dependency order (insmod lines from modprobe --show-depends).
for m in virtio_pci virtio_blk virtio_net virtio_console virtio_rng virtio_scsi virtiofs button evdev sr_mod isofs; do
  modprobe -d "$W/x" -S "$KV" --show-depends "$m" 2>/dev/null | sed -n 's/^insmod \([^ ]*\).*/\1/p'
done | awk '!seen[$0]++' > mods.list
while read -r f; do cp "$f" $R/mods/; basename "$f" >> $R/mods/order; done < mods.list

# Test key (root login to dropbear) and a fixed host key: this is a test guest only.
mkdir -p "$W/out"
ssh-keygen -q -t ed25519 -N '' -C tart-test -f "$W/out/id_ed25519"
cp "$W/out/id_ed25519.pub" $R/root/.ssh/authorized_keys
chmod 700 $R/root/.ssh; chmod 600 $R/root/.ssh/authorized_keys
dropbearkey -t ed25519 -f $R/etc/dropbear/dropbear_ed25519_host_key >/dev/null 2>&1
printf 'root:x:0:0:root:/root:/bin/sh\n' > $R/etc/passwd
printf 'root::0:0:99999:7:::\n' > $R/etc/shadow
echo /bin/sh > $R/etc/shells

cat > $R/udhcpc.sh <<'S'
#!/bin/sh
case "$1" in bound|renew)
  ip addr flush dev $interface; ip addr add $ip/${mask:-24} dev $interface
  [ -n "$router" ] && ip route add default via ${router%% *} dev $interface
  echo "TART-TEST-DHCP $interface $ip";; esac
S
cat > $R/init <<'S'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts; mount -t devpts devpts /dev/pts
for m in $(cat /mods/order); do insmod /mods/$m 2>/dev/null; done
arg() { for w in $(cat /proc/cmdline); do case $w in "$1="*) echo "${w#*=}";; esac; done; }
T=$(arg tart.test); T=${T:-wait}
up() { cut -d' ' -f1 /proc/uptime; }
echo "TART-TEST-BOOTED test=$T uptime=$(up)"
# The guest agent, when the initramfs has it (guests/inject-agent.sh), unless tart.agent=off.
if [ -x /usr/local/bin/tart-guest-agent ] && [ "$(arg tart.agent)" != off ]; then
  /usr/local/bin/tart-guest-agent --run-rpc >/tmp/tart-guest-agent.log 2>&1 &
  echo "TART-TEST-AGENT-STARTED uptime=$(up)"
fi
# Power button -> poweroff (ACPI shutdown request), unless the test ignores ACPI.
power_button() {
  for d in /sys/class/input/event*; do
    [ "$(cat $d/device/name 2>/dev/null)" = "Power Button" ] || continue
    ( dd if=/dev/input/$(basename $d) of=/dev/null bs=24 count=1 2>/dev/null && echo "TART-TEST-ACPI-POWEROFF" && poweroff -f ) &
  done
}
net() {
  ip link set lo up
  IF=$(ls /sys/class/net | grep -v '^lo$' | head -1)
  [ -n "$IF" ] || { echo "TART-TEST-NO-NIC"; return; }
  ip link set $IF up
  udhcpc -i $IF -s /udhcpc.sh -q -n -t 20 -T 1 >/dev/null 2>&1 || echo "TART-TEST-DHCP-FAILED"
  dropbear -R -F -E -s -p 22 >/dev/null 2>&1 &
  echo "TART-TEST-SSHD-STARTED uptime=$(up)"
}
uptime_loop() { while :; do echo "TART-TEST-UPTIME $(up)"; sleep 1; done; }
case $T in
poweroff)
  echo "TART-TEST-MARKER uptime=$(up)"; poweroff -f;;
wait)
  power_button; net; echo "TART-TEST-MARKER uptime=$(up)";;
ignore-acpi)
  trap '' TERM INT; echo "TART-TEST-MARKER uptime=$(up)";;
uptime)
  power_button; echo "TART-TEST-MARKER uptime=$(up)"; uptime_loop &;;
disk)
  # The first extra disk is /dev/vdb: read its first line, write a line after it.
  sleep 0.2; D=/dev/vdb
  echo "TART-TEST-DISK-READ $(head -c 64 $D | head -n 1)"
  printf 'written-by-guest\n' | dd of=$D bs=512 seek=1 conv=notrunc 2>/dev/null && sync
  echo "TART-TEST-DISK-WRITTEN"; echo "TART-TEST-MARKER uptime=$(up)"; poweroff -f;;
flood)
  # 1.4 MB of console output: exercises tart's size cap on serial.log.
  yes 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde | head -c 1400000
  echo; echo "TART-TEST-MARKER uptime=$(up)"; poweroff -f;;
cdrom)
  # The first --disk that is an ISO appears as /dev/sr0 (virtio-scsi CD-ROM).
  for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/sr0 ] && break; sleep 0.2; done
  if mount -t iso9660 -o ro /dev/sr0 /mnt; then
    echo "TART-TEST-CDROM-READ $(cat /mnt/hello.txt 2>/dev/null)"; umount /mnt
  else echo "TART-TEST-CDROM-MOUNT-FAILED"; fi
  echo "TART-TEST-MARKER uptime=$(up)"; poweroff -f;;
virtiofs)
  TAG=$(arg tart.tag); TAG=${TAG:-com.apple.virtio-fs.automount}
  if mount -t virtiofs "$TAG" /mnt; then
    SUB=$(arg tart.sub); D=/mnt${SUB:+/$SUB}
    echo "TART-TEST-VIRTIOFS-LIST $(ls /mnt | tr '\n' ' ')"
    echo "TART-TEST-VIRTIOFS-READ $(cat $D/hello.txt 2>/dev/null)"
    if echo written-by-guest > $D/from-guest.txt 2>/dev/null && sync; then
      echo "TART-TEST-VIRTIOFS-WRITTEN"
    else echo "TART-TEST-VIRTIOFS-WRITE-FAILED"; fi
    umount /mnt
  else echo "TART-TEST-VIRTIOFS-MOUNT-FAILED"; fi
  echo "TART-TEST-MARKER uptime=$(up)"; poweroff -f;;
*) echo "TART-TEST-UNKNOWN $T";;
esac
while :; do sleep 3600; done
S
chmod +x $R/init $R/udhcpc.sh
(cd $R && find . | cpio -o -H newc --quiet | gzip -1 > "$W/out/initramfs")
cp "x/boot/vmlinuz-$KV" "$W/out/kernel"

# UEFI disk: GPT, one ESP with systemd-boot (removable-media path), the kernel and initramfs.
ESP_MIB=64; IMG=$W/out/uefi.img
truncate -s $((ESP_MIB + 2))M "$IMG"
sgdisk -n1:2048:+${ESP_MIB}M -t1:ef00 -c1:esp "$IMG" >/dev/null
mkfs.vfat -F 32 -n ESP -C "$W/esp" $((ESP_MIB * 1024)) >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$W/esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i "$W/esp" x/usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$W/esp" "$W/out/kernel" ::/vmlinuz
mcopy -i "$W/esp" "$W/out/initramfs" ::/initramfs
printf 'default tiny.conf\ntimeout 0\nconsole-mode keep\n' > loader.conf
printf 'title tiny\nlinux /vmlinuz\ninitrd /initramfs\noptions console=ttyS0 quiet no_timer_check panic=-1 tart.test=poweroff\n' > tiny.conf
mcopy -i "$W/esp" loader.conf ::/loader/loader.conf
mcopy -i "$W/esp" tiny.conf ::/loader/entries/tiny.conf
dd if="$W/esp" of="$IMG" bs=1M seek=1 conv=notrunc,sparse status=none
echo "$KV" > "$W/out/kernel-version"
touch "$W/out/.done"
rm -rf "$OUT"; mv "$W/out" "$OUT"
exec "$HERE/inject-agent.sh" tiny "$OUT"
