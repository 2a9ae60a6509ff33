# SPDX-License-Identifier: Apache-2.0
"""tart's networking with real VMs: `tart run` (TCG) of the tiny test guest inside the test's
own network namespace (net_fixtures.py), in NAT and Softnet modes, `tart ip`, ssh to the guest,
and the clean-up after SIGKILL. Skips loudly while `tart run` or the tiny guest is missing."""
import json
import re
import signal
import subprocess
import time

import pytest

from conftest import TART_BIN, Tart
from net_fixtures import GATEWAY, INTERNET_IP, PRIVATE_IP, topo  # noqa: F401 (fixture)

try:
    from run_fixtures import make_tiny_vm, tiny_guest, wait_serial  # noqa: F401 (fixture)
except ImportError:
    pytest.skip("tests/integration/run_fixtures.py (the tiny guest from the run work) is not "
                "in this tree yet", allow_module_level=True)


def run_implemented():
    p = subprocess.run([TART_BIN, "run", "--help"], capture_output=True, text=True, timeout=30)
    return p.returncode == 0 and "not implemented" not in (p.stdout + p.stderr)


@pytest.fixture
def vmnet(topo, tiny_guest):
    if not run_implemented():
        pytest.skip("`tart run` is not implemented in this build")
    t = topo
    tart = Tart(t.home)
    tart.env.update(t.env)
    tart.env["TART_NET_MODE"] = "nat"  # what AUTO picks for root; explicit for clarity
    t.tart = tart
    t.guest_dir = tiny_guest
    return t


def start(t, name, *flags):
    """`tart run` inside the host namespace, as a user would on a real host."""
    return t.spawn(["ip", "netns", "exec", t.H, TART_BIN, "run", name, "--no-graphics", *flags],
                   env=t.tart.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def tart_in(t, *args, timeout=120):
    return subprocess.run(["ip", "netns", "exec", t.H, TART_BIN, *args], env=t.tart.env,
                          capture_output=True, text=True, timeout=timeout)


def ssh(t, ip, command, tries=30):
    key = t.guest_dir / "id_ed25519"
    cmd = ["ip", "netns", "exec", t.H, "ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o",
           "ConnectTimeout=5", "-o", "LogLevel=ERROR", f"root@{ip}", command]
    last = None
    for _ in range(tries):
        last = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if last.returncode != 255:  # 255 = ssh itself failed (not up yet)
            return last
        time.sleep(1)
    return last


def guest_get(t, ip, url):
    # dropbear reports a command killed by `timeout` as a signal, which ssh turns into 255
    # (its own failure code): report the outcome in-band instead.
    r = ssh(t, ip, f"timeout 8 wget -q -O - {url} || echo WGET-FAILED")
    assert r.returncode == 0, r.stderr
    return None if "WGET-FAILED" in r.stdout else r.stdout


def boot(t, name, *flags):
    """Make the tiny VM, run it, wait for its sshd; returns (run process, `tart ip` address)."""
    make_tiny_vm(t.tart, t.guest_dir, name, test="wait")
    proc = start(t, name, *flags)
    try:
        wait_serial(t.tart, name, "TART-TEST-SSHD-STARTED", proc, timeout=180)
        r = tart_in(t, "ip", name, "--wait", "60")
        assert r.returncode == 0, r.stderr
    except BaseException:
        stop(t, name, proc, check=False)
        raise
    return proc, r.stdout.strip()


def stop(t, name, proc, check=True):
    tart_in(t, "stop", name)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 or not check, err


def nothing_left(t):
    links = t.ns(t.H, "ip", "-o", "link").stdout
    rules = t.ns(t.H, "nft", "list", "ruleset").stdout
    assert "tart0" not in links and "tart-t" not in links
    assert "table ip tart" not in rules and "table bridge tart" not in rules
    assert t.leases() == []


def test_nat_vm_gets_lease_ssh_and_internet(vmnet):
    t = vmnet
    proc, ip = boot(t, "vm")
    mac = json.loads((t.home / "vms" / "vm" / "config.json").read_text())["macAddress"]
    try:
        assert ip.startswith("192.168.64.")
        # ssh admin@$(tart ip vm) (the tiny guest's user is root)
        r = ssh(t, ip, "cat /sys/class/net/eth0/address")
        assert r.returncode == 0 and r.stdout.strip() == mac
        assert guest_get(t, ip, f"http://{GATEWAY}:8080/") == "host-service"
        assert guest_get(t, ip, f"http://{INTERNET_IP}:8000/") == "internet"
    finally:
        stop(t, "vm", proc)
    nothing_left(t)


def test_softnet_vm_is_isolated(vmnet):
    t = vmnet
    proc, ip = boot(t, "vm", "--net-softnet")
    try:
        assert guest_get(t, ip, f"http://{INTERNET_IP}:8000/") == "internet"
        assert guest_get(t, ip, f"http://{GATEWAY}:8080/") is None
        assert guest_get(t, ip, f"http://{PRIVATE_IP}:8000/") is None
    finally:
        stop(t, "vm", proc)
    nothing_left(t)


def test_sigkill_of_run_then_next_run_cleans(vmnet):
    t = vmnet
    proc, _ = boot(t, "a", "--net-softnet-expose", "2222:22")
    assert "2222" in t.ns(t.H, "nft", "list", "ruleset").stdout
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc2, _ = boot(t, "b")
    try:
        rules = t.ns(t.H, "nft", "list", "ruleset").stdout
        assert "2222" not in rules and "fwd-tart-t" not in rules
        macs = [r["mac"] for r in t.leases()]
        mac_b = json.loads((t.home / "vms" / "b" / "config.json").read_text())["macAddress"]
        assert macs == [mac_b]
    finally:
        stop(t, "b", proc2)
    nothing_left(t)


def test_user_mode_tart_ip_explains_the_forwarded_port(vmnet):
    t = vmnet
    t.tart.env["TART_NET_MODE"] = "user"
    make_tiny_vm(t.tart, t.guest_dir, "vm", test="wait")
    proc = start(t, "vm")
    try:
        wait_serial(t.tart, "vm", "TART-TEST-SSHD-STARTED", proc, timeout=180)
        r = tart_in(t, "ip", "vm", "--wait", "5")
        assert r.returncode == 1 and r.stdout == ""
        m = re.search(r"'ssh -p (\d+) admin@127\.0\.0\.1'", r.stderr)
        assert m, r.stderr
        # The explanation is right: that port reaches the guest.
        key = t.guest_dir / "id_ed25519"
        for _ in range(30):
            s = subprocess.run(["ip", "netns", "exec", t.H, "ssh", "-i", str(key), "-p", m[1],
                                "-o", "StrictHostKeyChecking=no", "-o",
                                "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o",
                                "LogLevel=ERROR", "root@127.0.0.1", "echo reached"],
                               capture_output=True, text=True, timeout=60)
            if s.returncode == 0:
                break
            time.sleep(1)
        assert s.stdout.strip() == "reached"
    finally:
        stop(t, "vm", proc)
    assert "tart0" not in t.ns(t.H, "ip", "-o", "link").stdout
