# SPDX-License-Identifier: Apache-2.0
"""`tart exec`, `tart ip --resolver agent` and control.sock with a real guest: ONE Debian VM
(OVMF, systemd, the Tart guest agent as admin, Debian's qemu-guest-agent) under TCG for the
whole module, booted once (20-60 s) and used by every test in order. The agent is reached over
virtio-serial (this host has no vsock), through tart run's HTTP/2 multiplexer.

As root the VM runs in NAT mode inside the test's own network namespaces (net_fixtures.py), so
the agent's address can be compared with tart's own DHCP lease; otherwise in user mode and that
one comparison is skipped loudly.

What is proved here (issue 8's list): exit codes 0, 1, 255; stdout/stderr kept apart; a stdin
round trip by checksum (32 MiB: through virtio-serial under TCG about 10 MiB/s, so the 1 GiB run
is bench/exec.sh's); `-t` under a pty prints a tty device; 8 concurrent execs; python3-grpcio
through control.sock against our agent; the agent killed mid-exec (clean error, tart run
survives, the restarted agent serves the next exec); a second `tart run` refused without
disturbing control.sock; QEMU's guest agent answering exec and ip when ours is stopped, and
refusing -t clearly; a VM stopped during an exec; exec into a stopped VM exits 2."""
import hashlib
import os
import pty
import select
import signal
import subprocess
import termios
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agent_fixtures import Client
from conftest import TART_BIN, Tart
from run_fixtures import run_state

NAME = "deb"


class DebianVM:
    def __init__(self, tart, topo):
        self.tart, self.topo, self.proc = tart, topo, None

    def start(self):
        """tart run in the background (inside the test's namespace as root); returns once our
        agent answers. QEMU's guest agent starts earlier in the boot and answers first (as
        root); the tests start once ours answers (as admin)."""
        argv = [TART_BIN, "run", NAME, "--no-graphics"]
        if self.topo:
            argv = ["ip", "netns", "exec", self.topo.H, *argv]
        self.proc = subprocess.Popen(argv, env=self.tart.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.wait_exec(NAME, "whoami", want=b"admin", timeout=300)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.tart.run("stop", NAME, "--timeout", "30", check=False, timeout=120)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def exec(self, *args, input=None, timeout=180):
        return subprocess.run([TART_BIN, "exec", *args], input=input, capture_output=True,
                              env=self.tart.env, timeout=timeout)

    def wait_exec(self, *args, want=None, timeout=240):
        """Retry an exec until it succeeds (and prints want); returns the last result."""
        deadline = time.time() + timeout
        while True:
            p = self.exec(*args, timeout=60)
            if p.returncode == 0 and (want is None or want in p.stdout):
                return p
            assert self.proc.poll() is None, self.proc.stderr.read()
            assert time.time() < deadline, (p.returncode, p.stdout, p.stderr)
            time.sleep(1)

    def tart_cmd(self, *args, timeout=120):
        argv = [TART_BIN, *args]
        if self.topo:
            argv = ["ip", "netns", "exec", self.topo.H, *argv]
        return subprocess.run(argv, capture_output=True, text=True, env=self.tart.env,
                              timeout=timeout)


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    from run_fixtures import _build
    guest = _build("build-debian.sh", 1200)
    topo = None
    work = tmp_path_factory.mktemp("exec-vm")
    if os.geteuid() == 0:
        from net_fixtures import Topo, need_root_netns
        need_root_netns()
        topo = Topo(work)
        topo.build()
    try:
        tart = Tart(topo.home if topo else work / "home")
        tart.home.mkdir(exist_ok=True)
        if topo:
            tart.env.update(topo.env)
            tart.env["TART_NET_MODE"] = "nat"
        tart.run("create", "--linux", NAME, "--disk-size", "3")
        tart.run("set", NAME, "--cpu", "2", "--memory", "1024")
        subprocess.run(["cp", "--sparse=always", str(guest / "disk.img"),
                        str(tart.vm_dir(NAME) / "disk.img")], check=True)
        vm = DebianVM(tart, topo)
        try:
            vm.start()
            yield vm
        finally:
            vm.stop()
    finally:
        if topo:
            topo.cleanup()


def test_exit_codes_and_streams(deb):
    for code in (0, 1, 255):
        p = deb.exec(NAME, "sh", "-c", f"echo out; echo err >&2; exit {code}")
        assert p.returncode == code, p.stderr
        assert (p.stdout, p.stderr) == (b"out\n", b"err\n")
    # Runs as the agent's user with a login environment; arguments verbatim.
    p = deb.exec(NAME, "sh", "-c", 'echo "$(whoami) $HOME" "$@"', "x", "a b", "-t")
    assert p.stdout == b"admin /home/admin a b -t\n", p.stderr
    # A command killed by a signal: -1 from the agent, 255 here (as ssh).
    assert deb.exec(NAME, "sh", "-c", "kill -9 $$").returncode == 255
    assert deb.exec(NAME, "no-such-program").returncode == 1


def test_stdin_round_trip_by_checksum(deb):
    data = os.urandom(32 << 20)
    p = deb.exec("-i", NAME, "sha256sum", input=data, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    # and back out through stdout, byte for byte
    p = deb.exec("-i", NAME, "cat", input=data[: 4 << 20], timeout=300)
    assert p.returncode == 0 and p.stdout == data[: 4 << 20]
    # without -i the command's stdin is empty
    assert deb.exec(NAME, "wc", "-c", input=b"ignored").stdout.strip() == b"0"


def pty_run(deb, argv, keystrokes=b"", timeout=120):
    """tart exec under a new pseudo-terminal; returns (exit code, output, the terminal's
    attributes after tart exec ended)."""
    pid, master = pty.fork()
    if pid == 0:
        os.execve(TART_BIN, [TART_BIN, "exec", *argv], deb.tart.env)
    buf = b""
    sent = False
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if not sent and keystrokes and b"$ " in buf:
            os.write(master, keystrokes)
            sent = True
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    _, status = os.waitpid(pid, 0)
    attrs = termios.tcgetattr(master)
    os.close(master)
    return os.waitstatus_to_exitcode(status), buf, attrs


def test_tty_under_a_pty(deb):
    code, out, _ = pty_run(deb, ["-t", NAME, "sh", "-c", "tty; stty size"])
    assert code == 0, out
    assert b"/dev/pts/" in out, out
    # Without -t there is no terminal.
    assert deb.exec(NAME, "tty").stdout == b"not a tty\n"
    # -t -i: an interactive shell typed into; the terminal is back in cooked mode afterwards.
    code, out, attrs = pty_run(deb, ["-t", "-i", NAME, "sh"],
                               keystrokes=b"echo hi-$((1+2)); exit 7\r")
    assert code == 7 and b"hi-3" in out, out
    assert attrs[3] & termios.ICANON and attrs[3] & termios.ECHO


def test_eight_concurrent_execs(deb):
    def one(i):
        return deb.exec(NAME, "sh", "-c", f"sleep 1; echo job{i}; exit {i}")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    for i, p in enumerate(results):
        assert (p.returncode, p.stdout) == (i, f"job{i}\n".encode()), p.stderr


def test_grpcio_client_through_control_sock(deb):
    c = Client(str(deb.tart.vm_dir(NAME) / "control.sock"))
    try:
        out, err, code = c.exec("sh", "-c", "cat; echo e >&2; exit 4", stdin=b"via grpcio",
                                timeout=120)
        assert (out, err, code) == (b"via grpcio", b"e\n", 4)
        assert c.resolve_ip(timeout=60).count(".") == 3
    finally:
        c.close()


def test_ip_resolver_agent_matches_dhcp(deb):
    p = deb.tart_cmd("ip", NAME, "--resolver", "agent", "--wait", "60")
    assert p.returncode == 0, p.stderr
    agent_ip = p.stdout.strip()
    if not deb.topo:
        pytest.skip("not root: user-mode networking has no DHCP lease of tart's to compare "
                    f"(the agent said {agent_ip})")
    d = deb.tart_cmd("ip", NAME, "--wait", "60")
    assert d.returncode == 0, d.stderr
    assert agent_ip == d.stdout.strip() and agent_ip.startswith("192.168.64.")


def test_second_run_refused_and_control_sock_intact(deb):
    sock = deb.tart.vm_dir(NAME) / "control.sock"
    ino = sock.stat().st_ino
    p = deb.tart_cmd("run", NAME, "--no-graphics", timeout=60)
    assert p.returncode == 2 and "already running" in p.stderr
    assert sock.stat().st_ino == ino
    assert deb.exec(NAME, "echo", "still").stdout == b"still\n"


def test_agent_killed_mid_exec(deb):
    long = subprocess.Popen([TART_BIN, "exec", NAME, "sh", "-c", "echo started; sleep 600"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=deb.tart.env)
    assert long.stdout.readline() == b"started\n"
    # The kill's own call goes down with the agent: its result does not matter.
    deb.exec(NAME, "sudo", "pkill", "-KILL", "-x", "tart-guest-agen", timeout=60)
    out, err = long.communicate(timeout=60)
    assert long.returncode == 1, err
    assert b"the connection to the guest agent was lost" in err, err
    assert deb.proc.poll() is None
    # systemd restarts the agent (Restart=always): the next exec works.
    assert deb.wait_exec(NAME, "echo", "again", timeout=120).stdout == b"again\n"


def test_qemu_guest_agent_when_ours_is_stopped(deb):
    # Stop ours a second after the call that asks for it has ended.
    p = deb.exec(NAME, "sudo", "systemd-run", "--on-active=1", "systemctl", "stop",
                 "tart-guest-agent")
    assert p.returncode == 0, p.stderr
    # qga runs commands as root: that tells which agent answered.
    deb.wait_exec(NAME, "whoami", want=b"root", timeout=120)
    p = deb.exec(NAME, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (p.returncode, p.stdout, p.stderr) == (3, b"out\n", b"err\n")
    assert deb.exec(NAME, "sh", "-c", "exit 255").returncode == 255
    p = deb.exec("-i", NAME, "sha256sum", input=b"x" * 100000)
    assert p.stdout.split()[0].decode() == hashlib.sha256(b"x" * 100000).hexdigest()
    p = deb.exec("-t", NAME, "tty")
    assert p.returncode == 1 and b"cannot allocate a terminal" in p.stderr, p.stderr
    p = deb.exec("-i", NAME, "wc", "-c", input=b"y" * (9 << 20))
    assert p.returncode == 1 and b"at most 8 MiB" in p.stderr, p.stderr
    ip = deb.tart_cmd("ip", NAME, "--resolver", "agent")
    assert ip.returncode == 0 and ip.stdout.count(".") == 3, ip.stderr
    # Ours back, through qga; it answers first again.
    assert deb.exec(NAME, "systemctl", "start", "tart-guest-agent").returncode == 0
    deb.wait_exec(NAME, "whoami", want=b"admin", timeout=120)


def test_vm_stopped_during_exec_then_exit_2(deb):
    long = subprocess.Popen([TART_BIN, "exec", NAME, "sh", "-c", "echo started; sleep 600"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=deb.tart.env)
    assert long.stdout.readline() == b"started\n"
    # A short grace: the point is the VM going away under a running call, not a clean shutdown.
    stop = deb.tart.run("stop", NAME, "--timeout", "3", check=False, timeout=120)
    assert stop.returncode == 0, stop.stderr
    out, err = long.communicate(timeout=60)
    assert long.returncode == 1 and err, err
    deb.proc.wait(timeout=60)
    assert deb.proc.returncode == 0, deb.proc.stderr.read()
    p = deb.exec(NAME, "true")
    assert p.returncode == 2 and b'VM "deb" is not running' in p.stderr


def test_grown_disk_is_filled_at_the_next_boot(deb):
    """`tart set --disk-size` grows disk.img while the VM is stopped; at the next boot the
    agent's resize unit (Tart's --run-daemon duty) grows the root partition and its ext4
    filesystem online, before our agent starts."""
    deb.stop()  # the previous test stopped it; this one stands on its own too
    disk = deb.tart.vm_dir(NAME) / "disk.img"
    before = disk.stat().st_size
    gb = before // 10**9 + 2  # Tart's GB are 10^9 bytes
    deb.tart.run("set", NAME, "--disk-size", str(gb))
    assert disk.stat().st_size == gb * 10**9
    deb.start()
    p = deb.exec(NAME, "df", "-B1", "--output=size", "/")
    assert p.returncode == 0, p.stderr
    root = int(p.stdout.split()[-1])
    # The root filesystem now holds more than the whole disk did before.
    assert root > before, (root, before)
    p = deb.exec(NAME, "systemctl", "is-failed", "tart-guest-resize.service")
    assert p.stdout.strip() != b"failed", p.stdout
    deb.stop()
    assert deb.proc.returncode == 0, deb.proc.stderr.read()
