# SPDX-License-Identifier: Apache-2.0
"""Instant VMs with the Debian guest (qemu-guest-agent inside) and tart's NAT networking, inside
the test's own network namespaces (net_fixtures.py; nothing leaves the machine): boot once,
write a file, suspend, push, delete the VM, clone the image twice from the registry and run both
clones at once. Each must answer SSH at its own address with its own MAC, have resumed (same
boot ID, uptime continued) with the file in place, draw different random bytes and show the
host's time. One Debian boot for the module (20-60 s under TCG)."""
import concurrent.futures
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import TART_BIN, Tart
from net_fixtures import Topo, need_root_netns
from run_fixtures import debian_guest  # noqa: F401 (fixture)


def in_ns(t, *args, timeout=300):
    return subprocess.run(["ip", "netns", "exec", t.H, TART_BIN, *args], env=t.tart.env,
                          capture_output=True, text=True, timeout=timeout)


def start(t, name):
    return t.spawn(["ip", "netns", "exec", t.H, TART_BIN, "run", name], env=t.tart.env,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ssh(t, ip, command, deadline_s=300):
    argv = ["ip", "netns", "exec", t.H, "sshpass", "-p", "admin", "ssh", "-o",
            "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o",
            "ConnectTimeout=5", "-o", "LogLevel=ERROR", "-o",
            "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
            f"admin@{ip}", command]
    deadline = time.time() + deadline_s
    while True:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            if p.returncode == 0:
                return p.stdout
        except subprocess.TimeoutExpired:
            pass
        assert time.time() < deadline, f"no SSH to {ip}"
        time.sleep(0.5)


def stop(t, name, proc):
    in_ns(t, "stop", name, "--timeout", "60")
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


PROBE = ("cat /home/admin/marker; cat /proc/sys/kernel/random/boot_id; "
         "cut -d' ' -f1 /proc/uptime; date -u +%s; head -c 32 /dev/urandom | od -An -tx1 | "
         "tr -d ' \\n'; echo; for d in /sys/class/net/*; do [ \"${d##*/}\" = lo ] || "
         "cat $d/address; done")


@pytest.fixture(scope="module")
def clones(debian_guest, registry):
    need_root_netns()
    if not shutil.which("sshpass"):
        pytest.skip("sshpass is not installed (scripts/install-deps.sh installs it)")
    work = Path(tempfile.mkdtemp(prefix="tart-instant-"))
    t = Topo(work)
    running = []
    try:
        t.build()
        t.tart = Tart(t.home)
        t.tart.env.update(t.env)
        t.tart.env["TART_NET_MODE"] = "nat"
        t.tart.run("create", "--linux", "deb", "--disk-size", "3")
        t.tart.run("set", "deb", "--cpu", "2", "--memory", "1024")
        subprocess.run(["cp", "--sparse=always", str(debian_guest / "disk.img"),
                        str(t.home / "vms" / "deb" / "disk.img")], check=True)
        proc = start(t, "deb")
        running.append(("deb", proc))
        r = in_ns(t, "ip", "deb", "--wait", "300")
        assert r.returncode == 0, r.stderr
        out = ssh(t, r.stdout.strip(), "echo written-before-suspend > /home/admin/marker; "
                  "sync; cat /proc/sys/kernel/random/boot_id; cut -d' ' -f1 /proc/uptime")
        boot_id, uptime = out.split()
        p = in_ns(t, "suspend", "deb")
        assert p.returncode == 0, p.stderr
        proc.communicate(timeout=120)
        running.clear()
        suspended_at = time.time()
        ref = f"{registry.host}/instant/debian:1"
        t.tart.run("push", "--insecure", "deb", ref, timeout=600)
        t.tart.run("delete", "deb")
        assert t.tart.json("list", "--format", "json", "--source", "local") == []
        for n in ("c1", "c2"):
            t.tart.run("clone", "--insecure", ref, n, timeout=600)
        listed = {e["Name"]: e["State"] for e in
                  t.tart.json("list", "--format", "json", "--source", "local")}
        # The clock must visibly need correcting: the saved guest is this far behind.
        time.sleep(max(0.0, suspended_at + 20 - time.time()))
        runs = {}
        for n in ("c1", "c2"):
            runs[n] = start(t, n)
            running.append((n, runs[n]))
        ips = {}
        for n in ("c1", "c2"):
            r = in_ns(t, "ip", n, "--wait", "120")
            assert r.returncode == 0, r.stderr
            ips[n] = r.stdout.strip()
        probes, host_times = {}, {}
        for n in ("c1", "c2"):
            before = time.time()
            probes[n] = ssh(t, ips[n], PROBE).split("\n")
            host_times[n] = (before, time.time())
        yield SimpleNamespace(t=t, boot_id=boot_id, uptime=float(uptime), listed=listed,
                              ips=ips, probes=probes, host_times=host_times,
                              suspended_at=suspended_at)
    finally:
        # Both clones shut down at once: nothing waits for one guest after the other.
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
            errs = dict(zip((n for n, _ in running),
                            ex.map(lambda np: stop(t, *np), running)))
        t.cleanup()
        shutil.rmtree(work, ignore_errors=True)
        for n, err in errs.items():
            print(f"tart run {n}:\n{err}")


def test_two_clones_of_a_suspended_vm_run_side_by_side(clones):
    c = clones
    assert c.listed == {"c1": "suspended", "c2": "suspended"}
    macs = {}
    for n in ("c1", "c2"):
        marker, boot_id, uptime, guest_time, rnd, mac = c.probes[n][:6]
        cfg = json.loads((c.t.home / "vms" / n / "config.json").read_text())
        macs[n] = mac
        assert marker == "written-before-suspend"
        # resumed, not booted: the same kernel boot, its uptime carried on
        assert boot_id == c.boot_id and float(uptime) >= c.uptime
        # its own MAC (the config's, given through the guest agent) and its own lease
        assert mac == cfg["macAddress"].lower()
        assert re.fullmatch(r"192\.168\.64\.\d+", c.ips[n])
        # the clock was set to the host's: the guest's date falls within its SSH command
        # (a guest still on its saved clock would be at least 20 s behind)
        before, after = c.host_times[n]
        assert before - 5 <= int(guest_time) <= after + 5, (guest_time, before, after)
        assert before - c.suspended_at >= 20
        assert re.fullmatch(r"[0-9a-f]{64}", rnd)
        assert not (c.t.home / "vms" / n / "state.vzvmsave").exists()
    assert macs["c1"] != macs["c2"]
    assert c.ips["c1"] != c.ips["c2"]
    assert c.probes["c1"][4] != c.probes["c2"][4], "the clones draw the same random bytes"
    leases = {l["vm"]: (l["mac"], l["ip"]) for l in c.t.leases()}
    for n in ("c1", "c2"):
        assert leases[n] == (macs[n], c.ips[n])
