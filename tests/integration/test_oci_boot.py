# SPDX-License-Identifier: Apache-2.0
"""End to end: a bootable VM pushed to the registry, cloned from it on another "host" (TART_HOME)
and run there: the disk, NVRAM and config that come back boot through OVMF."""
from conftest import Tart
from oci_fixtures import sha256_file
from run_fixtures import make_tiny_vm, serial_log, tiny_guest  # noqa: F401 (fixture)


def test_cloned_from_registry_boots(tart, registry, tmp_path, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm", uefi=True)
    tart.run("push", "--insecure", "vm", f"{registry.host}/boot/tiny:1")
    home = tmp_path / "other-host"
    home.mkdir()
    t2 = Tart(home)
    t2.run("clone", "--insecure", f"{registry.host}/boot/tiny:1", "booted")
    assert sha256_file(t2.vm_dir("booted") / "disk.img") == \
        sha256_file(tart.vm_dir("vm") / "disk.img")
    p = t2.run("run", "booted", check=False, timeout=300)
    assert p.returncode == 0, p.stderr
    log = serial_log(t2, "booted")
    assert "TART-TEST-MARKER" in log and "BdsDxe" in log
