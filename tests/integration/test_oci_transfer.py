# SPDX-License-Identifier: Apache-2.0
"""The transfer pipeline's shortcuts (issue 11): a pull whose disk is already cached downloads
no disk blob and shares the cached disk; the buffered path (no O_DIRECT) gives the same bytes;
the CPU summary of TART_TRANSFER_STATS."""
import hashlib
import json
import os
import re
import urllib.request

from conftest import Tart
from oci_fixtures import MiB, Proxy, allocated, cache_dir, get_manifest, make_vm, sha256_file

# data in the first of the two layers of a 1 GB disk (the second, a hole, costs little to move)
PIECES = ((8192, 3 * MiB), (300 * MiB + 5, 2 * MiB))


def other_home(tmp_path, name):
    h = tmp_path / name
    h.mkdir()
    return Tart(h)


def disk_layers(host, ns, tag):
    body, dg = get_manifest(host, ns, tag)
    return [layer["digest"] for layer in json.loads(body)["layers"][1:-1]], dg


def test_pull_of_a_new_tag_of_cached_layers_downloads_no_disk_blob(tart, registry, tmp_path):
    host = registry.host
    src = make_vm(tart, "vm", disk_gb=1, pieces=PIECES, seed=31)
    tart.run("push", "--insecure", "vm", f"{host}/share/vm:1")
    # the same disk under another tag, with another manifest (another label, upload time)
    tart.run("push", "--insecure", "--label", "v=2", "vm", f"{host}/share/vm:2")
    disks1, dg1 = disk_layers(host, "share/vm", "1")
    disks2, dg2 = disk_layers(host, "share/vm", "2")
    assert disks1 == disks2 and dg1 != dg2
    proxy = Proxy(host)
    try:
        t2 = other_home(tmp_path, "home2")
        t2.run("pull", "--insecure", f"{proxy.host}/share/vm:1")
        before = len(proxy.blob_gets())
        p = t2.run("pull", "--insecure", f"{proxy.host}/share/vm:2")
        assert "the disk is the one of a cached image, sharing it" in p.stderr
        fetched = [path.rsplit("/", 1)[1] for path in proxy.blob_gets()[before:]]
        assert not set(fetched) & set(disks2), fetched  # only config.json and nvram.bin
        assert len(fetched) == 2, fetched
        d1 = cache_dir(t2, proxy.host, "share/vm") / dg1 / "disk.img"
        d2 = cache_dir(t2, proxy.host, "share/vm") / dg2 / "disk.img"
        want = sha256_file(src / "disk.img")
        assert sha256_file(d2) == want
        assert allocated(d2) < 16 * MiB  # holes kept
        # the first image goes away (tag deleted, garbage collected): the second keeps its disk
        t2.run("delete", f"{proxy.host}/share/vm:1")
        assert not d1.exists()
        assert sha256_file(d2) == want
        # a clone of it is a VM of its own
        t2.run("clone", f"{proxy.host}/share/vm:2", "c")
        assert sha256_file(t2.vm_dir("c") / "disk.img") == want
        # a third tag for the very same manifest: nothing but the manifest is fetched
        body, _ = get_manifest(host, "share/vm", "2")
        req = urllib.request.Request(f"http://{host}/v2/share/vm/manifests/3", data=body,
                                     method="PUT", headers={
                                         "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        urllib.request.urlopen(req).close()
        before = len(proxy.blob_gets())
        p = t2.run("pull", "--insecure", f"{proxy.host}/share/vm:3")
        assert "image is already cached! creating a symlink..." in p.stderr
        assert proxy.blob_gets()[before:] == []
    finally:
        proxy.close()


def test_a_staging_disk_linked_to_a_cached_one_is_never_written(tart, registry, tmp_path):
    """A pull killed after sharing a cached disk leaves a second link in its staging directory;
    when the image turns out to need a download after all, the next pull must start a new file,
    not write into (and punch holes in) the cached image's disk."""
    host = registry.host
    make_vm(tart, "a", disk_gb=1, pieces=PIECES, seed=41)
    make_vm(tart, "b", disk_gb=1, pieces=PIECES, seed=42)
    tart.run("push", "--insecure", "a", f"{host}/link/vm:a")
    tart.run("push", "--insecure", "b", f"{host}/link/vm:b")
    t2 = other_home(tmp_path, "home2")
    t2.run("pull", "--insecure", f"{host}/link/vm:a")
    _, dga = get_manifest(host, "link/vm", "a")
    body_b, dgb = get_manifest(host, "link/vm", "b")
    cached = cache_dir(t2, host, "link/vm") / dga / "disk.img"
    want = sha256_file(cached)
    stage = t2.home / "tmp" / hashlib.md5(f"{host}/link/vm:b".encode()).hexdigest()
    stage.mkdir(parents=True)
    (stage / "manifest.json").write_bytes(body_b)
    (stage / ".manifest-digest").write_text(dgb)
    os.link(cached, stage / "disk.img")
    t2.run("pull", "--insecure", f"{host}/link/vm:b")
    assert sha256_file(cached) == want
    pulled = cache_dir(t2, host, "link/vm") / dgb / "disk.img"
    assert sha256_file(pulled) == sha256_file(tart.vm_dir("b") / "disk.img")
    assert os.stat(pulled).st_ino != os.stat(cached).st_ino


def test_buffered_io_gives_the_same_image(tart, registry, tmp_path):
    """TART_NO_DIRECT_IO=1 (what a filesystem without O_DIRECT gets): the same blobs on push,
    the same disk with the same holes on pull."""
    host = registry.host
    # a piece in each layer, the last one up to the disk's ragged end (1 GB is not whole pages)
    src = make_vm(tart, "vm", disk_gb=1, pieces=PIECES + ((1_000_000_000 - 4095, 4095),),
                  seed=51)
    buffered = {"TART_NO_DIRECT_IO": "1"}
    tart.run("push", "--insecure", "vm", f"{host}/buf/vm:direct")
    tart.run("push", "--insecure", "vm", f"{host}/buf/vm:buffered", env=buffered)
    assert disk_layers(host, "buf/vm", "direct")[0] == disk_layers(host, "buf/vm", "buffered")[0]
    t = other_home(tmp_path, "home2")
    t.run("pull", "--insecure", f"{host}/buf/vm:buffered", env=buffered)
    _, dg = get_manifest(host, "buf/vm", "buffered")
    pulled = cache_dir(t, host, "buf/vm") / dg / "disk.img"
    assert sha256_file(pulled) == sha256_file(src / "disk.img")
    assert allocated(pulled) < 16 * MiB


def test_transfer_stats_say_where_the_cpu_went(tart, registry, tmp_path):
    host = registry.host
    make_vm(tart, "vm", disk_gb=1, pieces=PIECES, seed=61)
    stats = {"TART_TRANSFER_STATS": "1"}
    line = re.compile(r"transfer CPU: hashing ([\d.]+) s, compression ([\d.]+) s, "
                      r"decompression ([\d.]+) s, reads ([\d.]+) s, writes ([\d.]+) s, "
                      r"network ([\d.]+) s, other ([\d.]+) s of ([\d.]+) CPU s")
    p = tart.run("push", "--insecure", "vm", f"{host}/stats/vm:1", env=stats)
    m = line.search(p.stderr)
    assert m, p.stderr
    v = [float(x) for x in m.groups()]
    assert abs(sum(v[:7]) - v[7]) < 0.1 and v[7] > 0
    t2 = other_home(tmp_path, "home2")
    p = t2.run("pull", "--insecure", f"{host}/stats/vm:1", env=stats)
    assert line.search(p.stderr), p.stderr
    # off by default
    p = t2.run("pull", "--insecure", f"{host}/stats/vm:1")
    assert "transfer CPU" not in p.stderr
