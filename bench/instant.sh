#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Instant VMs: time from `tart run` to the first successful SSH command for the same Debian
# image (1 GiB of guest memory) booted cold and resumed from its pushed state, alternating, in
# one invocation; plus the state layer's size beside the guest's memory size, and where a
# resume spends its time (tart's debug lines).
# usage: bench/instant.sh [RUNS] [ACCEL]   (defaults: 3 tcg; TART_BIN overrides build/tart)
# Every run clones the image from a local registry first (not timed), as CI does.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-3}; ACCEL=${2:-tcg}
TART=${TART_BIN:-$HERE/build/tart}
[ -x "$TART" ] || { echo "instant.sh: no tart binary at $TART (set TART_BIN)" >&2; exit 1; }
command -v sshpass >/dev/null || { echo "instant.sh: sshpass is missing (scripts/install-deps.sh)" >&2; exit 1; }
GUEST=$("$HERE/guests/build-debian.sh")
WORK=$(mktemp -d /tmp/tart-bench-instant.XXXXXX)
REG_PID=
cleanup() { [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
# user networking with restrict=on: SSH through the forwarded loopback port
export TART_HOME=$WORK/home TART_ACCEL=$ACCEL TART_NET_MODE=user
mkdir -p "$TART_HOME" "$WORK/registry"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/registry/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/registry/data}}
http: {addr: 127.0.0.1:$PORT}
EOF
docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
REG_PID=$!
IMAGE=127.0.0.1:$PORT/bench/debian:1

python3 - "$TART" "$GUEST" "$IMAGE" "$RUNS" "$PORT" <<'P'
import json, os, re, statistics, subprocess, sys, time, urllib.request
tart, guest, image, runs, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
home = os.environ["TART_HOME"]

def t(*args, timeout=900):
    p = subprocess.run([tart, *args], capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        sys.exit(f"instant.sh: tart {' '.join(args)} failed: {p.stderr[-1500:]}")
    return p

def ssh_port(name, proc, t0):
    path = os.path.join(home, "vms", name, "run.json")
    while True:
        try:
            st = json.load(open(path))
            return st["net"].split("ssh-port=")[1], st["qemuPid"]
        except (OSError, ValueError, KeyError, IndexError):
            pass
        if proc.poll() is not None or time.time() - t0 > 300:
            sys.exit(f"instant.sh: tart run {name} did not start: {proc.stderr.read()[-1500:]}")
        time.sleep(0.005)

def qemu_cpu(pid):
    """CPU seconds QEMU has used so far: what the work costs (contention inflates it less)."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def first_ssh(name, extra_env=None):
    """Seconds from `tart run` to the first successful `ssh ... true`; the run's stderr."""
    env = dict(os.environ, TART_LOG_LEVEL="debug", **(extra_env or {}))
    t0 = time.time()
    proc = subprocess.Popen([tart, "run", name], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    p, qpid = ssh_port(name, proc, t0)
    cmd = ["sshpass", "-p", "admin", "ssh", "-p", p, "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=2", "-o",
           "LogLevel=ERROR", "-o", "PreferredAuthentications=password", "-o",
           "PubkeyAuthentication=no", "admin@127.0.0.1", "true"]
    while subprocess.run(cmd, capture_output=True, timeout=60).returncode != 0:
        if proc.poll() is not None or time.time() - t0 > 600:
            sys.exit(f"instant.sh: no SSH into {name}: {proc.stderr.read()[-1500:]}")
        time.sleep(0.01)
    took = time.time() - t0
    cpu.append(qemu_cpu(qpid))
    # The same command once more: what one SSH login costs the guest, the floor of both.
    t1 = time.time()
    subprocess.run(cmd, capture_output=True, timeout=120)
    again.append(time.time() - t1)
    t("stop", name, "--timeout", "60")
    err = proc.communicate(timeout=120)[1]
    return took, t0, err

# The image: the Debian guest booted once, suspended, pushed; the local VM deleted.
t("create", "--linux", "src", "--disk-size", "3")
t("set", "src", "--cpu", "2", "--memory", "1024")
subprocess.run(["cp", "--sparse=always", f"{guest}/disk.img", f"{home}/vms/src/disk.img"], check=True)
env = dict(os.environ)
t0 = time.time()
proc = subprocess.Popen([tart, "run", "src"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
sp, _ = ssh_port("src", proc, t0)
while subprocess.run(["sshpass", "-p", "admin", "ssh", "-p", sp, "-o", "StrictHostKeyChecking=no",
                      "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=3", "-o",
                      "LogLevel=ERROR", "admin@127.0.0.1", "true"], capture_output=True).returncode:
    if proc.poll() is not None or time.time() - t0 > 600:
        sys.exit("instant.sh: the source VM did not come up")
    time.sleep(1)
time.sleep(5)  # let the guest settle after login, as an image maker would
t("suspend", "src")
proc.communicate(timeout=120)
t("push", "--insecure", "src", image)
t("delete", "src")
req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/bench/debian/manifests/1",
                             headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
m = json.load(urllib.request.urlopen(req))
st = [l for l in m["layers"] if l["mediaType"] == "application/vnd.tart-for-linux.vm-state.v1"]
comp = sum(l["size"] for l in st)
raw = sum(int(l["annotations"]["org.cirruslabs.tart.uncompressed-size"]) for l in st)
mem = int(st[0]["annotations"]["tart-for-linux.state.memory-size"])

cold, warm, parts, running, again, cpu = [], [], [], [], [], []
for i in range(runs):
    t("clone", "--insecure", image, "cold")
    t("stop", "cold")  # discards the saved state: a plain cold boot of the same image
    took, _, _ = first_ssh("cold")
    cold.append(took)
    cold_cpu = cpu[-1]
    t("delete", "cold")
    t("clone", "--insecure", image, "warm")
    took, t0, err = first_ssh("warm")
    if "resuming VM..." not in err:
        sys.exit(f"instant.sh: the clone did not resume: {err[-1500:]}")
    warm.append(took)
    spawn = re.search(r"spawning QEMU at realtime (\d+) us", err)
    qmp = re.search(r"QMP connected at realtime (\d+) us", err)
    load = re.search(r"state loaded in (\d+) ms, hashed (\d+) ms later", err)
    up = re.search(r"resumed \d+ ms after QMP was up, at realtime (\d+) us", err)
    if up:
        running.append(int(up[1]) / 1e6 - t0)
    if spawn and qmp and load:
        parts.append((int(spawn[1]) / 1e6 - t0, (int(qmp[1]) - int(spawn[1])) / 1e6,
                      int(load[1]) / 1e3, int(load[2]) / 1e3))
    t("delete", "warm")
    print(f"run {i + 1}: cold boot {cold[-1]:.2f} s ({cold_cpu:.1f} s of QEMU CPU), resume "
          f"{warm[-1]:.2f} s ({cpu[-1]:.1f} s of QEMU CPU)", flush=True)

print(f"time from `tart run` to the first SSH command, median of {runs}: "
      f"cold boot {statistics.median(cold):.2f} s, resumed {statistics.median(warm):.2f} s "
      f"(best {min(cold):.2f} / {min(warm):.2f} s)")
print(f"QEMU CPU time until that SSH command, median: cold boot "
      f"{statistics.median(cpu[0::2]):.1f} s, resumed {statistics.median(cpu[1::2]):.1f} s "
      f"(less sensitive to the machine's load than wall time)")
print(f"state layer: {comp / 2**20:.1f} MiB compressed ({len(st)} layer(s)), "
      f"{raw / 2**20:.1f} MiB uncompressed, for {mem / 2**20:.0f} MiB of guest memory")
if running:
    print(f"from `tart run` to the resumed guest running: median {statistics.median(running):.2f} s "
          f"(best {min(running):.2f} s); one SSH command into a running guest: median "
          f"{statistics.median(again):.2f} s (the floor of both figures above)")
if parts:
    med = [statistics.median(x) for x in zip(*parts)]
    print(f"resume, median: tart before QEMU {med[0] * 1000:.0f} ms, QEMU start to QMP "
          f"{med[1] * 1000:.0f} ms, state loaded by QEMU {med[2] * 1000:.0f} ms, its digest "
          f"ready {med[3] * 1000:.0f} ms after that")
load1 = os.getloadavg()[0]
print(f"(load average {load1:.1f} on {os.cpu_count()} CPUs at the end)")
P
