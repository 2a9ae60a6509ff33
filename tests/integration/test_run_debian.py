# SPDX-License-Identifier: Apache-2.0
"""The debian guest (debootstrap bookworm, OVMF, systemd) answers SSH as admin/admin under
`tart run` with user networking. Costs 20-60 s under TCG: one test only."""
import shutil
import subprocess
import time

import pytest

from run_fixtures import finish, run_state, start_run
from run_fixtures import debian_guest, kill_leftover_runs  # noqa: F401 (fixtures)


def test_debian_guest_answers_ssh_as_admin(tart, debian_guest):
    if not shutil.which("sshpass"):
        pytest.skip("sshpass is not installed (scripts/install-deps.sh installs it)")
    tart.run("create", "--linux", "deb", "--disk-size", "3")
    tart.run("set", "deb", "--cpu", "2", "--memory", "1024")
    subprocess.run(["cp", "--sparse=always", str(debian_guest / "disk.img"),
                    str(tart.vm_dir("deb") / "disk.img")], check=True)
    proc = start_run(tart, "deb")
    try:
        deadline = time.time() + 30
        while not (tart.vm_dir("deb") / "run.json").exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() < deadline
            time.sleep(0.1)
        port = run_state(tart, "deb")["net"].split("ssh-port=")[1]
        cmd = ["sshpass", "-p", "admin", "ssh", "-p", port, "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
               "-o", "LogLevel=ERROR", "-o", "PreferredAuthentications=password",
               "-o", "PubkeyAuthentication=no", "admin@127.0.0.1",
               "whoami; sudo -n true && echo sudo-ok; hostname"]
        out = None
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            except subprocess.TimeoutExpired:
                continue
            if r.returncode == 0:
                out = r.stdout.split()
                break
            time.sleep(2)
        assert out == ["admin", "sudo-ok", "tart-debian"], out
    finally:
        stop = tart.run("stop", "deb", "--timeout", "60", check=False, timeout=120)
    assert stop.returncode == 0, stop.stderr
    code, _, err = finish(proc)
    assert code == 0, err
