# SPDX-License-Identifier: Apache-2.0
"""`tart run` / `stop` / `suspend` on QEMU with the tiny guest, under TCG (the `tart` fixture
sets TART_ACCEL=tcg) and user networking with restrict=on only."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from run_fixtures import (TINY_CMDLINE, finish, make_tiny_vm, pid_alive, run_state,
                          serial_log, set_config, start_run, wait_running, wait_serial)
from run_fixtures import kill_leftover_runs, tiny_guest  # noqa: F401 (fixtures)


def test_direct_kernel_boot_powers_off(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm")
    p = tart.run("run", "vm", "--no-graphics", check=False, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "TART-TEST-MARKER" in serial_log(tart, "vm")
    assert not (tart.vm_dir("vm") / "run.json").exists()
    assert tart.json("get", "vm", "--format", "json")["State"] == "stopped"


def test_uefi_boot_powers_off(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm", uefi=True)
    p = tart.run("run", "vm", check=False, timeout=300)
    assert p.returncode == 0, p.stderr
    log = serial_log(tart, "vm")
    assert "TART-TEST-MARKER" in log
    # The firmware really ran: OVMF's boot manager announces the boot option it starts.
    assert "BdsDxe" in log


def test_second_run_fails_and_state_is_running(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm", test="wait")
    proc = start_run(tart, "vm")
    try:
        wait_serial(tart, "vm", "TART-TEST-MARKER", proc)
        second = tart.run("run", "vm", check=False, timeout=60)
        assert second.returncode == 2
        assert 'VM "vm" is already running!' in second.stderr
        info = tart.json("get", "vm", "--format", "json")
        assert info["State"] == "running" and info["Running"] is True
        rows = tart.json("list", "--format", "json")
        assert [r["State"] for r in rows if r["Name"] == "vm"] == ["running"]
        assert run_state(tart, "vm")["accel"] == "tcg"
    finally:
        assert tart.run("stop", "vm", check=False, timeout=120).returncode == 0
    code, _, err = finish(proc)
    assert code == 0, err
    assert "TART-TEST-ACPI-POWEROFF" in serial_log(tart, "vm")


def test_stop_of_guest_ignoring_acpi_ends_within_timeout(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm", test="ignore-acpi")
    proc = start_run(tart, "vm")
    wait_serial(tart, "vm", "TART-TEST-MARKER", proc)
    p = tart.run("stop", "vm", "--timeout", "3", check=False, timeout=60)
    assert p.returncode == 0, p.stderr
    # stop returns only once the run lock is free: the VM is gone now.
    assert proc.poll() is not None or finish(proc, 10)[0] is not None
    code, _, err = finish(proc, 10)
    assert code == 0, err
    assert "TART-TEST-ACPI-POWEROFF" not in serial_log(tart, "vm")
    assert tart.json("get", "vm", "--format", "json")["State"] == "stopped"


def test_sigusr2_requests_guest_shutdown(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm", test="wait")
    proc = start_run(tart, "vm")
    wait_serial(tart, "vm", "TART-TEST-MARKER", proc)
    proc.send_signal(signal.SIGUSR2)
    code, _, err = finish(proc)
    assert code == 0, err
    assert "Requesting guest OS to stop..." in err
    assert "TART-TEST-ACPI-POWEROFF" in serial_log(tart, "vm")


def test_sigkill_of_run_leaves_no_qemu_and_next_run_works(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm", test="wait")
    proc = start_run(tart, "vm")
    wait_serial(tart, "vm", "TART-TEST-MARKER", proc)
    qemu = run_state(tart, "vm")["qemuPid"]
    assert pid_alive(qemu)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.time() + 10
    while pid_alive(qemu) and time.time() < deadline:
        time.sleep(0.05)
    assert not pid_alive(qemu), "QEMU outlived its tart run"
    assert tart.json("get", "vm", "--format", "json")["State"] == "stopped"
    set_config(tart, "vm", cmdline=f"{TINY_CMDLINE} tart.test=poweroff")
    p = tart.run("run", "vm", check=False, timeout=180)
    assert p.returncode == 0, p.stderr


def test_mac_collision_with_running_vm_regenerates(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "a", test="wait")
    make_tiny_vm(tart, tiny_guest, "b")
    mac = json.loads((tart.vm_dir("a") / "config.json").read_text())["macAddress"]
    set_config(tart, "b", macAddress=mac)
    proc = start_run(tart, "a")
    try:
        wait_serial(tart, "a", "TART-TEST-MARKER", proc)
        p = tart.run("run", "b", check=False, timeout=180)
        assert p.returncode == 0, p.stderr
        assert "There is already a running VM with the same MAC address!" in p.stderr
        assert "Resetting VM to assign a new MAC address..." in p.stderr
        new = json.loads((tart.vm_dir("b") / "config.json").read_text())["macAddress"]
        assert new != mac
    finally:
        tart.run("stop", "a", check=False, timeout=120)
    assert finish(proc)[0] == 0


def test_stop_and_suspend_of_stopped_vm_exit_2(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm")
    p = tart.run("stop", "vm", check=False)
    assert p.returncode == 2 and 'VM "vm" is not running' in p.stderr
    p = tart.run("suspend", "vm", check=False)
    assert p.returncode == 2 and 'VM "VM "vm" is not running" is not running' in p.stderr
    p = tart.run("run", "missing", check=False)
    assert p.returncode == 2 and 'the specified VM "missing" does not exist' in p.stderr


def _uptimes(text):
    return [float(x) for x in re.findall(r"TART-TEST-UPTIME ([0-9.]+)", text)]


def test_suspend_then_resume_keeps_uptime_running(tart, tiny_guest):
    """As Orchard does it: `run --suspendable` (accepted silently: suspend needs no flag on
    Linux), `suspend`, then a plain `run` resumes the guest where it was."""
    make_tiny_vm(tart, tiny_guest, "vm", test="uptime")
    proc = start_run(tart, "vm", "--suspendable")
    wait_serial(tart, "vm", r"TART-TEST-UPTIME .*\n(.|\n)*TART-TEST-UPTIME ", proc)
    p = tart.run("suspend", "vm", check=False, timeout=300)
    assert p.returncode == 0, p.stderr
    code, _, err = finish(proc)
    assert code == 0, err
    assert "snapshot created successfully!" in err
    assert "suspendable" not in err
    before = max(_uptimes(serial_log(tart, "vm")))
    assert (tart.vm_dir("vm") / "state.vzvmsave").stat().st_size > 0
    assert tart.json("get", "vm", "--format", "json")["State"] == "suspended"
    assert [r["State"] for r in tart.json("list", "--format", "json")] == ["suspended"]

    proc = start_run(tart, "vm")
    wait_running(tart, "vm", proc)
    wait_serial(tart, "vm", r"TART-TEST-UPTIME ", proc)
    assert not (tart.vm_dir("vm") / "state.vzvmsave").exists()
    after = _uptimes(serial_log(tart, "vm"))
    # The guest carried on: its clock continues from where it was, no new boot.
    assert "TART-TEST-BOOTED" not in serial_log(tart, "vm")
    assert min(after) > before
    assert tart.run("stop", "vm", check=False, timeout=120).returncode == 0
    code, _, err = finish(proc)
    assert code == 0, err
    assert "restoring VM state from a snapshot..." in err


def test_stop_discards_suspended_state_and_truncated_state_boots_cold(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm", test="wait")
    proc = start_run(tart, "vm")
    wait_serial(tart, "vm", "TART-TEST-MARKER", proc)
    assert tart.run("suspend", "vm", check=False, timeout=300).returncode == 0
    finish(proc)
    state = tart.vm_dir("vm") / "state.vzvmsave"
    saved = state.read_bytes()
    assert tart.run("stop", "vm", check=False).returncode == 0
    assert not state.exists()
    assert tart.json("get", "vm", "--format", "json")["State"] == "stopped"
    # Put it back (the disk is unchanged), cut short: refused with one notice, cold boot.
    state.write_bytes(saved[: len(saved) // 3])
    assert tart.json("get", "vm", "--format", "json")["State"] == "suspended"
    set_config(tart, "vm", cmdline=f"{TINY_CMDLINE} tart.test=poweroff")
    p = tart.run("run", "vm", check=False, timeout=180)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("cannot be used") == 1
    assert 'the saved state of VM "vm" cannot be used: it is truncated' in p.stderr
    assert "booting it from its disk instead" in p.stderr
    assert "TART-TEST-BOOTED" in serial_log(tart, "vm")
    assert not state.exists()
    assert tart.json("get", "vm", "--format", "json")["State"] == "stopped"


def test_extra_disk_is_readable_and_writable(tart, tiny_guest, tmp_path):
    make_tiny_vm(tart, tiny_guest, "vm", test="disk")
    disk = tmp_path / "extra.img"
    with open(disk, "wb") as f:
        f.write(b"hello-from-host\n")
        f.truncate(1 << 20)
    p = tart.run("run", "vm", "--disk", f"{disk}:sync=none", check=False, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "TART-TEST-DISK-READ hello-from-host" in serial_log(tart, "vm")
    with open(disk, "rb") as f:
        f.seek(512)
        assert f.read(17) == b"written-by-guest\n"


def test_serial_log_is_size_bounded(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm", test="flood")
    p = tart.run("run", "vm", check=False, timeout=300)
    assert p.returncode == 0, p.stderr
    d = tart.vm_dir("vm")
    log, old = d / "serial.log", d / "serial.log.1"
    assert log.stat().st_size <= 1 << 20 and old.stat().st_size <= 1 << 20
    assert "TART-TEST-MARKER" in log.read_text(errors="replace")
    # Rotated, not truncated: the two files together still hold the flood.
    assert log.stat().st_size + old.stat().st_size >= 1400000


def test_iso_is_attached_as_cdrom(tart, tiny_guest, tmp_path):
    mkiso = shutil.which("genisoimage")
    if not mkiso:
        pytest.skip("genisoimage is not installed (scripts/install-deps.sh installs it)")
    src = tmp_path / "iso"
    src.mkdir()
    (src / "hello.txt").write_text("hello-from-iso\n")
    iso = tmp_path / "installer.iso"
    subprocess.run([mkiso, "-quiet", "-R", "-o", str(iso), str(src)], check=True)
    make_tiny_vm(tart, tiny_guest, "vm", test="cdrom")
    p = tart.run("run", "vm", "--disk", str(iso), check=False, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "TART-TEST-CDROM-READ hello-from-iso" in serial_log(tart, "vm")


def test_serial_path_file_gets_the_console(tart, tiny_guest, tmp_path):
    make_tiny_vm(tart, tiny_guest, "vm")
    out = tmp_path / "console.txt"
    out.write_text("")
    p = tart.run("run", "vm", "--serial-path", str(out), check=False, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "TART-TEST-MARKER" in out.read_text()


def test_shared_directory_is_readable_and_writable(tart, tiny_guest, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("Debian's virtiofsd (C) needs root for its sandbox")
    make_tiny_vm(tart, tiny_guest, "vm", test="virtiofs")
    share = tmp_path / "share"
    share.mkdir()
    (share / "hello.txt").write_text("hello-from-host\n")
    p = tart.run("run", "vm", "--dir", str(share), check=False, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "TART-TEST-VIRTIOFS-READ hello-from-host" in serial_log(tart, "vm")
    assert (share / "from-guest.txt").read_text() == "written-by-guest\n"


def test_suspend_refused_with_shares_keeps_vm_running(tart, tiny_guest, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("Debian's virtiofsd (C) needs root for its sandbox")
    make_tiny_vm(tart, tiny_guest, "vm", test="uptime")
    share = tmp_path / "share"
    share.mkdir()
    proc = start_run(tart, "vm", "--dir", str(share))
    try:
        wait_serial(tart, "vm", "TART-TEST-UPTIME", proc)
        p = tart.run("suspend", "vm", check=False, timeout=120)
        assert p.returncode == 1
        assert not (tart.vm_dir("vm") / "state.vzvmsave").exists()
        # The guest was resumed and still runs.
        n = len(_uptimes(serial_log(tart, "vm")))
        wait_serial(tart, "vm", r"(TART-TEST-UPTIME [0-9.]+\s*){%d}" % (n + 2), proc)
        assert tart.json("get", "vm", "--format", "json")["State"] == "running"
    finally:
        tart.run("stop", "vm", check=False, timeout=120)
    code, _, err = finish(proc)
    assert code == 0, err
    assert "Failed to suspend the VM" in err


def test_named_and_read_only_shares(tart, tiny_guest, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("named and read-only shares use a private mount namespace: needs root")
    make_tiny_vm(tart, tiny_guest, "vm", test="virtiofs", extra_cmdline="tart.sub=ro")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (b / "hello.txt").write_text("read-only-content\n")
    p = tart.run("run", "vm", "--dir", f"rw:{a}", "--dir", f"ro:{b}:ro", check=False,
                 timeout=180)
    assert p.returncode == 0, p.stderr
    log = serial_log(tart, "vm")
    assert "TART-TEST-VIRTIOFS-LIST ro rw" in log
    assert "TART-TEST-VIRTIOFS-READ read-only-content" in log
    assert "TART-TEST-VIRTIOFS-WRITE-FAILED" in log
    assert not (b / "from-guest.txt").exists()
    # Nothing was mounted on the host.
    assert str(tmp_path) not in open("/proc/self/mountinfo").read()
    p = tart.run("run", "vm", "--dir", f"{a}", "--dir", f"x:{b}", check=False)
    assert p.returncode == 1
    assert "each one of them should be named" in p.stderr


def test_serial_pty(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm", test="wait")
    proc = start_run(tart, "vm", "--serial")
    line = proc.stdout.readline()
    m = re.match(r"Successfully open pty (/dev/pts/\d+)$", line.strip())
    assert m, line
    fd = os.open(m.group(1), os.O_RDONLY | os.O_NOCTTY)
    try:
        buf = b""
        deadline = time.time() + 120
        while b"TART-TEST-MARKER" not in buf and time.time() < deadline:
            buf += os.read(fd, 4096)
        assert b"TART-TEST-MARKER" in buf
    finally:
        os.close(fd)
        tart.run("stop", "vm", check=False, timeout=120)
    assert finish(proc)[0] == 0


def test_vnc_server_prints_url_and_speaks_rfb(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm", test="wait")
    proc = start_run(tart, "vm", "--vnc")
    try:
        line = proc.stdout.readline().strip()
        m = re.match(r"VNC server is running at vnc://:([A-Za-z0-9]{8})@127\.0\.0\.1:(\d+)$",
                     line)
        assert m, line
        with socket.create_connection(("127.0.0.1", int(m.group(2))), timeout=10) as s:
            assert s.recv(12).startswith(b"RFB 003.")
    finally:
        tart.run("stop", "vm", check=False, timeout=120)
    assert finish(proc)[0] == 0


def test_user_networking_forwards_ssh(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm", test="wait")
    proc = start_run(tart, "vm")
    try:
        wait_serial(tart, "vm", "TART-TEST-SSHD-STARTED", proc)
        info = run_state(tart, "vm")
        assert info["netMode"] == "user"
        port = int(info["net"].split("ssh-port=")[1])
        key = tiny_guest / "id_ed25519"
        cmd = ["ssh", "-i", str(key), "-p", str(port), "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
               "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "root@127.0.0.1",
               "cat /sys/class/net/eth0/address"]
        out = None
        for _ in range(30):
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            if r.returncode == 0:
                out = r.stdout.strip()
                break
            time.sleep(1)
        mac = tart.json("get", "vm", "--format", "json")
        assert out is not None
        cfg = (tart.vm_dir("vm") / "config.json").read_text()
        assert out in cfg, (out, mac)
    finally:
        tart.run("stop", "vm", check=False, timeout=120)
    assert finish(proc)[0] == 0
