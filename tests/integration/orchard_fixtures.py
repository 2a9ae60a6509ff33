# SPDX-License-Identifier: Apache-2.0
"""Real processes for the orchard tests: an etcd cluster (Debian's etcd-server) on loopback
free ports, `orchard controller run` processes, an independent API client written from
Orchard's API shapes (requests + websocket-client, not our CLI), and fake workers that
register, heartbeat, hold the watch channel and answer resolveIP/portForward like Orchard's
worker does. Every process is ours and is ended by its PID."""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import requests
import websocket

from conftest import ROOT, free_port

ORCHARD_BIN = os.environ.get("ORCHARD_BIN", str(ROOT / "build" / "orchard"))
ETCD_BIN = shutil.which("etcd") or "/usr/bin/etcd"
TOKEN = "test-admin-token"


def wait_until(pred, timeout=30.0, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (requests.RequestException, OSError, ValueError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class EtcdCluster:
    """n members on loopback; kill(i) is SIGKILL, start(i) brings a member back on its data."""

    def __init__(self, workdir: Path, n=3):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.n = n
        self.names = [f"e{i}" for i in range(n)]
        self.client_ports = [free_port() for _ in range(n)]
        self.peer_ports = [free_port() for _ in range(n)]
        self.procs = [None] * n
        self.initial = ",".join(f"{self.names[i]}=http://127.0.0.1:{self.peer_ports[i]}"
                                for i in range(n))
        for i in range(n):
            self.start(i)
        self.wait_healthy()

    @property
    def endpoints(self):
        return ",".join(f"http://127.0.0.1:{p}" for p in self.client_ports)

    def url(self, i):
        return f"http://127.0.0.1:{self.client_ports[i]}"

    def start(self, i):
        d = self.workdir / self.names[i]
        log = open(self.workdir / f"{self.names[i]}.log", "ab")
        self.procs[i] = subprocess.Popen([
            ETCD_BIN, "--name", self.names[i], "--data-dir", str(d),
            "--listen-client-urls", self.url(i), "--advertise-client-urls", self.url(i),
            "--listen-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
            "--initial-cluster", self.initial, "--initial-cluster-state", "new",
            "--initial-cluster-token", f"orchard-test-{self.client_ports[0]}",
            "--heartbeat-interval", "50", "--election-timeout", "500",
        ], stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def kill(self, i):
        p = self.procs[i]
        if p and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=10)
        self.procs[i] = None

    def pause(self, i):
        """SIGSTOP: a member that hangs instead of dying (connections open, no answers)."""
        self.procs[i].send_signal(signal.SIGSTOP)

    def resume(self, i):
        self.procs[i].send_signal(signal.SIGCONT)

    def healthy(self, i):
        try:
            r = requests.get(self.url(i) + "/health", timeout=1)
            return r.status_code == 200 and json.loads(r.text).get("health") == "true"
        except (requests.RequestException, ValueError):
            return False

    def wait_healthy(self, timeout=60):
        wait_until(lambda: any(self.healthy(i) for i in range(self.n) if self.procs[i]),
                   timeout=timeout, what="a healthy etcd")

    def stop(self):
        for i in range(self.n):
            self.kill(i)

    # direct reads, for checks that do not trust the controller
    def _b64(self, s):
        return base64.b64encode(s.encode()).decode()

    def range_prefix(self, prefix):
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        for i in range(self.n):
            if not self.procs[i]:
                continue
            try:
                r = requests.post(self.url(i) + "/v3/kv/range", timeout=5, json={
                    "key": self._b64(prefix), "range_end": self._b64(end)})
                r.raise_for_status()
                j = r.json()
                return [(base64.b64decode(kv["key"]).decode(),
                         base64.b64decode(kv.get("value", "")).decode(),
                         int(kv.get("mod_revision", 0))) for kv in j.get("kvs", [])], \
                    int(j["header"]["revision"])
            except requests.RequestException:
                continue
        raise AssertionError("no etcd member answered")

    def put(self, key, value):
        for i in range(self.n):
            if self.procs[i]:
                requests.post(self.url(i) + "/v3/kv/put", timeout=5, json={
                    "key": self._b64(key), "value": self._b64(value)}).raise_for_status()
                return
        raise AssertionError("no etcd member")

    def history(self, prefix, until_revision):
        """Every change under prefix from revision 1 until the one at until_revision (a
        mod_revision under the prefix), from etcd's watch."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        i = next(i for i in range(self.n) if self.procs[i])
        events = []
        with requests.post(self.url(i) + "/v3/watch", stream=True, timeout=30, json={
                "create_request": {"key": self._b64(prefix), "range_end": self._b64(end),
                                   "start_revision": "1"}}) as r:
            for line in r.iter_lines(chunk_size=None):
                if not line:
                    continue
                res = json.loads(line).get("result", {})
                done = False
                for ev in res.get("events", []):
                    kv = ev["kv"]
                    rev = int(kv.get("mod_revision", 0))
                    events.append((ev.get("type", "PUT"), base64.b64decode(kv["key"]).decode(),
                                   base64.b64decode(kv.get("value", "")).decode(), rev))
                    # a transaction's changes share its revision: take all of them
                    done |= rev >= until_revision
                if done:
                    return events
        return events


class Controller:
    """`orchard controller run` on a free port, plain HTTP unless tls=True."""

    def __init__(self, workdir: Path, etcd_endpoints, prefix="/orchard/", tls=False,
                 offline_timeout="3m", scheduler_interval="1s", extra=(), env=None):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls = tls
        self.scheme = "https" if tls else "http"
        self.base = f"{self.scheme}://127.0.0.1:{self.port}/v1"
        args = [ORCHARD_BIN, "controller", "run", "-l", f"127.0.0.1:{self.port}",
                "--etcd", etcd_endpoints, "--etcd-prefix", prefix,
                "--data-dir", str(workdir / "data"),
                "--worker-offline-timeout", offline_timeout,
                "--scheduler-interval", scheduler_interval, *extra]
        if not tls:
            args.append("--insecure-no-tls")
        e = dict(os.environ)
        e["ORCHARD_BOOTSTRAP_ADMIN_TOKEN"] = TOKEN
        if env:
            e.update(env)
        self.log_path = workdir / f"controller-{self.port}.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=e)
        wait_until(self.ready, timeout=30, what=f"controller on {self.port}")

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"controller exited {self.proc.returncode}:\n"
                                 + self.log_path.read_text())
        try:
            return requests.get(self.base + "/", timeout=1, verify=False).status_code == 200
        except requests.RequestException:
            return False

    def api(self, name="bootstrap-admin", token=TOKEN):
        return Api(self.base, (name, token) if name else None, verify=False)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


class Api:
    """A thin client of Orchard's REST API."""

    def __init__(self, base, auth, verify=True):
        self.base = base
        self.auth = auth
        self.s = requests.Session()
        self.s.verify = verify
        if auth:
            self.s.auth = auth

    def req(self, method, path, **kw):
        kw.setdefault("timeout", 30)
        # explicit: a CA bundle named in the environment would otherwise override the session
        kw.setdefault("verify", self.s.verify)
        return self.s.request(method, self.base + path, **kw)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.req("POST", path, json=body, **kw) if body is not None else \
            self.req("POST", path, **kw)

    def put(self, path, body=None, **kw):
        return self.req("PUT", path, json=body, **kw)

    def delete(self, path, **kw):
        return self.req("DELETE", path, **kw)

    def ok(self, method, path, body=None, **kw):
        r = self.req(method, path, json=body, **kw) if body is not None else \
            self.req(method, path, **kw)
        assert r.status_code == 200, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def ws(self, path, headers=None, **kw):
        url = self.base.replace("http", "ws", 1) + path
        h = {"User-Agent": "orchard-tests"}
        if self.auth:
            h["Authorization"] = "Basic " + base64.b64encode(
                f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
        if headers:
            h.update(headers)
        kw.setdefault("timeout", 30)
        return websocket.create_connection(url, header=h, sslopt={"cert_reqs": 0}, **kw)


def vm_body(name, **kw):
    b = {"name": name, "image": "ghcr.io/cirruslabs/debian:latest", "os": "linux",
         "arch": "amd64", "runtime": "tart", "cpu": 1, "memory": 512}
    b.update(kw)
    return b


class FakeWorker:
    """Registers, heartbeats every `heartbeat` s, holds the watch channel, answers resolveIP
    with a fixed address and portForward by dialing a local echo server (the guest)."""

    def __init__(self, api: Api, name, machine_id=None, resources=None, labels=None,
                 heartbeat=0.5, watch=True, paused=False):
        self.api = api
        self.name = name
        self.machine_id = machine_id or f"machine-{name}"
        self.resources = resources or {"org.cirruslabs.tart-vms": 2}
        self.labels = labels or {}
        self.heartbeat = heartbeat
        self.stopped = threading.Event()
        self.instructions = []
        self.ws = None
        self.paused = paused
        self.echo = socket.socket()
        self.echo.bind(("127.0.0.1", 0))
        self.echo.listen(16)
        self.echo_port = self.echo.getsockname()[1]
        threading.Thread(target=self._echo_loop, daemon=True).start()
        self.register(paused)
        self.hb = threading.Thread(target=self._heartbeat_loop, daemon=True)
        self.hb.start()
        if watch:
            self.open_watch()

    def register(self, paused=False):
        self.api.ok("POST", "/workers", {
            "name": self.name, "machine_id": self.machine_id, "arch": "amd64",
            "runtime": "tart", "resources": self.resources, "labels": self.labels,
            "defaultCPU": 2, "defaultMemory": 1024})
        if paused:
            self.set_paused(True)

    def set_paused(self, paused):
        self.paused = paused
        self.api.ok("PUT", f"/workers/{self.name}", {"name": self.name,
                                                      "scheduling_paused": paused})

    def _heartbeat_loop(self):
        # Orchard's worker GETs itself and PUTs it back with a new last_seen; we send only
        # what the controller takes from a heartbeat, so a test's pause is not undone
        while not self.stopped.wait(self.heartbeat):
            try:
                self.api.put(f"/workers/{self.name}", {
                    "name": self.name, "scheduling_paused": self.paused,
                    "last_seen": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            except requests.RequestException:
                pass

    def open_watch(self):
        self.ws = self.api.ws(f"/rpc/watch?workerName={self.name}")
        threading.Thread(target=self._watch_loop, args=(self.ws,), daemon=True).start()

    def _watch_loop(self, ws):
        while not self.stopped.is_set():
            try:
                m = ws.recv()
            except Exception:  # noqa: BLE001 - the socket closed under us
                return
            if not m:
                return
            ins = json.loads(m)
            self.instructions.append(ins)
            if "resolveIPAction" in ins:
                s = ins["resolveIPAction"]["session"]
                threading.Thread(target=lambda: self.api.post(
                    "/rpc/resolve-ip", params={"session": s, "ip": "10.11.12.13"}),
                    daemon=True).start()
            if "portForwardAction" in ins:
                threading.Thread(target=self._dial_back, args=(ins["portForwardAction"],),
                                 daemon=True).start()

    def _dial_back(self, pf):
        d = self.api.ws(f"/rpc/port-forward?session={pf['session']}")
        t = socket.create_connection(("127.0.0.1", self.echo_port))

        def up():
            while True:
                try:
                    x = d.recv()
                except Exception:  # noqa: BLE001
                    break
                if not x:
                    break
                t.sendall(x if isinstance(x, bytes) else x.encode())
            t.close()

        def down():
            while True:
                try:
                    x = t.recv(65536)
                except OSError:
                    break
                if not x:
                    break
                d.send_binary(x)
            d.close()
        threading.Thread(target=up, daemon=True).start()
        threading.Thread(target=down, daemon=True).start()

    def _echo_loop(self):
        while True:
            try:
                c, _ = self.echo.accept()
            except OSError:
                return
            threading.Thread(target=self._echo_one, args=(c,), daemon=True).start()

    @staticmethod
    def _echo_one(c):
        while True:
            try:
                d = c.recv(65536)
            except OSError:
                break
            if not d:
                break
            c.sendall(d)
        c.close()

    def drop_watch(self):
        if self.ws:
            self.ws.close()
            self.ws = None

    def stop(self):
        """The worker dies: no more heartbeats, channel gone."""
        self.stopped.set()
        self.drop_watch()
        self.echo.close()
