# SPDX-License-Identifier: Apache-2.0
"""tart's networking without VMs: net-probe runs the real net_attach()/net_detach() inside a
test network namespace and plays QEMU, a second namespace per guest runs busybox udhcpc and
real programs, a third stands in for the internet. See net_fixtures.py for the topology."""
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import TART_BIN
from net_fixtures import GATEWAY, HOST_EXT_IP, INTERNET_IP, PRIVATE_IP, PROBE, sh, topo  # noqa: F401

NET_RAW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "net_raw.py")
MAC1 = "52:54:00:aa:00:01"
MAC2 = "52:54:00:aa:00:02"
GW_MAC = "02:74:61:72:74:01"


def guest_http(t, ns, port=8081, body="guest"):
    t.http(ns, port, body)


def nft_ruleset(t):
    return t.ns(t.H, "nft", "list", "ruleset").stdout


def links(t):
    return t.ns(t.H, "ip", "-o", "link").stdout


# ---- NAT --------------------------------------------------------------------------------


def test_nat_lease_reachability_and_masquerade(topo):
    t = topo
    t.env.update(TART_NAT_LEASE_TIME="120", TART_NAT_DNS="9.9.9.9,1.1.1.1")
    g = t.guest(1)
    p, info = t.attach(g, MAC1)
    assert info["mode"] == "nat" and info["mac"] == MAC1 and info["gateway"] == GATEWAY
    lease = t.dhcp(g)
    # The guest got exactly the address tart reserved, with our settings.
    assert lease["ip"] == info["ip"] and lease["router"] == GATEWAY
    assert lease["mask"] == "24" and lease["lease"] == "120"
    assert lease["dns"].split() == ["9.9.9.9", "1.1.1.1"]
    recs = t.leases()
    assert [(r["mac"], r["ip"]) for r in recs] == [(MAC1, info["ip"])]
    assert recs[0]["expires"] > time.time() + 60
    # The host reaches the guest at that address...
    guest_http(t, g)
    assert t.fetch(t.H, f"http://{info['ip']}:8081/") == "guest"
    # ...the guest reaches a host service at its gateway and the internet through NAT.
    assert t.fetch(g, f"http://{GATEWAY}:8080/") == "host-service"
    assert t.fetch(g, f"http://{INTERNET_IP}:8000/") == "internet"
    t.ns(g, "/usr/bin/python3", "-c",
         f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'nat-check', ('{INTERNET_IP}', 9999))")
    time.sleep(0.5)
    # Masquerade: the internet sees the host's address, not the guest's.
    assert f"{HOST_EXT_IP} nat-check" in t.udp_sink.read_text()
    # Tear-down: the last VM leaves nothing behind.
    t.detach(p)
    assert t.leases() == []
    assert "tart0" not in links(t) and "tart-t" not in links(t)
    assert "table ip tart" not in nft_ruleset(t) and "table bridge tart" not in nft_ruleset(t)
    assert not list((t.home / "net" / "runs").glob("*.json"))


def test_network_json_subnet_and_clash(topo):
    t = topo
    g = t.guest(1)
    (t.home / "network.json").write_text(json.dumps({"subnet": "10.123.0.0/16", "leaseTime": 300}))
    p, info = t.attach(g, MAC1)
    assert info["gateway"] == "10.123.0.1" and info["ip"] == "10.123.0.2"
    lease = t.dhcp(g)
    assert lease["ip"] == "10.123.0.2" and lease["mask"] == "16" and lease["lease"] == "300"
    assert t.fetch(g, f"http://{INTERNET_IP}:8000/") == "internet"
    t.detach(p)
    # A subnet that overlaps a host route is refused with a clear message.
    t.env["TART_NAT_SUBNET"] = "45.45.0.0/16"
    p, err = t.attach(t.guest(2), MAC2, expect_ok=False)
    assert "clashes with the host's route 45.45.45.0/24" in err, err
    assert p.returncode == 1
    assert "tart0" not in links(t)


@pytest.mark.parametrize("bad, message", [
    ({"subnet": "192.168.64.7/24"}, "invalid NAT subnet '192.168.64.7/24'"),
    ({"subnet": "10.0.0.0/30"}, "invalid NAT subnet '10.0.0.0/30'"),
    ({"leaseTime": 5}, "invalid DHCP lease time 5"),
    ({"dns": ["not-an-ip"]}, "invalid DNS server 'not-an-ip'"),
    ({"subnets": "x"}, "unknown or mistyped key 'subnets'"),
])
def test_bad_settings_are_clear_errors(topo, bad, message):
    (topo.home / "network.json").write_text(json.dumps(bad))
    p, err = topo.attach(topo.guest(1), MAC1, expect_ok=False)
    assert message in err and p.returncode == 1


# ---- Softnet ----------------------------------------------------------------------------


def test_softnet_isolation(topo):
    t = topo
    g1, g2 = t.guest(1), t.guest(2)
    p1, i1 = t.attach(g1, MAC1, vm="soft", mode="softnet")
    p2, i2 = t.attach(g2, MAC2, vm="other", mode="nat")
    assert i1["mode"] == "softnet"
    assert t.dhcp(g1)["ip"] == i1["ip"]  # DHCP to the gateway is allowed
    assert t.dhcp(g2)["ip"] == i2["ip"]
    guest_http(t, g1, body="soft")
    guest_http(t, g2, body="other")
    # Globally routable destinations: allowed.
    assert t.fetch(g1, f"http://{INTERNET_IP}:8000/") == "internet"
    # The host (its gateway address and its other addresses), private ranges, other VMs: not.
    assert t.fetch(g1, f"http://{GATEWAY}:8080/") is None
    assert t.fetch(g1, f"http://{HOST_EXT_IP}:8080/") is None
    assert t.fetch(g1, f"http://{PRIVATE_IP}:8000/") is None
    assert t.fetch(g1, f"http://{i2['ip']}:8081/") is None
    # Other VMs cannot reach it either; the host can (ssh admin@$(tart ip vm) works).
    assert t.fetch(g2, f"http://{i1['ip']}:8081/") is None
    assert t.fetch(t.H, f"http://{i1['ip']}:8081/") == "soft"
    # The plain-NAT VM next to it is not restricted.
    assert t.fetch(g2, f"http://{PRIVATE_IP}:8000/") == "internet"
    t.detach(p1)
    # Its rules are gone with it; the other VM keeps the bridge.
    rules = nft_ruleset(t)
    assert "fwd-tart-t" not in rules and "port-tart-t" not in rules
    assert "tart0" in links(t)
    t.detach(p2)


def test_softnet_allow_block_longest_prefix(topo):
    t = topo
    g = t.guest(1)
    # /32 allow beats the /24 block; identical prefixes: block wins.
    p, info = t.attach(g, MAC1, mode="softnet", extra=[
        "--allow", "45.45.45.2/32,10.99.0.0/16", "--block", "45.45.45.0/24,10.99.0.0/16"])
    t.dhcp(g)
    assert t.fetch(g, f"http://{INTERNET_IP}:8000/") == "internet"
    assert t.fetch(g, f"http://{PRIVATE_IP}:8000/") is None
    t.detach(p)
    # An allowed private range and an allowed host address become reachable.
    p, info = t.attach(g, MAC1, mode="softnet", extra=["--allow", f"10.99.0.0/24,{GATEWAY}/32"])
    t.dhcp(g)
    assert t.fetch(g, f"http://{PRIVATE_IP}:8000/") == "internet"
    assert t.fetch(g, f"http://{GATEWAY}:8080/") == "host-service"
    t.detach(p)
    # Blocking the whole internet.
    p, info = t.attach(g, MAC1, mode="softnet", extra=["--block", "0.0.0.0/0"])
    t.dhcp(g)
    assert t.fetch(g, f"http://{INTERNET_IP}:8000/") is None
    t.detach(p)


def test_softnet_expose(topo):
    t = topo
    g = t.guest(1)
    p, info = t.attach(g, MAC1, mode="softnet", extra=["--expose", "2222:8081,2223:8082"])
    t.dhcp(g)
    guest_http(t, g, 8081, "exposed-8081")
    guest_http(t, g, 8082, "exposed-8082")
    # From outside, the host's external address forwards to the VM.
    assert t.fetch(t.I, f"http://{HOST_EXT_IP}:2222/") == "exposed-8081"
    assert t.fetch(t.I, f"http://{HOST_EXT_IP}:2223/") == "exposed-8082"
    assert t.fetch(t.I, f"http://{HOST_EXT_IP}:2224/") is None
    t.detach(p)
    assert t.fetch(t.I, f"http://{HOST_EXT_IP}:2222/", timeout=2) is None


def test_softnet_drops_spoofed_sources(topo):
    t = topo
    g = t.guest(1)
    p, info = t.attach(g, MAC1, mode="softnet")
    t.dhcp(g)
    send = lambda *a: t.ns(g, "/usr/bin/python3", NET_RAW, "spoof", *a)  # noqa: E731
    send(MAC1, GW_MAC, info["ip"], INTERNET_IP, "genuine")
    send(MAC1, GW_MAC, "192.168.64.77", INTERNET_IP, "spoofed-ip")
    send("52:54:00:66:66:66", GW_MAC, info["ip"], INTERNET_IP, "spoofed-mac")
    send(MAC1, GW_MAC, "45.45.45.9", INTERNET_IP, "spoofed-public-ip")
    time.sleep(1)
    seen = t.udp_sink.read_text()
    assert "genuine" in seen  # the sender works and the path is open...
    assert "spoofed" not in seen, seen  # ...but forged sources never leave the bridge
    t.detach(p)


# ---- DHCP robustness and address recycling -----------------------------------------------


def test_dhcp_flood_cannot_take_another_vms_address(topo):
    t = topo
    g1, g2 = t.guest(1), t.guest(2)
    p1, i1 = t.attach(g1, MAC1, vm="victim")
    p2, i2 = t.attach(g2, MAC2, vm="attacker")
    t.dhcp(g1)
    t.ns(g2, "ip", "link", "set", "eth0", "up")
    t.ns(g2, "/usr/bin/python3", NET_RAW, "dhcp-flood", MAC2, i1["ip"], timeout=60)
    # The victim keeps its lease; the attacker only ever gets its own address.
    by_mac = {r["mac"]: r["ip"] for r in t.leases()}
    assert by_mac[MAC1] == i1["ip"]
    assert by_mac[MAC2] == i2["ip"] != i1["ip"]
    assert t.dhcp(g2)["ip"] == i2["ip"]
    guest_http(t, g1, body="victim")
    assert t.fetch(t.H, f"http://{i1['ip']}:8081/") == "victim"
    assert p1.poll() is None and p2.poll() is None  # the servers survived
    t.detach(p2)
    t.detach(p1)


def test_duid_client_identifier_still_resolves_by_mac(topo):
    t = topo
    g = t.guest(1)
    p, info = t.attach(g, MAC1)
    # A DUID client identifier (type 255, as systemd-networkd/Ubuntu send) instead of the MAC.
    events = t.work / "duid-events"
    subprocess.run(["ip", "netns", "exec", g, "busybox", "udhcpc", "-f", "-q", "-n", "-t", "5",
                    "-T", "1", "-i", "eth0", "-s", str(t.script),
                    "-x", "0x3d:ff0000000100040102030405060708090a0b0c0d0e0f10"],
                   env=dict(os.environ, UDHCPC_EVENTS=str(events)), check=True,
                   capture_output=True, timeout=30)
    assert f"bound|ip={info['ip']}|" in events.read_text()
    assert [(r["mac"], r["ip"]) for r in t.leases()] == [(MAC1, info["ip"])]
    t.detach(p)


def test_300_cycles_never_exhaust_a_slash_24(topo):
    t = topo
    # One long-running VM keeps the bridge up, as on a busy CI host.
    p, info = t.attach(t.guest(1), MAC1)
    out = t.ns(t.H, PROBE, "cycles", "--count", "300", timeout=540, check=False, env=t.env)
    lines = [l for l in out.stdout.splitlines() if l.startswith("cycle ")]
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert len(lines) == 300
    assert all(" OFFER ACK " in l and l.endswith("recorded yes") for l in lines)
    macs = {l.split()[3] for l in lines}
    ips = {l.split()[7] for l in lines}
    assert len(macs) == 300  # 300 distinct VMs...
    assert info["ip"] not in ips  # ...never given the running VM's address...
    assert len(ips) <= 2  # ...and their addresses come back the moment they stop
    assert [r["mac"] for r in t.leases()] == [MAC1]
    t.detach(p)


# ---- Killed runs -------------------------------------------------------------------------


def test_sigkill_then_next_run_cleans_up(topo):
    t = topo
    g = t.guest(1)
    p, info = t.attach(g, MAC1, mode="softnet", extra=["--expose", "2222:8081"])
    t.dhcp(g)
    tap = info["tap"]
    p.send_signal(signal.SIGKILL)
    p.wait()
    # What a SIGKILLed run leaves: its rules, lease and record (the tap dies with its fd).
    assert tap in nft_ruleset(t) and "2222" in nft_ruleset(t)
    assert [r["mac"] for r in t.leases()] == [MAC1]
    assert list((t.home / "net" / "runs").glob("*.json"))
    # The next run cleans that up before making its own.
    p2, i2 = t.attach(t.guest(2), MAC2)
    rules = nft_ruleset(t)
    assert tap not in rules and "2222" not in rules
    assert tap not in links(t)
    assert [r["mac"] for r in t.leases()] == [MAC2]
    assert i2["ip"] == info["ip"]  # the dead VM's address is free again
    t.detach(p2)
    assert "tart0" not in links(t) and "table ip tart" not in nft_ruleset(t)
    # And when nothing else runs, the cleanup alone removes everything.
    p3, _ = t.attach(g, MAC1, mode="softnet")
    p3.send_signal(signal.SIGKILL)
    p3.wait()
    t.ns(t.H, PROBE, "cleanup", env=t.env)
    assert "tart0" not in links(t) and "tart-t" not in links(t)
    assert "table" not in nft_ruleset(t)
    assert t.leases() == []


def test_hostile_state_cannot_touch_host_interfaces(topo):
    """Run records and network.json are files a user can edit, and tart may run with
    CAP_NET_ADMIN they do not otherwise have: what they name must never make tart take down or
    delete a host interface, nor add text to an nft script."""
    t = topo
    t.ns(t.H, "ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0p")
    t.ns(t.H, "ip", "link", "set", "uplink0p", "up")
    t.ns(t.H, "ip", "link", "set", "uplink0", "up")
    dead = subprocess.Popen(["true"])
    dead.wait()
    runs = t.home / "net" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for i, tap in enumerate(["uplink0", 'x" }\nflush ruleset']):
        pid = dead.pid + i
        (runs / f"{pid}.json").write_text(json.dumps({
            "pid": pid, "pidStart": 1, "vm": "vm", "vmDir": "/nowhere", "mode": "nat",
            "info": "", "tap": tap, "bridge": "tart0", "mac": MAC2, "ip": "192.168.64.9",
            "softnet": True, "sharedBridge": True, "expose": []}))

    def uplink_up():
        out = t.ns(t.H, "ip", "-o", "link", "show", "uplink0", check=False).stdout
        return "uplink0" in out and ",UP" in out.split(">")[0]

    # A bridge name that is a host interface (not a bridge): refused, and left up.
    (t.home / "network.json").write_text(json.dumps({"bridge": "uplink0"}))
    p, err = t.attach(t.guest(1), MAC1, expect_ok=False)
    assert p.returncode == 1 and "bridge 'uplink0' exists but does not carry" in err, err
    assert uplink_up()
    # A bridge name that would leave its nft string: refused before anything happens.
    (t.home / "network.json").write_text(json.dumps({"bridge": 'br"\nflush'}))
    p, err = t.attach(t.guest(2), MAC1, expect_ok=False)
    assert p.returncode == 1 and "invalid bridge name" in err, err
    # A normal run next to the planted records works and leaves the host's interface alone.
    (t.home / "network.json").unlink()
    p, info = t.attach(t.guest(3), MAC1)
    assert uplink_up()
    t.detach(p)
    assert uplink_up()
    assert "tart0" not in links(t) and "table" not in nft_ruleset(t)


# ---- Input errors and other modes --------------------------------------------------------


@pytest.mark.parametrize("extra, message", [
    (["--allow", "10.0.0.0/33"], "invalid --net-softnet-allow value '10.0.0.0/33'"),
    (["--block", "10.0.0.1,,"], "invalid --net-softnet-block value"),
    (["--expose", "2222"], "invalid --net-softnet-expose value '2222'"),
    (["--expose", "0:22"], "invalid --net-softnet-expose value '0:22'"),
    (["--expose", "2222:22,2222:23"], "each external port once"),
])
def test_bad_softnet_specs(topo, extra, message):
    p, err = topo.attach(topo.guest(1), MAC1, mode="softnet", extra=extra, expect_ok=False)
    assert message in err and p.returncode == 1
    assert "tart0" not in links(topo)


def test_unprivileged_is_a_clear_error(topo):
    t = topo
    argv = ["ip", "netns", "exec", t.H, "setpriv", "--bounding-set", "-net_admin",
            "--inh-caps", "-all", PROBE, "attach", "--vm", "x", "--mac", MAC1, "--mode", "nat",
            "--guest-netns", t.guest(1)]
    p = subprocess.run(argv, env=t.env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "needs CAP_NET_ADMIN" in p.stderr, p.stderr


def test_bridged_mode_and_missing_bridge(topo):
    t = topo
    g1 = t.guest(1)
    p, err = t.attach(g1, MAC1, mode="bridged", extra=["--bridge", "nosuchbr0"],
                      expect_ok=False)
    assert 'no bridge interfaces matched "nosuchbr0", available interfaces: [' in err
    p, err = t.attach(g1, MAC1, mode="bridged", extra=["--bridge", t.hv],
                      expect_ok=False)
    assert "is not a bridge" in err
    br = t.p + "br"
    t.ns(t.H, "ip", "link", "add", br, "type", "bridge")
    t.ns(t.H, "ip", "addr", "add", "10.50.0.1/24", "dev", br)
    t.ns(t.H, "ip", "link", "set", br, "up")
    g = t.guest(2)
    p, info = t.attach(g, MAC1, mode="bridged", extra=["--bridge", br])
    assert info["mode"] == "bridged" and "ip" not in info and info["bridge"] == br
    assert f"master {br}" in t.ns(t.H, "ip", "-o", "link", "show", info["tap"]).stdout
    t.ns(g, "ip", "addr", "add", "10.50.0.2/24", "dev", "eth0")
    guest_http(t, g, body="bridged")
    assert t.fetch(t.H, "http://10.50.0.2:8081/") == "bridged"
    t.detach(p)
    assert "tart0" not in links(t)  # bridged mode never creates tart's own bridge


def test_host_only_mode(topo):
    t = topo
    g = t.guest(1)
    p, info = t.attach(g, MAC1, mode="host")
    lease = t.dhcp(g)
    assert lease["ip"] == info["ip"] and lease["router"] == ""
    # The guest reaches the host, and the host the guest; nothing beyond the host.
    assert t.fetch(g, f"http://{GATEWAY}:8080/") == "host-service"
    guest_http(t, g, body="hostonly")
    assert t.fetch(t.H, f"http://{info['ip']}:8081/") == "hostonly"
    t.ns(g, "ip", "route", "replace", "default", "via", GATEWAY)
    assert t.fetch(g, f"http://{INTERNET_IP}:8000/") is None
    t.detach(p)


# ---- tart ip -----------------------------------------------------------------------------


def tart_in(t, *args, timeout=60):
    return subprocess.run(["ip", "netns", "exec", t.H, TART_BIN, *args], env=t.env,
                          capture_output=True, text=True, timeout=timeout)


def make_vm(t, name="vm"):
    p = subprocess.run([TART_BIN, "create", "--linux", name], env=t.env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads((t.home / "vms" / name / "config.json").read_text())["macAddress"]


def test_tart_ip_dhcp_wait_and_messages(topo):
    t = topo
    mac = make_vm(t)
    g = t.guest(1)
    p, info = t.attach(g, mac, vm="vm")
    # Running, no lease yet.
    r = tart_in(t, "ip", "vm")
    assert r.returncode == 1 and r.stderr.strip() == "no IP address found" and r.stdout == ""
    # --wait polls until the guest has its lease.
    udhcpc = t.spawn(["ip", "netns", "exec", g, "busybox", "udhcpc", "-f", "-q", "-n", "-t", "5",
                      "-T", "1", "-i", "eth0", "-s", str(t.script)])
    r = tart_in(t, "ip", "vm", "--wait", "20")
    assert r.returncode == 0, r.stderr
    assert r.stdout == info["ip"] + "\n"
    udhcpc.wait(timeout=30)
    assert tart_in(t, "ip", "vm", "--resolver", "dhcp").stdout == info["ip"] + "\n"
    # The agent resolver asks the agent only (no fallback, as Tart): net-probe has no
    # control.sock, so Tart's message about the guest agent.
    r = tart_in(t, "ip", "vm", "--resolver", "agent")
    assert r.returncode == 1
    assert "make sure that Guest agent for Tart is running inside of a VM" in r.stderr
    t.detach(p)
    # Stopped: Tart's message, and the lease is gone with the VM.
    r = tart_in(t, "ip", "vm", "--wait", "1")
    assert r.returncode == 1
    assert r.stderr.strip() == "no IP address found, is your VM running?"


def test_tart_ip_usage_errors(topo):
    t = topo
    make_vm(t)
    assert tart_in(t, "ip", "nosuchvm").returncode == 2
    r = tart_in(t, "ip", "vm", "--resolver", "dns")
    assert r.returncode == 64 and "--resolver" in r.stderr
    assert tart_in(t, "ip", "vm", "--wait", "70000").returncode == 64
    assert tart_in(t, "ip").returncode == 64


def test_tart_ip_arp_for_bridged(topo):
    t = topo
    mac = make_vm(t)
    br = t.p + "br"
    t.ns(t.H, "ip", "link", "add", br, "type", "bridge")
    t.ns(t.H, "ip", "addr", "add", "10.50.0.1/24", "dev", br)
    t.ns(t.H, "ip", "link", "set", br, "up")
    g = t.guest(1)
    p, info = t.attach(g, mac, vm="vm", mode="bridged", extra=["--bridge", br])
    t.ns(g, "ip", "addr", "add", "10.50.0.2/24", "dev", "eth0")
    # No tart lease in bridged mode (someone else's DHCP): dhcp finds nothing, arp does once
    # the host has talked to the guest.
    assert tart_in(t, "ip", "vm").returncode == 1
    guest_http(t, g, body="b")
    assert t.fetch(t.H, "http://10.50.0.2:8081/") == "b"
    r = tart_in(t, "ip", "vm", "--resolver", "arp")
    assert r.returncode == 0 and r.stdout == "10.50.0.2\n", r.stderr
    t.detach(p)
    r = tart_in(t, "ip", "vm", "--resolver", "arp")
    # The neighbour entry may linger; when it does not, Tart's arp hint is printed.
    assert r.returncode == 0 or "not all Linux distributions" in r.stderr


def test_tart_ip_explains_user_mode(topo):
    t = topo
    mac = make_vm(t)
    # A run record as net_attach() leaves for a user-mode VM (written here for our own live
    # pid, since user mode lives in the run branch).
    stat = open("/proc/self/stat").read()
    start = int(stat[stat.rindex(")") + 2:].split()[19])
    runs = t.home / "net" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"{os.getpid()}.json").write_text(json.dumps({
        "pid": os.getpid(), "pidStart": start, "vm": "vm", "vmDir": str(t.home / "vms" / "vm"),
        "mode": "user", "info": "mode=user ssh-port=2222", "tap": "", "bridge": "",
        "mac": mac, "ip": "", "softnet": False, "sharedBridge": False, "expose": []}))
    r = tart_in(t, "ip", "vm")
    assert r.returncode == 1 and r.stdout == ""
    assert "uses user-mode networking" in r.stderr and "ssh -p 2222 admin@127.0.0.1" in r.stderr


def test_tart_ip_explains_user_mode_from_run_state(topo):
    import fcntl
    t = topo
    make_vm(t)
    vm = t.home / "vms" / "vm"
    (vm / "run.json").write_text(json.dumps({"netMode": "user", "net": "ssh-port=3333"}))
    # Not running: run.json is stale and ignored.
    r = tart_in(t, "ip", "vm")
    assert r.returncode == 1 and r.stderr.strip() == "no IP address found, is your VM running?"
    # Running (we hold the run lock as `tart run` does): explained.
    with open(vm / "config.json", "r+") as f:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = tart_in(t, "ip", "vm")
    assert r.returncode == 1 and "ssh -p 3333 admin@127.0.0.1" in r.stderr


def test_file_capabilities_instead_of_root(topo):
    """A non-root user with the capabilities on the binary (setcap) gets NAT and Softnet."""
    t = topo
    if not shutil.which("setcap"):
        pytest.skip("setcap (libcap2-bin) is not installed")
    capdir = t.work / "cap"
    capdir.mkdir()
    probe = capdir / "net-probe"
    shutil.copy(PROBE, probe)
    # cap_sys_admin only for the probe's own test plumbing (entering the guest namespace);
    # cap_dac_override only when /dev/net/tun is not world-accessible (0600 on this machine,
    # 0666 on most distributions).
    caps = "cap_net_admin,cap_net_raw,cap_sys_admin"
    if os.stat("/dev/net/tun").st_mode & 0o006 != 0o006:
        caps += ",cap_dac_override"
    sh("setcap", caps + "+ep", str(probe))
    for d in (t.work, capdir):
        d.chmod(0o755)
    shutil.chown(t.home, 65534, 65534)
    g = t.guest(1)
    argv = ["ip", "netns", "exec", t.H, "setpriv", "--reuid", "65534", "--regid", "65534",
            "--clear-groups", str(probe), "attach", "--vm", "x", "--mac", MAC1, "--mode",
            "softnet", "--guest-netns", g]
    p = t.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=t.env)
    line = p.stdout.readline()
    if not line.startswith("ready "):
        p.wait(timeout=30)
        raise AssertionError(p.stderr.read())
    info = dict(kv.split("=", 1) for kv in line.split()[1:])
    assert t.dhcp(g)["ip"] == info["ip"]
    assert "fwd-" + info["tap"] in nft_ruleset(t)  # nft ran with the passed-on capability
    assert t.fetch(g, f"http://{INTERNET_IP}:8000/") == "internet"
    assert t.fetch(g, f"http://{PRIVATE_IP}:8000/") is None
    assert (t.home / "net" / "leases.json").stat().st_uid == 65534
    t.detach(p)
    assert "tart0" not in links(t) and "table" not in nft_ruleset(t)


@pytest.mark.parametrize("mode", ["nat", "softnet"])
def test_loopback_only_host_resolver_is_reached_through_the_gateway(topo, mode):
    """A host whose only resolver is on loopback (systemd-resolved's 127.0.0.53): guests get
    the gateway as DNS server and their queries reach that resolver."""
    t = topo
    # `ip netns exec` shows /etc/netns/<ns>/resolv.conf as /etc/resolv.conf inside <ns>.
    etc = Path("/etc/netns") / t.H
    parent_created = not etc.parent.exists()
    etc.mkdir(parents=True)
    try:
        (etc / "resolv.conf").write_text("nameserver 127.0.0.53\n")
        t.spawn(["ip", "netns", "exec", t.H, "/usr/bin/python3", NET_RAW, "dns-server",
                 "127.0.0.53", "198.51.100.7"])
        g = t.guest(1)
        p, info = t.attach(g, MAC1, mode=mode)
        assert t.dhcp(g)["dns"].split() == [GATEWAY]
        deadline = time.time() + 10
        while True:
            r = t.ns(g, "/usr/bin/python3", NET_RAW, "dns-query", GATEWAY, "vm.test",
                     check=False)
            if r.returncode == 0 or time.time() > deadline:
                break
            time.sleep(0.2)  # the resolver may still be starting
        assert r.stdout.strip() == "198.51.100.7", r.stderr
        t.detach(p)
    finally:
        shutil.rmtree(etc, ignore_errors=True)
        if parent_created:
            etc.parent.rmdir()


def test_an_exposed_port_belongs_to_one_vm(topo):
    t = topo
    g1, g2 = t.guest(1), t.guest(2)
    p1, i1 = t.attach(g1, MAC1, vm="first", mode="softnet", extra=["--expose", "2222:8081"])
    t.dhcp(g1)
    guest_http(t, g1, body="first")
    p2, err = t.attach(g2, MAC2, vm="second", mode="softnet", extra=["--expose", "2222:8081"],
                       expect_ok=False)
    assert p2.returncode == 1 and "already be exposed by another VM" in err, err
    # The failed attempt took nothing away from the first VM.
    assert t.fetch(t.I, f"http://{HOST_EXT_IP}:2222/") == "first"
    assert [r["mac"] for r in t.leases()] == [MAC1]
    t.detach(p1)
