# SPDX-License-Identifier: Apache-2.0
"""The local store under concurrency and crashes: the global lock, tmp/ staging and its GC."""
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest


def _uuid():
    return str(uuid.uuid4()).upper()


def _cached_image(tart, src="src"):
    """Turn the local VM `src` into a pulled image in the OCI cache; returns its remote name."""
    repo = tart.home / "cache" / "OCIs" / "127.0.0.1%3A5000" / "ns"
    repo.mkdir(parents=True)
    digest = repo / ("sha256:" + "ab" * 32)
    shutil.move(str(tart.vm_dir(src)), str(digest))
    (repo / "latest").symlink_to(digest)
    return "127.0.0.1:5000/ns:latest"


def _mac(tart, name):
    return json.loads((tart.vm_dir(name) / "config.json").read_text())["macAddress"]


def test_parallel_clones_get_unique_macs(tart):
    """Clones of a cached image: the first keeps its MAC, every other one must get a new one.
    The MAC check and the move are one critical section under the global lock; without it two
    clones would both see the MAC unused and keep it."""
    tart.run("create", "--linux", "--disk-size", "1", "src")
    src_mac = _mac(tart, "src")
    name = _cached_image(tart)
    n = 8
    procs = [tart.popen("clone", name, f"vm{i}", stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True) for i in range(n)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    macs = [_mac(tart, f"vm{i}") for i in range(n)]
    assert len(set(macs)) == n
    assert macs.count(src_mac) == 1
    assert tart.run("list", "--source", "local", "-q").stdout == "".join(
        f"vm{i}\n" for i in range(n))
    assert list((tart.home / "tmp").iterdir()) == []


def test_parallel_clones_to_one_name(tart):
    """Exactly one of N clones into the same name wins; the others fail cleanly."""
    tart.run("create", "--linux", "--disk-size", "1", "src")
    with open(tart.vm_dir("src") / "disk.img", "r+b") as f:
        f.seek(1 << 20)
        f.write(os.urandom(4 << 20))
    n = 6
    procs = [tart.popen("clone", "src", "dst", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True) for _ in range(n)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(rc for rc, _ in results)
    assert codes == [0] + [1] * (n - 1), results
    assert all('VM "dst" already exists' in err for rc, err in results if rc)
    assert tart.run("list", "-q").stdout == "dst\nsrc\n"
    assert list((tart.home / "tmp").iterdir()) == []
    assert (tart.vm_dir("dst") / "disk.img").read_bytes() == \
        (tart.vm_dir("src") / "disk.img").read_bytes()


def test_clone_killed_leaves_no_vm_and_gc_collects_staging(tart):
    """kill -9 of a clone whose staging dir is complete: no VM appears, and the very next
    command's tmp/ GC removes the staging dir (no grace period for our own entries)."""
    tart.run("create", "--linux", "--disk-size", "2", "src")
    with open(tart.vm_dir("src") / "disk.img", "r+b") as f:
        for off in range(0, 2 * 10**9, 200 * 10**6):
            f.seek(off)
            f.write(os.urandom(1 << 20))
    tmp = tart.home / "tmp"
    # Hold the global lock: the clone copies everything, then blocks before the move into vms/.
    glock = os.open(tart.home, os.O_RDONLY)
    fcntl.flock(glock, fcntl.LOCK_EX)
    try:
        p = tart.popen("clone", "src", "dst", stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        staged = None
        while time.time() < deadline:
            entries = list(tmp.iterdir())
            if entries and (entries[0] / "config.json").exists() and \
                    (entries[0] / "disk.img").exists() and p.poll() is None:
                # disk.img is the last required file: wait until its copy is whole.
                if (entries[0] / "disk.img").stat().st_size == 2 * 10**9:
                    staged = entries[0]
                    break
            time.sleep(0.01)
        assert staged is not None, "the clone never staged its copy"
        time.sleep(0.2)
        assert p.poll() is None, "the clone did not wait for the global lock"
        p.send_signal(signal.SIGKILL)
        p.wait()
    finally:
        fcntl.flock(glock, fcntl.LOCK_UN)
        os.close(glock)
    assert staged.exists()
    assert not tart.vm_dir("dst").exists()
    # clone and pull skip the GC, as in Tart; any other command collects.
    tart.run("clone", "src", "other")
    assert staged.exists()
    assert tart.run("list", "-q").stdout == "other\nsrc\n"
    assert list(tmp.iterdir()) == []


def test_gc_spares_locked_and_young_foreign_entries(tart):
    tmp = tart.home / "tmp"
    tart.run("list")
    abandoned = tmp / _uuid()
    abandoned.mkdir()
    (abandoned / "disk.img").write_bytes(b"x")
    abandoned_disk = tmp / ("set-disk-" + _uuid())
    abandoned_disk.write_bytes(b"x")
    in_use = tmp / _uuid()
    in_use.mkdir()
    foreign = tmp / "0123456789abcdef0123456789abcdef"  # e.g. a pull's staging: not ours
    foreign.mkdir()
    fd = os.open(in_use, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        tart.run("list")
        assert not abandoned.exists() and not abandoned_disk.exists()
        assert in_use.exists(), "an entry someone holds a flock on is in use"
        assert foreign.exists(), "entries made outside the protocol get a grace period"
    finally:
        os.close(fd)
    tart.run("get", "--help")  # help does no GC
    assert in_use.exists()
    tart.run("list")
    assert not in_use.exists()


def test_gc_removes_old_foreign_entries(tart):
    tmp = tart.home / "tmp"
    tart.run("list")
    stale = tmp / "stale-dir"
    stale.mkdir()
    # ctime cannot be set back: wait out the grace period of entries made outside the protocol.
    time.sleep(10.5)
    tart.run("list")
    assert not stale.exists()


def test_parallel_create_and_rename_to_one_name(tart):
    """create, clone and rename racing for one name: exactly one wins, nothing is replaced."""
    tart.run("create", "--linux", "--disk-size", "1", "a")
    tart.run("create", "--linux", "--disk-size", "1", "b")
    procs = [tart.popen("create", "--linux", "--disk-size", "1", "x", stderr=subprocess.PIPE,
                        text=True) for _ in range(3)]
    procs += [tart.popen("clone", "a", "x", stderr=subprocess.PIPE, text=True) for _ in range(2)]
    procs.append(tart.popen("rename", "b", "x", stderr=subprocess.PIPE, text=True))
    codes = []
    for p in procs:
        p.wait(timeout=120)
        p.stderr.close()
        codes.append(p.returncode)
    assert codes.count(0) == 1, codes
    assert all(c in (1, 64) for c in codes if c), codes
    names = sorted(d.name for d in (tart.home / "vms").iterdir())
    assert names in (["a", "b", "x"], ["a", "x"]), names  # b is gone only if rename won
    assert (codes[-1] == 0) == (names == ["a", "x"])
    assert list((tart.home / "tmp").iterdir()) == []
