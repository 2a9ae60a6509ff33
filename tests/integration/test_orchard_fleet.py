# SPDX-License-Identifier: Apache-2.0
"""A real fleet on loopback: a 3-member etcd cluster, two controllers (one TLS certificate,
the bootstrap-admin account), two workers with their own TART_HOME driving the real tart
(tiny guests under TCG, user-mode networking), the CLI. The image the workers pull is the tiny
guest (kernel, initramfs: a Vetu-style image) in a local registry that serves HTTPS, as
`tart clone` of Orchard's driver wants it.

The tests run in order on one fleet: ten VMs fit the workers' resources and an eleventh waits;
a startup script's output comes back through `logs vm`; `ssh vm` and `port-forward vm` reach a
guest's port 22 through the controller; kill -9 of a controller, of an etcd member, of a worker
(its VMs restart on the other one); a worker that comes back cleans what it left; a worker
restarted at once adopts its running VMs; a spec change to powerState "stopped" stops a VM."""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import start_registry
from fleet_fixtures import (ORCHARD_BIN, Cli, Worker, bootstrap_token, need_fleet_tools,
                            pinned_api, tls_controller, wait_for)
from orchard_fixtures import EtcdCluster
from oci_fixtures import MiB, push_vetu_image
from registry_fixtures import make_tls_pair
from run_fixtures import TINY_CMDLINE, tiny_guest  # noqa: F401 (fixture)

ADMIN = "fleet-admin-" + os.urandom(6).hex()
VMS = [f"vm{i:02d}" for i in range(11)]


class Fleet:
    pass


def kill_tart_runs(worker):
    """`tart run` processes a killed worker left behind (ours: they run in its TART_HOME)."""
    vms = worker.tart_home / "vms"
    if not vms.exists():
        return
    for d in vms.iterdir():
        pid = worker.run_pid(d.name)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def push_image(work, guest):
    """The tiny guest pushed over HTTP, then served over HTTPS from the same storage."""
    d = work / "registry"
    d.mkdir()
    plain = start_registry(d)
    cfg = json.dumps({"version": 1, "arch": "amd64", "cpuCount": 1, "memorySize": 192 * MiB,
                      "macAddress": "02:11:22:33:44:57", "disks": [{"name": "disk.img"}],
                      "cmdline": f"{TINY_CMDLINE} tart.test=wait"}).encode()
    push_vetu_image(plain.host, "fleet/tiny", "1", cfg, (guest / "kernel").read_bytes(),
                    bytes(1 * MiB), initramfs=(guest / "initramfs").read_bytes())
    plain.proc.terminate()
    plain.proc.wait(timeout=10)
    (d / "tls").mkdir()
    ca, cert, key = make_tls_pair(d / "tls")
    return start_registry(d, tls=(cert, key)), ca


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, tiny_guest):  # noqa: F811
    need_fleet_tools()
    work = tmp_path_factory.mktemp("fleet")
    registry, ca = push_image(work, tiny_guest)

    f = Fleet()
    f.image = f"{registry.host}/fleet/tiny:1"
    f.key = tiny_guest / "id_ed25519"
    f.etcd = EtcdCluster(work / "etcd", 3)
    f.a = tls_controller(work, f.etcd, "a", ADMIN)
    f.b = tls_controller(work, f.etcd, "b", ADMIN, cert=f.a.cert)
    f.token = bootstrap_token("bootstrap-admin", ADMIN, f.a.cert[0].read_bytes())
    f.w1 = Worker(work, "w1", f"{f.a.url},{f.b.url}", f.token, "tiny=5", f.key, ca)
    f.w2 = Worker(work, "w2", f"{f.b.url},{f.a.url}", f.token, "tiny=5", f.key, ca)
    f.workers = {"w1": f.w1, "w2": f.w2}
    f.cli = Cli(work / "cli")
    f.cli.run("context", "create", f.a.url, "--bootstrap-token", f.token)
    try:
        yield f
    finally:
        for w in (f.w1, f.w2):
            if w.proc:
                w.proc.stop()
            kill_tart_runs(w)
        for c in (f.a, f.b):
            c.stop()
        f.etcd.stop()
        registry.proc.terminate()
        registry.proc.wait(timeout=10)


def statuses(cli, names):
    return {n: cli.field(n, "status") for n in names}


def test_ten_vms_run_within_resources_and_an_eleventh_waits(fleet):
    cli = fleet.cli
    for i, name in enumerate(VMS):
        args = ["create", "vm", name, "--image", fleet.image, "--cpu", "1", "--memory", "192",
                "--username", "root", "--password", "", "--resources", "tiny=1",
                "--restart-policy", "OnFailure"]
        if i == 0:
            args += ["--startup-script", "echo fleet-startup-ok; uname -s"]
        cli.run(*args)
    wait_for("ten running VMs",
             lambda: list(statuses(cli, VMS).values()).count("running") == 10, timeout=240)
    st = statuses(cli, VMS)
    waiting = [n for n, s in st.items() if s != "running"]
    assert len(waiting) == 1 and st[waiting[0]] == "pending", st
    placed = {n: cli.field(n, "worker") for n in VMS}
    assert placed[waiting[0]] is None, placed  # no worker has room left
    for w in ("w1", "w2"):
        assert list(placed.values()).count(w) == 5, placed
    time.sleep(3)
    assert cli.field(waiting[0], "status") == "pending"
    # each running VM exists on exactly one worker's disk, under Orchard's local name
    on_disk = {**{k: "w1" for k in fleet.w1.local_vms()}, **{k: "w2" for k in fleet.w2.local_vms()}}
    assert len(on_disk) == 10
    for n in VMS:
        if n != waiting[0]:
            uid = cli.field(n, "uid")
            assert on_disk[f"orchard-{n}-{uid}-0"] == placed[n]
    fleet.waiting = waiting[0]
    fleet.placed = placed


def test_logs_show_the_startup_script_output(fleet):
    logs = lambda: fleet.cli.run("logs", "vm", "vm00").stdout
    try:
        wait_for("the startup script's output", lambda: "fleet-startup-ok" in logs(),
                 timeout=300)
    except AssertionError as e:
        raise AssertionError(f"{e}\nlogs vm vm00:\n{logs()}") from None
    assert "Linux" in logs()


def test_ssh_and_port_forward_reach_the_guest_through_the_controller(fleet):
    vm = next(n for n in VMS if n != fleet.waiting)
    p = fleet.cli.run("ssh", "vm", vm, "-u", "root", "-i", str(fleet.key),
                      "echo ssh-through-controller; cat /proc/sys/kernel/hostname", timeout=120)
    assert "ssh-through-controller" in p.stdout
    pf = subprocess.Popen([ORCHARD_BIN, "port-forward", "vm", vm, "0:22"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=fleet.cli.env)
    try:
        line = pf.stdout.readline()
        assert line.startswith("forwarding 127.0.0.1:"), line
        port = int(line.split("127.0.0.1:")[1].split(" ")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.settimeout(60)
            assert s.recv(64).startswith(b"SSH-2.0-dropbear")
    finally:
        pf.send_signal(signal.SIGTERM)
        pf.wait(timeout=10)
    # user-mode networking: the guest has no address the host can reach; the worker answers
    # resolve-ip with what `tart ip` says, and says it at once
    p = fleet.cli.run("ip", "vm", vm, check=False, timeout=60)
    assert p.returncode == 1 and "user-mode networking" in p.stderr, p.stderr


def test_kill9_of_a_controller_the_other_keeps_serving(fleet):
    cli = fleet.cli
    before = {n: cli.field(n, "uid") for n in VMS}
    fleet.a.kill()
    via_b = {"ORCHARD_URL": fleet.b.url}
    assert cli.names(env=via_b) == sorted(VMS)
    after = {n: cli.field(n, "uid", env=via_b) for n in VMS}
    assert after == before and len(set(after.values())) == len(VMS)
    # the workers went over to b: still reporting, nothing restarted or doubled
    time.sleep(5)
    st = statuses_via(cli, VMS, via_b)
    assert list(st.values()).count("running") == 10, st
    assert len(fleet.w1.local_vms()) + len(fleet.w2.local_vms()) == 10
    # and b takes writes: the waiting VM goes away everywhere
    cli.run("delete", "vm", fleet.waiting, env=via_b)
    assert fleet.waiting not in cli.names(env=via_b)
    # the workers' channels moved to b: a port-forward through b reaches a guest of each worker
    for w in ("w1", "w2"):
        vm = next(n for n in VMS if fleet.placed[n] == w)
        p = cli.run("ssh", "vm", vm, "-u", "root", "-i", str(fleet.key), "echo via-b", env=via_b,
                    timeout=120)
        assert "via-b" in p.stdout


def statuses_via(cli, names, env):
    return {n: cli.field(n, "status", env=env) for n in names}


def test_kill9_of_an_etcd_member_the_fleet_goes_on(fleet):
    cli, via_b = fleet.cli, {"ORCHARD_URL": fleet.b.url}
    fleet.etcd.kill(0)
    # keep two VMs per worker: the others are deleted, by the API and on the workers' disks
    keep = {"w1": [], "w2": []}
    for n in sorted(fleet.placed):
        w = fleet.placed[n]
        if w and len(keep[w]) < 2:
            keep[w].append(n)
    gone = [n for n in VMS if n != fleet.waiting and n not in keep["w1"] + keep["w2"]]
    for n in gone:
        cli.run("delete", "vm", n, env=via_b)
    assert cli.names(env=via_b) == sorted(keep["w1"] + keep["w2"])
    wait_for("the workers to delete the VMs",
             lambda: len(fleet.w1.local_vms()) == 2 and len(fleet.w2.local_vms()) == 2,
             timeout=120)
    fleet.keep = keep


def test_kill9_of_a_worker_its_vms_restart_on_the_other(fleet):
    cli, via_b = fleet.cli, {"ORCHARD_URL": fleet.b.url}
    moved = fleet.keep["w1"]
    fleet.w1.proc.kill9()

    def restarted():
        return all(cli.field(n, "worker", env=via_b) == "w2" and
                   cli.field(n, "status", env=via_b) == "running" for n in moved)
    wait_for("w1's VMs to run on w2", restarted, timeout=180)
    for n in fleet.keep["w2"]:
        assert cli.field(n, "status", env=via_b) == "running"
    uids = {n: cli.field(n, "uid", env=via_b) for n in moved}
    local = fleet.w2.local_vms()
    for n in moved:  # restarted: a new local name with restart count 1
        assert f"orchard-{n}-{uids[n]}-1" in local, local


def test_a_worker_that_comes_back_cleans_what_it_left(fleet):
    left = fleet.w1.local_vms()
    assert len(left) == 2  # its old VMs, still running without it
    fleet.w1.start()
    wait_for("w1 to delete its stale VMs", lambda: not fleet.w1.local_vms(), timeout=120)


def test_a_restarted_worker_adopts_its_running_vms(fleet):
    cli, via_b = fleet.cli, {"ORCHARD_URL": fleet.b.url}
    w2 = fleet.w2
    before = {name: w2.run_pid(name) for name in w2.local_vms()}
    assert len(before) == 4 and all(before.values()), before
    w2.proc.kill9()
    w2.start()
    wait_for("w2 to adopt its VMs", lambda: "adopting VM" in w2.proc.text(), timeout=60)
    time.sleep(6)  # a few reconciliation rounds
    after = {name: w2.run_pid(name) for name in w2.local_vms()}
    assert after == before  # the same `tart run` processes: nothing was restarted
    for pid in before.values():
        os.kill(pid, 0)
    for n in fleet.keep["w1"] + fleet.keep["w2"]:
        assert cli.field(n, "status", env=via_b) == "running"
        assert cli.field(n, "worker", env=via_b) == "w2"


def test_a_spec_change_to_stopped_stops_the_vm(fleet):
    """PUT /vms/NAME with powerState "stopped" (a terminal state in Orchard): the worker sees
    the new generation, stops the VM, keeps it on disk and reports the running condition false
    and the generation it acted on."""
    api = pinned_api(fleet.b, "bootstrap-admin", ADMIN, fleet.a.cert[0])
    name = fleet.keep["w2"][0]
    vm = api.ok("GET", f"/vms/{name}")
    local = f"orchard-{name}-{vm['uid']}-{vm.get('restart_count', 0)}"
    w2 = fleet.w2
    assert w2.local_vms()[local]["Running"]
    vm["powerState"] = "stopped"
    gen = api.ok("PUT", f"/vms/{name}", vm)["generation"]
    assert gen == vm["generation"] + 1

    def running_condition(v):
        return next((c["state"] for c in v.get("conditions", []) if c["type"] == "running"), None)

    wait_for("the worker to stop it", lambda: not w2.local_vms()[local]["Running"], timeout=60)
    wait_for("the stop to be reported",
             lambda: (lambda v: v.get("observedGeneration") == gen and
                      running_condition(v) == "false")(api.ok("GET", f"/vms/{name}")),
             timeout=60)
    time.sleep(3)  # a few more rounds: it stays stopped, on disk
    assert local in w2.local_vms() and not w2.local_vms()[local]["Running"]


def test_a_restarted_worker_leaves_a_stopped_vm_stopped(fleet):
    """The VM stopped through the API above stays stopped when its worker restarts (a killed
    worker comes back and finds it on disk: it must not run it again), and, as Orchard, its
    terminal power state cannot be left."""
    api = pinned_api(fleet.b, "bootstrap-admin", ADMIN, fleet.a.cert[0])
    name = fleet.keep["w2"][0]
    vm = api.ok("GET", f"/vms/{name}")
    assert vm["powerState"] == "stopped"
    local = f"orchard-{name}-{vm['uid']}-{vm.get('restart_count', 0)}"
    w2 = fleet.w2
    others = {n: w2.run_pid(n) for n in w2.local_vms() if n != local}
    seen = len(w2.proc.text())
    w2.proc.kill9()
    w2.start()
    wait_for("w2 to adopt its running VMs",
             lambda: w2.proc.text()[seen:].count("adopting VM") >= len(others), timeout=60)
    time.sleep(6)  # a few reconciliation rounds
    assert not w2.local_vms()[local]["Running"]
    assert {n: w2.run_pid(n) for n in others} == others  # the others adopted as they ran
    assert api.ok("GET", f"/vms/{name}")["status"] == "running"
    vm = api.ok("GET", f"/vms/{name}")
    vm["powerState"] = "running"
    r = api.put(f"/vms/{name}", vm)
    assert r.status_code == 412
    assert "cannot transition from a terminal power state" in r.json()["message"]
