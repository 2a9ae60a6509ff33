# SPDX-License-Identifier: Apache-2.0
"""`tart run` against bad input and faults: every case ends with a clear error, never a hang."""
import os
import signal

import pytest

from run_fixtures import finish, make_tiny_vm, run_state, set_config, start_run, wait_serial
from run_fixtures import kill_leftover_runs, tiny_guest  # noqa: F401 (fixtures)


def test_missing_firmware_names_the_package(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm", uefi=True)
    p = tart.run("run", "vm", check=False, env={"TART_FIRMWARE_DIR": "/nonexistent"})
    assert p.returncode == 1
    assert "'ovmf'" in p.stderr


def test_missing_qemu_names_the_package(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm")
    p = tart.run("run", "vm", check=False, env={"PATH": "/nonexistent"})
    assert p.returncode == 1
    assert "'qemu-system-x86'" in p.stderr


def test_foreign_architecture_is_refused(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm")
    set_config(tart, "vm", arch="arm64")
    p = tart.run("run", "vm", check=False)
    assert p.returncode == 1
    assert "architecture arm64" in p.stderr


def test_corrupt_nvram_is_refused(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm", uefi=True)
    (tart.vm_dir("vm") / "nvram.bin").write_bytes(b"\0" * 1000)
    p = tart.run("run", "vm", check=False)
    assert p.returncode == 1
    assert "nvram.bin" in p.stderr


def test_qemu_failing_at_start_reports_its_stderr(tart, tiny_guest, tmp_path):
    make_tiny_vm(tart, tiny_guest, "vm")
    bad = tmp_path / "bad.qcow2"
    bad.write_bytes(b"QFI\xfb" + b"\xff" * 508)  # qcow2 magic, garbage header
    p = tart.run("run", "vm", "--disk", str(bad), check=False, timeout=60)
    assert p.returncode == 1
    assert "QEMU exited with status" in p.stderr
    assert "qemu-system-x86_64:" in p.stderr  # QEMU's own words, from its stderr


def test_qemu_crashing_mid_run_fails_the_run(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm", test="wait")
    proc = start_run(tart, "vm")
    wait_serial(tart, "vm", "TART-TEST-MARKER", proc)
    os.kill(run_state(tart, "vm")["qemuPid"], signal.SIGSEGV)
    code, _, err = finish(proc)
    assert code == 1
    assert "terminated by signal 11" in err


def test_disk_locked_by_another_run(tart, tiny_guest, tmp_path):
    disk = tmp_path / "shared.img"
    disk.write_bytes(b"\0" * (1 << 20))
    make_tiny_vm(tart, tiny_guest, "a", test="wait")
    make_tiny_vm(tart, tiny_guest, "b", test="wait")
    proc = start_run(tart, "a", "--disk", str(disk))
    try:
        wait_serial(tart, "a", "TART-TEST-MARKER", proc)
        p = tart.run("run", "b", "--disk", str(disk), check=False, timeout=60)
        assert p.returncode == 1
        assert "lock" in p.stderr
    finally:
        tart.run("stop", "a", check=False, timeout=120)
    assert finish(proc)[0] == 0


def test_kvm_request_never_hangs(tart, tiny_guest):
    """--accel kvm either runs (KVM works) or fails with the probe's reason; auto falls back."""
    make_tiny_vm(tart, tiny_guest, "vm")
    p = tart.run("run", "vm", "--accel", "kvm", check=False, timeout=180)
    if p.returncode == 0:
        pytest.skip("KVM works on this host: the fallback path cannot be exercised here")
    assert p.returncode == 1
    assert "KVM does not work on this host" in p.stderr
    p = tart.run("run", "vm", "--accel", "auto", check=False, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "using TCG" in p.stderr


def test_nested_needs_kvm(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm")
    p = tart.run("run", "vm", "--nested", check=False)
    assert p.returncode == 1
    assert "--nested needs KVM" in p.stderr


def test_bad_flags_are_usage_errors(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm")
    p = tart.run("run", "vm", "--root-disk-opts", "sync=sometimes", check=False)
    assert p.returncode == 64
    assert 'unsupported disk (image) synchronization mode: "sometimes"' in p.stderr
    p = tart.run("run", "vm", "--accel", "hvf", check=False)
    assert p.returncode == 64
    p = tart.run("run", "vm", "--net-softnet", "--net-host", check=False)
    assert p.returncode == 64
    assert "mutually exclusive" in p.stderr
    p = tart.run("run", "vm", "--disk", "/nonexistent.img", check=False)
    assert p.returncode == 1 and "/nonexistent.img" in p.stderr


def test_macos_only_flags_are_ignored_with_a_notice(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm")
    p = tart.run("run", "vm", "--no-audio", "--no-clipboard", check=False, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "ignoring --no-audio" in p.stderr
