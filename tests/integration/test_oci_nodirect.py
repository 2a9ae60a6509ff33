# SPDX-License-Identifier: Apache-2.0
"""Push and pull from a TART_HOME on a filesystem that refuses O_DIRECT (issue 11's fast path has
a buffered fallback): ramfs refuses it on every kernel, tmpfs before Linux 6.6 (Debian 12's 6.1).
The blobs pushed from there are those of a push from an ordinary disk, and a pull into it
verifies every digest and gives the same disk, byte for byte."""
import json
import os
import shutil

import pytest

from conftest import Tart
from oci_fixtures import MiB, cache_dir, get_manifest, make_vm, sha256_file
from prune_fixtures import tmpfs

# A small disk (ramfs keeps every page it is given, zeros included) with a ragged end, data in
# whole pages, across page boundaries and up to the last byte.
DISK_SIZE = 48 * MiB + 4095
PIECES = ((8192, 3 * MiB), (20 * MiB + 5, 2 * MiB), (DISK_SIZE - 10000, 10000))


def refuses_o_direct(directory):
    probe = directory / ".o-direct-probe"
    try:
        os.close(os.open(probe, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644))
        return False
    except OSError:
        return True
    finally:
        probe.unlink(missing_ok=True)


def disk_layers(host, ns, tag):
    body, _ = get_manifest(host, ns, tag)
    return [layer["digest"] for layer in json.loads(body)["layers"][1:-1]]


@pytest.mark.parametrize("fstype", ["tmpfs", "ramfs"])
def test_push_and_pull_without_o_direct(tart, registry, tmp_path, fstype):
    if os.geteuid() != 0:
        pytest.skip(f"needs root to mount a {fstype}")
    host, ns = registry.host, f"nodirect/{fstype}"
    with tmpfs(tmp_path / "mnt", 256, fstype) as mnt:
        if fstype == "ramfs":
            assert refuses_o_direct(mnt), "ramfs has no direct I/O"
        elif not refuses_o_direct(mnt):
            print("this kernel's tmpfs accepts O_DIRECT (Linux >= 6.6): the direct path ran")
        t = Tart(mnt / "home")
        t.env["TART_NO_AUTO_PRUNE"] = "1"
        disk = make_vm(t, "vm", disk_gb=1, pieces=PIECES, seed=71) / "disk.img"
        os.truncate(disk, DISK_SIZE)
        want = sha256_file(disk)
        # push from the mount; the same VM pushed from an ordinary disk gives the same blobs
        t.run("push", "--insecure", "vm", f"{host}/{ns}:mount")
        shutil.copytree(t.vm_dir("vm"), tart.vm_dir("vm"))
        tart.run("push", "--insecure", "vm", f"{host}/{ns}:disk")
        assert disk_layers(host, ns, "mount") == disk_layers(host, ns, "disk")
        # pull into the mount, every digest verified on the way (the second tag's disk, the
        # same layers, is shared with the first's: a link on the mount)
        for tag in ("disk", "mount"):
            t.run("pull", "--insecure", f"{host}/{ns}:{tag}")
            _, dg = get_manifest(host, ns, tag)
            assert sha256_file(cache_dir(t, host, ns) / dg / "disk.img") == want
        t.run("clone", f"{host}/{ns}:mount", "c")
        assert sha256_file(t.vm_dir("c") / "disk.img") == want
        assert [e.name for e in (mnt / "home" / "tmp").iterdir()] == [], "staging left behind"
