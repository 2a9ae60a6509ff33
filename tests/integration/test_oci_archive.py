# SPDX-License-Identifier: Apache-2.0
"""tart export / import as an OCI image-layout tar, checked with skopeo and hostile archives."""
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from oci_fixtures import MiB, allocated, cache_dir, get_manifest, make_vm, sha256_file

SMALL = ((100 * MiB, 5 * MiB), (700 * MiB, 3 * MiB))


def vm_names(tart):
    return [e["Name"] for e in tart.json("list", "--format", "json", "--source", "local")]


def test_export_import_roundtrip(tart, tmp_path):
    src = make_vm(tart, "vm", disk_gb=1, pieces=SMALL)
    out = tmp_path / "vm.tar"
    p = tart.run("export", "vm", str(out))
    assert "exporting..." in p.stderr
    with tarfile.open(out) as t:
        names = t.getnames()
        index = json.load(t.extractfile("index.json"))
    assert "oci-layout" in names and "index.json" in names
    dg = index["manifests"][0]["digest"]
    assert f"blobs/sha256/{dg[7:]}" in names
    p = tart.run("import", str(out), "copy")
    assert "importing..." in p.stderr
    dst = tart.vm_dir("copy")
    assert sha256_file(dst / "disk.img") == sha256_file(src / "disk.img")
    assert allocated(dst / "disk.img") < 32 * MiB
    assert (dst / "nvram.bin").read_bytes() == (src / "nvram.bin").read_bytes()
    mac = lambda d: json.loads((d / "config.json").read_text())["macAddress"]
    assert mac(dst) != mac(src), "imported VM must not share the MAC of an existing VM"
    # no leftovers in tmp/
    assert not [x for x in (tart.home / "tmp").iterdir()]
    p = tart.run("import", str(out), "copy", check=False)
    assert p.returncode != 0 and "already exists" in p.stderr
    p = tart.run("import", str(out), "a/b", check=False)
    assert p.returncode == 64 and "should be a local name" in p.stderr


def test_export_default_path_asks(tart, tmp_path):
    make_vm(tart, "vm", disk_gb=1, pieces=SMALL[:1])
    existing = tmp_path / "vm.tvm"
    existing.write_text("keep me")
    import subprocess as sp
    from conftest import TART_BIN
    p = sp.run([TART_BIN, "export", "vm"], cwd=tmp_path, env=tart.env, input="no\n",
               capture_output=True, text=True)
    assert p.returncode == 1
    assert "already exists, are you sure you want to overwrite it? (yes, [no])?" in p.stderr
    assert existing.read_text() == "keep me"
    p = sp.run([TART_BIN, "export", "vm"], cwd=tmp_path, env=tart.env, input="yes\n",
               capture_output=True, text=True)
    assert p.returncode == 0 and tarfile.is_tarfile(existing)


def test_skopeo_reads_export_and_writes_import(tart, registry, tmp_path):
    if not shutil.which("skopeo"):
        pytest.skip("skopeo is not installed (scripts/install-deps.sh installs it)")
    host = registry.host
    src = make_vm(tart, "vm", disk_gb=1, pieces=SMALL)
    out = tmp_path / "vm.tar"
    tart.run("export", "vm", str(out))
    with tarfile.open(out) as t:
        dg = json.load(t.extractfile("index.json"))["manifests"][0]["digest"]
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci-archive:{out}",
                    f"docker://{host}/arch/vm:1"], check=True, capture_output=True)
    _, pushed = get_manifest(host, "arch/vm", "1")
    assert pushed == dg, "export and push must produce the same manifest"
    tart.run("pull", "--insecure", f"{host}/arch/vm:1")
    assert sha256_file(cache_dir(tart, host, "arch/vm") / "1" / "disk.img") == \
        sha256_file(src / "disk.img")
    # and the other direction: an archive written by skopeo imports
    back = tmp_path / "back.tar"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{host}/arch/vm:1",
                    f"oci-archive:{back}"], check=True, capture_output=True)
    tart.run("import", str(back), "fromskopeo")
    assert sha256_file(tart.vm_dir("fromskopeo") / "disk.img") == sha256_file(src / "disk.img")


def rewrite(src, dst, mutate):
    """Copy tar src to dst, letting mutate(tarinfo, data) return a list of (info, data)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.USTAR_FORMAT) as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read() if m.isfile() else None
            for info, d in mutate(m, data):
                tout.addfile(info, io.BytesIO(d) if d is not None else None)


def file_entry(name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    return ti, data


@pytest.mark.parametrize("case", ["traversal", "absolute", "symlink", "corrupt", "truncated",
                                  "no-index", "extra-file", "two-images"])
def test_import_rejects_hostile_archives(tart, tmp_path, case):
    make_vm(tart, "vm", disk_gb=1, pieces=SMALL[:1])
    good = tmp_path / "good.tar"
    tart.run("export", "vm", str(good))
    bad = tmp_path / "bad.tar"
    evil = tmp_path / "evil"

    def mutate(m, data):
        if case == "traversal" and m.name == "oci-layout":
            return [(m, data), file_entry("blobs/sha256/../../../" + str(evil.name), b"x")]
        if case == "absolute" and m.name == "oci-layout":
            return [(m, data), file_entry(str(evil), b"x")]
        if case == "symlink" and m.name == "oci-layout":
            ti = tarfile.TarInfo("blobs/sha256/" + "a" * 64)
            ti.type = tarfile.SYMTYPE
            ti.linkname = str(evil)
            return [(m, data), (ti, None)]
        if case == "corrupt" and m.isfile() and m.size > MiB:
            d = bytearray(data)
            d[len(d) // 2] ^= 1
            return [(m, bytes(d))]
        if case == "no-index" and m.name == "index.json":
            return []
        if case == "extra-file" and m.name == "oci-layout":
            return [(m, data), file_entry("run-me.sh", b"#!/bin/sh\n")]
        if case == "two-images" and m.name == "index.json":
            idx = json.loads(data)
            idx["manifests"].append(idx["manifests"][0])
            return [file_entry("index.json", json.dumps(idx).encode())]
        return [(m, data)]

    if case == "truncated":
        raw = good.read_bytes()
        bad.write_bytes(raw[: len(raw) * 2 // 3])
    else:
        rewrite(good, bad, mutate)
    p = tart.run("import", str(bad), "imported", check=False)
    assert p.returncode == 1, p.stderr
    expect = {"traversal": "unexpected entry", "absolute": "unexpected entry",
              "symlink": "unexpected entry", "corrupt": "is corrupt", "truncated": "truncated",
              "no-index": "no index.json", "extra-file": "unexpected entry 'run-me.sh'",
              "two-images": "exactly one image"}[case]
    assert expect in p.stderr, p.stderr
    assert "imported" not in vm_names(tart)
    assert not evil.exists()
    assert not [x for x in (tart.home / "tmp").iterdir()], "staging left behind"


def test_export_of_a_cached_image(tart, registry, tmp_path):
    host = registry.host
    src = make_vm(tart, "vm", disk_gb=1, pieces=SMALL[:1])
    tart.run("push", "--insecure", "--populate-cache", "vm", f"{host}/expc/vm:1")
    out = tmp_path / "cached.tar"
    tart.run("export", f"{host}/expc/vm:1", str(out))
    # the same blobs as the push (the manifests differ only by their upload-time annotation)
    blobs_pushed = json.loads(get_manifest(host, "expc/vm", "1")[0])["layers"]
    with tarfile.open(out) as t:
        names = set(t.getnames())
    assert all(f"blobs/sha256/{b['digest'][7:]}" in names for b in blobs_pushed)
    tart.run("import", str(out), "again")
    assert sha256_file(tart.vm_dir("again") / "disk.img") == sha256_file(src / "disk.img")
