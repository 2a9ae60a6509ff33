#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `make demo`: the main job on a built-in default. A small VM built from Debian packages (the
# cloud kernel and a busybox initramfs behind OVMF, guests/build-tiny.sh) is created, pushed to
# a local registry (Debian's docker-registry on 127.0.0.1, started here and stopped at the end),
# deleted, pulled back and cloned, booted under QEMU, stopped. Everything happens in a scratch
# TART_HOME that is removed at the end. Networking is QEMU user mode with restrict=on.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TART=${TART_BIN:-$ROOT/build/tart}
export TART_BIN=$TART
export TART_HOME=$(mktemp -d /tmp/tart-demo.XXXXXX)
# QEMU user networking with restrict=on: the demo VMs cannot reach any other address.
export TART_NET_MODE=${TART_NET_MODE:-user}
REG_DIR=$TART_HOME/.registry
REG_PID=""
cleanup() {
	if [ -n "$REG_PID" ]; then
		kill "$REG_PID" 2>/dev/null || true
		wait "$REG_PID" 2>/dev/null || true
	fi
	rm -rf "$TART_HOME"
}
trap cleanup EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# The accelerator is what a new user gets: TART_ACCEL if set, else auto (KVM where it can boot
# a guest kernel, TCG with one notice elsewhere).
echo "demo TART_HOME=$TART_HOME (accelerator: ${TART_ACCEL:-auto})"

# 1. A local registry on a free loopback port.
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$REG_DIR/data"
cat > "$REG_DIR/config.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $REG_DIR/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$PORT}
YML
docker-registry serve "$REG_DIR/config.yml" >"$REG_DIR/log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do
	(exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
	sleep 0.1
done
REMOTE=127.0.0.1:$PORT/demo/tiny:latest
echo "registry: $REMOTE (pid $REG_PID)"

# 2. The VM: built from Debian packages, boots through UEFI and powers itself off.
step "$ROOT/guests/mkvm.sh" tiny-uefi tiny >/dev/null
step "$TART" list
step "$TART" get tiny

# 3. Push, forget, pull back, clone.
step "$TART" push --insecure tiny "$REMOTE"
step "$TART" delete tiny
step "$TART" pull --insecure "$REMOTE"
step "$TART" clone --insecure "$REMOTE" tiny2
step "$TART" list
step "$TART" fqn "$REMOTE"

# 4. Boot it: the guest prints its marker and powers off, so `run` returns 0.
step "$TART" run --no-graphics tiny2
grep -a "TART-TEST" "$TART_HOME/vms/tiny2/serial.log" | head -3 || true

# 5. A direct-kernel VM (kernel + initramfs in the VM directory, no firmware) that waits:
#    boot it in the background and stop it from outside (ACPI power button, as `tart stop` does).
step "$ROOT/guests/mkvm.sh" tiny tiny3 wait >/dev/null
"$TART" run --no-graphics tiny3 &
RUN_PID=$!
# Wait until the guest is up (its init handles the ACPI power button from then on).
for _ in $(seq 600); do
	grep -qa "TART-TEST-MARKER" "$TART_HOME/vms/tiny3/serial.log" 2>/dev/null && break
	sleep 0.1
done
step "$TART" list
step "$TART" stop tiny3 --timeout 20
wait "$RUN_PID" && echo "tart run exited 0"
step "$TART" list
step "$TART" delete tiny2 tiny3 "$REMOTE"
echo "demo finished"
