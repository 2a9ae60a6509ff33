#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Fleet benchmark: VMS VMs (default 1000) created through the REST API onto synthetic workers
# (`orchard worker run --synthetic`: no QEMU), once with one controller and once with two
# (creations spread over both), each on a fresh prefix of one etcd, in one invocation. Each
# VM asks for one `bench-slots`; the workers have 10 % more slots than VMs between them.
# Prints the time until every VM is scheduled (placed on a worker) and until every VM runs,
# the API latency percentiles (POST /v1/vms, GET /v1/vms/NAME, GET /v1/vms) and each
# controller's peak RSS (VmHWM), and what the scheduling cost in etcd (the controllers run with
# --debug; their "scheduler round" lines are summed: rounds, placements, lost transactions,
# etcd calls per placement).
# With ORCHARD_BASELINE_BIN set, the same scenarios run first with that binary (e.g. a build of
# main), then with ours, in the same invocation.
# usage: bench/fleet.sh [VMS] [WORKERS] [CLIENT_THREADS]   (defaults: 1000 10 16;
#        ORCHARD_BIN overrides build/orchard)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
VMS=${1:-1000}; WORKERS=${2:-10}; THREADS=${3:-16}
ORCHARD=${ORCHARD_BIN:-$HERE/build/orchard}
[ -x "$ORCHARD" ] || { echo "fleet.sh: no orchard binary at $ORCHARD (set ORCHARD_BIN)" >&2; exit 1; }
command -v etcd >/dev/null || { echo "fleet.sh: etcd is missing (scripts/install-deps.sh)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/orchard-bench.XXXXXX); trap 'rm -rf "$WORK"' EXIT

BASE=${ORCHARD_BASELINE_BIN:-}
[ -z "$BASE" ] || [ -x "$BASE" ] || { echo "fleet.sh: ORCHARD_BASELINE_BIN=$BASE is not executable" >&2; exit 1; }
echo "load: $(uptime)"
/usr/bin/python3 - "$ORCHARD" "$WORK" "$VMS" "$WORKERS" "$THREADS" "$BASE" <<'P'
import concurrent.futures, os, re, signal, socket, statistics, subprocess, sys, time
import requests

orchard, work, nvms, nworkers, nthreads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
baseline = sys.argv[6]
TOKEN = "bench-" + os.urandom(6).hex()
AUTH = ("bootstrap-admin", TOKEN)
procs = []


def port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, log, env=None):
    p = subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, env=env)
    procs.append(p)
    return p


def wait_port(p, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", p), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{p}")


def stop(ps):
    for p in reversed(ps):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in reversed(ps):
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))] * 1000


def hwm_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


cp, pp = port(), port()
etcd = start(["etcd", "--name", "b", "--data-dir", f"{work}/etcd",
              "--listen-client-urls", f"http://127.0.0.1:{cp}",
              "--advertise-client-urls", f"http://127.0.0.1:{cp}",
              "--listen-peer-urls", f"http://127.0.0.1:{pp}",
              "--initial-advertise-peer-urls", f"http://127.0.0.1:{pp}",
              "--initial-cluster", f"b=http://127.0.0.1:{pp}"], f"{work}/etcd.log")
wait_port(cp)


ROUND = re.compile(r"scheduler round: \d+ pending, (\d+) placed, (\d+) health, (\d+) conflicts, "
                   r"(\d+) etcd calls")


def sched_costs(logs):
    """Sum the controllers' --debug "scheduler round" lines."""
    rounds = placed = conflicts = calls = 0
    for log in logs:
        for line in open(log, errors="replace"):
            m = ROUND.search(line)
            if m:
                rounds += 1
                placed += int(m[1])
                conflicts += int(m[3])
                calls += int(m[4])
    return rounds, placed, conflicts, calls


def scenario(orchard, label, ncontrollers):
    tag = f"{label}-c{ncontrollers}"
    env = dict(os.environ, ORCHARD_BOOTSTRAP_ADMIN_TOKEN=TOKEN, ORCHARD_HOME=f"{work}/{tag}")
    ctls, urls = [], []
    for i in range(ncontrollers):
        p = port()
        ctls.append(start([orchard, "controller", "run", "--listen", f"127.0.0.1:{p}",
                           "--etcd", f"http://127.0.0.1:{cp}", "--etcd-prefix", f"/bench-{tag}/",
                           "--insecure-no-tls", "--data-dir", f"{work}/{tag}/ctl{i}", "--debug"],
                          f"{work}/{tag}-ctl{i}.log", env))
        urls.append(f"http://127.0.0.1:{p}")
        wait_port(p)
    enc = lambda s: __import__("base64").urlsafe_b64encode(s.encode()).decode().rstrip("=")
    bt = f"orchard-bootstrap-token-v0.{enc(AUTH[0])}.{enc(TOKEN)}"
    # room for all the VMs, 10 % spare: every worker gets some (unbounded, Orchard's
    # optimize-utilization would pack them all onto one)
    slots = (nvms * 11 // 10 + nworkers - 1) // nworkers
    workers = []
    for i in range(nworkers):
        wurl = ",".join(urls[i % len(urls):] + urls[:i % len(urls)])
        workers.append(start([orchard, "worker", "run", wurl, "--bootstrap-token", bt,
                              "--name", f"{tag}-w{i}", "--synthetic",
                              "--resources", f"bench-slots={slots}"],
                             f"{work}/{tag}-w{i}.log", env))
    s = requests.Session()
    s.auth = AUTH
    end = time.time() + 60
    while len(s.get(f"{urls[0]}/v1/workers", timeout=30).json()) < nworkers:
        if time.time() > end:
            raise SystemExit("the workers did not register within 60 s")
        time.sleep(0.2)

    local = __import__("threading").local()

    def session():
        if not hasattr(local, "s"):
            local.s = requests.Session()
            local.s.auth = AUTH
        return local.s

    def create(i):
        body = {"name": f"vm{i:05d}", "image": "ghcr.io/cirruslabs/ubuntu-runner-amd64:latest",
                "os": "linux", "arch": "amd64", "runtime": "tart", "cpu": 1, "memory": 512,
                "headless": True, "resources": {"bench-slots": 1}}
        t = time.monotonic()
        r = session().post(f"{urls[i % len(urls)]}/v1/vms", json=body, timeout=60)
        dt = time.monotonic() - t
        if r.status_code != 200:
            raise SystemExit(f"POST /v1/vms answered {r.status_code}: {r.text}")
        return dt

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(nthreads) as ex:
        post_lat = list(ex.map(create, range(nvms)))
    t_created = time.monotonic() - t0
    t_sched = t_run = None
    list_lat = []
    while t_run is None:
        t = time.monotonic()
        vms = s.get(f"{urls[-1]}/v1/vms", timeout=60).json()
        list_lat.append(time.monotonic() - t)
        placed = sum(1 for v in vms if v.get("worker"))
        running = sum(1 for v in vms if v.get("status") == "running")
        now = time.monotonic() - t0
        if t_sched is None and placed == nvms:
            t_sched = now
        if running == nvms:
            t_run = now
        if now > 600:
            raise SystemExit(f"after 600 s: {placed} placed, {running} running of {nvms}")
        time.sleep(0.2)
    doubled = len(vms) != nvms or len({v["uid"] for v in vms}) != nvms
    per = __import__("collections").Counter(v.get("worker") for v in vms)

    def get(i):
        t = time.monotonic()
        r = session().get(f"{urls[i % len(urls)]}/v1/vms/vm{i:05d}", timeout=60)
        assert r.status_code == 200
        return time.monotonic() - t
    with concurrent.futures.ThreadPoolExecutor(nthreads) as ex:
        get_lat = list(ex.map(get, range(nvms)))
    rss = [hwm_kib(p.pid) // 1024 for p in ctls]
    stop(workers)
    stop(ctls)
    print(f"[{label}] {ncontrollers} controller(s), {nworkers} synthetic workers, {nvms} VMs, "
          f"{nthreads} client threads:")
    print(f"  created in {t_created:.2f} s; all scheduled after {t_sched:.2f} s, "
          f"all running after {t_run:.2f} s{'  (DOUBLED OR LOST VMs!)' if doubled else ''}")
    for name, v in (("POST /v1/vms", post_lat), ("GET /v1/vms/NAME", get_lat),
                    ("GET /v1/vms (all)", list_lat)):
        print(f"  {name:18s} p50 {pct(v, 50):7.1f} ms  p90 {pct(v, 90):7.1f} ms  "
              f"p99 {pct(v, 99):7.1f} ms  max {max(v) * 1000:7.1f} ms  (n={len(v)})")
    over = any(n > slots for w, n in per.items() if w)
    print(f"  VMs per worker ({slots} slots each): "
          f"{', '.join(str(n) for _, n in per.most_common())}{'  (OVER CAPACITY!)' if over else ''}")
    print(f"  controller peak RSS: {', '.join(f'{r} MiB' for r in rss)}")
    rounds, placed, conflicts, calls = sched_costs(
        [f"{work}/{tag}-ctl{i}.log" for i in range(ncontrollers)])
    if rounds:
        print(f"  scheduler: {rounds} rounds with work, {placed} placements, {conflicts} lost "
              f"transactions, {calls} etcd calls ({calls / max(placed, 1):.2f} per placement)")
    else:
        print("  scheduler: (this binary logs no \"scheduler round\" lines)")
    sys.stdout.flush()


try:
    for label, binary in ((("baseline", baseline),) if baseline else ()) + (("this", orchard),):
        scenario(binary, label, 1)
        scenario(binary, label, 2)
finally:
    stop(procs)
P
