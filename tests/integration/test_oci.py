# SPDX-License-Identifier: Apache-2.0
"""push / pull / clone through a real registry (Debian's docker-registry on loopback)."""
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import Tart
from oci_fixtures import (MiB, Proxy, allocated, blob_path, cache_dir, get_manifest, make_vm,
                          push_python_image, push_vetu_image, sha256_file)

PIECES = ((100 * MiB, 5 * MiB), (700 * MiB, 3 * MiB), (2_000_000_000 - 70_000, 70_000))
SMALL = ((100 * MiB, 5 * MiB), (700 * MiB, 3 * MiB))  # within a 1 GB disk: two layers


def other_home(tmp_path, name="home2"):
    h = tmp_path / name
    h.mkdir()
    return Tart(h)


def test_push_pull_roundtrip(tart, registry, tmp_path):
    src = make_vm(tart, "vm", pieces=PIECES)
    host = registry.host
    p = tart.run("push", "--insecure", "vm", f"{host}/rt/vm:a", f"{host}/rt/vm:b",
                 "--label", "team=ci", "--concurrency", "3")
    assert f"pushing vm to {host}/rt/vm{{:a,:b}}..." in p.stderr
    for line in ("pushing config...", "pushing disk... this will take a while...",
                 "pushing NVRAM...", "pushing manifest for a...", "pushing manifest for b..."):
        assert line in p.stderr
    body_a, dg_a = get_manifest(host, "rt/vm", "a")
    body_b, dg_b = get_manifest(host, "rt/vm", "b")
    assert dg_a == dg_b
    assert b'"application\\/vnd.oci.image.manifest.v1+json"' in body_a  # Swift-style escapes
    m = json.loads(body_a)
    types = [layer["mediaType"] for layer in m["layers"]]
    assert types == (["application/vnd.cirruslabs.tart.config.v1"]
                     + ["application/vnd.cirruslabs.tart.disk.v2"] * 4
                     + ["application/vnd.cirruslabs.tart.nvram.v1"])
    assert m["annotations"]["org.cirruslabs.tart.uncompressed-disk-size"] == "2000000000"
    sizes = [int(layer["annotations"]["org.cirruslabs.tart.uncompressed-size"])
             for layer in m["layers"][1:5]]
    assert sizes == [512 * MiB] * 3 + [2_000_000_000 - 3 * 512 * MiB]
    # the OCI config stub carries the disk format and the labels
    req_cfg = m["config"]["digest"]
    stub = json.loads(blob_path(registry, req_cfg).read_bytes())
    assert stub["config"]["Labels"] == {"org.cirruslabs.tart.disk.format": "raw", "team": "ci"}
    assert stub["os"] == "linux"

    t2 = other_home(tmp_path)
    p = t2.run("pull", "--insecure", f"{host}/rt/vm:a", env={"CI": "true"})
    assert "pulling manifest..." in p.stderr and "pulling NVRAM..." in p.stderr
    assert "pulling disk (0.0 GB compressed)..." in p.stderr
    # CI: progress as plain lines ("NN% X MB/s ..."), no terminal control sequences
    assert any(line.startswith("100% ") for line in p.stderr.splitlines()), p.stderr
    assert "\x1b[" not in p.stderr
    repo = cache_dir(t2, host, "rt/vm")
    link = repo / "a"
    assert link.is_symlink() and os.path.isabs(os.readlink(link))
    ddir = repo / dg_a
    assert Path(os.readlink(link)) == ddir
    assert (ddir / "manifest.json").read_bytes() == body_a
    assert not (ddir / ".explicitly-pulled").exists()
    assert sha256_file(ddir / "disk.img") == sha256_file(src / "disk.img")
    assert os.path.getsize(ddir / "disk.img") == 2_000_000_000
    assert allocated(ddir / "disk.img") < 32 * MiB, "holes were not preserved"
    assert (ddir / "nvram.bin").read_bytes() == (src / "nvram.bin").read_bytes()
    assert (ddir / "config.json").read_bytes() == (src / "config.json").read_bytes()
    assert t2.run("fqn", f"{host}/rt/vm:a").stdout.strip() == f"{host}/rt/vm@{dg_a}"
    # a second pull is a no-op
    p = t2.run("pull", "--insecure", f"{host}/rt/vm:a")
    assert f"{host}/rt/vm@{dg_a} image is already cached and linked!" in p.stderr
    # the other tag reuses the digest directory
    p = t2.run("pull", "--insecure", f"{host}/rt/vm:b")
    assert "image is already cached! creating a symlink..." in p.stderr
    names = [e["Name"] for e in t2.json("list", "--format", "json")]
    assert f"{host}/rt/vm:a" in names and f"{host}/rt/vm:b" in names


def test_repush_skips_existing_blobs(tart, registry):
    make_vm(tart, "vm", disk_gb=1, pieces=SMALL)
    tart.run("push", "--insecure", "vm", f"{registry.host}/skip/vm:1")
    proxy = Proxy(registry.host)
    try:
        tart.run("push", "--insecure", "vm", f"{proxy.host}/skip/vm:2")
        posts = proxy.requests("POST")
        heads = proxy.requests("HEAD")
        # config.json and nvram.bin are uploaded unconditionally (as Tart does); the 2 disk
        # chunks and the OCI config were already there
        assert len(posts) == 2, posts
        assert len(heads) >= 3
    finally:
        proxy.close()


def test_pull_by_digest_and_gc_of_moved_tag(tart, registry, tmp_path):
    host = registry.host
    make_vm(tart, "vm", disk_gb=1, pieces=SMALL[:1], seed=1)
    tart.run("push", "--insecure", "vm", f"{host}/gc/vm:t")
    _, dg1 = get_manifest(host, "gc/vm", "t")
    t2 = other_home(tmp_path)
    t2.run("pull", "--insecure", f"{host}/gc/vm:t")
    repo = cache_dir(t2, host, "gc/vm")
    assert (repo / dg1).is_dir()
    # move the tag: a different disk
    with open(tart.vm_dir("vm") / "disk.img", "r+b") as f:
        f.seek(300 * MiB)
        f.write(os.urandom(MiB))
    tart.run("push", "--insecure", "vm", f"{host}/gc/vm:t")
    _, dg2 = get_manifest(host, "gc/vm", "t")
    assert dg1 != dg2
    t2.run("pull", "--insecure", f"{host}/gc/vm:t")
    assert (repo / dg2).is_dir()
    assert not (repo / dg1).exists(), "the old digest was not garbage-collected"
    # pulled by digest: kept even without a tag
    t2.run("pull", "--insecure", f"{host}/gc/vm@{dg1}")
    assert (repo / dg1 / ".explicitly-pulled").exists()
    t2.run("delete", f"{host}/gc/vm:t")
    assert (repo / dg1).is_dir()
    assert not (repo / dg2).exists()


def test_clone_from_remote_and_local_pull(tart, registry, tmp_path):
    host = registry.host
    src = make_vm(tart, "vm", disk_gb=1, pieces=SMALL)
    tart.run("push", "--insecure", "vm", f"{host}/clone/vm:latest")
    t2 = other_home(tmp_path)
    t2.run("clone", "--insecure", f"{host}/clone/vm", "copy")
    assert sha256_file(t2.vm_dir("copy") / "disk.img") == sha256_file(src / "disk.img")
    assert cache_dir(t2, host, "clone/vm").joinpath("latest").is_symlink()
    p = t2.run("pull", "copy")
    assert p.returncode == 0 and '"copy" is a local image, nothing to pull here!' in p.stderr + p.stdout
    # a cached tag is not refreshed by clone (no registry contact needed at all)
    t2.run("clone", f"{host}/clone/vm", "copy2", "--insecure")
    assert t2.vm_dir("copy2").joinpath("disk.img").exists()


def test_populate_cache_and_lightweight_push(tart, registry):
    host = registry.host
    make_vm(tart, "vm", disk_gb=1, pieces=SMALL[:1])
    tart.run("push", "--insecure", "--populate-cache", "vm", f"{host}/pop/vm:x", f"{host}/pop/vm:y")
    _, dg = get_manifest(host, "pop/vm", "x")
    repo = cache_dir(tart, host, "pop/vm")
    assert (repo / "x").is_symlink() and (repo / "y").is_symlink()
    assert (repo / dg / "disk.img").exists()
    assert sha256_file(repo / dg / "disk.img") == sha256_file(tart.vm_dir("vm") / "disk.img")
    assert tart.vm_dir("vm").joinpath("disk.img").exists(), "populate-cache must copy, not move"
    # a cached image re-tagged in its own repository: only the manifest moves
    p = tart.run("push", "--insecure", f"{host}/pop/vm:x", f"{host}/pop/vm:z")
    assert "pushing manifest for z..." in p.stderr and "pushing disk" not in p.stderr
    _, dgz = get_manifest(host, "pop/vm", "z")
    assert dgz == dg


def test_cross_repository_mount(tart, registry):
    make_vm(tart, "vm", disk_gb=1, pieces=SMALL)
    proxy = Proxy(registry.host)
    try:
        h = proxy.host
        tart.run("push", "--insecure", "--populate-cache", "vm", f"{h}/mnt/a:1")
        before = len(proxy.requests())
        tart.run("push", "--insecure", f"{h}/mnt/a:1", f"{h}/mnt/b:1")
        reqs = proxy.requests()[before:]
        uploads = [r for r in reqs if r["method"] in ("PUT", "PATCH") and "/blobs/" in r["path"]]
        mounts = [r for r in reqs if r["method"] == "POST" and "mount=" in r["path"]]
        assert uploads == [], "blobs of the same registry must be mounted, not uploaded"
        assert len(mounts) >= 3
    finally:
        proxy.close()
    body_a, _ = get_manifest(registry.host, "mnt/a", "1")
    body_b, _ = get_manifest(registry.host, "mnt/b", "1")
    layers = lambda b: [layer["digest"] for layer in json.loads(b)["layers"]]
    assert layers(body_a) == layers(body_b)


def test_chunked_upload(tart, registry, tmp_path):
    src = make_vm(tart, "vm", disk_gb=1, pieces=SMALL)
    proxy = Proxy(registry.host)
    try:
        tart.run("push", "--insecure", "--chunk-size", "1", "vm", f"{proxy.host}/chunked/vm:1")
        patches = proxy.requests("PATCH")
        assert len(patches) >= 5  # a 5 MB random chunk in 1 MB slices
    finally:
        proxy.close()
    t2 = other_home(tmp_path)
    t2.run("pull", "--insecure", f"{registry.host}/chunked/vm:1")
    assert sha256_file(cache_dir(t2, registry.host, "chunked/vm") / "1" / "disk.img") == \
        sha256_file(src / "disk.img")


def test_corrupted_blob_rejected(tart, registry, tmp_path):
    host = registry.host
    make_vm(tart, "vm", disk_gb=1, pieces=SMALL[:1])
    tart.run("push", "--insecure", "vm", f"{host}/bad/vm:1")
    body, dg = get_manifest(host, "bad/vm", "1")
    m = json.loads(body)
    disk_blob = blob_path(registry, m["layers"][1]["digest"])
    saved = disk_blob.read_bytes()
    try:
        damaged = bytearray(saved)
        damaged[len(damaged) // 2] ^= 0xFF
        disk_blob.write_bytes(bytes(damaged))
        t2 = other_home(tmp_path)
        p = t2.run("pull", "--insecure", f"{host}/bad/vm:1", check=False)
        assert p.returncode == 1, p.stderr
        assert "mismatch" in p.stderr or "corrupt" in p.stderr or "does not match" in p.stderr
        assert not cache_dir(t2, host, "bad/vm").joinpath(dg).exists()
        assert t2.run("list", "--source", "oci", "-q").stdout.strip() == ""
    finally:
        disk_blob.write_bytes(saved)


def test_wrong_content_digest_annotation_rejected(tart, registry, tmp_path):
    host = registry.host
    make_vm(tart, "vm", disk_gb=1, pieces=SMALL[:1])
    tart.run("push", "--insecure", "vm", f"{host}/ann/vm:good")
    body, _ = get_manifest(host, "ann/vm", "good")
    m = json.loads(body)
    m["layers"][1]["annotations"]["org.cirruslabs.tart.uncompressed-content-digest"] = \
        "sha256:" + "0" * 64
    import urllib.request
    req = urllib.request.Request(f"http://{host}/v2/ann/vm/manifests/evil", method="PUT",
                                 data=json.dumps(m).encode(),
                                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    urllib.request.urlopen(req).read()
    t2 = other_home(tmp_path)
    p = t2.run("pull", "--insecure", f"{host}/ann/vm:evil", check=False)
    assert p.returncode == 1
    assert "uncompressed content does not match" in p.stderr


def test_legacy_and_foreign_manifests_rejected(tart, registry):
    host = registry.host
    make_vm(tart, "vm", disk_gb=1, pieces=SMALL[:1])
    tart.run("push", "--insecure", "vm", f"{host}/legacy/vm:good")
    body, _ = get_manifest(host, "legacy/vm", "good")
    import urllib.request
    for tag, text, expect in (
            ("v1", body.replace(b"tart.disk.v2", b"tart.disk.v1"), "no longer supported"),
            ("foreign", body.replace(b"tart.nvram.v1", b"tart.firmware.v9"),
             "unsupported layer media type")):
        req = urllib.request.Request(f"http://{host}/v2/legacy/vm/manifests/{tag}", method="PUT",
                                     data=text,
                                     headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        urllib.request.urlopen(req).read()
        p = tart.run("pull", "--insecure", f"{host}/legacy/vm:{tag}", check=False)
        assert p.returncode == 1 and expect in p.stderr, p.stderr


def test_independent_encoder_image(tart, registry):
    host = registry.host
    make_vm(tart, "tmpl", disk_gb=1)
    cfg = (tart.vm_dir("tmpl") / "config.json").read_bytes()
    nvram = (tart.vm_dir("tmpl") / "nvram.bin").read_bytes()
    disk = os.urandom(MiB + 12345) + bytes(2 * MiB) + b"tail" * 1000
    push_python_image(host, "py/vm", "v", cfg, disk, nvram)
    p = tart.run("pull", "--insecure", f"{host}/py/vm:v")
    assert "not an OVMF variable store" not in p.stderr
    repo = cache_dir(tart, host, "py/vm")
    got = (repo / "v" / "disk.img").read_bytes()
    assert got == disk
    # an Apple Virtualization NVRAM (as in Tart's arm64 images) is kept verbatim, with a note
    apple_nvram = b"\x00" * 64 + os.urandom(4000)
    push_python_image(host, "py/vm", "apple", cfg, disk, apple_nvram)
    p = tart.run("pull", "--insecure", f"{host}/py/vm:apple")
    assert "not an OVMF variable store" in p.stderr
    assert (repo / "apple" / "nvram.bin").read_bytes() == apple_nvram
    # a clone of it starts from fresh firmware variables, with a notice; the cache keeps its copy
    p = tart.run("clone", "--insecure", f"{host}/py/vm:apple", "fromapple")
    assert "starts from fresh firmware variables" in p.stderr
    assert (tart.vm_dir("fromapple") / "nvram.bin").read_bytes() == nvram
    assert (repo / "apple" / "nvram.bin").read_bytes() == apple_nvram
    # an image with a real OVMF store keeps it
    p = tart.run("clone", "--insecure", f"{host}/py/vm:v", "fromv")
    assert "fresh firmware variables" not in p.stderr


def test_vetu_image(tart, registry):
    if not shutil.which("lz4"):
        pytest.skip("lz4 is not installed (scripts/install-deps.sh installs it)")
    host = registry.host
    # Vetu's own schema (no "os", no minimums): pull checks it with the parser of get/clone
    cfg = json.dumps({"version": 1, "arch": "amd64", "cpuCount": 2,
                      "memorySize": 1 << 30, "macAddress": "02:11:22:33:44:55",
                      "disks": [{"name": "disk.img"}]}).encode()
    kernel = os.urandom(300_000)
    disk = os.urandom(MiB // 2) + bytes(3 * MiB) + b"vetu" * 5000
    push_vetu_image(host, "vetu/vm", "1", cfg, kernel, disk)
    tart.run("pull", "--insecure", f"{host}/vetu/vm:1")
    d = cache_dir(tart, host, "vetu/vm") / "1"
    assert (d / "disk.img").read_bytes() == disk
    assert (d / "kernel").read_bytes() == kernel
    assert (d / "config.json").read_bytes() == cfg
    assert (d / "nvram.bin").stat().st_size == 0


def test_skopeo_roundtrip_keeps_digest(tart, registry, tmp_path):
    if not shutil.which("skopeo"):
        pytest.skip("skopeo is not installed (scripts/install-deps.sh installs it)")
    host = registry.host
    make_vm(tart, "vm", disk_gb=1, pieces=SMALL)
    tart.run("push", "--insecure", "vm", f"{host}/sk/vm:1")
    _, dg = get_manifest(host, "sk/vm", "1")
    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{host}/sk/vm:1",
                    f"oci:{layout}:1"], check=True, capture_output=True)
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:1",
                    f"docker://{host}/sk/back:1"], check=True, capture_output=True)
    _, dg2 = get_manifest(host, "sk/back", "1")
    assert dg2 == dg
    t2 = other_home(tmp_path)
    t2.run("pull", "--insecure", f"{host}/sk/back:1")
    assert sha256_file(cache_dir(t2, host, "sk/back") / "1" / "disk.img") == \
        sha256_file(tart.vm_dir("vm") / "disk.img")


def test_concurrent_clones_download_once(tart, registry, tmp_path):
    host = registry.host
    make_vm(tart, "vm", disk_gb=1, pieces=SMALL)
    tart.run("push", "--insecure", "vm", f"{host}/many/vm:1")
    proxy = Proxy(host)
    try:
        t2 = other_home(tmp_path)
        procs = [t2.popen("clone", "--insecure", f"{proxy.host}/many/vm:1", f"c{i}",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(8)]
        outs = [p.communicate(timeout=300) for p in procs]
        for p, (o, e) in zip(procs, outs):
            assert p.returncode == 0, e
        gets = proxy.blob_gets()
        per_blob = {}
        for g in gets:
            per_blob[g] = per_blob.get(g, 0) + 1
        assert per_blob and max(per_blob.values()) == 1, per_blob
        ref = sha256_file(tart.vm_dir("vm") / "disk.img")
        for i in range(8):
            assert sha256_file(t2.vm_dir(f"c{i}") / "disk.img") == ref
        macs = {json.loads((t2.vm_dir(f"c{i}") / "config.json").read_text())["macAddress"]
                for i in range(8)}
        assert len(macs) == 8
    finally:
        proxy.close()


def test_push_refuses_running_and_bad_names(tart, registry):
    make_vm(tart, "vm", disk_gb=1, pieces=SMALL[:1])
    p = tart.run("push", "--insecure", "vm", "not a remote", check=False)
    assert p.returncode != 0 and "failed to parse remote name" in p.stderr
    p = tart.run("push", "--insecure", "missing", f"{registry.host}/x/y:1", check=False)
    assert p.returncode == 2
    # hold the run lock the way `tart run` does (POSIX lock on config.json)
    import fcntl
    with open(tart.vm_dir("vm") / "config.json", "r+") as f:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        p = tart.run("push", "--insecure", "vm", f"{registry.host}/x/y:1", check=False)
    assert p.returncode != 0 and 'VM "vm" is running' in p.stderr


def test_layers_of_cached_images_are_not_downloaded_again(tart, registry, tmp_path):
    host = registry.host
    src = make_vm(tart, "vm", disk_gb=2, pieces=tuple((i * 512 * MiB + 8192, 2 * MiB)
                                                     for i in range(4)), seed=3)
    tart.run("push", "--insecure", "vm", f"{host}/reuse/vm:1")
    with open(src / "disk.img", "r+b") as f:  # change the third chunk only
        f.seek(2 * 512 * MiB + 100 * MiB)
        f.write(os.urandom(MiB))
    tart.run("push", "--insecure", "vm", f"{host}/reuse/vm:2")
    proxy = Proxy(host)
    try:
        t2 = other_home(tmp_path)
        t2.run("pull", "--insecure", f"{proxy.host}/reuse/vm:1")
        before = len(proxy.blob_gets())
        t2.run("pull", "--insecure", f"{proxy.host}/reuse/vm:2")
        fetched = proxy.blob_gets()[before:]
        body, _ = get_manifest(host, "reuse/vm", "2")
        disks = [layer["digest"] for layer in json.loads(body)["layers"][1:-1]]
        got_disks = [p.rsplit("/", 1)[1] for p in fetched if p.rsplit("/", 1)[1] in disks]
        assert got_disks == [disks[2]], fetched  # only the changed chunk came over the network
        pulled = cache_dir(t2, proxy.host, "reuse/vm") / "2" / "disk.img"
        assert sha256_file(pulled) == sha256_file(src / "disk.img")
        # the locally copied layers kept their holes: 4 x 2 MiB + 1 MiB of data in 2 GB
        assert allocated(pulled) < 32 * MiB
    finally:
        proxy.close()


def test_different_images_pull_in_parallel(tart, registry, tmp_path):
    host = registry.host
    for i in range(2):
        make_vm(tart, f"vm{i}", disk_gb=1, pieces=((8192, 6 * MiB),), seed=10 + i)
        tart.run("push", "--insecure", f"vm{i}", f"{host}/par/vm{i}:1")
    proxy = Proxy(host)
    proxy.set_delay(0.01)
    try:
        t2 = other_home(tmp_path)
        procs = [t2.popen("pull", "--insecure", f"{proxy.host}/par/vm{i}:1",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
        # both downloads are in flight at the same time: two staging dirs with a partial layer
        seen_both = False
        import time
        deadline = time.time() + 120
        while time.time() < deadline and any(p.poll() is None for p in procs):
            parts = list((t2.home / "tmp").glob("*/.layer-*.part"))
            if len({p.parent for p in parts}) == 2:
                seen_both = True
            time.sleep(0.02)
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        assert seen_both, "the two pulls did not overlap"
        assert "waiting for" not in err.decode()
    finally:
        proxy.close()


def test_interrupted_transfers_continue_with_range(tart, registry, tmp_path):
    host = registry.host
    src = make_vm(tart, "vm", disk_gb=1, pieces=SMALL)
    tart.run("push", "--insecure", "vm", f"{host}/cut/vm:1")
    proxy = Proxy(host)
    proxy.server.cut_after = 1_000_000
    try:
        t2 = other_home(tmp_path)
        t2.run("pull", "--insecure", f"{proxy.host}/cut/vm:1")
        gets = [r for r in proxy.requests("GET") if "/blobs/sha256:" in r["path"]]
        cut = [r for r in gets if r.get("cut")]
        ranged = [r for r in gets if r["range"]]
        assert cut, "no transfer was interrupted"
        # every interrupted blob continued where it stopped instead of starting again
        assert sorted(r["path"] for r in ranged) == sorted(r["path"] for r in cut)
        assert all(r["range"] == "bytes=1000000-" for r in ranged)
        assert sha256_file(cache_dir(t2, proxy.host, "cut/vm") / "1" / "disk.img") == \
            sha256_file(src / "disk.img")
    finally:
        proxy.close()


def test_pull_has_one_retry_budget(tart, registry, tmp_path):
    host = registry.host
    src = make_vm(tart, "vm", disk_gb=1, pieces=SMALL)
    tart.run("push", "--insecure", "vm", f"{host}/flaky/vm:1")
    body, _ = get_manifest(host, "flaky/vm", "1")
    proxy = Proxy(host)
    # more failures in a row than the pull's budget (5): the pull fails with one error line,
    # without retrying the whole pull or the layer on top of the requests' retries
    layer = json.loads(body)["layers"][2]["digest"]
    proxy.server.fail_blob = layer
    proxy.server.fail_left = 6
    try:
        t2 = other_home(tmp_path)
        env = {"TART_REGISTRY_RETRY_DELAY_MS": "1"}
        p = t2.run("pull", "--insecure", f"{proxy.host}/flaky/vm:1", env=env, check=False)
        assert p.returncode == 1, p.stderr
        errors = [line for line in p.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, p.stderr
        assert proxy.host in errors[0] and "HTTP 503" in errors[0], errors
        assert "attempting to re-try" not in p.stderr
        assert len([r for r in proxy.requests("GET") if layer in r["path"]]) == 5
        # the registry recovers: the next pull completes
        t2.run("pull", "--insecure", f"{proxy.host}/flaky/vm:1", env=env)
        assert sha256_file(cache_dir(t2, proxy.host, "flaky/vm") / "1" / "disk.img") == \
            sha256_file(src / "disk.img")
    finally:
        proxy.close()
