# SPDX-License-Identifier: Apache-2.0
"""`tart exec` and `tart ip --resolver agent` against python3-grpcio playing the guest agent on
a VM's control.sock (the VM "runs": the test holds config.json's run lock as `tart run` does).
No QEMU: this is the wire compatibility of our client with an independent gRPC server, and its
behaviour when that server misbehaves."""
import hashlib
import os
import pty
import select
import signal
import subprocess
import termios
import time

import pytest

from agent_host_fixtures import FakeAgent, hold_run_lock
from conftest import TART_BIN

CONNECT_MSG = ("Failed to connect to the VM using its control socket: ",
               "is the Tart Guest Agent running?")


@pytest.fixture
def vm(tart):
    tart.run("create", "--linux", "vm", "--disk-size", "1")
    return tart.vm_dir("vm")


@pytest.fixture
def agent(vm):
    agents = []

    def start(mode="normal", **kw):
        a = FakeAgent(vm, mode=mode, **kw)
        agents.append(a)
        return a

    yield start
    for a in agents:
        a.stop()


def tart_bin(tart):
    return TART_BIN


def run_exec(tart, *args, input=None, timeout=60):
    return subprocess.run([TART_BIN, "exec", *args], input=input, capture_output=True,
                          env=tart.env, timeout=timeout)


def test_exit_codes_and_separate_streams(tart, agent):
    agent()
    for code in (0, 1, 3, 255):
        p = run_exec(tart, "vm", "exit", str(code), "to-stdout", "to-stderr")
        assert p.returncode == code, p.stderr
        assert p.stdout == b"to-stdout"
        assert p.stderr == b"to-stderr"


def test_command_and_arguments_arrive_verbatim(tart, agent):
    a = agent()
    # options after <name> belong to the command, as with Tart's passthrough parsing
    p = run_exec(tart, "vm", "describe", "-t", "a b", "", "--help")
    assert p.returncode == 0, p.stderr
    assert b"args=['-t', 'a b', '', '--help'] interactive=False tty=False" in p.stdout
    assert a.calls[-1].name == "describe"


def test_stdin_round_trip_and_eof(tart, agent):
    agent()
    data = os.urandom(24 << 20)
    p = run_exec(tart, "-i", "vm", "sha256", input=data, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().split() == [hashlib.sha256(data).hexdigest(), str(len(data))]
    # Empty stdin: only the EOF chunk.
    p = run_exec(tart, "-i", "vm", "sha256", input=b"")
    assert p.stdout.decode().split()[1] == "0"
    # And echoed back through stdout, in order.
    p = run_exec(tart, "-i", "vm", "cat", input=data[: 4 << 20], timeout=120)
    assert p.returncode == 0 and p.stdout == data[: 4 << 20]


def test_not_running_and_missing_vm_exit_2(tart, vm):
    p = run_exec(tart, "vm", "true")
    assert p.returncode == 2
    assert b'VM "vm" is not running' in p.stderr
    p = run_exec(tart, "nosuchvm", "true")
    assert p.returncode == 2
    p = run_exec(tart, "vm")
    assert p.returncode == 64  # no command


def test_no_agent_behind_control_sock(tart, vm):
    fd = hold_run_lock(vm)
    try:
        p = run_exec(tart, "vm", "true", timeout=30)
        assert p.returncode == 1
        err = p.stderr.decode()
        assert CONNECT_MSG[0] in err and CONNECT_MSG[1] in err, err
        # A socket nobody accepts on: refused at once, same message.
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(vm / "control.sock"))
        s.close()
        p = run_exec(tart, "vm", "true", timeout=30)
        assert p.returncode == 1 and CONNECT_MSG[0] in p.stderr.decode()
        p = subprocess.run([tart_bin(tart), "ip", "vm", "--resolver", "agent"],
                           capture_output=True, text=True, env=tart.env, timeout=30)
        assert p.returncode == 1
        assert "make sure that Guest agent for Tart is running" in p.stderr
    finally:
        os.close(fd)


def test_silent_server_is_bounded(tart, vm):
    """Accepts the connection, never speaks HTTP/2: Tart's message after the connect timeout."""
    import socket
    fd = hold_run_lock(vm)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(vm / "control.sock"))
    s.listen(4)
    try:
        t = time.monotonic()
        p = run_exec(tart, "vm", "true", timeout=60)
        assert p.returncode == 1
        assert CONNECT_MSG[0] in p.stderr.decode() and "no answer within" in p.stderr.decode()
        assert time.monotonic() - t < 50
    finally:
        s.close()
        os.close(fd)


@pytest.mark.parametrize("mode,message", [
    ("malformed", "malformed message"),
    ("oversized", "too large"),
    ("no-exit", "without an exit code"),
    ("die", "lost before the command finished"),
])
def test_misbehaving_agent_is_a_clear_error(tart, agent, mode, message):
    agent(mode)
    p = run_exec(tart, "vm", "x", timeout=60)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert message in p.stderr.decode(), p.stderr


def test_stalled_agent_ends_on_signals(tart, agent):
    """No overall timeout (as Tart: a command may run for days), but SIGTERM/SIGINT end it
    at once, the remote call cancelled."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        a = agent("stall")
        p = subprocess.Popen([tart_bin(tart), "exec", "vm", "x"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=tart.env)
        assert p.stdout.readline() == b"started\n"
        p.send_signal(sig)
        p.wait(timeout=20)
        assert p.returncode == -sig
        assert a.cancelled.wait(20), "the agent did not see the call cancelled"
        a.stop()


def test_closed_stdout_ends_the_call(tart, agent):
    """`tart exec vm yes | head -1`: tart exec dies by SIGPIPE as the local command would."""
    a = agent("flood")
    p = subprocess.Popen([tart_bin(tart), "exec", "vm", "yes"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=tart.env)
    assert p.stdout.read(10) == b"y\ny\ny\ny\ny\n"
    p.stdout.close()
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGPIPE
    assert a.cancelled.wait(20)


def pty_exec(tart, *args, rows=33, cols=101):
    """tart exec under a pseudo-terminal of rows x cols: (pid, master fd)."""
    pid, master = pty.fork()
    if pid == 0:
        import fcntl
        import struct
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.execve(tart_bin(tart), [tart_bin(tart), "exec", *args], tart.env)
    return pid, master


def read_until(fd, needle, timeout=30):
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


def test_tty_sends_size_and_resizes(tart, agent):
    agent()
    pid, master = pty_exec(tart, "-t", "vm", "describe")
    out = read_until(master, b"cols=")
    assert b"tty=True rows=33 cols=101" in read_until(master, b"\n") or \
        b"tty=True rows=33 cols=101" in out, out
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    os.close(master)

    pid, master = pty_exec(tart, "-t", "-i", "vm", "resize")
    time.sleep(1)
    import fcntl
    import struct
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
    os.kill(pid, signal.SIGWINCH)
    assert b"resize 50x120" in read_until(master, b"resize 50x120")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    os.close(master)


def test_tty_raw_mode_restored_on_every_exit(tart, agent):
    """The terminal comes back as it was after a normal exit, a signal, and a broken agent."""
    for mode, sig in (("normal", None), ("stall", signal.SIGTERM), ("stall", signal.SIGHUP),
                      ("die", None)):
        a = agent(mode)
        pid, master = pty_exec(tart, "-t", "-i", "vm", "exit", "0", "hello")
        out = read_until(master, b"hello" if mode == "normal" else b"started")
        assert out, mode
        if sig:
            os.kill(pid, sig)
        _, status = os.waitpid(pid, 0)
        # After tart exec ended, the pty is back in canonical mode with echo: typing a line
        # echoes it (a raw terminal would not).
        attrs = termios.tcgetattr(master)
        assert attrs[3] & termios.ICANON and attrs[3] & termios.ECHO, (mode, sig)
        os.close(master)
        a.stop()


def test_ctrl_c_with_tty_but_without_i_interrupts(tart, agent):
    """-t without -i: our stdin is not sent, so Ctrl-C must still interrupt (ISIG kept)."""
    a = agent("stall")
    pid, master = pty_exec(tart, "-t", "vm", "x")
    assert b"started" in read_until(master, b"started")
    os.write(master, b"\x03")
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT
    assert a.cancelled.wait(20)
    os.close(master)


def test_ip_resolver_agent(tart, agent):
    agent(ip="192.0.2.44")
    p = subprocess.run([tart_bin(tart), "ip", "vm", "--resolver", "agent"], capture_output=True,
                       text=True, env=tart.env, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "192.0.2.44\n"


def test_frozen_agent_is_detected_by_keepalive(tart, vm):
    """An agent that stops answering altogether (here SIGSTOPped) ends the call: PINGs go
    unanswered (TART_AGENT_KEEPALIVE shortens the 30 s interval for the test)."""
    here = os.path.dirname(os.path.abspath(__file__))
    server = subprocess.Popen(
        ["/usr/bin/python3", "-c",
         "import sys, time; sys.path.insert(0, sys.argv[1]);"
         "from agent_host_fixtures import FakeAgent; from pathlib import Path;"
         "FakeAgent(Path(sys.argv[2]), mode='stall'); print('ready', flush=True);"
         "time.sleep(600)", here, str(vm)], stdout=subprocess.PIPE)
    try:
        assert server.stdout.readline() == b"ready\n"
        env = dict(tart.env, TART_AGENT_KEEPALIVE="1")
        p = subprocess.Popen([TART_BIN, "exec", "vm", "x"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
        assert p.stdout.readline() == b"started\n"
        os.kill(server.pid, signal.SIGSTOP)
        t = time.monotonic()
        _, err = p.communicate(timeout=60)
        assert p.returncode == 1
        assert b"stopped answering" in err, err
        assert time.monotonic() - t < 30
    finally:
        os.kill(server.pid, signal.SIGKILL)
        server.wait()


def test_http2_server_that_is_not_grpc(tart, vm):
    """Something on control.sock that speaks HTTP/2 but not gRPC (python3-h2): a clear error."""
    import socket
    import threading
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions
    fd = hold_run_lock(vm)
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(vm / "control.sock"))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        h = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        h.initiate_connection()
        try:
            conn.sendall(h.data_to_send())
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                for ev in h.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        h.send_headers(ev.stream_id, [(":status", "404"),
                                                      ("content-type", "text/plain")],
                                       end_stream=True)
                conn.sendall(h.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            pass  # tart exec went away first
        finally:
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        p = run_exec(tart, "vm", "true", timeout=30)
        assert p.returncode == 1
        assert b"does not answer gRPC (HTTP status 404)" in p.stderr, p.stderr
    finally:
        srv.close()
        os.close(fd)
