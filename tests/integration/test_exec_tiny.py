# SPDX-License-Identifier: Apache-2.0
"""`tart exec` with the tiny guest (busybox init starts the Tart guest agent; boots in a few
seconds under TCG): what does not need Debian. Over virtio-serial through tart run's HTTP/2
multiplexer (this host has no vsock).

- A VM suspended and resumed: the agent's session is reset over the restored port and exec
  works again (no event says the port is open after a restore).
- Many clients at once, one of them a slow reader: its stream stalls at the agent (flow
  control), the others finish, and tart run's memory stays small. Then the agent freezes
  mid-call: tart run's keepalive PINGs end the call with an error.
- A guest without any agent (tart.agent=off): Tart's message within the bounded wait; then the
  vsock transport's byte proxy, a Unix socket standing in for vsock."""
import hashlib
import os
import subprocess
import time

import pytest

from agent_fixtures import AgentProcess
from conftest import TART_BIN
from run_fixtures import finish, make_tiny_vm, start_run, wait_running, wait_serial
from run_fixtures import kill_leftover_runs, tiny_guest  # noqa: F401 (fixtures)


def texec(tart, *args, input=None, timeout=120):
    return subprocess.run([TART_BIN, "exec", *args], input=input, capture_output=True,
                          env=tart.env, timeout=timeout)


def wait_exec(tart, name, proc, timeout=180):
    deadline = time.time() + timeout
    while True:
        p = texec(tart, name, "echo", "up", timeout=60)
        if p.returncode == 0:
            return p
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, p.stderr
        time.sleep(0.5)


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int([l.split()[1] for l in f if l.startswith("VmHWM:")][0])


def test_exec_after_suspend_and_resume(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm", test="wait")
    proc = start_run(tart, "vm")
    wait_serial(tart, "vm", "TART-TEST-AGENT-STARTED", proc)
    assert wait_exec(tart, "vm", proc).stdout == b"up\n"
    assert texec(tart, "vm", "sh", "-c", "echo before > /tmp/mark").returncode == 0
    assert tart.run("suspend", "vm", check=False, timeout=300).returncode == 0
    code, _, err = finish(proc)
    assert code == 0, err
    assert not (tart.vm_dir("vm") / "control.sock").exists()
    # Not running: exit 2.
    assert texec(tart, "vm", "true").returncode == 2

    proc = start_run(tart, "vm")
    wait_running(tart, "vm", proc)
    # The same guest (its /tmp survived), reached through a fresh agent session.
    p = wait_exec(tart, "vm", proc, timeout=120)
    assert texec(tart, "vm", "cat", "/tmp/mark").stdout == b"before\n"
    assert tart.run("stop", "vm", check=False, timeout=120).returncode == 0
    code, _, err = finish(proc)
    assert code == 0, err
    assert "restoring VM state from a snapshot..." in err


def test_slow_reader_does_not_grow_memory_or_block_others_and_frozen_agent(tart, tiny_guest):
    make_tiny_vm(tart, tiny_guest, "vm", test="wait")
    # A short keepalive for the frozen agent at the end (the default is 30 s).
    proc = start_run(tart, "vm", env={"TART_AGENT_KEEPALIVE": "3"})
    try:
        wait_exec(tart, "vm", proc)
        # A client that reads nothing of a 16 MiB output (a SIGSTOPped tart exec): far more
        # than the windows (128 KiB per stream, 1 MiB per connection) may hold.
        slow = subprocess.Popen([TART_BIN, "exec", "vm", "head", "-c", str(16 << 20),
                                 "/dev/zero"], stdout=subprocess.PIPE, env=tart.env)
        time.sleep(1)
        os.kill(slow.pid, 19)  # SIGSTOP
        try:
            time.sleep(2)
            before = vm_hwm_kib(proc.pid)
            # Meanwhile other calls go through, 8 at a time.
            ps = [subprocess.Popen([TART_BIN, "exec", "vm", "sh", "-c", f"echo {i}; exit {i}"],
                                   stdout=subprocess.PIPE, env=tart.env) for i in range(8)]
            for i, p in enumerate(ps):
                out, _ = p.communicate(timeout=120)
                assert (p.returncode, out) == (i, f"{i}\n".encode())
            # The stalled stream holds at most its windows, not the 16 MiB.
            assert vm_hwm_kib(proc.pid) - before < 8 * 1024
        finally:
            os.kill(slow.pid, 18)  # SIGCONT
        n = 0
        while True:
            chunk = slow.stdout.read(1 << 20)
            if not chunk:
                break
            n += len(chunk)
        assert slow.wait(timeout=120) == 0
        assert n == 16 << 20
        # The agent freezes mid-call (SIGSTOP): tart run's PINGs go unanswered, the call
        # ends with a clear error instead of hanging, and tart run carries on.
        t = time.monotonic()
        p = texec(tart, "vm", "sh", "-c",
                  "echo started; kill -STOP $(pidof tart-guest-agent); sleep 600")
        assert p.returncode == 1 and b"stopped answering" in p.stderr, p.stderr
        assert time.monotonic() - t < 60
        assert proc.poll() is None
    finally:
        tart.run("stop", "vm", check=False, timeout=120)
        finish(proc)


def test_no_agent_in_the_guest_then_the_byte_proxy(tart, tiny_guest, tmp_path):
    make_tiny_vm(tart, tiny_guest, "vm", test="wait", extra_cmdline="tart.agent=off")
    # The vsock path's byte proxy, with a Unix socket standing in for vsock (this host has
    # none): while nothing listens there, calls fall back to the serial path.
    agent_sock = tmp_path / "agent.sock"
    proc = start_run(tart, "vm", env={"TART_AGENT_PROXY_UNIX": str(agent_sock)})
    try:
        wait_serial(tart, "vm", "TART-TEST-MARKER", proc)
        t = time.monotonic()
        p = texec(tart, "vm", "true", timeout=60)
        assert p.returncode == 1
        assert (b"Failed to connect to the VM using its control socket: no guest agent answers"
                in p.stderr), p.stderr
        assert b"is the Tart Guest Agent running?" in p.stderr
        assert time.monotonic() - t < 30
        p = subprocess.run([TART_BIN, "ip", "vm", "--resolver", "agent"], capture_output=True,
                           text=True, env=tart.env, timeout=60)
        assert p.returncode == 1 and "Guest agent for Tart" in p.stderr
        # Now an agent listens there (on this host): connections go through byte for byte.
        marker = tmp_path / "marker"
        marker.write_text("host-side\n")
        agent = AgentProcess(tmp_path)
        try:
            p = texec(tart, "vm", "cat", str(marker))
            assert (p.returncode, p.stdout) == (0, b"host-side\n"), p.stderr
            data = os.urandom(8 << 20)
            p = texec(tart, "-i", "vm", "sha256sum", input=data)
            assert p.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
        finally:
            agent.stop()
    finally:
        tart.run("stop", "vm", check=False, timeout=120)
        finish(proc)
