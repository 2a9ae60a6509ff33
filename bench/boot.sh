#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Boot benchmark: time from exec to the guest's marker on the serial console, for `tart run`
# and for a hand-written QEMU command line with the same guest, devices and accelerator,
# alternating runs in one invocation; plus tart's own time before it starts QEMU.
# usage: bench/boot.sh [RUNS] [ACCEL]     (defaults: 5 tcg; TART_BIN overrides build/tart)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-5}; ACCEL=${2:-tcg}
TART=${TART_BIN:-$HERE/build/tart}
[ -x "$TART" ] || { echo "boot.sh: no tart binary at $TART (set TART_BIN)" >&2; exit 1; }
GUEST=$("$HERE/guests/build-tiny.sh")
WORK=$(mktemp -d /tmp/tart-bench.XXXXXX); trap 'rm -rf "$WORK"' EXIT
export TART_HOME=$WORK/home TART_ACCEL=$ACCEL
# user networking with restrict=on, the same as the hand-written QEMU command below
export TART_NET_MODE=user
mkdir -p "$TART_HOME"
"$TART" create --linux bench --disk-size 1
"$TART" set bench --cpu 1 --memory 512
VM=$TART_HOME/vms/bench
cp "$GUEST/kernel" "$GUEST/initramfs" "$VM/"
CMDLINE="console=ttyS0 quiet no_timer_check panic=-1 tart.test=poweroff"
python3 - "$VM/config.json" "$CMDLINE" <<'P'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); c["cmdline"] = sys.argv[2]; json.dump(c, open(p, "w"))
P
MAC=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["macAddress"])' "$VM/config.json")
CPU=max; [ "$ACCEL" = kvm ] && CPU=host,-vmx,-svm
# The same machine and devices tart uses (see src/qemu/argv.c), with plain file serial output.
QEMU=(qemu-system-x86_64 -nodefaults -no-user-config -machine q35 -accel "$ACCEL" -cpu "$CPU"
  -smp 1 -m 512 -kernel "$VM/kernel" -initrd "$VM/initramfs" -append "$CMDLINE"
  -display none -serial "file:$WORK/qemu-serial.log"
  -drive "file=$VM/disk.img,if=none,id=root,format=raw,cache.direct=off,cache.no-flush=off,discard=unmap"
  -device virtio-blk-pci,drive=root,bootindex=1
  -object rng-random,id=rng0,filename=/dev/urandom -device virtio-rng-pci,rng=rng0
  -netdev user,id=n0,restrict=on -device "virtio-net-pci,netdev=n0,mac=$MAC")

python3 - "$RUNS" "$TART" "$VM/serial.log" "$WORK/qemu-serial.log" "${QEMU[@]}" <<'P'
import os, re, statistics, subprocess, sys, time
runs, tart, tart_log, qemu_log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
qemu = sys.argv[5:]
MARK = b"TART-TEST-MARKER"

def timed(argv, log, env=None):
    if os.path.exists(log):
        os.unlink(log)
    t0 = time.time()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    marker = None
    while p.poll() is None:
        if time.time() - t0 > 300:  # a wedged guest must not wedge the benchmark
            p.kill()
            p.wait()
            sys.exit(f"boot.sh: {argv[0]} did not finish within 300 s")
        if marker is None and os.path.exists(log):
            with open(log, "rb") as f:
                if MARK in f.read():
                    marker = time.time() - t0
        time.sleep(0.002)
    err = p.stderr.read().decode(errors="replace")
    if marker is None and os.path.exists(log) and MARK in open(log, "rb").read():
        marker = time.time() - t0
    if p.returncode != 0 or marker is None:
        sys.exit(f"boot.sh: {argv[0]} failed (exit {p.returncode}): {err[-1500:]}")
    return t0, marker, err

env = dict(os.environ, TART_LOG_LEVEL="debug")
tart_t, qemu_t, pre = [], [], []
for i in range(runs):
    # headless, as the hand-written QEMU: no window even when run from a desktop
    t0, m, err = timed([tart, "run", "bench", "--no-graphics"], tart_log, env)
    tart_t.append(m)
    s = re.search(r"spawning QEMU at realtime (\d+) us", err)
    if s:
        pre.append(int(s.group(1)) / 1e6 - t0)
    _, m, _ = timed(qemu, qemu_log)
    qemu_t.append(m)
    print(f"run {i + 1}: tart {tart_t[-1]:.3f} s  qemu {qemu_t[-1]:.3f} s  "
          f"tart-before-qemu {pre[-1] * 1000:.1f} ms" if pre else "", flush=True)
mt, mq = statistics.median(tart_t), statistics.median(qemu_t)
print(f"time to marker, median of {runs}: tart run {mt:.3f} s, hand-written QEMU {mq:.3f} s, "
      f"ratio {mt / mq:.3f} (target <= 1.05)")
# On a shared, loaded machine the minimum is the least noisy estimate of each one's own cost.
print(f"time to marker, best of {runs}: tart run {min(tart_t):.3f} s, hand-written QEMU "
      f"{min(qemu_t):.3f} s, ratio {min(tart_t) / min(qemu_t):.3f}")
if pre:
    print(f"tart's own time before starting QEMU: median {statistics.median(pre) * 1000:.1f} ms "
          f"(min {min(pre) * 1000:.1f}, max {max(pre) * 1000:.1f})")
P
