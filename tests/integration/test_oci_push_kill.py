# SPDX-License-Identifier: Apache-2.0
"""SIGKILL of `tart push` at several points: the source VM is untouched, nothing is left in tmp/
(compressed chunks live in unnamed O_TMPFILE files), and the next push completes an image that
clones verified."""
import os
import signal
import time

from conftest import Tart
from oci_fixtures import MiB, make_vm, sha256_file


def test_push_killed_then_completed(tart, registry, tmp_path):
    src = make_vm(tart, "vm", disk_gb=2, pieces=((0, 64 * MiB), (600 * MiB, 64 * MiB),
                                                 (1200 * MiB, 64 * MiB)), seed=7)
    before = sha256_file(src / "disk.img")
    remote = f"{registry.host}/killed/vm:1"
    for delay in (0.2, 0.8, 2.0):
        p = tart.popen("push", "--insecure", "--concurrency", "2", "vm", remote)
        time.sleep(delay)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
        assert sha256_file(src / "disk.img") == before
        assert list((tart.home / "tmp").iterdir()) == []
        assert tart.json("get", "vm", "--format", "json")["State"] == "stopped"
    tart.run("push", "--insecure", "vm", remote)
    t2 = Tart(tmp_path / "other")
    (tmp_path / "other").mkdir()
    t2.run("clone", "--insecure", remote, "copy")
    assert sha256_file(t2.vm_dir("copy") / "disk.img") == before
