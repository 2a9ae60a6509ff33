#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Install tart-guest-agent into a Linux guest: the binary, its systemd units (enabled), and a
# udev rule so a non-root agent may open its virtio-serial port.
#   guest/install.sh [--root DIR] [--user NAME] [--binary PATH|none]
# --root   the guest's root filesystem (a chroot, a mounted image); default / (a running guest,
#          where the units are also started)
# --user   the user commands run as (default: admin when the guest has one, else root)
# --binary the static agent (default: build/guest/tart-guest-agent next to this script's
#          checkout); "none" installs everything else (the binary is put in later)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=/; USER_NAME=; BIN=$HERE/../build/guest/tart-guest-agent
while [ $# -gt 0 ]; do
  case $1 in
    --root) ROOT=$2; shift 2;;
    --user) USER_NAME=$2; shift 2;;
    --binary) BIN=$2; shift 2;;
    -h|--help) sed -n '3,11p' "$0"; exit 0;;
    *) echo "install.sh: unknown argument '$1'" >&2; exit 64;;
  esac
done
if [ -z "$USER_NAME" ]; then
  if grep -q '^admin:' "$ROOT/etc/passwd"; then USER_NAME=admin; else USER_NAME=root; fi
fi
grep -q "^$USER_NAME:" "$ROOT/etc/passwd" || { echo "install.sh: no user '$USER_NAME' in $ROOT/etc/passwd" >&2; exit 1; }
if [ "$BIN" != none ]; then
  [ -x "$BIN" ] || { echo "install.sh: no agent binary at '$BIN' (make build)" >&2; exit 1; }
  install -D -m 0755 "$BIN" "$ROOT/usr/local/bin/tart-guest-agent"
fi
U=$ROOT/etc/systemd/system
mkdir -p "$U/multi-user.target.wants" "$U/sysinit.target.wants" "$ROOT/etc/udev/rules.d"
sed "s/^User=.*/User=$USER_NAME/" "$HERE/tart-guest-agent.service" > "$U/tart-guest-agent.service"
cp "$HERE/tart-guest-resize.service" "$U/tart-guest-resize.service"
ln -sf ../tart-guest-agent.service "$U/multi-user.target.wants/tart-guest-agent.service"
ln -sf ../tart-guest-resize.service "$U/sysinit.target.wants/tart-guest-resize.service"
printf 'SUBSYSTEM=="virtio-ports", ATTR{name}=="org.tart.agent.0", OWNER="%s", MODE="0600"\n' \
  "$USER_NAME" > "$ROOT/etc/udev/rules.d/60-tart-guest-agent.rules"
if [ "$ROOT" = / ] && [ -d /run/systemd/system ]; then
  udevadm trigger --subsystem-match=virtio-ports 2>/dev/null || true
  systemctl daemon-reload
  systemctl restart tart-guest-agent.service
fi
echo "tart-guest-agent installed in $ROOT (commands run as '$USER_NAME')"
