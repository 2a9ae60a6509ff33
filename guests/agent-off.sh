#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Turn the guest agent off in a copy of the Debian test guest's disk (e.g. a VM's disk.img, to
# test the qemu-guest-agent fallback): writes /etc/tart-guest-agent.disabled into its ext4
# root with debugfs, no mount. `on` removes it again. The tiny guest takes the kernel argument
# tart.agent=off instead (config.json's cmdline).   usage: guests/agent-off.sh DISK [on]
set -euo pipefail
DISK=$1
START=$(sgdisk -i2 "$DISK" | sed -n 's/^First sector: \([0-9]*\).*/\1/p')
[ -n "$START" ] || { echo "agent-off: no second partition in '$DISK'" >&2; exit 1; }
FS="$DISK?offset=$((START * 512))"
if [ "${2:-}" = on ]; then
  debugfs -w -R "rm /etc/tart-guest-agent.disabled" "$FS" >/dev/null 2>&1 || true
else
  debugfs -w -R "write /dev/null /etc/tart-guest-agent.disabled" "$FS" >/dev/null 2>&1
  debugfs -R "stat /etc/tart-guest-agent.disabled" "$FS" 2>/dev/null | grep -q "Type: regular" ||
    { echo "agent-off: cannot write into '$DISK'" >&2; exit 1; }
fi
