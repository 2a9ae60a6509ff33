# SPDX-License-Identifier: Apache-2.0
"""Instant VMs with the tiny guest (direct kernel boot, user networking, TCG): a suspended VM
travels as an image (push/clone, export/import) and resumes; every kind of bad state is refused
with one notice and the VM boots cold; a direct-boot VM keeps its kernel and initramfs through
push -> delete -> clone and export -> import (issue 14, part 5). The Debian guest's clones
side by side are in test_instant_debian.py."""
import hashlib
import json
import os
import urllib.request

import pytest

from oci_fixtures import blob_path, cache_dir, get_manifest, upload_blob
from run_fixtures import (TINY_CMDLINE, finish, make_tiny_vm, serial_log, set_config,
                          start_run, wait_serial)
from run_fixtures import kill_leftover_runs, tiny_guest  # noqa: F401 (fixtures)
from tart_image import apple_lz4_stored  # tests/helpers, on the path through oci_fixtures

STATE_MT = "application/vnd.tart-for-linux.vm-state.v1"
REFUSED = "cannot be used"
LEFT_OUT = "is left out"


def poweroff_cmdline(tart, name):
    """A cold boot of the tiny guest then powers off at once, so `tart run` returns."""
    set_config(tart, name, cmdline=f"{TINY_CMDLINE} tart.test=poweroff")


def suspend_tiny(tart, guest, name):
    """Boot the tiny guest in uptime mode until it ticks, then suspend it."""
    make_tiny_vm(tart, guest, name, test="uptime")
    proc = start_run(tart, name)
    wait_serial(tart, name, r"TART-TEST-UPTIME ", proc)
    p = tart.run("suspend", name, check=False, timeout=300)
    assert p.returncode == 0, p.stderr
    code, _, err = finish(proc)
    assert code == 0, err


def resumes(tart, name):
    """Run a suspended tiny VM: it must carry on ticking (no new boot); then stop it."""
    proc = start_run(tart, name)
    wait_serial(tart, name, r"TART-TEST-UPTIME ", proc)
    assert "TART-TEST-BOOTED" not in serial_log(tart, name)
    assert tart.run("stop", name, check=False, timeout=120).returncode == 0
    code, _, err = finish(proc)
    assert code == 0, err
    assert "resuming VM..." in err and REFUSED not in err
    return err


def boots_cold(tart, name, why):
    """Run it: one notice naming why, a cold boot (which powers off), exit 0, state gone."""
    poweroff_cmdline(tart, name)
    p = tart.run("run", name, check=False, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count(REFUSED) == 1, p.stderr
    assert why in p.stderr, p.stderr
    assert "booting it from its disk instead" in p.stderr
    assert "TART-TEST-BOOTED" in serial_log(tart, name)
    assert not (tart.vm_dir(name) / "state.vzvmsave").exists()
    return p.stderr


def state_header(path):
    raw = path.read_bytes()[:4096]
    assert raw.startswith(b"TART-VM-STATE 1\n")
    return json.loads(raw[16:].rstrip(b"\0").decode())


def put_manifest(host, ns, tag, manifest):
    body = json.dumps(manifest).encode()
    req = urllib.request.Request(
        f"http://{host}/v2/{ns}/manifests/{tag}", method="PUT", data=body,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 201


def tart_selects(manifest):
    """What Tart's pull does with a manifest (VMDirectory+OCI.swift: layers picked by media
    type, the others skipped): exactly one config, at least one disk.v2, exactly one NVRAM."""
    mts = [l["mediaType"] for l in manifest["layers"]]
    assert mts.count("application/vnd.cirruslabs.tart.config.v1") == 1
    assert mts.count("application/vnd.cirruslabs.tart.disk.v2") >= 1
    assert mts.count("application/vnd.cirruslabs.tart.nvram.v1") == 1
    disk = [l for l in manifest["layers"]
            if l["mediaType"] == "application/vnd.cirruslabs.tart.disk.v2"]
    size = sum(int(l["annotations"]["org.cirruslabs.tart.uncompressed-size"]) for l in disk)
    assert manifest["annotations"]["org.cirruslabs.tart.uncompressed-disk-size"] == str(size)
    # every annotation is a string, as Tart's [String: String] decoder requires
    for l in manifest["layers"]:
        assert all(isinstance(v, str) for v in l.get("annotations", {}).values())


@pytest.fixture(scope="module")
def pushed(tiny_guest, registry, tmp_path_factory):
    """A suspended tiny VM pushed as <host>/instant/tiny:good; yields (host, manifest)."""
    from conftest import Tart
    home = tmp_path_factory.mktemp("instant-src") / "tart-home"
    home.mkdir()
    tart = Tart(home)
    suspend_tiny(tart, tiny_guest, "src")
    tart.run("push", "--insecure", "src", f"{registry.host}/instant/tiny:good")
    body, _ = get_manifest(registry.host, "instant/tiny", "good")
    return registry.host, json.loads(body)


def test_pushed_state_resumes_in_two_clones_and_tart_can_still_pull_it(tart, pushed):
    host, m = pushed
    tart_selects(m)
    mts = [l["mediaType"] for l in m["layers"]]
    assert STATE_MT in mts
    assert "application/vnd.cirruslabs.vetu.kernel.v1" in mts
    assert "application/vnd.cirruslabs.vetu.initramfs.v1" in mts
    ann = [l for l in m["layers"] if l["mediaType"] == STATE_MT][0]["annotations"]
    assert ann["tart-for-linux.state.arch"] == "amd64"
    assert ann["tart-for-linux.state.machine"].startswith("pc-q35-")
    assert ann["tart-for-linux.state.memory-size"] == str(512 << 20)
    for key in ("devices-digest", "disk-digest", "stream-digest"):
        assert ann[f"tart-for-linux.state.{key}"].startswith("sha256:")
    for n in ("a", "b"):
        tart.run("clone", "--insecure", f"{host}/instant/tiny:good", n)
        assert tart.json("get", n, "--format", "json")["State"] == "suspended"
    states = {e["Name"]: e["State"] for e in tart.json("list", "--format", "json")}
    assert states["a"] == states["b"] == "suspended"
    cached = cache_dir(tart, host, "instant/tiny") / "good" / "state.vzvmsave"
    before = hashlib.sha256(cached.read_bytes()[4096:]).hexdigest()
    for n in ("a", "b"):
        resumes(tart, n)
        assert not (tart.vm_dir(n) / "state.vzvmsave").exists()
        assert tart.json("get", n, "--format", "json")["State"] == "stopped"
    # the shared state is read, never written
    assert hashlib.sha256(cached.read_bytes()[4096:]).hexdigest() == before


def test_export_import_and_local_clone_carry_the_state(tart, pushed, tmp_path):
    host, _ = pushed
    tart.run("clone", "--insecure", f"{host}/instant/tiny:good", "src")
    out = tmp_path / "vm.tar"
    tart.run("export", "src", str(out))
    tart.run("clone", "src", "local")
    tart.run("delete", "src")
    tart.run("import", str(out), "imported")
    # pruning the cache takes the cached image with its state, and leaves local VMs alone
    tart.run("prune", "--entries", "caches", "--space-budget", "0")
    assert not list((tart.home / "cache" / "OCIs").rglob("state.vzvmsave"))
    for n in ("imported", "local"):
        assert tart.json("get", n, "--format", "json")["State"] == "suspended"
        resumes(tart, n)
    tart.run("prune", "--entries", "vms", "--space-budget", "0")
    assert tart.json("list", "--format", "json", "--source", "local") == []


def test_local_damage_is_refused_at_run_and_the_vm_boots_cold(tart, pushed):
    host, _ = pushed
    tart.run("clone", "--insecure", f"{host}/instant/tiny:good", "src")
    cases = {}
    for n in ("memory", "disk", "corrupt", "qemu", "arch", "lying", "devices"):
        tart.run("clone", "src", n)
        cases[n] = tart.vm_dir(n) / "state.vzvmsave"
    tart.run("set", "memory", "--memory", "768")
    with open(tart.vm_dir("disk") / "disk.img", "r+b") as f:
        f.seek(4096)
        f.write(b"changed")
    with open(cases["corrupt"], "r+b") as f:
        f.seek(cases["corrupt"].stat().st_size // 2)
        f.write(b"\xde\xad\xbe\xef")

    def rewrite_header(path, **kv):
        h = state_header(path)
        h.update(kv)
        text = b"TART-VM-STATE 1\n" + json.dumps(h, separators=(",", ":")).encode() + b"\n"
        with open(path, "r+b") as f:
            f.write(text.ljust(4096, b"\0"))

    # a state that no longer belongs to its disk does not travel either
    p = tart.run("push", "--insecure", "disk", f"{host}/instant/changed:1")
    assert "the saved state is left out of the image: the disk has changed" in p.stderr
    body, _ = get_manifest(host, "instant/changed", "1")
    assert STATE_MT not in [l["mediaType"] for l in json.loads(body)["layers"]]
    rewrite_header(cases["qemu"], qemuVersion="6.2.0")
    rewrite_header(cases["arch"], arch="arm64")
    rewrite_header(cases["lying"], devicesDigest="sha256:" + "0" * 64)
    boots_cold(tart, "memory", "it holds 512 MiB of memory, the VM now has 768 MiB")
    boots_cold(tart, "disk", "the disk has changed since the state was saved")
    boots_cold(tart, "corrupt", "it is corrupt (its content does not match its digest)")
    boots_cold(tart, "qemu", "it was saved by QEMU 6.2.0")
    boots_cold(tart, "arch", "it was saved on arm64, the VM is amd64")
    boots_cold(tart, "lying", "its header is damaged")
    # the same VM with an extra disk this time: other devices than the state was saved with
    extra = tart.home / "extra.img"
    extra.write_bytes(b"\0" * (1 << 20))
    poweroff_cmdline(tart, "devices")
    p = tart.run("run", "devices", "--disk", str(extra), check=False, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count(REFUSED) == 1 and "its machine or devices differ" in p.stderr
    assert "-drive if=none,id=disk0,format=raw" in p.stderr
    # nothing else was touched: the source still resumes
    resumes(tart, "src")


def layer_of(m, mt):
    return [l for l in m["layers"] if l["mediaType"] == mt]


def test_damaged_state_layers_are_left_out_at_pull(tart, pushed, registry):
    host, good = pushed
    ns = "instant/tiny"
    state = layer_of(good, STATE_MT)[0]

    def variant(tag, **ann):
        m = json.loads(json.dumps(good))
        for l in layer_of(m, STATE_MT):
            l["annotations"].update(ann)
        put_manifest(host, ns, tag, m)
        return m

    variant("arch", **{"tart-for-linux.state.arch": "arm64"})
    variant("qemu", **{"tart-for-linux.state.qemu-version": "6.2.0"})
    variant("disk", **{"tart-for-linux.state.disk-digest": "sha256:" + "1" * 64})
    variant("lies", **{"org.cirruslabs.tart.uncompressed-content-digest": "sha256:" + "2" * 64})
    variant("memory", **{"tart-for-linux.state.memory-size": str(1 << 30)})
    # a truncated blob (a valid blob of its own, with its own digest)
    data = blob_path(registry, state["digest"]).read_bytes()
    cut = data[: len(data) // 2]
    m = json.loads(json.dumps(good))
    for l in layer_of(m, STATE_MT):
        l["digest"], l["size"] = upload_blob(host, ns, cut), len(cut)
    put_manifest(host, ns, "truncated", m)
    # foreign content, every digest right: not a state saved by tart
    foreign = os.urandom(64 * 1024)
    blob = apple_lz4_stored(foreign)
    m = json.loads(json.dumps(good))
    layers = layer_of(m, STATE_MT)
    m["layers"] = [l for l in m["layers"] if l not in layers[1:]]
    layers[0].update(digest=upload_blob(host, ns, blob), size=len(blob))
    layers[0]["annotations"].update({
        "org.cirruslabs.tart.uncompressed-size": str(len(foreign)),
        "org.cirruslabs.tart.uncompressed-content-digest":
            "sha256:" + hashlib.sha256(foreign).hexdigest()})
    put_manifest(host, ns, "foreign", m)
    expect = {"arch": "it was saved on arm64", "qemu": "it was saved by QEMU 6.2.0",
              "disk": "it belongs to another disk than the image's",
              "lies": "its layers do not match their digests",
              "memory": "its annotations do not describe its content",
              "truncated": "its layers do not match their digests",
              "foreign": "it is not a state saved by this tart"}
    for tag, why in expect.items():
        p = tart.run("clone", "--insecure", f"{host}/{ns}:{tag}", tag, check=False)
        assert p.returncode == 0, p.stderr
        assert p.stderr.count(LEFT_OUT) == 1 and why in p.stderr, (tag, p.stderr)
        assert "Error" not in p.stderr, p.stderr
        assert not (cache_dir(tart, host, ns) / tag / "state.vzvmsave").exists()
        assert tart.json("get", tag, "--format", "json")["State"] == "stopped"
        assert not list((tart.home / "tmp").iterdir())
    # ... and the image still boots, cold
    poweroff_cmdline(tart, "lies")
    p = tart.run("run", "lies", check=False, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "TART-TEST-BOOTED" in serial_log(tart, "lies")


def test_direct_boot_vm_keeps_kernel_and_initramfs(tart, tiny_guest, registry, tmp_path):
    """Issue 14, part 5: push -> delete -> clone and export -> import boot the tiny guest."""
    make_tiny_vm(tart, tiny_guest, "tiny", test="poweroff")
    files = {f: (tart.vm_dir("tiny") / f).read_bytes() for f in ("kernel", "initramfs")}
    out = tmp_path / "tiny.tar"
    tart.run("push", "--insecure", "tiny", f"{registry.host}/instant/direct:1")
    tart.run("export", "tiny", str(out))
    tart.run("delete", "tiny")
    tart.run("clone", "--insecure", f"{registry.host}/instant/direct:1", "pulled")
    tart.run("import", str(out), "imported")
    body, _ = get_manifest(registry.host, "instant/direct", "1")
    tart_selects(json.loads(body))
    for n in ("pulled", "imported"):
        for f, data in files.items():
            assert (tart.vm_dir(n) / f).read_bytes() == data, (n, f)
        p = tart.run("run", n, check=False, timeout=300)
        assert p.returncode == 0, p.stderr
        assert "TART-TEST-MARKER" in serial_log(tart, n)
