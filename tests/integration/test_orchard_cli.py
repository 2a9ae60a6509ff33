# SPDX-License-Identifier: Apache-2.0
"""The orchard CLI's failures (bad flags and arguments, unknown contexts, an unreachable
controller, bad tokens) and `orchard dev`: one command, a fleet of synthetic VMs on 127.0.0.1
with auth off, or enforced for bootstrap-admin when ORCHARD_BOOTSTRAP_ADMIN_TOKEN is set;
contexts, service accounts and bootstrap tokens through it; everything it started ends with
it."""
import base64
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from conftest import free_port
from fleet_fixtures import (ORCHARD_BIN, Cli, bootstrap_token, need_fleet_tools, tls_controller,
                            wait_for)
from orchard_fixtures import EtcdCluster


def fails(p, *needles):
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    for n in needles:
        assert n in p.stderr, (n, p.stderr)
    assert not p.stderr.startswith("Error: Error")


def test_bad_flags_arguments_and_tokens(tmp_path):
    if not os.path.exists(ORCHARD_BIN):
        pytest.skip(f"orchard not built at {ORCHARD_BIN}")
    cli = Cli(tmp_path / "home")
    fails(cli.run("create", "vm", check=False), "accepts 1 arg(s), received 0")
    fails(cli.run("create", "vm", "a", "b", check=False), "accepts 1 arg(s), received 2")
    fails(cli.run("create", "vm", "x", "--bogus", check=False), "unknown flag: --bogus")
    fails(cli.run("create", "vm", "x", "--cpu", "many", check=False),
          'invalid argument "many" for "--cpu" flag')
    fails(cli.run("create", "vm", "x", "--restart-policy", "Sometimes", check=False),
          'unsupported restart policy: "Sometimes"')
    fails(cli.run("create", "vm", "x", "--resources", "cpu=lots", check=False),
          "64-bit unsigned integers")
    fails(cli.run("create", "vm", "x", "--startup-script", f"@{tmp_path}/missing.sh",
                  check=False), "missing.sh")
    fails(cli.run("port-forward", "vm", "x", "70000", check=False), "only ports in range")
    fails(cli.run("frobnicate", check=False), 'unknown command "frobnicate"')
    fails(cli.run("context", "default", "nope", check=False), 'no such context: "nope"')
    fails(cli.run("context", "delete", "nope", check=False), 'no such context: "nope"')
    fails(cli.run("context", "create", "http://127.0.0.1:1", "--bootstrap-token", "garbage",
                  check=False), "invalid bootstrap token format")
    # a malformed config file is named, and left alone
    cfg = tmp_path / "home" / ".orchard" / "orchard.yml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("contexts: [1, 2\n")
    fails(cli.run("list", "vms", check=False), str(cfg))
    assert cfg.read_text() == "contexts: [1, 2\n"
    cfg.unlink()

    # nothing listens there: the request fails with the address, quickly and without a hang
    port = free_port()
    p = cli.run("list", "vms", check=False, env={"ORCHARD_URL": f"http://127.0.0.1:{port}"})
    fails(p, "API client failed to make a request", f"127.0.0.1:{port}")
    # with no context at all, Orchard's default one (http://127.0.0.1:6120) is written
    assert yaml.safe_load(cfg.read_text()) == {
        "default-context": "default", "contexts": {"default": {"url": "http://127.0.0.1:6120"}}}

    w = lambda *a: cli.run("worker", "run", *a, check=False, timeout=30)
    fails(w(f"http://127.0.0.1:{port}"), "no bootstrap token was provided")
    fails(w(f"http://127.0.0.1:{port}", "--bootstrap-token", "orchard-bootstrap-token-v0.x"),
          "invalid bootstrap token format")
    tok = "orchard-bootstrap-token-v0.dw.dA"  # "w" / "t", no certificate
    fails(w(f"http://127.0.0.1:{port}", "--bootstrap-token", tok, "--no-pki"),
          "--no-pki was specified, but not trusted certificate was provided")
    fails(w("ftp://somewhere", "--bootstrap-token", tok), "only http and https")
    fails(w(f"http://127.0.0.1:{port}", "--bootstrap-token", tok, "--name", "a/b"),
          "restricted characters")
    fails(w(f"http://127.0.0.1:{port}", "--bootstrap-token", tok, "--bootstrap-token-stdin"),
          "mutually exclusive")
    # a token on stdin, the log in a file: the worker keeps retrying an unreachable
    # controller, and SIGTERM ends it
    log = tmp_path / "worker.log"
    p = subprocess.Popen([ORCHARD_BIN, "worker", "run", f"http://127.0.0.1:{port}",
                          "--bootstrap-token-stdin", "--synthetic", "--name", "w-stdin",
                          "--log-file", str(log)], stdin=subprocess.PIPE, env=cli.env)
    p.stdin.write((tok + "\n").encode())
    p.stdin.close()
    try:
        wait_for("a registration attempt", lambda: log.exists() and
                 "failed to register worker" in log.read_text(), timeout=30)
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    assert "received SIGTERM" in log.read_text()


class Dev:
    def __init__(self, tmp: Path, admin_token=None):
        need_fleet_tools()
        self.port = free_port()
        self.data = tmp / "dev-data"
        self.cli = Cli(tmp / "cli-home")
        env = dict(self.cli.env)
        env.pop("ORCHARD_BOOTSTRAP_ADMIN_TOKEN", None)
        if admin_token:
            env["ORCHARD_BOOTSTRAP_ADMIN_TOKEN"] = admin_token
        self.log = open(tmp / "dev.log", "w")
        self.p = subprocess.Popen([ORCHARD_BIN, "dev", "--data-dir", str(self.data), "--listen",
                                   f"127.0.0.1:{self.port}", "--synthetic"],
                                  stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "dev.log"
        wait_for("orchard dev to be ready",
                 lambda: "dev: ready" in self.log_path.read_text() or self.p.poll() is not None,
                 timeout=90)
        assert self.p.poll() is None, self.log_path.read_text()

    def children(self):
        """PIDs of the processes started for this dev fleet (their command lines name it)."""
        pids = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if (str(self.data).encode() in cmd or f"127.0.0.1:{self.port}".encode() in cmd) \
                    and int(d.name) != self.p.pid:
                pids.append(int(d.name))
        return pids

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            self.p.wait(timeout=120)
        self.log.close()


def test_dev_with_auth_enforced(tmp_path):
    dev = Dev(tmp_path, admin_token="dev-admin-" + os.urandom(4).hex())
    try:
        cli = dev.cli
        assert len(dev.children()) >= 3  # etcd, controller, worker
        # the worker gets its (admin) bootstrap token on its standard input: never in a
        # command line, which every local user can read in /proc
        for pid in dev.children():
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert not any(b"orchard-bootstrap-token-v0" in a for a in cmd), cmd
        # auth as `controller run` enforces it: nothing without credentials
        assert requests.get(f"{dev.url}/v1/vms", timeout=10).status_code == 401
        assert requests.get(f"{dev.url}/v1/vms", auth=("bootstrap-admin", "wrong"),
                            timeout=10).status_code == 401
        # the CLI's local-dev context has the admin's credentials
        conf = yaml.safe_load((cli.home / ".orchard" / "orchard.yml").read_text())
        assert conf["default-context"] == "local-dev"
        assert conf["contexts"]["local-dev"]["url"] == dev.url
        assert conf["contexts"]["local-dev"]["serviceAccountName"] == "bootstrap-admin"
        wait_for("the dev worker", lambda: cli.names("workers"), timeout=60)

        cli.run("create", "vm", "syn", "--startup-script", "echo synthetic-line\necho two")
        wait_for("the synthetic VM to run", lambda: cli.field("syn", "status") == "running",
                 timeout=60)
        assert "synthetic-line" in wait_for(
            "its log", lambda: (lambda o: o if "two" in o else None)(
                cli.run("logs", "vm", "syn").stdout), timeout=60)
        assert cli.run("ip", "vm", "syn").stdout.strip() == "127.0.0.1"
        table = cli.run("list", "vms").stdout.splitlines()
        assert table[0].split("\t")[0].strip() == "Name" and "syn" in table[1]

        # port-forward to a synthetic VM reaches the worker's echo server
        pf = subprocess.Popen([ORCHARD_BIN, "port-forward", "vm", "syn", "0:22"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=cli.env)
        try:
            line = pf.stdout.readline()
            port = int(line.split("127.0.0.1:")[1].split(" ")[0])
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.settimeout(30)
                s.sendall(b"ping through orchard\n")
                got = b""
                while not got.endswith(b"\n"):
                    got += s.recv(100)
                assert got == b"ping through orchard\n"
        finally:
            pf.send_signal(signal.SIGTERM)
            pf.wait(timeout=10)

        # a service account, its bootstrap token, a context made from it
        cli.run("create", "service-account", "ci", "--roles", "compute:read")
        assert "ci" in cli.names("service-accounts")
        tok = cli.run("get", "bootstrap-token", "ci").stdout.strip()
        parts = tok.split(".")
        assert parts[0] == "orchard-bootstrap-token-v0" and len(parts) == 3  # no TLS: no cert
        dec = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)).decode()
        assert dec(parts[1]) == "ci"
        cli.run("context", "create", dev.url, "--name", "ci", "--bootstrap-token", tok)
        listed = cli.run("context", "list").stdout
        assert "ci" in listed and "local-dev" in listed
        cli.run("context", "default", "ci")
        assert cli.names("vms") == ["syn"]  # compute:read may read
        p = cli.run("delete", "vm", "syn", check=False)  # but not write
        fails(p, "401")
        cli.run("context", "default", "local-dev")
        cli.run("context", "delete", "ci")
        assert "ci" not in yaml.safe_load(
            (cli.home / ".orchard" / "orchard.yml").read_text())["contexts"]
        cli.run("delete", "vm", "syn")
        assert cli.names("vms") == []

        # cluster settings: policies are added to, the profile replaced
        fails(cli.run("set", "cluster-settings", check=False), "at least one setting")
        fails(cli.run("set", "cluster-settings", "--scheduler-profile", "random", check=False),
              'unsupported scheduler profile: "random"')
        fails(cli.run("set", "cluster-settings", "--host-dir-policies", "/a:rw", check=False),
              'can only be "ro"')
        cli.run("set", "cluster-settings", "--host-dir-policies", "/srv/ci:ro,/tmp",
                "--scheduler-profile", "distribute-load")
        cli.run("set", "cluster-settings", "--host-dir-policies", "/var/cache")
        rows = {k.strip(): v.strip() for k, v in
                (l.split("\t", 1) for l in cli.run("get", "cluster-settings").stdout.splitlines())}
        assert rows["hostDir policies"] == "/srv/ci:ro,/tmp,/var/cache"
        assert rows["Scheduler profile"] == "distribute-load"
        children = dev.children()
    finally:
        dev.stop()
    assert dev.p.returncode == 0
    time.sleep(0.5)
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"


def test_dev_without_auth(tmp_path):
    dev = Dev(tmp_path)
    try:
        r = requests.get(f"{dev.url}/v1/workers", timeout=10)
        assert r.status_code == 200
        wait_for("the dev worker",
                 lambda: requests.get(f"{dev.url}/v1/workers", timeout=10).json(), timeout=60)
        assert dev.cli.names("workers")
    finally:
        dev.stop()
    assert dev.p.returncode == 0
    assert not dev.children()


def test_context_create_against_a_tls_controller(tmp_path):
    """PKI fails on the self-signed certificate; without a bootstrap token the CLI shows the
    certificate's fingerprint and, not on a terminal, refuses to trust it; with the token's
    certificate (or one already trusted) it works, pinned to orchard-controller."""
    need_fleet_tools()
    etcd = EtcdCluster(tmp_path / "etcd", 1)
    admin = "ctx-admin-" + os.urandom(4).hex()
    ctl = None
    try:
        ctl = tls_controller(tmp_path, etcd, "c", admin)
        fp = wait_for("the fingerprint", lambda: (lambda t: t.split("fingerprint: ")[1].split(
            "\n")[0].rstrip(".") if "fingerprint: " in t else None)(ctl.log_path.read_text()),
                      timeout=30)
        cli = Cli(tmp_path / "cli")
        p = cli.run("context", "create", ctl.url, "--service-account-name", "bootstrap-admin",
                    "--service-account-token", admin, check=False)
        fails(p, "no trust decision")
        assert "PKI association failed" in p.stdout and f"fingerprint is: {fp}." in p.stdout
        # a wrong certificate in the token is refused by TLS, and nothing is saved
        other = tmp_path / "other.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(tmp_path / "k.pem"),
                        "-out", str(other), "-subj", "/CN=x", "-addext",
                        "subjectAltName=DNS:orchard-controller", "-days", "1"],
                       check=True, capture_output=True)
        bad = bootstrap_token("bootstrap-admin", admin, other.read_bytes())
        fails(cli.run("context", "create", ctl.url, "--bootstrap-token", bad, check=False),
              "API client failed to make a request")
        assert not (cli.home / ".orchard" / "orchard.yml").exists()
        good = bootstrap_token("bootstrap-admin", admin, ctl.cert[0].read_bytes())
        cli.run("context", "create", ctl.url, "--bootstrap-token", good, "--name", "tls")
        conf = yaml.safe_load((cli.home / ".orchard" / "orchard.yml").read_text())
        assert conf["default-context"] == "tls"
        assert base64.b64decode(conf["contexts"]["tls"]["certificate"]) == \
            ctl.cert[0].read_bytes()
        assert cli.run("list", "workers").returncode == 0
        # the host in the URL does not matter: the name checked is the certificate's
        p = cli.run("list", "vms", env={"ORCHARD_URL": ctl.url.replace("127.0.0.1", "localhost")})
        assert p.returncode == 0
        fails(cli.run("context", "create", ctl.url, "--bootstrap-token", good, "--name", "tls",
                      check=False), 'context "tls" already exists')
        cli.run("context", "create", ctl.url, "--bootstrap-token", good, "--name", "tls",
                "--force")
    finally:
        if ctl:
            ctl.stop()
        etcd.stop()


IMPOSTOR_SERVER = r"""
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        open(sys.argv[3], "a").write(self.path + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"[]")
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def test_a_pinned_certificate_is_the_only_one_trusted(tmp_path):
    """A context's certificate is pinned: a server presenting another certificate for
    orchard-controller, issued by a CA the system trusts (a TLS-inspecting proxy's, say), is
    refused by the API client and the WebSocket client alike. The system's CA directory is
    replaced, in a mount namespace of this test's own, by one holding that impostor's CA."""
    if not Path("/usr/bin/unshare").exists() or os.geteuid() != 0:
        pytest.skip("needs root and unshare for a private mount namespace")

    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "pinned.key", "-out", "pinned.crt", "-days", "2",
         "-subj", "/CN=Orchard Controller", "-addext", "subjectAltName=DNS:orchard-controller")
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=impostor CA")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "imp.key", "-out", "imp.csr", "-subj", "/CN=Orchard Controller")
    (tmp_path / "san.ext").write_text("subjectAltName=DNS:orchard-controller\n")
    ossl("x509", "-req", "-in", "imp.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "imp.crt", "-days", "2", "-extfile", "san.ext")
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "impostor.pem").write_bytes((tmp_path / "ca.crt").read_bytes())
    ossl("rehash", str(certs))

    seen = tmp_path / "requests"
    srv = subprocess.Popen(["/usr/bin/python3", "-c", IMPOSTOR_SERVER, str(tmp_path / "imp.crt"),
                            str(tmp_path / "imp.key"), str(seen)], stdout=subprocess.PIPE,
                           text=True)
    try:
        port = int(srv.stdout.readline())
        home = tmp_path / "home"
        (home / ".orchard").mkdir(parents=True)
        pem = (tmp_path / "pinned.crt").read_bytes()
        (home / ".orchard" / "orchard.yml").write_text(yaml.safe_dump({
            "default-context": "pinned", "contexts": {"pinned": {
                "url": f"https://127.0.0.1:{port}",
                "certificate": base64.b64encode(pem).decode(),
                "serviceAccountName": "admin", "serviceAccountToken": "secret"}}}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHARD_")}
        env["ORCHARD_HOME"] = str(home)

        def orchard(*args):
            return subprocess.run(
                ["unshare", "-m", "sh", "-c",
                 'mount --make-rprivate / && mount --bind "$0" /etc/ssl/certs && exec "$@"',
                 str(certs), ORCHARD_BIN, *args],
                capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
        p = orchard("list", "vms")
        assert p.returncode == 1, (p.stdout, p.stderr)
        p = orchard("port-forward", "vm", "x", "22", "--stdio", "--wait", "1")
        assert p.returncode == 1, (p.stdout, p.stderr)
        assert not seen.exists(), seen.read_text()  # no request ever reached the impostor
    finally:
        srv.terminate()
        srv.wait(timeout=10)
