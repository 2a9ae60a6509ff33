#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Put the current tart-guest-agent into a built test guest, cheaply: a guest build is cached
# by its script's hash, the agent changes far more often. Makes BASE-agent-<hash of the agent
# binary and this script>/ next to BASE and prints it:
#   tiny:   the same kernel and keys (hard links), initramfs = BASE's + a cpio with the agent
#           (the kernel unpacks concatenated archives), uefi.img with that initramfs
#   debian: a sparse copy of disk.img with the binary written into the ext4 root by debugfs
# No mounts. Usage: guests/inject-agent.sh tiny|debian BASE_DIR. The binary is
# $TART_GUEST_AGENT_BIN or build/guest/tart-guest-agent. Old injected copies not used for two
# hours are removed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
KIND=$1; BASE=$2
BIN=${TART_GUEST_AGENT_BIN:-$HERE/../build/guest/tart-guest-agent}
[ -x "$BIN" ] || { echo "inject-agent: no guest agent at '$BIN': run 'make build' first (or set TART_GUEST_AGENT_BIN)" >&2; exit 1; }
AH=$(cat "$BIN" "$0" | sha256sum | cut -c1-12)
OUT=$BASE-agent-$AH
done_() { touch "$OUT" "$OUT/.done"; echo "$OUT"; exit 0; }
[ -f "$OUT/.done" ] && done_
exec 8>"$HERE/cache/.inject-$KIND.lock"; flock 8
[ -f "$OUT/.done" ] && done_
W=$(mktemp -d "$HERE/cache/.inject-$KIND.XXXXXX"); trap 'rm -rf "$W"' EXIT
case $KIND in
tiny)
  for f in kernel kernel-version id_ed25519 id_ed25519.pub; do ln "$BASE/$f" "$W/$f" 2>/dev/null || cp -p "$BASE/$f" "$W/$f"; done
  mkdir -p "$W/r/usr/local/bin"
  install -m 0755 "$BIN" "$W/r/usr/local/bin/tart-guest-agent"
  (cd "$W/r" && find . | cpio -o -H newc --quiet | gzip -1) > "$W/agent.cpio.gz"
  cat "$BASE/initramfs" "$W/agent.cpio.gz" > "$W/initramfs"
  rm -rf "$W/r" "$W/agent.cpio.gz"
  cp --sparse=always "$BASE/uefi.img" "$W/uefi.img"
  MTOOLS_SKIP_CHECK=1 mcopy -o -i "$W/uefi.img@@1M" "$W/initramfs" ::/initramfs
  ;;
debian)
  cp --sparse=always "$BASE/disk.img" "$W/disk.img"
  cp "$BASE/cmdline" "$W/cmdline"
  START=$(sgdisk -i2 "$W/disk.img" | sed -n 's/^First sector: \([0-9]*\).*/\1/p')
  FS="$W/disk.img?offset=$((START * 512))"
  debugfs -w -f - "$FS" >/dev/null 2>"$W/debugfs.log" <<D
rm /usr/local/bin/tart-guest-agent
write $BIN /usr/local/bin/tart-guest-agent
sif /usr/local/bin/tart-guest-agent mode 0100755
sif /usr/local/bin/tart-guest-agent uid 0
sif /usr/local/bin/tart-guest-agent gid 0
D
  SIZE=$(debugfs -R "stat /usr/local/bin/tart-guest-agent" "$FS" 2>/dev/null | sed -n 's/.*Size: \([0-9]*\).*/\1/p' | head -1)
  [ "$SIZE" = "$(stat -c %s "$BIN")" ] || { cat "$W/debugfs.log" >&2; echo "inject-agent: writing the agent into the image failed" >&2; exit 1; }
  e2fsck -fn "$FS" >/dev/null 2>&1 || { echo "inject-agent: the root filesystem is damaged after debugfs" >&2; exit 1; }
  rm -f "$W/debugfs.log"
  ;;
*) echo "inject-agent: unknown guest '$KIND'" >&2; exit 64;;
esac
touch "$W/.done"
rm -rf "$OUT"; mv "$W" "$OUT"; trap - EXIT
find "$(dirname "$BASE")" -maxdepth 1 -name "$(basename "$BASE")-agent-*" ! -path "$OUT" \
  -mmin +120 -exec rm -rf {} + 2>/dev/null || true
echo "$OUT"
