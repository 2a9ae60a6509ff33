# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: the real `tart` binary in a scratch TART_HOME, and a local registry."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TART_BIN = os.environ.get("TART_BIN", str(ROOT / "build" / "tart"))


class Tart:
    """Runs the real binary with its own TART_HOME; returns CompletedProcess."""

    def __init__(self, home: Path):
        self.home = home
        self.env = dict(os.environ)
        self.env["TART_HOME"] = str(home)
        self.env.pop("TART_REGISTRY_USERNAME", None)
        self.env.pop("TART_REGISTRY_PASSWORD", None)
        self.env.setdefault("TART_ACCEL", "tcg")
        # Tests run as root, where AUTO would pick NAT (a bridge in the host's namespace):
        # test VMs use user-mode networking unless a test asks otherwise (test_net_vm.py).
        self.env.setdefault("TART_NET_MODE", "user")
        self.env["DOCKER_CONFIG"] = str(home / "docker-config")
        # `run` opens a window on a desktop: tests stay headless unless they bring their own
        # X server (test_window.py).
        self.env.pop("DISPLAY", None)
        self.env.pop("WAYLAND_DISPLAY", None)

    def run(self, *args, check=True, input=None, timeout=600, env=None):
        e = dict(self.env)
        if env:
            e.update(env)
        p = subprocess.run([TART_BIN, *args], capture_output=True, text=True, env=e,
                           input=input, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(
                f"tart {' '.join(args)} exited {p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}")
        return p

    def popen(self, *args, env=None, **kw):
        e = dict(self.env)
        if env:
            e.update(env)
        return subprocess.Popen([TART_BIN, *args], env=e, **kw)

    def json(self, *args):
        return json.loads(self.run(*args).stdout)

    def vm_dir(self, name):
        return self.home / "vms" / name


@pytest.fixture
def tart(tmp_path):
    home = tmp_path / "tart-home"
    home.mkdir()
    return Tart(home)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


REGISTRY_CONFIG = """version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  redirect:
    disable: true
http:
  addr: 127.0.0.1:{port}
{tls}{auth}"""


class Registry:
    def __init__(self, host, proc, root):
        self.host = host
        self.proc = proc
        self.root = root


def start_registry(workdir: Path, htpasswd: Path = None, tls=None):
    """Start Debian's docker-registry on a free loopback port (process we own, by PID);
    tls=(certificate, key) serves HTTPS."""
    exe = shutil.which("docker-registry")
    if not exe:
        pytest.skip("docker-registry is not installed (scripts/install-deps.sh installs it)")
    port = free_port()
    root = workdir / "data"
    root.mkdir(parents=True, exist_ok=True)
    auth = ""
    if htpasswd:
        auth = f"auth:\n  htpasswd:\n    realm: tart-test\n    path: {htpasswd}\n"
    cfg = workdir / "config.yml"
    tls_cfg = ""
    if tls:
        tls_cfg = f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n"
    cfg.write_text(REGISTRY_CONFIG.format(root=root, port=port, auth=auth, tls=tls_cfg))
    log = open(workdir / "registry.log", "w")
    proc = subprocess.Popen([exe, "serve", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port)
    except RuntimeError:
        proc.kill()
        raise
    return Registry(f"127.0.0.1:{port}", proc, root)


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """An anonymous registry shared by the session."""
    r = start_registry(tmp_path_factory.mktemp("registry"))
    yield r
    r.proc.terminate()
    r.proc.wait(timeout=10)
