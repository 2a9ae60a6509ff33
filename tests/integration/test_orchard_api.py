# SPDX-License-Identifier: Apache-2.0
"""`orchard controller run` against a real 3-member etcd cluster, through an independent client
written from Orchard's API shapes (requests, websocket-client), with fake workers. See
orchard_fixtures.py. No QEMU here: the fleet tests with real tart VMs live elsewhere."""
import base64
import json
import os
import re
import socket
import subprocess
import threading
import time
import uuid

import pytest
import requests
import websocket

from conftest import free_port
from orchard_fixtures import (ORCHARD_BIN, TOKEN, Controller, EtcdCluster, FakeWorker, vm_body,
                              wait_until)


def ws_close_reason(c):
    """The code and reason of the close frame the controller sends next."""
    try:
        while True:
            op, data = c.recv_data(control_frame=True)
            if op == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(data[:2], "big"), data[2:].decode()
    finally:
        c.close()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    c = EtcdCluster(tmp_path_factory.mktemp("etcd"))
    yield c
    c.stop()


@pytest.fixture
def prefix():
    """Each test gets its own key prefix in the shared cluster."""
    return f"/t-{uuid.uuid4().hex[:8]}/"


@pytest.fixture
def ctl(etcd, prefix, tmp_path):
    c = Controller(tmp_path / "c1", etcd.endpoints, prefix=prefix)
    yield c
    c.stop()


def test_crud_status_codes_and_shapes(ctl):
    api = ctl.api()
    info = api.ok("GET", "/controller/info")
    # rpc-v1 is Orchard's gRPC channel, which we do not serve
    assert info["capabilities"] == ["vm-state-endpoint", "rpc-v2"]

    vm = api.ok("POST", "/vms", vm_body("vm-1", labels={"a": "b"}))
    assert vm["status"] == "pending"
    assert vm["conditions"] == [{"type": "scheduled", "state": "false"}]
    assert vm["localName"] == f"orchard-vm-1-{vm['uid']}-0"
    assert vm["restart_policy"] == "Never" and vm["imagePullPolicy"] == "IfNotPresent"
    assert vm["restarted_at"] == "0001-01-01T00:00:00Z" and vm["generation"] == 0
    # Orchard's defaults stay the API's: darwin/arm64/tart and the tart-vms resource
    d = api.ok("POST", "/vms", {"name": "mac", "image": "x"})
    assert (d["os"], d["arch"], d["runtime"]) == ("darwin", "arm64", "tart")
    assert d["resources"] == {"org.cirruslabs.tart-vms": 1}

    r = api.post("/vms", vm_body("vm-1"))
    assert r.status_code == 409 and r.json()["message"] == "VM with this name already exists"
    assert api.get("/vms/nope").status_code == 404
    assert api.delete("/vms/nope").status_code == 404
    assert {v["name"] for v in api.ok("GET", "/vms")} == {"vm-1", "mac"}

    # spec update: generation moves only on a change; os is immutable (412)
    got = api.ok("GET", "/vms/vm-1")
    assert api.ok("PUT", "/vms/vm-1", got)["generation"] == 0
    got["powerState"] = "stopped"
    assert api.ok("PUT", "/vms/vm-1", got)["generation"] == 1
    got["os"] = "darwin"
    r = api.put("/vms/vm-1", got)
    assert r.status_code == 412 and "cannot be modified" in r.json()["message"]

    # state update by a worker: started_at on the first running, failed is terminal
    st = api.ok("PUT", "/vms/mac/state", {"status": "running"})
    assert st["started_at"] != "0001-01-01T00:00:00Z"
    api.ok("PUT", "/vms/mac/state", {"status": "failed", "status_message": "boom"})
    r = api.put("/vms/mac/state", {"status": "running"})
    assert r.status_code == 412
    assert api.get("/vms/mac").json()["status"] == "failed"

    # events with cursor paging, both orders
    evs = [{"kind": "log_line", "timestamp": 1700000000 + i, "payload": f"line {i}"}
           for i in range(7)]
    api.ok("POST", "/vms/vm-1/events", evs)
    seen, cursor = [], None
    while True:
        params = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        r = api.get("/vms/vm-1/events", params=params)
        assert r.status_code == 200
        seen += [e["payload"] for e in r.json()]
        cursor = r.headers.get("X-Next-Cursor")
        if not cursor:
            break
    assert seen == [f"line {i}" for i in range(7)]
    desc = api.ok("GET", "/vms/vm-1/events", params={"order": "desc", "limit": 2})
    assert [e["payload"] for e in desc] == ["line 6", "line 5"]
    assert api.get("/vms/vm-1/events", params={"limit": "0"}).status_code == 400
    assert api.get("/vms/vm-1/events", params={"cursor": "!!"}).status_code == 400

    # filters
    assert api.ok("GET", "/vms", params={"filter": "worker=nobody"}) == []
    assert api.get("/vms", params={"filter": "worker"}).status_code == 412

    # delete takes the events along
    api.ok("DELETE", "/vms/vm-1")
    assert api.get("/vms/vm-1").status_code == 404
    api.ok("POST", "/vms", vm_body("vm-1"))
    assert api.ok("GET", "/vms/vm-1/events") == []

    # cluster settings
    cs = api.ok("GET", "/cluster-settings")
    assert cs["schedulerProfile"] == "optimize-utilization"
    assert api.put("/cluster-settings", {"schedulerProfile": "random"}).status_code == 400
    assert api.ok("PUT", "/cluster-settings", {"schedulerProfile": "distribute-load"})[
        "schedulerProfile"] == "distribute-load"
    r = api.post("/vms", vm_body("hd", hostDirs=[{"name": "a", "path": "/etc"}]))
    assert r.status_code == 400 and "disallowed by policy" in r.json()["message"]


def test_auth_and_roles(ctl):
    admin = ctl.api()
    sa = admin.ok("POST", "/service-accounts", {"name": "reader", "roles": ["compute:read"]})
    assert len(sa["token"]) == 36  # a UUID when none is given
    assert admin.post("/service-accounts", {"name": "reader"}).status_code == 409
    r = admin.post("/service-accounts", {"name": "x", "roles": ["root"]})
    assert r.status_code == 412 and r.json()["message"] == 'unsupported role "root"'
    reader = ctl.api("reader", sa["token"])
    assert reader.ok("GET", "/vms") == []
    r = reader.post("/vms", vm_body("nope"))
    # a missing role is Orchard's 401, with the roles named
    assert r.status_code == 401
    assert r.json()["message"] == "all of the following roles must be present: compute:write"
    assert reader.get("/service-accounts").status_code == 401
    assert ctl.api(None).get("/vms").status_code == 401
    assert ctl.api("reader", "wrong").get("/vms").status_code == 401
    assert ctl.api("ghost", "x").get("/vms").status_code == 401
    # no roles at all still reads controller/info, as in Orchard
    nobody = admin.ok("POST", "/service-accounts", {"name": "nobody", "token": "t0k"})
    assert ctl.api("nobody", nobody["token"]).get("/controller/info").status_code == 200
    # token rotation: the old one stops working at once
    admin.ok("PUT", "/service-accounts/reader", {"name": "reader", "token": "new",
                                                 "roles": ["compute:read"]})
    assert reader.get("/vms").status_code == 401
    assert ctl.api("reader", "new").get("/vms").status_code == 200
    admin.ok("DELETE", "/service-accounts/reader")
    assert ctl.api("reader", "new").get("/vms").status_code == 401
    # compute:connect suffices for ip (any of write/connect), not for create
    conn = admin.ok("POST", "/service-accounts", {"name": "conn", "roles": ["compute:connect"]})
    c = ctl.api("conn", conn["token"])
    admin.ok("POST", "/vms", vm_body("v"))
    assert c.get("/vms/v/ip").status_code != 401
    assert c.post("/vms", vm_body("w")).status_code == 401
    # WebSocket routes asked without an upgrade check the credentials first, as Orchard does
    for path in ["/vms/v/port-forward?port=22", "/vms/v/exec", "/workers/w/port-forward?port=1",
                 "/rpc/watch?workerName=w", "/rpc/port-forward?session=s"]:
        assert ctl.api(None).get(path).status_code == 401, path
        assert ctl.api("reader", "wrong").get(path).status_code == 401, path
        assert admin.get(path).status_code == 400, path
    assert c.get("/workers/w/port-forward?port=1").status_code == 401
    assert c.get("/rpc/watch?workerName=w").status_code == 401
    assert c.get("/vms/v/port-forward?port=22").status_code == 400


def test_bad_input_writes_nothing(ctl, etcd, prefix):
    api = ctl.api()
    before, _ = etcd.range_prefix(prefix)
    cases = [
        ("POST", "/vms", b"{not json", 400),
        ("POST", "/vms", b'{"name":"a","image":"i","cpu":"two"}', 400),
        ("POST", "/vms", b'{"name":"a","image":"i","sneaky":true}', 400),
        ("POST", "/vms", b'{"name":"a","name":"b","image":"i"}', 400),
        ("POST", "/vms", b'{"name":"a/b","image":"i"}', 412),
        ("POST", "/vms", b'{"name":"","image":"i"}', 412),
        ("POST", "/vms", b'{"name":"a","image":"i","os":"windows"}', 400),
        ("POST", "/vms", json.dumps({"name": "x" * 300, "image": "i"}).encode(), 412),
        ("POST", "/vms", b'[]', 400),
        ("POST", "/workers", b'{"name":"w!","machine_id":"m"}', 412),
        ("POST", "/workers", b'{"name":"w","resources":{"cpu":-1}}', 400),
        ("POST", "/service-accounts", b'{"name":"s","roles":"admin"}', 400),
        ("PUT", "/cluster-settings", b'{"hostDirPolicies":[{"pathPrefix":""}]}', 400),
    ]
    for method, path, body, status in cases:
        r = api.req(method, path, data=body, headers={"Content-Type": "application/json"})
        assert r.status_code == status, (path, body, r.status_code, r.text)
        assert "message" in r.json()
    # an oversized body is refused before it is read
    big = b'{"name":"big","image":"' + b"x" * (5 << 20) + b'"}'
    try:
        r = api.req("POST", "/vms", data=big)
        assert r.status_code == 413
    except requests.ConnectionError:
        pass  # the server may close while we still send: also a refusal
    # a chunked body (no length): refused, libwebsockets does not decode those
    try:
        r = api.req("POST", "/vms", data=iter([b'{"name":"c","image":"i"}']))
        assert r.status_code == 411
    except requests.ConnectionError:
        pass  # closed while the body was still on its way: refused too
    after, _ = etcd.range_prefix(prefix)
    assert [k for k, _, _ in after] == [k for k, _, _ in before], "a refused request wrote"

    # a worker that lies about its machine id cannot take over another's name
    api.ok("POST", "/workers", {"name": "w1", "machine_id": "real", "arch": "amd64"})
    r = api.post("/workers", {"name": "w1", "machine_id": "liar", "arch": "amd64",
                              "resources": {"org.cirruslabs.tart-vms": 100}})
    assert r.status_code == 409
    w = api.ok("GET", "/workers/w1")
    assert w["machine_id"] == "real" and "resources" not in w
    # the controller still serves
    assert api.ok("GET", "/controller/info")


def test_websockets_ip_port_forward_and_drops(ctl):
    api = ctl.api()
    w = FakeWorker(api, "w1")
    api.ok("POST", "/vms", vm_body("v1"))
    wait_until(lambda: api.get("/vms/v1").json().get("worker") == "w1", what="placement")
    assert any("syncVMsAction" in i for i in w.instructions) or \
        wait_until(lambda: any("syncVMsAction" in i for i in w.instructions), what="sync")
    # not running yet: ip answers 408 after its wait, port-forward closes with 4408
    r = api.get("/vms/v1/ip", params={"wait": "1"})
    assert r.status_code == 408, r.text
    api.ok("PUT", "/vms/v1/state", {"status": "running"})
    r = api.get("/vms/v1/ip", params={"wait": "5"})
    assert r.status_code == 200 and r.json() == {"ip": "10.11.12.13"}

    c = api.ws("/vms/v1/port-forward?port=22&wait=5")
    payload = bytes(range(256)) * 2000
    c.send_binary(payload)
    got = b""
    while len(got) < len(payload):
        got += c.recv()
    assert got == payload
    # a client that drops mid-stream: the controller goes on
    c.sock.close()
    c2 = api.ws("/vms/v1/port-forward?port=22&wait=5")
    c2.send_binary(b"again")
    assert c2.recv() == b"again"
    c2.close()
    # bad requests are refused before the upgrade
    for path, status in [("/vms/v1/port-forward?port=0", 400),
                         ("/vms/v1/port-forward?port=x", 400),
                         ("/rpc/watch", 400),
                         ("/rpc/port-forward", 400)]:
        with pytest.raises(websocket.WebSocketBadStatusException) as e:
            api.ws(path)
        assert e.value.status_code == status, path
    # whether the VM or worker exists is etcd's to say, after the upgrade (the event loop
    # does not wait for etcd): a close with 4000 + Orchard's status
    for path, what in [("/vms/nope/port-forward?port=22", "VM"),
                       ("/workers/nope/port-forward?port=22", "worker")]:
        assert ws_close_reason(api.ws(path)) == (4404, f"{what} not found")
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        ctl.api(None).ws("/vms/v1/port-forward?port=22")
    assert e.value.status_code == 401
    # port-forward to the worker itself (admin:write)
    c3 = api.ws(f"/workers/w1/port-forward?port={w.echo_port}&wait=5")
    c3.send_binary(b"worker")
    assert c3.recv() == b"worker"
    c3.close()

    # the worker drops its watch channel: requests fail cleanly with 503, then work again
    w.drop_watch()
    r = api.get("/vms/v1/ip", params={"wait": "1"})
    assert r.status_code == 503 and "not connected" in r.json()["message"]
    w.open_watch()
    r = api.get("/vms/v1/ip", params={"wait": "5"})
    assert r.status_code == 200
    w.stop()


@pytest.mark.parametrize("election", [True, False], ids=["one-scheduler", "both-schedule"])
def test_two_controllers_never_double_place(etcd, prefix, tmp_path, election):
    """Normally one controller schedules (the election); with it off, both schedule at the same
    moment and only the placement transactions keep a VM from being placed twice."""
    extra = () if election else ("--experimental-no-scheduler-election",)
    a = Controller(tmp_path / "a", etcd.endpoints, prefix=prefix, extra=extra)
    b = Controller(tmp_path / "b", etcd.endpoints, prefix=prefix, extra=extra)
    try:
        api_a, api_b = a.api(), b.api()
        workers = [FakeWorker(api_a if i % 2 else api_b, f"w{i}",
                              resources={"org.cirruslabs.tart-vms": 5}, watch=False)
                   for i in range(4)]
        n = 40  # 20 slots for 40 VMs: half must wait, none may be placed twice
        errors = []

        def create(api, names):
            for name in names:
                r = api.post("/vms", vm_body(name, resources={"org.cirruslabs.tart-vms": 1}))
                if r.status_code != 200:
                    errors.append((name, r.status_code, r.text))
        names = [f"vm-{i:03d}" for i in range(n)]
        ts = [threading.Thread(target=create, args=(api_a, names[0::2])),
              threading.Thread(target=create, args=(api_b, names[1::2]))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors

        def scheduled():
            vms = api_a.ok("GET", "/vms")
            return [v for v in vms if v.get("worker")]
        wait_until(lambda: len(scheduled()) == 20, timeout=60, what="20 placements")
        time.sleep(2)  # both schedulers get more rounds: still nothing more may move
        placed = scheduled()
        assert len(placed) == 20
        per_worker = {}
        for v in placed:
            per_worker[v["worker"]] = per_worker.get(v["worker"], 0) + 1
        assert all(c <= 5 for c in per_worker.values()), per_worker

        # etcd's history: each VM went from unscheduled to a worker exactly once
        kvs, _ = etcd.range_prefix(prefix + "vms/")
        history = etcd.history(prefix + "vms/", max(m for _, _, m in kvs))
        placements = {}
        for typ, key, value, _ in history:
            if typ != "PUT":
                continue
            v = json.loads(value)
            if v.get("worker"):
                placements.setdefault(v["name"], set()).add(v["worker"])
        assert len(placements) == 20
        assert all(len(ws) == 1 for ws in placements.values()), placements
        for w in workers:
            w.stop()
    finally:
        a.stop()
        b.stop()


def test_lapsed_worker_fails_and_vm_moves_on_failure(etcd, prefix, tmp_path):
    ctl = Controller(tmp_path / "c", etcd.endpoints, prefix=prefix, offline_timeout="2s")
    try:
        api = ctl.api()
        wa = FakeWorker(api, "wa", watch=False, heartbeat=0.3)
        wb = FakeWorker(api, "wb", watch=False, heartbeat=0.3, paused=True)
        api.ok("POST", "/vms", vm_body("keep", restart_policy="OnFailure"))
        api.ok("POST", "/vms", vm_body("never"))
        wait_until(lambda: all(api.ok("GET", f"/vms/{n}").get("worker") == "wa"
                               for n in ("keep", "never")), what="placement on wa")
        wb.set_paused(False)
        wa.stop()  # its lease lapses after 2 s
        wait_until(lambda: api.ok("GET", "/vms/never")["status"] == "failed", timeout=30,
                   what="the Never VM failed")
        never = api.ok("GET", "/vms/never")
        assert never["status_message"] == \
            "VM is assigned to a worker that lost connection with the controller"
        moved = wait_until(lambda: (lambda v: v if v.get("worker") == "wb" else None)(
            api.ok("GET", "/vms/keep")), timeout=30, what="OnFailure VM on wb")
        assert moved["restart_count"] == 1 and moved["status"] == "pending"
        assert moved["localName"].endswith("-1")
        # the Never VM stays failed and unscheduled
        time.sleep(1.5)
        never = api.ok("GET", "/vms/never")
        assert never["status"] == "failed"
        assert {"type": "scheduled", "state": "false"} in never["conditions"]
        wb.stop()
    finally:
        ctl.stop()


def watch_vm(ctl, api, name, count):
    """GET /vms/<name>?watch=true read in a thread: the list its messages land in, and a
    function that waits for `count` of them (20 s at most) and closes the stream."""
    lines = []
    r = api.s.get(ctl.base + f"/vms/{name}", params={"watch": "true"}, stream=True, timeout=30)
    assert r.status_code == 200

    def read():
        # no Content-Length and no chunks: the body ends when the connection does, so read
        # byte by byte (chunk_size=None would wait for the end)
        for line in r.iter_lines(chunk_size=1):
            if line:
                lines.append(json.loads(line))
            if len(lines) >= count:
                return
    t = threading.Thread(target=read, daemon=True)
    t.start()

    def finish():
        t.join(timeout=20)
        r.close()
    return lines, finish


def test_watch_vm_stream(ctl):
    api = ctl.api()
    api.ok("POST", "/vms", vm_body("wv"))
    lines, finish = watch_vm(ctl, api, "wv", 3)
    wait_until(lambda: len(lines) >= 1, what="ADDED")
    api.ok("PUT", "/vms/wv/state", {"status": "running"})
    api.ok("DELETE", "/vms/wv")
    finish()
    assert [m["type"] for m in lines] == ["ADDED", "MODIFIED", "DELETED"]
    assert lines[0]["object"]["name"] == "wv" and lines[1]["object"]["status"] == "running"


def test_watch_stream_of_a_client_that_stops_reading_is_cut(ctl):
    """A ?watch=true client that reads nothing must not make the controller buffer every
    change for it: once it is far behind (8 MiB) the controller closes the stream."""
    api = ctl.api()
    api.ok("POST", "/vms", vm_body("lag"))
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", ctl.port))
    auth = base64.b64encode(f"bootstrap-admin:{TOKEN}".encode()).decode()
    s.sendall(f"GET /v1/vms/lag?watch=true HTTP/1.1\r\nHost: x\r\n"
              f"Authorization: Basic {auth}\r\n\r\n".encode())
    # 64 changes of 256 KiB each (an etcd request stays under its 1.5 MiB limit): 16 MiB
    for i in range(64):
        api.ok("PUT", "/vms/lag/state", {"status": "pending",
                                         "status_message": f"{i}:" + "x" * (256 << 10)})
    # what was sent before the cut may be read; then the stream must end
    s.settimeout(60)
    got = 0
    while True:
        try:
            d = s.recv(1 << 20)
        except ConnectionResetError:
            break
        if not d:
            break
        got += len(d)
    s.close()
    assert got < (16 << 20), f"read {got} bytes: the controller kept all of it"
    assert "behind: closing it" in ctl.log_path.read_text()


def test_tls_bootstrap_fingerprint(etcd, prefix, tmp_path):
    c = Controller(tmp_path / "tls", etcd.endpoints, prefix=prefix, tls=True)
    try:
        out = c.log_path.read_text()
        assert "Certificate SHA-256 fingerprint: " in out
        fp = out.split("Certificate SHA-256 fingerprint: ")[1].split(".")[0]
        import ssl
        import hashlib
        pem = (tmp_path / "tls" / "data" / "controller.crt").read_text()
        der = ssl.PEM_cert_to_DER_cert(pem)
        assert fp == " ".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
        key = tmp_path / "tls" / "data" / "controller.key"
        assert oct(key.stat().st_mode & 0o777) == "0o600"
        # the certificate is pinned as Orchard's clients pin it: by name orchard-controller
        ctx = ssl.create_default_context(cadata=pem)
        import socket as so
        with so.create_connection(("127.0.0.1", c.port)) as s:
            with ctx.wrap_socket(s, server_hostname="orchard-controller") as t:
                cert = t.getpeercert()
                assert ("DNS", "orchard-controller") in cert["subjectAltName"]
                assert dict(x[0] for x in cert["subject"])["commonName"] == "Orchard Controller"
        assert c.api().ok("GET", "/controller/info")
    finally:
        c.stop()


def test_etcd_down_503_then_recovery(tmp_path):
    cluster = EtcdCluster(tmp_path / "etcd", n=3)
    c = Controller(tmp_path / "c", cluster.endpoints)
    try:
        api = c.api()
        api.ok("POST", "/vms", vm_body("before"))
        for i in range(3):
            cluster.kill(i)
        r = api.get("/vms")
        assert r.status_code == 503, r.text
        assert "etcd" in r.json()["message"]
        r = api.post("/vms", vm_body("during"))
        assert r.status_code == 503
        for i in range(3):
            cluster.start(i)
        cluster.wait_healthy()
        wait_until(lambda: api.get("/vms").status_code == 200, timeout=60,
                   what="the API back after etcd")
        assert [v["name"] for v in api.ok("GET", "/vms")] == ["before"]
        api.ok("POST", "/vms", vm_body("after"))
    finally:
        c.stop()
        cluster.stop()


def test_kill9_controller_and_etcd_member(tmp_path):
    cluster = EtcdCluster(tmp_path / "etcd", n=3)
    a = Controller(tmp_path / "a", cluster.endpoints)
    b = Controller(tmp_path / "b", cluster.endpoints)
    try:
        api_a, api_b = a.api(), b.api()
        w = FakeWorker(api_b, "w", resources={"org.cirruslabs.tart-vms": 100}, watch=False)
        for i in range(10):
            api_a.ok("POST", "/vms", vm_body(f"v{i}"))
        a.kill()
        cluster.kill(0)  # the member both controllers talked to first
        for i in range(10, 20):
            api_b.ok("POST", "/vms", vm_body(f"v{i}"))
        wait_until(lambda: sum(1 for v in api_b.ok("GET", "/vms") if v.get("worker")) == 20,
                   timeout=60, what="all 20 VMs placed by the surviving controller")
        names = sorted(v["name"] for v in api_b.ok("GET", "/vms"))
        assert names == sorted(f"v{i}" for i in range(20))
        w.stop()
    finally:
        a.stop()
        b.stop()
        cluster.stop()


def test_kill9_scheduling_leader_standby_takes_over(etcd, prefix, tmp_path):
    """One controller schedules (it holds live/scheduler on its lease), the other stands by and
    passes its API's kicks on; kill -9 of the leader: its lease lapses, the standby takes the
    key over and places what was created meanwhile, each VM exactly once."""
    a = Controller(tmp_path / "a", etcd.endpoints, prefix=prefix)
    b = Controller(tmp_path / "b", etcd.endpoints, prefix=prefix)
    try:
        def holder():
            kvs, _ = etcd.range_prefix(prefix + "live/scheduler")
            return next((v for k, v, _ in kvs if k == prefix + "live/scheduler"), None)

        def controller_of(ident):
            kvs, _ = etcd.range_prefix(prefix + f"live/controllers/{ident}")
            url = json.loads(kvs[0][1])["url"]
            return next(c for c in (a, b) if url.endswith(f":{c.port}"))
        leader = controller_of(wait_until(holder, what="a scheduling leader"))
        standby = b if leader is a else a
        api = standby.api()
        w = FakeWorker(api, "w", resources={"org.cirruslabs.tart-vms": 100}, watch=False)
        for i in range(5):
            api.ok("POST", "/vms", vm_body(f"v{i}"))
        wait_until(lambda: sum(1 for v in api.ok("GET", "/vms") if v.get("worker")) == 5,
                   what="placements by the leader of VMs created on the standby")
        leader.kill()
        for i in range(5, 10):
            api.ok("POST", "/vms", vm_body(f"v{i}"))
        # the leader's lease (10 s) lapses, then the standby's watch sees the key go
        wait_until(lambda: sum(1 for v in api.ok("GET", "/vms") if v.get("worker")) == 10,
                   timeout=60, what="placements by the standby after the leader's kill")
        assert controller_of(holder()) is standby
        kvs, _ = etcd.range_prefix(prefix + "vms/")
        # etcd's history: each VM went from no worker to a worker exactly once
        placements, worker = {}, {}
        for typ, key, value, _ in etcd.history(prefix + "vms/", max(m for _, _, m in kvs)):
            v = json.loads(value) if typ == "PUT" else {}
            if v.get("worker") and not worker.get(key):
                placements[v["name"]] = placements.get(v["name"], 0) + 1
            worker[key] = v.get("worker")
        assert placements == {f"v{i}": 1 for i in range(10)}
        w.stop()
    finally:
        a.stop()
        b.stop()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "tls"])
def test_port_forward_and_ip_across_controllers(etcd, prefix, tmp_path, tls):
    """The client asks controller A; the worker's channel and dial-back are on controller B:
    the instruction travels through etcd and B relays the dial-back to A (pinning A's
    certificate as A published it in etcd)."""
    a = Controller(tmp_path / "a", etcd.endpoints, prefix=prefix, tls=tls)
    b = Controller(tmp_path / "b", etcd.endpoints, prefix=prefix, tls=tls)
    try:
        api_a, api_b = a.api(), b.api()
        w = FakeWorker(api_b, "wb")
        api_a.ok("POST", "/vms", vm_body("x"))
        wait_until(lambda: api_a.ok("GET", "/vms/x").get("worker") == "wb", what="placement")
        api_b.ok("PUT", "/vms/x/state", {"status": "running"})
        r = api_a.get("/vms/x/ip", params={"wait": "5"})
        assert r.status_code == 200 and r.json()["ip"] == "10.11.12.13", r.text
        c = api_a.ws("/vms/x/port-forward?port=22&wait=5")
        data = b"across" * 50000
        c.send_binary(data)
        got = b""
        while len(got) < len(data):
            got += c.recv()
        assert got == data
        c.close()
        if tls:
            # B pins A's certificate as A published it: with another one there, no relay
            kvs, _ = etcd.range_prefix(prefix + "live/controllers/")
            for key, value, _ in kvs:
                rec = json.loads(value)
                if rec["url"].endswith(f":{a.port}"):
                    rec["cert"] = (tmp_path / "b" / "data" / "controller.crt").read_text()
                    etcd.put(key, json.dumps(rec))
            c = api_a.ws("/vms/x/port-forward?port=22&wait=3")
            c.send_binary(b"hi")
            c.settimeout(3)
            try:
                got = c.recv()
            except (websocket.WebSocketException, TimeoutError):
                got = b""
            assert got != b"hi"
            c.close()
        w.stop()
    finally:
        a.stop()
        b.stop()


def _dial_back_closes(api, session, timeout=10):
    """Open a worker's dial-back for session; True when the controller closes it in time."""
    ws = api.ws(f"/rpc/port-forward?session={session}", timeout=timeout)
    try:
        while ws.recv():
            pass
        return True
    except websocket.WebSocketConnectionClosedException:
        return True
    except websocket.WebSocketTimeoutException:
        return False
    finally:
        ws.close()


def test_dial_back_is_never_relayed_in_a_loop(ctl, etcd, prefix):
    """A session key that names this controller but waits nowhere (its removal failed while
    etcd was away) must not make the controller relay the dial-back to itself, and a dial-back
    relayed by another controller is not relayed again: each is closed at once."""
    kvs, _ = etcd.range_prefix(prefix + "live/controllers/")
    assert len(kvs) == 1
    me = kvs[0][0].rsplit("/", 1)[1]
    etcd.put(prefix + "live/sessions/stale-session", json.dumps({"controller": me}))
    api = ctl.api()
    assert _dial_back_closes(api, "stale-session"), "the stale dial-back was relayed"
    # the stale key is cleaned up on the way
    assert etcd.range_prefix(prefix + "live/sessions/")[0] == []
    # a relayed dial-back for a session nobody waits for here is not relayed a second time
    etcd.put(prefix + "live/sessions/other-session", json.dumps({"controller": "elsewhere"}))
    assert _dial_back_closes(api, "other-session&relayed=1")
    # the controller still serves
    assert api.get("/controller/info").status_code == 200


def test_controllers_bootstrapping_at_once_print_a_token_that_works(etcd, tmp_path):
    """Controllers started at the same moment on an empty cluster, without
    ORCHARD_BOOTSTRAP_ADMIN_TOKEN: every token a banner prints must authenticate."""
    env = {k: v for k, v in os.environ.items() if k != "ORCHARD_BOOTSTRAP_ADMIN_TOKEN"}
    for attempt in range(3):
        prefix = f"/boot-{uuid.uuid4().hex[:8]}/"
        procs = []
        for i in range(3):
            port = free_port()
            log = tmp_path / f"a{attempt}-c{i}.log"
            with open(log, "wb") as f:
                p = subprocess.Popen([ORCHARD_BIN, "controller", "run", "-l", f"127.0.0.1:{port}",
                                      "--etcd", etcd.endpoints, "--etcd-prefix", prefix,
                                      "--data-dir", str(tmp_path / f"d{i}"), "--insecure-no-tls"],
                                     stdout=f, stderr=subprocess.STDOUT, env=env)
            procs.append((p, port, log))
        try:
            for p, port, log in procs:
                wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/v1/",
                                                timeout=1).status_code == 200,
                           what=f"controller on {port}")
            tokens = [m for _, _, log in procs
                      for m in re.findall(r"Service account token: (\S+)", log.read_text())]
            assert tokens, "no banner printed a token"
            port = procs[0][1]
            for t in tokens:
                r = requests.get(f"http://127.0.0.1:{port}/v1/controller/info",
                                 auth=("bootstrap-admin", t), timeout=10)
                assert r.status_code == 200, f"a printed token does not work: {r.status_code}"
        finally:
            for p, _, _ in procs:
                p.terminate()
                p.wait(timeout=10)


def test_worker_that_does_not_read_its_watch_channel_is_dropped(ctl, etcd, prefix):
    """Instructions for a worker that stops reading its watch channel must not pile up in the
    controller without end: past a cap the channel is dropped (the worker reconnects)."""
    api = ctl.api()
    ws = api.ws("/rpc/watch?workerName=deaf")
    wait_until(lambda: etcd.range_prefix(prefix + "live/watchers/")[0], what="the hold")
    # 12 instructions of 1 MiB each for it (through etcd, as any controller sends them)
    for i in range(12):
        etcd.put(f"{prefix}live/notify/deaf/n{i}",
                 json.dumps({"syncVMsAction": {}, "pad": "x" * (1 << 20)}))
    wait_until(lambda: "does not read its watch channel" in ctl.log_path.read_text(),
               timeout=60, what="the controller to give up on the channel")
    got = 0
    ws.settimeout(30)
    try:
        while True:
            m = ws.recv()
            if not m:
                break
            got += len(m)
    except websocket.WebSocketConnectionClosedException:
        pass
    assert got < 12 << 20
    # and it no longer claims to hold the worker
    wait_until(lambda: not etcd.range_prefix(prefix + "live/watchers/")[0],
               what="the watcher key released")


def test_a_large_vm_does_not_break_listing_scheduling_or_watches(ctl):
    """etcd stores values up to 1.5 MiB; a VM of 900 KB (a big startup script) must not make
    every range over vms/ fail (GET /vms, the scheduler) or stop the controller's watches."""
    api = ctl.api()
    w = FakeWorker(api, "wbig", resources={"org.cirruslabs.tart-vms": 10})
    try:
        api.ok("POST", "/vms", vm_body("big", startup_script={"script_content": "x" * 900000}))
        names = sorted(v["name"] for v in api.ok("GET", "/vms"))
        assert names == ["big"]
        api.ok("POST", "/vms", vm_body("small"))
        wait_until(lambda: api.ok("GET", "/vms/small").get("worker") == "wbig",
                   what="the small VM placed")
        # the vms/ watch went past the big VM's revision: changes still reach a watcher
        lines, finish = watch_vm(ctl, api, "small", 2)
        wait_until(lambda: lines, what="ADDED")
        api.ok("PUT", "/vms/small/state", {"status": "running"})
        finish()
        assert [m["type"] for m in lines] == ["ADDED", "MODIFIED"]
    finally:
        w.stop()


def test_events_append_while_the_worker_reports_state(ctl):
    """Appending events compares the VM's identity, not its last change: a worker reporting
    state all the time does not turn appends into 503s."""
    api = ctl.api()
    api.ok("POST", "/vms", vm_body("busy"))
    stop = threading.Event()
    reported = []

    def report(i):
        mine = ctl.api()
        n = 0
        while not stop.is_set():
            n += 1
            r = mine.put("/vms/busy/state", {"status": "pending", "status_message": f"{i}-{n}"})
            # eight reporters of one VM may also make each other retry: not what is tested
            reported.append(r.status_code)

    threads = [threading.Thread(target=report, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    try:
        # 100 events per append: one etcd transaction each, which a state report landing
        # between its read and its commit used to make retry
        codes = [api.post("/vms/busy/events",
                          [{"kind": "log", "timestamp": 100 * b + i, "payload": "x" * 200}
                           for i in range(100)]).status_code
                 for b in range(15)]
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert codes == [200] * 15, codes
    assert reported.count(200) > 15
    got = api.ok("GET", "/vms/busy/events")
    assert [e.get("timestamp", 0) for e in got] == list(range(1500))


def test_long_url_arguments_are_never_dropped(ctl):
    """An argument longer than 4 KiB used to be dropped with every one after it."""
    api = ctl.api()
    api.ok("POST", "/vms", vm_body("args"))
    r = api.get("/vms/args/events", params={"junk": "a" * 5000, "limit": "0"})
    assert r.status_code == 400 and "invalid limit" in r.json()["message"], r.text
    r = api.get("/vms/args/events", params={"limit": "1", "junk": "a" * 5000})
    assert r.status_code == 200, r.text
    # a request beyond the 8 KiB header space is refused (libwebsockets hangs up), never
    # served with its arguments cut short
    with pytest.raises(requests.ConnectionError):
        api.get("/vms/args/events", params={"junk": "a" * 20000, "limit": "0"})
    assert api.get("/vms/args/events", params={"limit": "1"}).status_code == 200


def test_a_stale_heartbeat_does_not_make_a_worker_alive(etcd, prefix, tmp_path):
    """As in Orchard, a worker whose last_seen is older than the offline timeout is offline:
    a late (or replayed) heartbeat is recorded, but places nothing there."""
    ctl = Controller(tmp_path / "c", etcd.endpoints, prefix=prefix, offline_timeout="2s")
    try:
        api = ctl.api()
        old = "2001-02-03T04:05:06Z"
        api.ok("POST", "/workers", {"name": "late", "machine_id": "m", "arch": "amd64",
                                    "runtime": "tart", "last_seen": old})
        api.ok("POST", "/vms", vm_body("v"))
        for _ in range(3):
            api.ok("PUT", "/workers/late", {"name": "late", "last_seen": old})
            time.sleep(1)
        assert api.ok("GET", "/workers/late")["last_seen"] == old
        # several scheduler rounds (1 s apart) found no worker alive
        assert not api.ok("GET", "/vms/v").get("worker")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        api.ok("PUT", "/workers/late", {"name": "late", "last_seen": now})
        wait_until(lambda: api.ok("GET", "/vms/v").get("worker") == "late", timeout=30,
                   what="placement after a current heartbeat")
    finally:
        ctl.stop()


def test_a_hung_etcd_member_is_passed_over(etcd, prefix, tmp_path):
    """SIGSTOP of the member the controller talks to (and watches through): it costs one call
    timeout, then everything goes on through the others: requests, the waits of ip and
    port-forward, and the watches that carry instructions to workers and answers back."""
    ctl = Controller(tmp_path / "c", etcd.endpoints, prefix=prefix)
    w = None
    try:
        api = ctl.api()
        w = FakeWorker(api, "w1")
        api.ok("POST", "/vms", vm_body("v"))
        wait_until(lambda: api.ok("GET", "/vms/v").get("worker") == "w1", what="placement")
        api.ok("PUT", "/vms/v/state", {"status": "running"})
        assert api.ok("GET", "/vms/v/ip", params={"wait": "5"}) == {"ip": "10.11.12.13"}
        c = api.ws("/vms/v/port-forward?port=22&wait=5")
        c.send_binary(b"before")
        assert c.recv() == b"before"

        etcd.pause(0)  # the first member: the one every call and both watches started on
        try:
            r = api.get("/vms/v/ip", params={"wait": "30"}, timeout=90)
            assert r.status_code == 200 and r.json() == {"ip": "10.11.12.13"}, r.text
            c2 = api.ws("/vms/v/port-forward?port=22&wait=30", timeout=90)
            c2.send_binary(b"during")
            assert c2.recv() == b"during"
            c2.close()
            # the session opened before the member hung kept working all along
            c.send_binary(b"still")
            assert c.recv() == b"still"
            assert api.post("/service-accounts", {"name": "late", "token": "t"}).status_code \
                == 200
            late = ctl.api("late", "t")
            with pytest.raises(websocket.WebSocketBadStatusException) as e:
                late.ws("/vms/v/port-forward?port=22")
            assert e.value.status_code == 401  # no roles: the mirror knows the new account
        finally:
            etcd.resume(0)
        c.close()
    finally:
        if w:
            w.stop()
        ctl.stop()
        etcd.wait_healthy()
