# SPDX-License-Identifier: Apache-2.0
"""Network-namespace topology for the networking tests. Nothing leaves the machine.

    "host" netns H   : where tart (or net-probe) runs: bridge tart0, taps, nftables table tart.
                       eth 45.45.45.1/24 towards I, default route via I.
    "internet" I     : 45.45.45.2/24 (a globally routable address, so Softnet treats it as the
                       internet) and 10.99.0.2/24 (a private range); HTTP servers on both.
    guests G1, G2    : each gets a tap "eth0" with the VM's MAC from net-probe (which plays
                       QEMU), runs busybox udhcpc and whatever the test needs.

Every namespace, process and file is created by the fixture with a unique prefix and removed
in a finally block; processes are stopped by the PID we started, never by name.
"""
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import TART_BIN

INTERNET_IP = "45.45.45.2"
HOST_EXT_IP = "45.45.45.1"
PRIVATE_IP = "10.99.0.2"
GATEWAY = "192.168.64.1"
PROBE = os.environ.get("NET_PROBE", str(Path(TART_BIN).parent / "tests" / "helpers" / "net-probe"))

UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc event script: record the event, configure the guest side like a real guest would.
echo "$1|ip=$ip|mask=$mask|router=$router|dns=$dns|lease=$lease" >> "${UDHCPC_EVENTS:-/dev/null}"
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "$router" dev "$interface"
    ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
exit 0
"""


def need_root_netns():
    if os.geteuid() != 0:
        pytest.skip("networking tests need root (network namespaces, taps, nftables)")
    for tool in ("ip", "nft", "busybox", "curl", "ss", "setpriv"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            pytest.skip(f"'{tool}' is missing (scripts/install-deps.sh installs it)")
    if not os.path.exists(PROBE):
        pytest.skip(f"net-probe not built at {PROBE} (meson builds tests/helpers/net-probe)")


def sh(*args, check=True, timeout=30, input=None, env=None):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, input=input,
                       env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


class Topo:
    def __init__(self, workdir: Path):
        self.p = "tn" + secrets.token_hex(3)
        self.work = workdir
        self.home = workdir / "tart-home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.H, self.I = self.p + "h", self.p + "i"
        self.namespaces = []
        self.procs = []
        self.script = workdir / "udhcpc.sh"
        self.script.write_text(UDHCPC_SCRIPT)
        self.script.chmod(0o755)
        self.env = dict(os.environ, TART_HOME=str(self.home))

    # -- namespaces ------------------------------------------------------------------------
    def netns(self, name):
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def ns(self, name, *args, **kw):
        return sh("ip", "netns", "exec", name, *args, **kw)

    def build(self):
        self.netns(self.H)
        self.netns(self.I)
        hv, iv = self.p + "hv", self.p + "iv"
        sh("ip", "link", "add", hv, "netns", self.H, "type", "veth", "peer", "name", iv,
           "netns", self.I)
        self.ns(self.H, "ip", "addr", "add", HOST_EXT_IP + "/24", "dev", hv)
        self.ns(self.H, "ip", "link", "set", hv, "up")
        self.ns(self.H, "ip", "route", "add", "default", "via", INTERNET_IP)
        self.ns(self.H, "ip", "route", "add", "10.99.0.0/24", "via", INTERNET_IP)
        self.ns(self.I, "ip", "addr", "add", INTERNET_IP + "/24", "dev", iv)
        self.ns(self.I, "ip", "addr", "add", PRIVATE_IP + "/24", "dev", iv)
        self.ns(self.I, "ip", "link", "set", iv, "up")
        self.hv = hv
        # Stand-in internet and a host service the guest should reach at its gateway.
        self.http(self.I, 8000, "internet")
        self.http(self.H, 8080, "host-service")
        self.udp_sink = self.work / "udp-sink.log"
        self.spawn(["ip", "netns", "exec", self.I, "/usr/bin/python3", "-c", UDP_SINK,
                    str(self.udp_sink)])
        return self

    def guest(self, idx):
        return self.netns(f"{self.p}g{idx}")

    # -- processes -------------------------------------------------------------------------
    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def http(self, ns, port, body):
        d = self.work / f"www-{ns}-{port}"
        d.mkdir(exist_ok=True)
        (d / "index.html").write_text(body)
        self.spawn(["ip", "netns", "exec", ns, "/usr/bin/python3", "-m", "http.server",
                    "--bind", "0.0.0.0", str(port)], cwd=d, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
        self.wait_listen(ns, port)

    def wait_listen(self, ns, port, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = self.ns(ns, "ss", "-Hltn", f"sport = :{port}", check=False).stdout
            if out.strip():
                return
            time.sleep(0.05)
        raise AssertionError(f"nothing listens on port {port} in {ns}")

    def attach(self, guest_ns, mac, vm="vm", mode="nat", extra=(), expect_ok=True):
        """Start net-probe (tart's networking + a stand-in QEMU); returns (proc, info dict)."""
        argv = ["ip", "netns", "exec", self.H, PROBE, "attach", "--vm", vm, "--mac", mac,
                "--mode", mode, "--guest-netns", guest_ns, *extra]
        p = self.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=self.env)
        line = p.stdout.readline()
        if not line.startswith("ready "):
            p.wait(timeout=30)
            err = p.stderr.read()
            if expect_ok:
                raise AssertionError(f"net-probe attach failed: {line!r} {err}")
            return p, err
        info = dict(kv.split("=", 1) for kv in line.split()[1:])
        return p, info

    def detach(self, p):
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
        assert p.returncode == 0, err
        return out

    def dhcp(self, guest_ns, tries=5):
        """Run busybox udhcpc in the guest until it has a lease; returns the event text."""
        events = self.work / f"events-{guest_ns}"
        events.unlink(missing_ok=True)
        subprocess.run(["ip", "netns", "exec", guest_ns, "busybox", "udhcpc", "-f", "-q", "-n",
                        "-t", str(tries), "-T", "1", "-i", "eth0", "-s", str(self.script)],
                       env=dict(os.environ, UDHCPC_EVENTS=str(events)), capture_output=True,
                       timeout=30, check=True)
        bound = [l for l in events.read_text().splitlines() if l.startswith("bound")]
        assert bound, events.read_text()
        return dict(kv.split("=", 1) for kv in bound[-1].split("|")[1:])

    def fetch(self, ns, url, timeout=3):
        """HTTP GET from inside a namespace with curl; None when it fails."""
        p = self.ns(ns, "curl", "-sf", "--noproxy", "*", "-m", str(timeout), url,
                    check=False, timeout=timeout + 10)
        return p.stdout if p.returncode == 0 else None

    def leases(self):
        import json
        f = self.home / "net" / "leases.json"
        return json.loads(f.read_text())["leases"] if f.exists() else []

    def cleanup(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


UDP_SINK = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
with open(sys.argv[1], "a", buffering=1) as f:
    while True:
        data, addr = s.recvfrom(2048)
        f.write(f"{addr[0]} {data.decode(errors='replace')}\n")
"""


@pytest.fixture
def topo():
    need_root_netns()
    work = Path(tempfile.mkdtemp(prefix="tart-net-"))
    t = Topo(work)
    try:
        t.build()
        yield t
    finally:
        t.cleanup()
        shutil.rmtree(work, ignore_errors=True)
