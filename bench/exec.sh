#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# exec benchmark: `tart exec` beside ssh to the same guest in the same run (the Debian test
# guest, which has sshd and the Tart guest agent; TCG, user networking with restrict=on, so the
# agent goes over virtio-serial unless the host has vsock).
#   - round trip of `tart exec NAME true` and of `ssh admin@guest true`: median of RUNS
#   - throughput of a stdin pipe: `head -c SIZE /dev/urandom | tart exec -i NAME sha256sum`
#     and the same through ssh, checksums compared with the local one (so the bytes arrived
#     unchanged, and the figure includes hashing in the guest for both)
#   - peak RSS of `tart exec` and of `tart run` (VmHWM), to show memory stays bounded
# usage: bench/exec.sh [RUNS] [SIZE_MIB] [PIPES]   (defaults: 11 64 both; PIPES=tart skips the
# ssh pipe, whose encryption under TCG runs at about 1 MiB/s: `bench/exec.sh 3 1024 tart` is
# the 1 GiB round trip). TART_BIN overrides build/tart.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-11}; SIZE=${2:-64}; PIPES=${3:-both}
TART=${TART_BIN:-$HERE/build/tart}
[ -x "$TART" ] || { echo "exec.sh: no tart binary at $TART (set TART_BIN)" >&2; exit 1; }
for t in sshpass ssh sha256sum; do
  command -v $t >/dev/null || { echo "exec.sh: '$t' missing (scripts/install-deps.sh)" >&2; exit 1; }
done
GUEST=$("$HERE/guests/build-debian.sh")
WORK=$(mktemp -d /tmp/tart-bench-exec.XXXXXX)
export TART_HOME=$WORK/home TART_ACCEL=${TART_ACCEL:-tcg} TART_NET_MODE=user
RUN_PID=
cleanup() {
  # a failed run leaves tart run's debug log behind for a look
  [ "${OK:-}" = 1 ] || { [ -f "$WORK/run.log" ] && cp "$WORK/run.log" /tmp/bench-exec-run.log && echo "exec.sh: tart run's log: /tmp/bench-exec-run.log" >&2; }
  [ -n "$RUN_PID" ] && { "$TART" stop bench --timeout 20 >/dev/null 2>&1 || kill "$RUN_PID" 2>/dev/null; wait "$RUN_PID" 2>/dev/null || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$TART_HOME"
"$TART" create --linux bench --disk-size 3 >/dev/null
"$TART" set bench --cpu 2 --memory 1024
VM=$TART_HOME/vms/bench
cp --sparse=always "$GUEST/disk.img" "$VM/disk.img"
TART_LOG_LEVEL=debug "$TART" run bench --no-graphics >"$WORK/run.log" 2>&1 &
RUN_PID=$!
# The agent answers once the guest has booted (about 20 s under TCG, more on a loaded host).
for i in $(seq 300); do
  "$TART" exec bench true 2>/dev/null && break
  kill -0 $RUN_PID 2>/dev/null || { cat "$WORK/run.log" >&2; exit 1; }
  sleep 1
done
PORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["net"].split("ssh-port=")[1].split()[0])' "$VM/run.json")
SSH=(sshpass -p admin ssh -p "$PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o LogLevel=ERROR -o ControlMaster=no admin@127.0.0.1)
for i in $(seq 120); do "${SSH[@]}" true 2>/dev/null && break; sleep 1; done
head -c $((SIZE << 20)) /dev/urandom > "$WORK/data"
LOCAL=$(sha256sum < "$WORK/data" | cut -d' ' -f1)

python3 - "$RUNS" "$SIZE" "$TART" "$WORK/data" "$LOCAL" "$PIPES" "$RUN_PID" "${SSH[@]}" <<'P'
import statistics, subprocess, sys, time
runs, size, tart, data, local = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
pipes, run_pid, ssh = sys.argv[6], sys.argv[7], sys.argv[8:]

def timed(argv, stdin=None, with_err=False):
    t = time.monotonic()
    p = subprocess.run(argv, stdin=stdin, capture_output=True)
    dt = time.monotonic() - t
    if p.returncode != 0:
        sys.exit(f"exec.sh: {' '.join(argv[:3])} ... failed: {p.stderr.decode()[-500:]}")
    return (dt, p.stdout, p.stderr) if with_err else (dt, p.stdout)

rt = {"tart exec": [], "ssh": []}
for _ in range(runs):
    rt["tart exec"].append(timed([tart, "exec", "bench", "true"])[0])
    rt["ssh"].append(timed(ssh + ["true"])[0])
for k, v in rt.items():
    print(f"round trip of `{k} ... true`: median {statistics.median(v) * 1000:.1f} ms "
          f"(min {min(v) * 1000:.1f}, max {max(v) * 1000:.1f}) over {runs} runs")
pipe = [("tart exec -i", ["/usr/bin/time", "-f", "maxrss_kb=%M", tart, "exec", "-i", "bench",
                          "sha256sum"])]
if pipes != "tart":
    pipe.append(("ssh", ssh + ["sha256sum"]))
for name, argv in pipe:
    with open(data, "rb") as f:
        dt, out, err = timed(argv, stdin=f, with_err=True)
    ok = out.split()[0].decode() == local
    print(f"stdin pipe through {name}: {size} MiB in {dt:.2f} s = {size / dt:.1f} MiB/s, "
          f"checksum {'matches' if ok else 'DIFFERS'}")
    if not ok:
        sys.exit(1)
    if name.startswith("tart"):
        kb = err.decode().split("maxrss_kb=")[-1].split()[0]
        print(f"peak RSS of tart exec: {int(kb) / 1024:.1f} MiB")
with open(f"/proc/{run_pid}/status") as f:
    hwm = [l.split()[1] for l in f if l.startswith("VmHWM:")][0]
print(f"peak RSS of tart run (VmHWM): {int(hwm) / 1024:.1f} MiB")
P
echo "transport: $(grep -q 'vhost-vsock' "$WORK/run.log" && echo vsock || echo virtio-serial), accel $TART_ACCEL"
OK=1
