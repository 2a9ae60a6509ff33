# SPDX-License-Identifier: Apache-2.0
"""`tart run` against bad input and faults: every case ends with a clear error, never a hang."""
import os
import secrets
import shutil
import signal
import subprocess

import pytest

from conftest import TART_BIN
from run_fixtures import finish, make_tiny_vm, run_state, serial_log, set_config, start_run, wait_serial
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


def _host_is_pvm():
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return os.path.isdir("/sys/module/kvm_pvm") and not any(
        f in line.split() for line in flags.splitlines() if line.startswith("flags")
        for f in ("vmx", "svm"))


def test_kvm_request_never_hangs(tart, tiny_guest):
    """--accel kvm either runs (KVM works) or fails at once with the probe's reason (a PVM host
    named as such); auto then falls back to TCG with one notice."""
    make_tiny_vm(tart, tiny_guest, "vm")
    p = tart.run("run", "vm", "--accel", "kvm", check=False, timeout=120)
    if p.returncode == 0:
        assert not _host_is_pvm()
        pytest.skip("KVM works on this host: the fallback path cannot be exercised here")
    assert p.returncode == 1
    assert "KVM does not work on this host" in p.stderr
    if _host_is_pvm():
        assert "PVM" in p.stderr, p.stderr
    assert not (tart.vm_dir("vm") / "serial.log").exists() or \
        "TART-TEST" not in serial_log(tart, "vm")  # refused before any guest ran
    p = tart.run("run", "vm", "--accel", "auto", check=False, timeout=180)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("using TCG") == 1, p.stderr


def test_default_accelerator_boots_the_tiny_guest(tart, tiny_guest):
    """What a new user's plain `tart run` does: no --accel, no TART_ACCEL."""
    tart.env.pop("TART_ACCEL", None)
    make_tiny_vm(tart, tiny_guest, "vm")
    p = tart.run("run", "vm", check=False, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "TART-TEST-MARKER" in serial_log(tart, "vm")
    assert p.stderr.count("using TCG") <= 1, p.stderr
    if _host_is_pvm():
        assert "PVM" in p.stderr and "using TCG" in p.stderr, p.stderr


def _spinning_kernel(path):
    """A bzImage whose setup code spins in real mode at its entry point: what a guest kernel
    does on a KVM that cannot switch it to protected mode (nested PVM)."""
    setup = bytearray(5 * 512)
    setup[0x1f1] = 4  # setup sectors
    setup[0x1fe:0x200] = b"\x55\xaa"
    setup[0x200:0x202] = b"\xeb\xfe"  # entry: jmp .
    setup[0x202:0x206] = b"HdrS"
    setup[0x206:0x208] = (0x020F).to_bytes(2, "little")
    setup[0x211] = 0x01  # loaded high
    setup[0x22C:0x230] = (0x37FFFFFF).to_bytes(4, "little")  # initrd_addr_max
    path.write_bytes(bytes(setup) + b"\xf4" * 4096)


def test_boot_watchdog_ends_a_guest_stuck_before_long_mode(tart, tiny_guest):
    """A guest that never reaches 64-bit mode (as on a KVM that passes the probe and still
    cannot boot Linux) ends the run with exit 1 and a reason, and QEMU goes with it."""
    d = make_tiny_vm(tart, tiny_guest, "vm")
    (d / "kernel").unlink()
    _spinning_kernel(d / "kernel")
    p = tart.run("run", "vm", check=False, timeout=120, env={"TART_BOOT_WATCHDOG": "3"})
    assert p.returncode == 1, p.stderr
    assert "did not reach 64-bit mode within 3 s" in p.stderr
    vms = {v["Name"]: v for v in tart.json("list", "--source", "local", "--format", "json")}
    assert vms["vm"]["State"] == "stopped"
    p = tart.run("run", "vm", check=False, env={"TART_BOOT_WATCHDOG": "soon"})
    assert p.returncode == 1 and "TART_BOOT_WATCHDOG" in p.stderr


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
    assert "ignoring --no-audio" in p.stderr and "ignoring --no-clipboard" in p.stderr


MACOS_ONLY = ("--no-clipboard", "--recovery", "--capture-system-keys", "--no-trackpad",
              "--no-pointer", "--no-keyboard", "--no-audio")


def test_each_macos_only_flag_is_named_in_its_notice(tart):
    # parsing is all this needs: the VM does not exist, so nothing boots
    for flag in MACOS_ONLY + ("--rosetta=tag",):
        p = tart.run("run", "missing", flag, check=False)
        assert p.returncode == 2, p.stderr
        notices = [line for line in p.stderr.splitlines() if line.startswith("ignoring")]
        assert notices == [f"ignoring {flag.split('=')[0]}: it only applies to macOS hosts or "
                           "guests"], p.stderr
    # --suspendable is no macOS-only flag here: suspend works without it, nothing to say
    p = tart.run("run", "missing", "--suspendable", check=False)
    assert p.returncode == 2 and "suspendable" not in p.stderr
    assert "--suspendable" in tart.run("run", "--help").stdout


def test_an_option_is_not_the_value_of_another(tart):
    """Tart's parser refuses `--net-bridged --accel=bogus`; taking the next option as the
    value would bridge the VM to an interface named '--accel=bogus'. Every command shares the
    parser."""
    tart.run("create", "--linux", "vm", "--disk-size", "1")
    for args, option in ((("run", "vm", "--net-bridged", "--accel=bogus"), "--net-bridged"),
                         (("run", "--net-bridged", "--accel=bogus", "vm"), "--net-bridged"),
                         (("run", "vm", "--disk", "--nested"), "--disk"),
                         (("set", "vm", "--cpu", "--memory", "1024"), "--cpu"),
                         (("clone", "vm", "vm2", "--concurrency", "-1"), "--concurrency"),
                         (("pull", "--concurrency", "--insecure", "x/y:z"), "--concurrency"),
                         (("ip", "vm", "--wait", "-5"), "--wait")):
        p = tart.run(*args, check=False)
        assert p.returncode == 64, (args, p.stderr)
        assert f"Missing value for '{option}" in p.stderr, (args, p.stderr)
    # a value that starts with '-' can still be given attached to its option
    p = tart.run("run", "vm", "--disk=-x.img", "--accel", "tcg", check=False)
    assert p.returncode == 1 and "'-x.img'" in p.stderr, p.stderr


def test_net_bridged_list(tart):
    """`--net-bridged=list` prints the bridges, then Ethernet interfaces that could join one,
    one a line, and exits 0 (no VM needed). In a namespace of our own: one bridge, a veth."""
    p = tart.run("run", "--net-bridged=list")
    for line in p.stdout.splitlines():  # the host's: whatever they are, they exist
        assert os.path.isdir(f"/sys/class/net/{line.split()[0]}"), line
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("a network namespace of our own needs root and iproute2")
    ns = f"tart-list-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in (["link", "add", "brt0", "type", "bridge"],
                    ["link", "add", "vt0", "type", "veth", "peer", "name", "vt1"]):
            subprocess.run(["ip", "-n", ns, *cmd], check=True)
        p = subprocess.run(["ip", "netns", "exec", ns, TART_BIN, "run", "--net-bridged=list"],
                           capture_output=True, text=True, env=tart.env, timeout=60)
        assert p.returncode == 0, p.stderr
        assert p.stdout.splitlines() == ["brt0"], p.stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    p = tart.run("run", check=False)
    assert p.returncode == 64 and "Missing expected argument '<name>'" in p.stderr
