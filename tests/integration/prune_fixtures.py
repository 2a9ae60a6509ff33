# SPDX-License-Identifier: Apache-2.0
"""Build OCI cache entries and local VMs directly on disk, with known sizes and access times.

Our access time is the directory's mtime (set explicitly by tart), so tests set it with
os.utime on the directory after its files are written.
"""
import contextlib
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

HOST = "127.0.0.1:5000"
HOST_DIR = "127.0.0.1%3A5000"
MIB = 1024 * 1024
GIB = 1024 * MIB
DAY = 86400

CONFIG = {"version": 1, "os": "linux", "arch": "amd64", "cpuCountMin": 1, "cpuCount": 1,
          "memorySizeMin": 536870912, "memorySize": 536870912,
          "macAddress": "52:54:00:12:34:56", "display": {"width": 1024, "height": 768},
          "diskFormat": "raw"}


def digest_of(label):
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def _fill_vm_dir(d: Path, data_bytes=0, sparse_bytes=0, falloc_bytes=0):
    """config.json + nvram.bin + disk.img holding data_bytes of written data (allocated), or
    falloc_bytes of preallocated (allocated, instant) space, plus sparse_bytes of hole."""
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(CONFIG))
    (d / "nvram.bin").write_bytes(b"\0" * 4096)
    with open(d / "disk.img", "wb") as f:
        chunk = b"\1" * MIB
        left = data_bytes
        while left > 0:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n
        if falloc_bytes:
            os.posix_fallocate(f.fileno(), 0, falloc_bytes)
        total = max(data_bytes, falloc_bytes) + sparse_bytes
        f.truncate(total)


def allocated(d: Path):
    """What tart accounts: allocated bytes of the three files."""
    return sum(os.stat(d / f).st_blocks * 512 for f in ("config.json", "disk.img", "nvram.bin"))


def set_accessed(d: Path, t):
    os.utime(d, (t, t))


def accessed(d: Path):
    return os.stat(d).st_mtime


def make_image(home: Path, ns, label, accessed_at, tags=(), pinned=False, **sizes):
    """A digest directory cache/OCIs/<host>/<ns>/sha256:<hex> with tag symlinks to it."""
    repo = home / "cache" / "OCIs" / HOST_DIR / ns
    d = repo / digest_of(label)
    _fill_vm_dir(d, **sizes)
    if pinned:
        (d / ".explicitly-pulled").write_text("")
    for t in tags:
        os.symlink(d, repo / t)  # absolute target, as Tart writes them
    set_accessed(d, accessed_at)
    return d


def make_vm(home: Path, name, accessed_at, **sizes):
    d = home / "vms" / name
    _fill_vm_dir(d, **sizes)
    set_accessed(d, accessed_at)
    return d


def image_name(ns, label):
    return f"{HOST}/{ns}@{digest_of(label)}"


def surviving_digests(home: Path):
    """Set of digest directory paths still present under cache/OCIs."""
    root = home / "cache" / "OCIs"
    out = set()
    for dirpath, dirnames, _ in os.walk(root):
        for n in dirnames:
            if n.startswith("sha256:"):
                out.add(Path(dirpath) / n)
    return out


def symlinks(home: Path):
    root = home / "cache" / "OCIs"
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            if p.is_symlink():
                out.add(p)
    return out


HOLDER = """
import fcntl, os, sys, time
path, kind = sys.argv[1], sys.argv[2]
if kind == 'run':
    f = open(os.path.join(path, 'config.json'), 'r+')
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
else:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
print('locked', flush=True)
time.sleep(120)
"""


@contextlib.contextmanager
def holding(path: Path, kind):
    """A helper process that marks `path` running ('run': fcntl lock on config.json, Tart's
    protocol) or in use ('use': shared flock on the directory, our protocol)."""
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), kind],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        yield p
    finally:
        p.kill()
        p.wait()


@contextlib.contextmanager
def tmpfs(where: Path, size_mib, fstype="tmpfs"):
    """A tmpfs of size_mib MiB mounted at `where` (unmounted on exit); fstype="ramfs" mounts a
    ramfs instead (no size limit, no holes, no O_DIRECT)."""
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", fstype, "-o", f"size={size_mib}m,mode=0755", fstype,
                        str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        import pytest
        pytest.skip(f"cannot mount a {fstype} here (needs root/CAP_SYS_ADMIN): {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def free_bytes(path: Path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
