# SPDX-License-Identifier: Apache-2.0
"""Test guests for `tart run`: built from Debian packages by guests/*.sh, cached in guests/cache."""
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# no_timer_check: on a loaded host TCG can miss the kernel's IO-APIC timer check, which then
# panics; panic=-1 reboots (and retries) instead of hanging if anything else panics.
TINY_CMDLINE = "console=ttyS0 quiet no_timer_check panic=-1"


def _build(script, timeout):
    try:
        p = subprocess.run([str(ROOT / "guests" / script)], capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.skip(f"guests/{script} did not finish in {timeout} s")
    if p.returncode != 0:
        pytest.skip(f"guests/{script} failed (needs apt access to Debian): {p.stderr[-2000:]}")
    return Path(p.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def tiny_guest():
    """Directory with kernel, initramfs, uefi.img, id_ed25519 (see guests/README.md)."""
    return _build("build-tiny.sh", 600)


@pytest.fixture(scope="session")
def debian_guest():
    """Directory with disk.img (GPT, systemd-boot, Debian bookworm) and nvram template."""
    return _build("build-debian.sh", 1200)


def set_config(tart, name, **kv):
    p = tart.vm_dir(name) / "config.json"
    c = json.loads(p.read_text())
    c.update(kv)
    p.write_text(json.dumps(c))


def make_tiny_vm(tart, guest, name, test="poweroff", uefi=False, extra_cmdline=""):
    """A 1-CPU 512 MiB VM booting the tiny guest directly (or through OVMF with uefi=True)."""
    tart.run("create", "--linux", name, "--disk-size", "1")
    tart.run("set", name, "--cpu", "1", "--memory", "512")
    d = tart.vm_dir(name)
    if uefi:
        subprocess.run(["cp", "--sparse=always", str(guest / "uefi.img"), str(d / "disk.img")],
                       check=True)
    else:
        for f in ("kernel", "initramfs"):  # hard links: tart never writes them
            try:
                os.link(guest / f, d / f)
            except OSError:
                shutil.copy(guest / f, d / f)
        set_config(tart, name,
                   cmdline=f"{TINY_CMDLINE} tart.test={test} {extra_cmdline}".strip())
    return d


def serial_log(tart, name):
    p = tart.vm_dir(name) / "serial.log"
    return p.read_text(errors="replace") if p.exists() else ""


def wait_serial(tart, name, pattern, proc=None, timeout=120):
    """Wait until serial.log matches pattern; fails if proc exits first."""
    if proc is not None:
        wait_running(tart, name, proc)  # serial.log of an earlier run is rotated by then
    deadline = time.time() + timeout
    rx = re.compile(pattern)
    while time.time() < deadline:
        m = rx.search(serial_log(tart, name))
        if m:
            return m
        if proc is not None and proc.poll() is not None:
            out = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"tart run exited {proc.returncode} before {pattern!r}: {out}")
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} on the serial console within {timeout} s:\n"
                         + serial_log(tart, name)[-2000:])


_STARTED = []


@pytest.fixture(autouse=True)
def kill_leftover_runs():
    """A failing test must not leave `tart run` behind (QEMU dies with it: PDEATHSIG)."""
    yield
    while _STARTED:
        p = _STARTED.pop()
        if p.poll() is None:
            p.kill()
            p.wait(timeout=30)


def start_run(tart, name, *args, **kw):
    p = tart.popen("run", name, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   text=True, **kw)
    _STARTED.append(p)
    return p


def finish(proc, timeout=120):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"tart run did not end within {timeout} s: {err}")
    return proc.returncode, out, err


def wait_running(tart, name, proc, timeout=60):
    """Wait until this run has started QEMU (its run.json names proc)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if run_state(tart, name)["pid"] == proc.pid:
                return
        except (FileNotFoundError, ValueError, KeyError):
            pass
        if proc.poll() is not None:
            raise AssertionError(f"tart run exited {proc.returncode}: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError(f"tart run did not start the VM within {timeout} s")


def run_state(tart, name):
    return json.loads((tart.vm_dir(name) / "run.json").read_text())


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
    return True
