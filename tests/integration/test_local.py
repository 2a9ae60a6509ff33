# SPDX-License-Identifier: Apache-2.0
"""Tart's own local scenarios (integration-tests/test_{create,clone,delete,rename}.py) and more."""
import json
import os

import pytest


def test_create_then_list(tart):
    tart.run("create", "--linux", "linux-vm")
    assert tart.run("list", "--source", "local", "--quiet").stdout == "linux-vm\n"
    d = tart.vm_dir("linux-vm")
    assert (d / "disk.img").stat().st_size == 50 * 10**9
    assert (d / "disk.img").stat().st_blocks == 0  # sparse
    assert (d / "nvram.bin").read_bytes() == open("/usr/share/OVMF/OVMF_VARS_4M.fd", "rb").read()
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["os"] == "linux" and cfg["arch"] == "amd64" and cfg["version"] == 1
    assert cfg["cpuCount"] == 4 and cfg["memorySize"] == 4 * 1024**3
    assert cfg["display"] == {"width": 1024, "height": 768}


def test_clone(tart):
    tart.run("create", "--linux", "debian")
    tart.run("clone", "debian", "ubuntu")
    assert tart.run("list", "--source", "local", "--quiet").stdout == "debian\nubuntu\n"
    a = json.loads((tart.vm_dir("debian") / "config.json").read_text())
    b = json.loads((tart.vm_dir("ubuntu") / "config.json").read_text())
    assert a["macAddress"] != b["macAddress"], "clone must not share the MAC of a local VM"


def test_rename(tart):
    tart.run("create", "--linux", "debian")
    tart.run("rename", "debian", "ubuntu")
    assert tart.run("list", "--source", "local", "--quiet").stdout == "ubuntu\n"


def test_delete(tart):
    tart.run("create", "--linux", "debian")
    assert "debian" in tart.run("list", "--quiet").stdout
    tart.run("delete", "debian")
    assert tart.run("list", "--source", "local", "--quiet").stdout == ""


def test_json_keys(tart):
    tart.run("create", "--linux", "--disk-size", "20", "vm1")
    lst = tart.json("list", "--format", "json")
    assert list(lst[0].keys()) == ["Source", "Name", "Disk", "Size", "Accessed", "Running", "State"]
    assert lst[0]["Source"] == "local" and lst[0]["Disk"] == 20 and lst[0]["State"] == "stopped"
    assert lst[0]["Running"] is False and isinstance(lst[0]["Size"], int)
    got = tart.json("get", "vm1", "--format", "json")
    assert list(got.keys()) == ["OS", "CPU", "Memory", "Disk", "DiskFormat", "Size", "Display",
                                "Running", "State"]
    assert got["CPU"] == 4 and got["Memory"] == 4096 and got["Display"] == "1024x768"
    assert isinstance(got["Size"], str) and got["DiskFormat"] == "raw"


def test_text_outputs(tart):
    assert tart.run("list").stdout == "\n"
    tart.run("create", "--linux", "vm1")
    out = tart.run("list").stdout.splitlines()
    assert out[0].split() == ["Source", "Name", "Disk", "Size", "Accessed", "State"]
    assert out[1].split()[:4] == ["local", "vm1", "50", "0"]
    g = tart.run("get", "vm1").stdout.splitlines()
    assert g[0].split() == ["OS", "CPU", "Memory", "Disk", "DiskFormat", "Size", "Display", "State"]
    assert g[1].split()[:5] == ["linux", "4", "4096", "50", "raw"]


def test_set(tart):
    tart.run("create", "--linux", "vm")
    old_mac = json.loads((tart.vm_dir("vm") / "config.json").read_text())["macAddress"]
    tart.run("set", "vm", "--cpu", "2", "--memory", "1024", "--display", "800x600px",
             "--random-mac", "--disk-size", "60")
    cfg = json.loads((tart.vm_dir("vm") / "config.json").read_text())
    assert cfg["cpuCount"] == 2 and cfg["memorySize"] == 1024 * 1024 * 1024
    assert cfg["display"] == {"width": 800, "height": 600, "unit": "px"}
    assert cfg["macAddress"] != old_mac
    assert (tart.vm_dir("vm") / "disk.img").stat().st_size == 60 * 10**9
    p = tart.run("set", "vm", "--disk-size", "10", check=False)
    assert p.returncode == 1 and "should be larger than the current disk size" in p.stderr
    assert (tart.vm_dir("vm") / "disk.img").stat().st_size == 60 * 10**9


def test_set_disk_raw_and_qcow2(tart, tmp_path):
    tart.run("create", "--linux", "vm")
    raw = tmp_path / "in.raw"
    with open(raw, "wb") as f:
        f.truncate(8 << 20)
        f.seek(4 << 20)
        f.write(b"tart-disk-marker")
    tart.run("set", "vm", "--disk", str(raw))
    disk = tart.vm_dir("vm") / "disk.img"
    assert disk.stat().st_size == 8 << 20 and b"tart-disk-marker" in disk.read_bytes()
    q = tmp_path / "in.qcow2"
    import subprocess
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(q)], check=True)
    raw.unlink()
    tart.run("set", "vm", "--disk", str(q))
    data = disk.read_bytes()
    assert len(data) == 8 << 20 and data[4 << 20:(4 << 20) + 16] == b"tart-disk-marker"
    assert list((tart.home / "tmp").iterdir()) == []


def test_missing_vm_exit_codes(tart):
    for args in (["get", "nope"], ["delete", "nope"], ["set", "nope", "--cpu", "2"],
                 ["clone", "nope", "x"], ["set", "a/b", "--cpu", "2"], ["delete", ".."],
                 ["get", "../nope"]):
        p = tart.run(*args, check=False)
        assert p.returncode == 2, args
        assert f'the specified VM "{args[1]}" does not exist' in p.stderr


@pytest.mark.parametrize("name", ["a/b", "..", ".", "", "x" * 256, "bad\nname", ".deleting-x"])
def test_bad_names(tart, name):
    p = tart.run("create", "--linux", name, check=False)
    assert p.returncode != 0 and p.stderr.strip()
    assert not (tart.home / "vms").exists() or list((tart.home / "vms").iterdir()) == []
    tart.run("create", "--linux", "--disk-size", "1", "ok")
    for args in (["clone", "ok", name], ["rename", "ok", name]):
        p = tart.run(*args, check=False)
        assert p.returncode != 0 and p.stderr.strip(), args
    assert [x.name for x in (tart.home / "vms").iterdir()] == ["ok"]
    assert list((tart.home / "tmp").iterdir()) == []


def test_usage_errors(tart):
    for args in (["create"], ["create", "x"], ["list", "--bogus"], ["list", "--source", "x"],
                 ["create", "--linux", "--disk-size", "abc", "x"], ["clone", "a"],
                 ["set", "x", "--display", "12"]):
        p = tart.run(*args, check=False)
        assert p.returncode == 64, args
        assert p.stderr.startswith("Error: "), args


@pytest.mark.parametrize("args, message", [
    (["set", "x", "--cpu"], "Missing value for '--cpu <cpu>'"),
    (["list", "--source"], "Missing value for '--source <source>'"),
    (["ip", "x", "--resolver"], "Missing value for '--resolver <resolver>'"),
    (["prune", "--gc", "--older-than"], "Missing value for '--older-than <older-than>'"),
    (["list", "--quiet=1"], "'--quiet' takes no value"),
    (["list", "-z"], "Unknown option '-z'"),
    (["get", "--form", "json", "x"], "Unknown option '--form'"),
])
def test_option_errors_name_the_option(tart, args, message):
    """A long option at the end of the line without its value names that option."""
    p = tart.run(*args, check=False)
    assert p.returncode == 64 and p.stdout == ""
    assert p.stderr.startswith(f"Error: {message}\n"), p.stderr


def test_help_and_version(tart):
    assert tart.run("--version").stdout.strip()
    h = tart.run("--help").stdout
    for c in ("create", "clone", "run", "list", "push", "pull", "delete"):
        assert f"  {c} " in h
    assert "USAGE: tart create" in tart.run("create", "--help").stdout


def test_create_and_clone_refuse_to_overwrite(tart):
    tart.run("create", "--linux", "a")
    tart.run("create", "--linux", "b")
    p = tart.run("create", "--linux", "a", check=False)
    assert p.returncode == 1 and "already exists" in p.stderr
    p = tart.run("clone", "a", "b", check=False)
    assert p.returncode == 1 and "already exists" in p.stderr
    p = tart.run("rename", "a", "b", check=False)
    assert p.returncode == 64 and "already exists" in p.stderr


def test_corrupt_config(tart):
    tart.run("create", "--linux", "vm")
    (tart.vm_dir("vm") / "config.json").write_text("{not json")
    p = tart.run("get", "vm", check=False)
    assert p.returncode == 1 and "config.json" in p.stderr
    p = tart.run("clone", "vm", "vm2", check=False)
    assert p.returncode == 1
    assert "vm2" not in tart.run("list", "-q").stdout


def test_missing_file(tart):
    tart.run("create", "--linux", "vm")
    (tart.vm_dir("vm") / "nvram.bin").unlink()
    p = tart.run("get", "vm", check=False)
    assert p.returncode == 1
    assert "VM is missing some of its files (config.json, disk.img or nvram.bin)" in p.stderr
    assert tart.run("list", "-q").stdout == ""
    p = tart.run("clone", "vm", "vm2", check=False)
    assert p.returncode == 1 and not tart.vm_dir("vm2").exists()
    # an incomplete VM can still be deleted (the only way to clean it up with tart)
    tart.run("delete", "vm")
    assert not tart.vm_dir("vm").exists()
    (tart.vm_dir("empty")).mkdir(parents=True)
    (tart.vm_dir("empty") / "config.json").write_text("{}")
    assert tart.run("list", "-q").stdout == ""
    p = tart.run("set", "empty", "--cpu", "2", check=False)
    assert p.returncode == 1 and "missing some of its files" in p.stderr
    tart.run("delete", "empty")
    assert list((tart.home / "vms").iterdir()) == []


def test_running_vm_is_protected(tart):
    """A process holding the fcntl lock on config.json is a running VM (Tart's protocol)."""
    import fcntl
    import subprocess
    import sys
    tart.run("create", "--linux", "vm")
    cfg = tart.vm_dir("vm") / "config.json"
    holder = subprocess.Popen([sys.executable, "-c", f"""
import fcntl, sys, time
f = open({str(cfg)!r}, 'r+')
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
print('locked', flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert tart.json("get", "vm", "--format", "json")["State"] == "running"
        assert tart.json("list", "--format", "json")[0]["Running"] is True
        p = tart.run("delete", "vm", check=False)
        assert p.returncode == 1 and 'VM "vm" is running' in p.stderr
        p = tart.run("rename", "vm", "vm2", check=False)
        assert p.returncode == 1
        assert tart.run("list", "-q").stdout == "vm\n"
    finally:
        holder.kill()
        holder.wait()
    assert tart.json("get", "vm", "--format", "json")["State"] == "stopped"
    tart.run("delete", "vm")


def test_clone_enospc_leaves_nothing(tart, tmp_path):
    """A clone into a full filesystem fails cleanly: no partial VM, no staging left behind."""
    import subprocess
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True)
    try:
        home = mnt / "home"
        env = {"TART_HOME": str(home)}
        tart.run("create", "--linux", "--disk-size", "1", "src", env=env)
        disk = home / "vms" / "src" / "disk.img"
        with open(disk, "r+b") as f:
            f.write(os.urandom(5 << 20))
        p = tart.run("clone", "src", "dst", check=False, env=env)
        assert p.returncode == 1 and "space" in p.stderr.lower()
        assert sorted(x.name for x in (home / "vms").iterdir()) == ["src"]
        assert list((home / "tmp").iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_invalid_tart_home(tart, tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    p = tart.run("list", check=False, env={"TART_HOME": str(f / "home")})
    assert p.returncode == 1 and "TART_HOME is invalid" in p.stderr


def test_read_only_tart_home(tart, tmp_path):
    """Creating into a read-only TART_HOME fails with a message and changes nothing."""
    import subprocess
    if os.geteuid() != 0:
        pytest.skip("needs root to make a read-only bind mount")
    home = tmp_path / "rohome"
    tart.run("create", "--linux", "vm", env={"TART_HOME": str(home)})
    subprocess.run(["mount", "--bind", str(home), str(home)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(home)], check=True)
    try:
        p = tart.run("clone", "vm", "vm2", check=False, env={"TART_HOME": str(home)})
        assert p.returncode == 1 and "Read-only file system" in p.stderr
        p = tart.run("set", "vm", "--cpu", "2", check=False, env={"TART_HOME": str(home)})
        assert p.returncode == 1
        assert tart.run("list", "-q", env={"TART_HOME": str(home)}).stdout == "vm\n"
    finally:
        subprocess.run(["umount", str(home)], check=True)
    cfg = json.loads((home / "vms" / "vm" / "config.json").read_text())
    assert cfg["cpuCount"] == 4


def test_disk_size_zero_rejected(tart):
    p = tart.run("create", "--linux", "--disk-size", "0", "vm", check=False)
    assert p.returncode == 64


def test_tart_validation_errors(tart):
    """Tart's ValidationErrors exit 64 with `Error: ` and the usage; runtime errors exit 1."""
    tart.run("create", "--linux", "--disk-format", "RAW", "vm")  # case-insensitive, as Tart
    tart.run("create", "--linux", "other")
    cases = [
        (["create", "--linux", "--from-ipsw", "latest", "x"], "Only Linux VMs are supported"),
        (["create", "--linux", "--disk-format", "asif", "x"],
         "Disk format 'asif' is not supported on this system."),
        (["create", "--linux", "--disk-format", "qcow2", "x"], "Please provide one of 'raw'"),
        (["rename", "nope", "x"], "failed to rename a non-existent local VM: nope"),
        (["rename", "vm", "other"],
         "failed to rename VM vm, target VM other already exists, delete it first!"),
        (["rename", "vm", "a/b"], "<new-name> should be a local name"),
        (["clone", "vm", "a/b"], "<new-name> should be a local name"),
        (["clone", "vm", "x", "--concurrency", "0"], "network concurrency cannot be less than 1"),
    ]
    for args, msg in cases:
        p = tart.run(*args, check=False)
        assert p.returncode == 64, (args, p.stderr)
        assert p.stderr.startswith("Error: ") and msg in p.stderr, (args, p.stderr)
        assert "Usage: tart " in p.stderr
    assert tart.run("list", "-q").stdout == "other\nvm\n"


def test_set_runtime_errors(tart, tmp_path):
    tart.run("create", "--linux", "vm")
    before = (tart.vm_dir("vm") / "config.json").read_text()
    for args, msg in [
        (["--cpu", "0"], "VM should have 1 CPU cores at minimum (requested 0)"),
        (["--memory", "1"], "bytes of memory at minimum (requested 1048576)"),
        (["--disk", str(tmp_path / "missing.img")], "missing.img"),
        (["--disk-size", "0"], "should be larger than the current disk size"),
    ]:
        p = tart.run("set", "vm", *args, check=False)
        assert p.returncode == 1, (args, p.stderr)  # not 2: the VM exists
        assert msg in p.stderr, (args, p.stderr)
    assert (tart.vm_dir("vm") / "config.json").read_text() == before


def test_argument_parser_conventions(tart):
    """swift-argument-parser behaviours scripts rely on."""
    tart.run("create", "--disk-size=1", "vm", "--linux")  # --flag=value, flags after positionals
    assert tart.run("list", "--source=local", "-q").stdout == "vm\n"
    assert tart.run("list", "-qq").stdout == "vm\n"  # repeated flag
    assert tart.run("list", "-qh").stdout.startswith("OVERVIEW: List created VMs")
    # repeated single-value options: the last one wins
    assert tart.run("list", "--source", "oci", "--source", "local", "--quiet").stdout == "vm\n"
    assert tart.json("get", "--format", "text", "vm", "--format=json")["Disk"] == 1
    assert tart.run("get", "vm", "--format", "json", "--format", "text").stdout.startswith("OS ")
    tart.run("create", "--linux", "--disk-size", "1", "--", "-dash")  # `--` ends the options
    assert tart.run("list", "-q").stdout == "-dash\nvm\n"
    tart.run("delete", "--", "-dash")
    for args in (["list", "--quiet=yes"], ["list", "-x"], ["get", "vm", "--format"],
                 ["list", "--format", "yaml"], ["delete"], ["get", "vm", "extra"],
                 ["list", "--form", "json"], ["list", "--sou=local"],  # no abbreviations
                 ["create", "--lin", "x"]):
        p = tart.run(*args, check=False)
        assert p.returncode == 64 and p.stderr.startswith("Error: "), args
    p = tart.run("bogus", check=False)
    assert p.returncode == 64 and "Unknown subcommand 'bogus'" in p.stderr


def test_stdout_errors(tart):
    """A full stdout is a failure (data lost), a closed pipe is not an error message."""
    import subprocess
    tart.run("create", "--linux", "--disk-size", "1", "vm")
    with open("/dev/full", "w") as full:
        p = subprocess.run([tart_bin(), "list"], stdout=full, stderr=subprocess.PIPE, text=True,
                           env=tart.env)
    assert p.returncode == 1 and "cannot write to standard output" in p.stderr
    r, w = os.pipe()
    os.close(r)
    p = subprocess.run([tart_bin(), "list", "--format", "json"], stdout=w,
                       stderr=subprocess.PIPE, text=True, env=tart.env)
    os.close(w)
    assert p.stderr == ""


def tart_bin():
    from conftest import TART_BIN
    return TART_BIN


def test_list_get_fqn_of_cached_images(tart):
    """Pulled images in the OCI cache: Source "OCI", tag and digest names, fqn, get."""
    tart.run("create", "--linux", "--disk-size", "2", "local-vm")
    tart.run("create", "--linux", "--disk-size", "3", "img")
    repo = tart.home / "cache" / "OCIs" / "127.0.0.1%3A5000" / "org" / "debian"
    repo.mkdir(parents=True)
    digest = "sha256:" + "0f" * 32
    os.rename(tart.vm_dir("img"), repo / digest)
    (repo / "latest").symlink_to(repo / digest)
    q = tart.run("list", "-q").stdout
    assert q == f"local-vm\n127.0.0.1:5000/org/debian:latest\n127.0.0.1:5000/org/debian@{digest}\n"
    assert tart.run("list", "--source", "oci", "-q").stdout == q.split("\n", 1)[1]
    rows = tart.json("list", "--format", "json")
    assert [r["Source"] for r in rows] == ["local", "OCI", "OCI"]
    assert [r["Disk"] for r in rows] == [2, 3, 3]
    assert all(r["State"] == "stopped" and r["Running"] is False for r in rows)
    text = tart.run("list").stdout.splitlines()
    assert text[2].split()[:3] == ["OCI", "127.0.0.1:5000/org/debian:latest", "3"]
    assert tart.run("fqn", "127.0.0.1:5000/org/debian:latest").stdout == \
        f"127.0.0.1:5000/org/debian@{digest}\n"
    assert tart.run("fqn", "local-vm").stdout == "local-vm\n"
    p = tart.run("fqn", "127.0.0.1:5000/org/debian:missing", check=False)
    assert p.returncode == 1 and "OCI storage error: 127.0.0.1:5000/org/debian:missing is not" \
        " a digest and doesn't point to a digest" in p.stderr
    other = "127.0.0.1:5000/org/debian@sha256:" + "1" * 64
    assert tart.run("fqn", other).stdout == other + "\n"
    assert tart.json("get", "127.0.0.1:5000/org/debian:latest", "--format", "json")["Disk"] == 3
    # JSON is Swift's: `"key" : value`, 2-space indent, `/` escaped
    raw = tart.run("list", "--source", "oci", "--format", "json").stdout
    assert '    "Name" : "127.0.0.1:5000\\/org\\/debian:latest",\n' in raw
