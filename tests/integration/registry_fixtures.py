# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the registry client tests: registry-probe, an htpasswd registry, the proxies."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, TART_BIN, start_registry

sys.path.insert(0, str(ROOT / "tests" / "helpers"))
from registry_proxies import FaultProxy, TokenAuthProxy  # noqa: E402

PROBE = Path(TART_BIN).resolve().parent / "tests" / "helpers" / "registry-probe"
USER, PASSWORD = "tartuser", "s3cret-pass"


class Probe:
    """Runs registry-probe with a scratch DOCKER_CONFIG and no TART_REGISTRY_* variables."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TART_REGISTRY_")}
        self.env["DOCKER_CONFIG"] = str(workdir / "docker-config")
        self.env["TART_REGISTRY_RETRY_DELAY_MS"] = "50"
        self.env.setdefault("TART_LOG_LEVEL", "info")

    def run(self, host, ns, *args, creds=None, check=True, env=None, timeout=300,
            insecure=True):
        cmd = [str(PROBE)] + (["--insecure"] if insecure else [])
        if creds:
            cmd += ["--user", creds[0], "--password", creds[1]]
        cmd += [host, ns, *args]
        e = dict(self.env)
        e.update(env or {})
        p = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout,
                           cwd=self.workdir)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}\n{p.stderr}")
        return p

    @staticmethod
    def errno_of(p):
        for line in p.stderr.splitlines():
            if line.startswith("errno="):
                return int(line[6:])
        return None


@pytest.fixture
def probe(tmp_path):
    if not PROBE.exists():
        pytest.skip(f"registry-probe is not built at {PROBE}")
    return Probe(tmp_path)


def make_htpasswd(path: Path, user=USER, password=PASSWORD):
    exe = shutil.which("htpasswd")
    if not exe:
        pytest.skip("htpasswd is not installed (apache2-utils)")
    out = subprocess.run([exe, "-Bbn", user, password], capture_output=True, text=True,
                         check=True).stdout
    path.write_text(out)
    return path


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    """A docker-registry that requires htpasswd Basic auth."""
    d = tmp_path_factory.mktemp("auth-registry")
    r = start_registry(d, htpasswd=make_htpasswd(d / "htpasswd"))
    yield r
    r.proc.terminate()
    r.proc.wait(timeout=10)


@pytest.fixture
def token_proxy(registry):
    """Bearer token service + auth proxy in front of the anonymous registry."""
    p = TokenAuthProxy(registry.host, USER, PASSWORD, ttl=60, lifetime=300).start()
    yield p
    p.stop()


@pytest.fixture
def fault_proxy(registry):
    p = FaultProxy(registry.host, lifetime=300).start()
    yield p
    p.stop()


def random_file(path: Path, size: int):
    path.write_bytes(os.urandom(size))
    return path


def make_tls_pair(d: Path):
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it."""
    exe = shutil.which("openssl")
    if not exe:
        pytest.skip("openssl is not installed")

    def run(*args):
        subprocess.run([exe, *args], check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=tart-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    return d / "ca.crt", d / "server.crt", d / "server.key"


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory):
    """A docker-registry serving HTTPS with a certificate from a private CA; yields (host, ca)."""
    d = tmp_path_factory.mktemp("tls-registry")
    ca, cert, key = make_tls_pair(d)
    r = start_registry(d, tls=(cert, key))
    try:
        yield r.host, ca
    finally:
        r.proc.terminate()
        r.proc.wait(timeout=10)
