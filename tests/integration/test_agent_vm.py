# SPDX-License-Identifier: Apache-2.0
"""The guest agent inside the tiny guest, reached over a real virtio-serial port: QEMU (TCG)
started here directly with the port's chardev on a Unix socket, and python3-grpcio speaking
to that socket. Proves the agent starts in the guest, answers, and follows the serial reset
convention with the virtio driver's own semantics (POLLHUP while no host is connected). The
`tart run` level (control.sock) is tested by the host side's tests."""
import os
import shutil
import subprocess
import time

import pytest

from agent_fixtures import Client, wait_for
from run_fixtures import TINY_CMDLINE, tiny_guest  # noqa: F401 (fixture)

QEMU = shutil.which("qemu-system-x86_64")
pytestmark = pytest.mark.skipif(not QEMU, reason="qemu-system-x86_64 not installed")


@pytest.fixture
def vm(tiny_guest, tmp_path):
    sock = tmp_path / "agent.sock"
    log = tmp_path / "serial.log"
    cmd = [QEMU, "-accel", "tcg", "-machine", "q35", "-m", "512", "-smp", "1", "-nodefaults",
           "-display", "none", "-no-reboot", "-nic", "none",
           "-kernel", str(tiny_guest / "kernel"), "-initrd", str(tiny_guest / "initramfs"),
           "-append", f"{TINY_CMDLINE} tart.test=wait",
           "-chardev", f"file,id=ser0,path={log}", "-serial", "chardev:ser0",
           "-device", "virtio-serial-pci,id=vser0",
           "-chardev", f"socket,id=agent,path={sock},server=on,wait=off",
           "-device", "virtserialport,bus=vser0.0,chardev=agent,name=org.tart.agent.0"]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        wait_for(lambda: p.poll() is not None or (log.exists() and
                                                 b"TART-TEST-AGENT-STARTED" in log.read_bytes()),
                 timeout=180, what="the tiny guest to start its agent")
        assert p.poll() is None, p.stderr.read().decode()
        yield sock
    finally:
        p.kill()
        p.wait()


def test_agent_in_tiny_guest_over_virtio_serial(vm):
    c = Client(vm)
    out, err, code = c.exec("uname", "-s", timeout=120)
    assert (out, err, code) == (b"Linux\n", b"", 0)
    out, err, code = c.exec("sh", "-c", "cat; echo; tty; exit 3", stdin=b"through the port",
                            timeout=120)
    assert (out, err, code) == (b"through the port\nnot a tty\n", b"", 3)
    # The host side goes away mid-command (tart run killed): the agent kills that command.
    calls = c.exec_call(iter([c.command("sh", ["-c", "echo $$; exec sleep 1000"])]), timeout=120)
    pid = next(calls).standard_output.data.split()[0].decode()
    c.close()
    # A new host connection (a restarted tart run) is served, and the old command is gone.
    c2 = Client(vm)

    def gone():
        try:
            return c2.exec("sh", "-c", f"kill -0 {pid}", timeout=60)[2] == 1
        except Exception:
            time.sleep(0.5)
            return False

    wait_for(gone, timeout=120, what="the old session's command killed")
    out, _, code = c2.exec("sh", "-c", "grep -c 'session reset' /tmp/tart-guest-agent.log",
                           timeout=60)
    assert code == 0 and int(out) >= 1
    # A pty in the guest, and the guest's view of ResolveIP (no NIC here: no address).
    out, _, code = c2.run([c2.command("tty", tty=True, rows=30, cols=100)], timeout=60)
    assert code == 0 and out.startswith(b"/dev/pts/")
    import grpc
    with pytest.raises(grpc.RpcError) as e:
        c2.resolve_ip(timeout=60)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    c2.close()
