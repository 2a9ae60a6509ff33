# SPDX-License-Identifier: Apache-2.0
"""A pull that runs out of disk space fails with a clear error, leaves the cache consistent (no
entry, no tag), and the next attempt, with space available again, completes and verifies."""
import os
import subprocess

import pytest

from conftest import Tart
from oci_fixtures import MiB, cache_dir, make_vm, sha256_file


def test_pull_into_a_full_filesystem(tart, registry, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    src = make_vm(tart, "vm", disk_gb=1, pieces=((10 * MiB, 24 * MiB), (600 * MiB, 24 * MiB)))
    remote = f"{registry.host}/enospc/vm:1"
    tart.run("push", "--insecure", "vm", remote)
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mnt)], check=True)
    try:
        t2 = Tart(mnt / "home")
        t2.env["TART_NO_AUTO_PRUNE"] = "1"
        p = t2.run("pull", "--insecure", remote, check=False)
        assert p.returncode == 1, p.stderr
        assert "no space left on device" in p.stderr.lower(), p.stderr
        assert t2.run("list", "--source", "oci", "--quiet").stdout == ""
        assert not (cache_dir(t2, registry.host, "enospc/vm") / "1").exists()
        subprocess.run(["mount", "-o", "remount,size=300m", str(mnt)], check=True)
        t2.run("pull", "--insecure", remote)
        got = cache_dir(t2, registry.host, "enospc/vm") / "1" / "disk.img"
        assert sha256_file(got) == sha256_file(src / "disk.img")
        assert remote in t2.run("list", "--source", "oci", "--quiet").stdout.splitlines()
        tmp = mnt / "home" / "tmp"
        assert [e.name for e in tmp.iterdir()] == [], "the finished pull leaves no staging"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)
