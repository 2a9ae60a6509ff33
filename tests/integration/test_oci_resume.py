# SPDX-License-Identifier: Apache-2.0
"""A pull killed with SIGKILL resumes from its verified layers and ends byte-identical."""
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time

from conftest import Tart
from oci_fixtures import MiB, Proxy, cache_dir, get_manifest, make_vm, sha256_file


def staging_dir(t, host, ns, tag):
    return t.home / "tmp" / hashlib.md5(f"{host}/{ns}:{tag}".encode()).hexdigest()


def progress_lines(stage):
    try:
        return (stage / ".progress").read_text().splitlines()
    except FileNotFoundError:
        return []


def part_sizes(stage):
    """{layer index: compressed bytes} of the resume points of partly received layers: the
    third field of each .layer-<n>.part line (files may vanish while we look)."""
    out = {}
    for p in stage.glob(".layer-*.part"):
        try:
            fields = p.read_text().split()
        except FileNotFoundError:
            continue
        if len(fields) == 6:
            out[int(p.name.split("-")[1].split(".")[0])] = int(fields[2])
    return out


def pull_and_kill(t, name, stage, min_layers, timeout=120):
    """Start a pull, SIGKILL it once `min_layers` layers are recorded and the next one is partly
    received (0: right after it starts downloading the disk)."""
    p = t.popen("pull", "--insecure", "--concurrency", "1", name,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if p.poll() is not None:
                raise AssertionError("pull finished before it could be killed: throttle too weak")
            disk = stage / "disk.img"
            if min_layers == 0 and disk.exists():
                time.sleep(0.5)
                break
            # kill mid-layer: the next layer has started arriving
            if min_layers and len(progress_lines(stage)) >= min_layers and \
                    any(size > 0 for size in part_sizes(stage).values()):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("pull made no progress")
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()


@contextlib.contextmanager
def killed_after_one_layer(tart, registry, tmp_path, repo, tag, seed):
    """Push a 1 GB VM with two 6 MB pieces to repo:tag, pull it through a slow proxy into a
    second TART_HOME and SIGKILL that pull after one verified layer. Yields (second tart, name
    through the proxy, staging dir, pieces); the proxy runs at full speed again."""
    pieces = tuple((i * 512 * MiB + 4096, 6 * MiB) for i in range(2))
    make_vm(tart, "vm", disk_gb=1, pieces=pieces, seed=seed)
    tart.run("push", "--insecure", "vm", f"{registry.host}/{repo}:{tag}")
    proxy = Proxy(registry.host)
    try:
        proxy.set_delay(0.02)
        home = tmp_path / "home2"
        home.mkdir()
        t2 = Tart(home)
        name = f"{proxy.host}/{repo}:{tag}"
        stage = staging_dir(t2, proxy.host, repo, tag)
        pull_and_kill(t2, name, stage, 1)
        proxy.set_delay(0)
        yield t2, name, stage, pieces
    finally:
        proxy.close()


def test_resume_after_kill(tart, registry, tmp_path):
    pieces = tuple((i * 512 * MiB + 4096, 6 * MiB) for i in range(4))
    make_vm(tart, "vm", disk_gb=2, pieces=pieces, seed=7)
    tart.run("push", "--insecure", "vm", f"{registry.host}/resume/vm:1")
    proxy = Proxy(registry.host)
    try:
        proxy.set_delay(0.02)  # ~3 MB/s: each 6 MB layer takes a couple of seconds
        home = tmp_path / "home2"
        home.mkdir()
        t2 = Tart(home)
        name = f"{proxy.host}/resume/vm:1"
        stage = staging_dir(t2, proxy.host, "resume/vm", "1")
        pull_and_kill(t2, name, stage, 0)       # mid first layer
        assert stage.is_dir() and progress_lines(stage) == []
        pull_and_kill(t2, name, stage, 1)       # after one verified layer
        pull_and_kill(t2, name, stage, 2)       # resumed run adds another
        done_idx = {int(line.split()[0]) for line in progress_lines(stage)}
        done = len(done_idx)
        assert done >= 2
        parts = part_sizes(stage)
        assert parts and all(size > 0 for size in parts.values()), parts
        before = len(proxy.requests())
        proxy.set_delay(0)
        p = t2.run("pull", "--insecure", name)
        assert f"resuming: {done} of 4 disk layers already verified" in p.stderr
        for k, size in parts.items():
            assert f"resuming disk layer {k} at byte {size}" in p.stderr
        fetched = [r for r in proxy.requests()[before:]
                   if r["method"] == "GET" and "/blobs/sha256:" in r["path"]]
        body, dg = get_manifest(registry.host, "resume/vm", "1")
        # config + nvram + only the layers that were not verified yet
        assert len(fetched) == 2 + (4 - done), fetched
        # the partially received layer continued with a Range request, not from byte 0
        ranged = [r for r in fetched if r["range"]]
        assert len(ranged) == len(parts) and all(r["range"] == f"bytes={size}-"
                                                  for r, size in zip(ranged, parts.values()))
        layers = json.loads(body)["layers"][1:5]
        disk_digests = {layer["digest"] for layer in layers}
        got = sum(r["bytes"] for r in fetched if r["path"].rsplit("/", 1)[1] in disk_digests)
        want = sum(layers[k]["size"] for k in range(4) if k not in done_idx) - sum(parts.values())
        assert got == want, (got, want)
        ddir = cache_dir(t2, proxy.host, "resume/vm") / dg
        assert sha256_file(ddir / "disk.img") == sha256_file(tart.vm_dir("vm") / "disk.img")
        assert not (ddir / ".progress").exists()
        assert not stage.exists()
    finally:
        proxy.close()


def test_stale_staging_of_a_moved_tag_is_discarded(tart, registry, tmp_path):
    """A killed pull of tag t, then t is re-pushed with other content: the next pull must not
    reuse the old partial data."""
    with killed_after_one_layer(tart, registry, tmp_path, "stale/vm", "t", 21) as \
            (t2, name, stage, pieces):
        assert progress_lines(stage)
        with open(tart.vm_dir("vm") / "disk.img", "r+b") as f:
            for off, length in pieces:
                f.seek(off)
                f.write(os.urandom(length))
        tart.run("push", "--insecure", "vm", f"{registry.host}/stale/vm:t")
        p = t2.run("pull", "--insecure", name)
        assert "resuming" not in p.stderr
        _, dg = get_manifest(registry.host, "stale/vm", "t")
        ddir = cache_dir(t2, name.split("/")[0], "stale/vm") / dg
        assert sha256_file(ddir / "disk.img") == sha256_file(tart.vm_dir("vm") / "disk.img")


def test_stale_resume_point_is_retried_without_an_error_line(tart, registry, tmp_path):
    """A resume point whose saved digest no longer matches what was written (as after a crash of
    the machine: resume points are not synced) fails that layer's verification; the layer is
    downloaded again from its first byte and the pull succeeds with a warning, not an Error:
    line."""
    with killed_after_one_layer(tart, registry, tmp_path, "stalepart/vm", "1", 11) as \
            (t2, name, stage, _):
        parts = part_sizes(stage)
        assert parts, list(stage.iterdir())
        k = next(iter(parts))
        part = stage / f".layer-{k}.part"
        fields = part.read_text().split(" ")
        # the running digest of the compressed bytes: change its first hex digit
        fields[4] = ("1" if fields[4][0] != "1" else "2") + fields[4][1:]
        part.write_text(" ".join(fields))
        p = t2.run("pull", "--insecure", name)
        assert f"resuming disk layer {k} at byte" in p.stderr, p.stderr
        assert f"disk layer {k}: digest mismatch" in p.stderr, p.stderr
        assert f"retrying disk layer {k} from its first byte" in p.stderr, p.stderr
        assert "Error" not in p.stderr, p.stderr
        _, dg = get_manifest(registry.host, "stalepart/vm", "1")
        ddir = cache_dir(t2, name.split("/")[0], "stalepart/vm") / dg
        assert sha256_file(ddir / "disk.img") == sha256_file(tart.vm_dir("vm") / "disk.img")
        assert not stage.exists()
