# SPDX-License-Identifier: Apache-2.0
"""End to end: a bootable VM pushed to the registry, cloned from it on another "host" (TART_HOME)
and run there: the disk, NVRAM and config that come back boot through OVMF."""
import json
import shutil
from pathlib import Path

import pytest

from conftest import Tart
from oci_fixtures import MiB, push_vetu_image, sha256_file
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


def test_vetu_image_boots_through_the_direct_kernel_path(tart, registry, tiny_guest):
    """A Vetu image (its own config.json schema, kernel and initramfs layers, LZ4 frame disk)
    pulled from a registry, cloned and run: the kernel boots directly, no firmware."""
    if not shutil.which("lz4"):
        pytest.skip("lz4 is not installed (scripts/install-deps.sh installs it)")
    g = Path(tiny_guest)
    cfg = json.dumps({"version": 1, "arch": "amd64", "cpuCount": 1, "memorySize": 512 * MiB,
                      "macAddress": "02:11:22:33:44:56", "disks": [{"name": "disk.img"}],
                      "cmdline": "console=ttyS0 quiet no_timer_check panic=-1 tart.test=poweroff"}
                     ).encode()
    push_vetu_image(registry.host, "vetu/boot", "1", cfg, (g / "kernel").read_bytes(),
                    bytes(2 * MiB), initramfs=(g / "initramfs").read_bytes())
    tart.run("clone", "--insecure", f"{registry.host}/vetu/boot:1", "vetu")
    got = tart.json("get", "vetu", "--format", "json")
    assert got["OS"] == "linux" and got["CPU"] == 1 and got["Memory"] == 512
    p = tart.run("run", "vetu", check=False, timeout=300)
    assert p.returncode == 0, p.stderr
    log = serial_log(tart, "vetu")
    assert "TART-TEST-MARKER" in log and "BdsDxe" not in log
