# SPDX-License-Identifier: Apache-2.0
"""Real workers and the real CLI for the worker, CLI and dev tests, next to orchard_fixtures'
etcd clusters and controllers: each a process of ours (stopped by PID) with its own directory
and free ports. Workers drive the real `tart` with user-mode networking (nothing leaves the
machine) under TCG."""
import base64
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import TART_BIN
from orchard_fixtures import ORCHARD_BIN, Api, Controller, wait_until


def need_fleet_tools():
    for exe in ("etcd", "ssh", "sshpass"):
        if not shutil.which(exe):
            pytest.skip(f"'{exe}' is missing (scripts/install-deps.sh installs it)")
    if not os.path.exists(ORCHARD_BIN):
        pytest.skip(f"orchard not built at {ORCHARD_BIN}")


class Proc:
    """A child process with its output in a log file."""

    def __init__(self, args, log: Path, env=None):
        self.args = args
        self.log_path = log
        self.log = open(log, "ab")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                  stdin=subprocess.DEVNULL)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def kill9(self):
        if self.alive():
            self.p.send_signal(signal.SIGKILL)
            self.p.wait(timeout=30)

    def stop(self, timeout=90):
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.log.close()

    def text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def bootstrap_token(name, token, cert_pem: bytes = None):
    enc = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
    t = f"orchard-bootstrap-token-v0.{enc(name.encode())}.{enc(token.encode())}"
    return t + (f".{enc(cert_pem)}" if cert_pem else "")


def tls_controller(workdir: Path, etcd, name, admin_token, cert=None, offline="10s"):
    """orchard_fixtures' Controller with TLS, our admin token, and a shared certificate."""
    extra = ["--controller-cert", str(cert[0]), "--controller-key", str(cert[1])] if cert else []
    c = Controller(workdir / f"ctl-{name}", etcd.endpoints, tls=True, offline_timeout=offline,
                   extra=extra, env={"ORCHARD_BOOTSTRAP_ADMIN_TOKEN": admin_token,
                                     "ORCHARD_HOME": str(workdir / f"ctl-{name}")})
    c.url = c.base[:-len("/v1")]
    c.cert = (c.workdir / "data" / "controller.crt", c.workdir / "data" / "controller.key")
    return c


class Worker:
    def __init__(self, workdir: Path, name, url, token, resources="", ssh_key=None, ca=None,
                 extra=()):
        self.name = name
        self.dir = workdir / f"worker-{name}"
        self.tart_home = self.dir / "tart-home"
        self.tart_home.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, TART_HOME=str(self.tart_home), ORCHARD_HOME=str(self.dir),
                        TART_ACCEL="tcg", TART_NET_MODE="user", TART_BIN=TART_BIN,
                        DOCKER_CONFIG=str(self.dir / "docker"))
        if ca:
            self.env["SSL_CERT_FILE"] = str(ca)
        self.args = [ORCHARD_BIN, "worker", "run", url, "--bootstrap-token", token,
                     "--name", name, "--heartbeat-interval", "2", "--debug", *extra]
        if resources:
            self.args += ["--resources", resources]
        if ssh_key:
            self.args += ["--ssh-key", str(ssh_key)]
        self.proc = None
        self.start()

    def start(self):
        self.proc = Proc(self.args, self.dir / "worker.log", env=self.env)

    def tart(self, *args):
        p = subprocess.run([TART_BIN, *args], capture_output=True, text=True, env=self.env,
                           timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stdout

    def local_vms(self):
        return {v["Name"]: v for v in json.loads(self.tart("list", "--format", "json"))
                if v["Name"].startswith("orchard-")}

    def run_pid(self, name):
        try:
            return json.loads((self.tart_home / "vms" / name / "run.json").read_text())["pid"]
        except (FileNotFoundError, ValueError, KeyError):
            return None


class Cli:
    """The orchard CLI with its own ORCHARD_HOME."""

    def __init__(self, home: Path, env=None):
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, ORCHARD_HOME=str(home))
        for k in ("ORCHARD_URL", "ORCHARD_SERVICE_ACCOUNT_NAME", "ORCHARD_SERVICE_ACCOUNT_TOKEN"):
            self.env.pop(k, None)
        self.env.update(env or {})

    def run(self, *args, check=True, timeout=120, env=None, input=None):
        e = dict(self.env)
        e.update(env or {})
        p = subprocess.run([ORCHARD_BIN, *args], capture_output=True, text=True, env=e,
                           timeout=timeout, input=input)
        if check and p.returncode != 0:
            raise AssertionError(f"orchard {' '.join(args)} exited {p.returncode}\n"
                                 f"stdout:{p.stdout}\nstderr:{p.stderr}")
        return p

    def field(self, vm, path, **kw):
        """`orchard get vm NAME/path`: a string field of the VM, None when it fails."""
        p = self.run("get", "vm", f"{vm}/{path}", check=False, **kw)
        return p.stdout.strip() if p.returncode == 0 else None

    def names(self, kind="vms", **kw):
        return sorted(self.run("list", kind, "-q", **kw).stdout.split())


class _Pinned(requests.adapters.HTTPAdapter):
    """TLS to a controller as Orchard's clients do it: its certificate only, checked against
    the name orchard-controller whatever host the URL names."""

    def __init__(self, cert_path):
        self.cert_path = str(cert_path)
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs.update(assert_hostname="orchard-controller", server_hostname="orchard-controller",
                      ca_certs=self.cert_path, cert_reqs="CERT_REQUIRED")
        super().init_poolmanager(*args, **kwargs)

    def cert_verify(self, conn, url, verify, cert):
        conn.ca_certs, conn.cert_reqs = self.cert_path, "CERT_REQUIRED"


def pinned_api(controller, name, token, cert_path):
    """orchard_fixtures' Api, with TLS pinned to the controller's certificate."""
    api = Api(controller.base, (name, token))
    api.s.mount("https://", _Pinned(cert_path))
    return api


def wait_for(what, fn, timeout=120, interval=0.5):
    return wait_until(fn, timeout=timeout, interval=interval, what=what)
