# SPDX-License-Identifier: Apache-2.0
"""The agent's duties in an image, on the host: guest/install.sh into a root directory, and
--resize-disk: a GPT image on a loop device whose last
partition holds a mounted filesystem; the image grows (as `tart set --disk-size` grows a
disk), the agent grows the partition (sfdisk, BLKPG) and the mounted filesystem, and a second
run changes nothing. --resize-mount points it at the test's mount instead of /."""
import os
import re
import shutil
import subprocess

import pytest

from agent_fixtures import AGENT_BIN

MiB = 1 << 20


def _cap_sys_resource():
    with open("/proc/self/status") as f:
        eff = int(re.search(r"CapEff:\s*([0-9a-f]+)", f.read()).group(1), 16)
    return bool(eff & (1 << 24))


def _run(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


@pytest.fixture
def loopdisk(tmp_path):
    if os.geteuid() != 0 or not os.path.exists("/dev/loop-control"):
        pytest.skip("needs root and loop devices")
    img = tmp_path / "disk.img"
    state = {"img": img, "dev": None, "mnt": tmp_path / "mnt"}
    yield state
    if os.path.ismount(state["mnt"]):
        _run("umount", str(state["mnt"]), check=False)
    if state["dev"]:
        _run("losetup", "-d", state["dev"], check=False)


def _size(dev, part):
    with open(f"/sys/block/{dev}/{dev}p{part}/size") as f:
        return int(f.read()) * 512


@pytest.mark.parametrize("fs", ["xfs", "ext4"])
def test_resize_grows_last_partition_and_mounted_fs(loopdisk, fs):
    if fs == "ext4" and not _cap_sys_resource():
        pytest.skip("online ext4 resize needs CAP_SYS_RESOURCE, which this sandbox lacks "
                    "(the Debian guest's root is ext4 and has it)")
    mkfs = {"xfs": ["mkfs.xfs", "-q"], "ext4": ["mkfs.ext4", "-q"]}[fs]
    if not shutil.which(mkfs[0]):
        pytest.skip(f"{mkfs[0]} not installed")
    img = loopdisk["img"]
    with open(img, "wb") as f:
        f.truncate(320 * MiB)
    _run("sgdisk", "-n1:2048:+8M", "-t1:ef00", "-n2:0:0", "-t2:8304", str(img))
    dev = _run("losetup", "-P", "--show", "-f", str(img)).stdout.strip()
    loopdisk["dev"] = dev
    _run("partx", "-a", dev, check=False)  # this kernel does not scan GPT on loop devices
    name = os.path.basename(dev)
    _run(*mkfs, f"{dev}p2")
    mnt = loopdisk["mnt"]
    mnt.mkdir()
    _run("mount", f"{dev}p2", str(mnt))
    before_part, before_fs = _size(name, 2), os.statvfs(mnt)

    # Nothing grew: nothing happens.
    p = _run(AGENT_BIN, "--resize-disk", "--resize-mount", str(mnt))
    assert "already fills" in p.stderr and _size(name, 2) == before_part

    # The disk grows by 320 MiB: the partition and the filesystem follow.
    with open(img, "r+b") as f:
        f.truncate(640 * MiB)
    _run("losetup", "-c", dev)
    p = _run(AGENT_BIN, "--resize-disk", "--resize-mount", str(mnt))
    assert "grew the filesystem" in p.stderr, p.stderr
    after_part = _size(name, 2)
    assert after_part >= before_part + 300 * MiB
    after_fs = os.statvfs(mnt)
    assert after_fs.f_blocks * after_fs.f_frsize >= \
        before_fs.f_blocks * before_fs.f_frsize + 280 * MiB
    # The table on disk says the same (backup GPT moved to the new end), and a second run is a
    # no-op.
    dump = _run("sfdisk", "--dump", dev).stdout
    assert re.search(r"last-lba: (\d+)", dump) and int(re.search(r"last-lba: (\d+)", dump).group(1)) > 1300000
    assert "No problems found" in _run("sgdisk", "-v", dev).stdout
    p = _run(AGENT_BIN, "--resize-disk", "--resize-mount", str(mnt))
    assert "already fills" in p.stderr and "grew" not in p.stderr and _size(name, 2) == after_part


def test_resize_leaves_non_block_roots_alone(tmp_path):
    # A tmpfs (as the tiny guest's initramfs root): a notice, exit 0.
    p = _run(AGENT_BIN, "--resize-disk", "--resize-mount", "/dev/shm")
    assert p.returncode == 0 and "not on a block device" in p.stderr


def test_install_into_an_image_root(tmp_path):
    """guest/install.sh into a root directory: binary, units (User= the image's admin, else
    root), enable links, the udev rule for the serial port."""
    import pathlib
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nadmin:x:1000:1000::/home/admin:/bin/bash\n")
    install = pathlib.Path(AGENT_BIN).parents[2] / "guest" / "install.sh"
    p = _run(str(install), "--root", str(root), "--binary", AGENT_BIN)
    assert "as 'admin'" in p.stdout
    agent = root / "usr/local/bin/tart-guest-agent"
    assert agent.read_bytes() == pathlib.Path(AGENT_BIN).read_bytes() and os.access(agent, os.X_OK)
    unit = (root / "etc/systemd/system/tart-guest-agent.service").read_text()
    assert "User=admin" in unit and "ExecStart=/usr/local/bin/tart-guest-agent --run-rpc" in unit
    assert "ConditionKernelCommandLine=!tart.agent=off" in unit
    for link in ("multi-user.target.wants/tart-guest-agent.service",
                 "sysinit.target.wants/tart-guest-resize.service"):
        assert (root / "etc/systemd/system" / link).resolve().is_file()
    rule = (root / "etc/udev/rules.d/60-tart-guest-agent.rules").read_text()
    assert 'ATTR{name}=="org.tart.agent.0"' in rule and 'OWNER="admin"' in rule
    # An image without admin runs it as root; an unknown user is refused.
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    assert "as 'root'" in _run(str(install), "--root", str(root), "--binary", "none").stdout
    assert _run(str(install), "--root", str(root), "--user", "nobody-here", check=False).returncode != 0
