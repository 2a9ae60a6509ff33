#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Make a ready-to-run local VM from a test guest (building the guest first if needed).
# usage: guests/mkvm.sh tiny|tiny-uefi|debian NAME [TEST]
#   tiny       direct kernel boot; TEST is the tart.test= mode (default: wait, see README.md)
#   tiny-uefi  the same kernel and initramfs behind OVMF (powers off after the marker)
#   debian     bookworm through OVMF, SSH as admin/admin
# Uses $TART_BIN (default: build/tart) and $TART_HOME like tart itself.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
KIND=${1:?usage: mkvm.sh tiny|tiny-uefi|debian NAME [TEST]}; NAME=${2:?missing NAME}; TEST=${3:-wait}
TART=${TART_BIN:-$HERE/../build/tart}
case $KIND in
tiny|tiny-uefi) G=$("$HERE/build-tiny.sh"); SIZE=1; CPU=1; MEM=512 ;;
debian) G=$("$HERE/build-debian.sh"); SIZE=3; CPU=2; MEM=1024 ;;
*) echo "mkvm.sh: unknown guest '$KIND'" >&2; exit 64 ;;
esac
"$TART" create --linux "$NAME" --disk-size $SIZE
"$TART" set "$NAME" --cpu $CPU --memory $MEM
DIR=${TART_HOME:-$HOME/.tart}/vms/$NAME
case $KIND in
tiny)
  cp "$G/kernel" "$G/initramfs" "$DIR/"
  python3 - "$DIR/config.json" "console=ttyS0 quiet no_timer_check panic=-1 tart.test=$TEST" <<'P'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); c["cmdline"] = sys.argv[2]; json.dump(c, open(p, "w"), indent=2)
P
  ;;
tiny-uefi) cp --sparse=always "$G/uefi.img" "$DIR/disk.img" ;;
debian) cp --sparse=always "$G/disk.img" "$DIR/disk.img" ;;
esac
echo "$DIR"
