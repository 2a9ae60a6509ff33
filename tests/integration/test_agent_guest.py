# SPDX-License-Identifier: Apache-2.0
"""The guest agent (build/guest/tart-guest-agent) run on the host, driven by independent
HTTP/2 and gRPC implementations: python3-grpcio and python3-h2. No VM."""
import hashlib
import os
import queue
import re
import subprocess
import threading
import time

import pytest

from agent_fixtures import (AGENT_BIN, AgentProcess, Client, RawH2, agent_pb2, agent_sanitized,
                            frame, pid_alive, wait_for)

pytestmark = pytest.mark.skipif(not os.path.exists(AGENT_BIN), reason=f"{AGENT_BIN} not built")


@pytest.fixture
def agent(tmp_path):
    a = AgentProcess(tmp_path, "--first-message-timeout", "2", serial=True)
    yield a
    # Whatever a test did, nothing the agent started outlives the calls...
    wait_for(lambda: not a.children(), timeout=20, what="no command left running")
    # ...and the agent is still alive and exits cleanly on SIGTERM.
    assert a.proc.poll() is None, a.read_log()
    assert a.stop() == 0, a.read_log()


@pytest.fixture
def client(agent):
    c = Client(agent.sock)
    yield c
    c.close()


def test_exit_codes_and_streams(client):
    assert client.exec("true") == (b"", b"", 0)
    assert client.exec("false") == (b"", b"", 1)
    assert client.exec("sh", "-c", "exit 255") == (b"", b"", 255)
    out, err, code = client.exec("sh", "-c", "echo out1; echo err1 >&2; echo out2; exit 7")
    assert (out, err, code) == (b"out1\nout2\n", b"err1\n", 7)
    # A signal: -1, as tart-guest-agent (Go's ExitCode()) reports it.
    assert client.exec("sh", "-c", "kill -9 $$")[2] == -1


def test_login_environment(client):
    out, _, code = client.exec("sh", "-c", 'echo "$HOME|$USER|$LOGNAME|$SHELL|$PATH"; pwd')
    assert code == 0
    env_line, cwd = out.decode().splitlines()
    home, user, logname, shell, path = env_line.split("|")
    import pwd
    pw = pwd.getpwuid(os.getuid())
    assert (home, user, logname, shell) == (pw.pw_dir, pw.pw_name, pw.pw_name, pw.pw_shell)
    assert "/usr/bin" in path.split(":") and cwd == pw.pw_dir


def test_unknown_program_and_first_message(client):
    import grpc
    with pytest.raises(grpc.RpcError) as e:
        client.exec("no-such-program-xyz")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-program-xyz" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        client.run([client.stdin(b"x")])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_stdin_eof(client):
    out, err, code = client.exec("sh", "-c", "cat; echo after-eof", stdin=b"line1\nline2")
    assert (out, err, code) == (b"line1\nline2after-eof\n", b"", 0)
    # A half-close (END_STREAM) without the empty chunk is an EOF too.
    out, _, code = client.run([client.command("wc", ["-c"], interactive=True), client.stdin(b"12345")])
    assert (out.strip(), code) == (b"5", 0)
    # Stdin sent to a non-interactive command is ignored; it sees /dev/null.
    out, _, code = client.run([client.command("cat"), client.stdin(b"ignored"), client.stdin(b"")])
    assert (out, code) == (b"", 0)


def test_large_stdin_and_stdout_bounded_rss(agent, client):
    size = 128 << 20
    chunk = bytes(range(256)) * 128  # 32 KiB
    want = hashlib.sha256()

    def requests():
        yield client.command("sha256sum", interactive=True)
        for _ in range(size // len(chunk)):
            want.update(chunk)
            yield client.stdin(chunk)
        yield client.stdin(b"")

    out, _, code = client.run(requests(), timeout=300)
    assert code == 0 and out.split()[0].decode() == want.hexdigest()
    # And back: a large stdout, checksummed on this side.
    got = hashlib.sha256()
    n = 0
    for r in client.exec_call(iter([client.command("head", ["-c", str(size), "/dev/zero"])]), timeout=300):
        if r.WhichOneof("type") == "standard_output":
            got.update(r.standard_output.data)
            n += len(r.standard_output.data)
        elif r.WhichOneof("type") == "exit":
            assert r.exit.code == 0
    assert n == size and got.hexdigest() == hashlib.sha256(b"\0" * size).hexdigest()
    # 256 MiB went through; the agent's peak RSS stayed small (a 512 KiB window per stream).
    peak_kib = agent.status("VmHWM")
    print(f"agent peak RSS after 2 x {size >> 20} MiB: {peak_kib} KiB")
    assert peak_kib < 32 * 1024 or agent_sanitized()


def test_slow_reader_backpressure_then_cancel(agent, client):
    """A client that stops reading: the agent stops reading the child (RSS stays small), and
    cancelling the call kills the command's whole process group."""
    calls = client.exec_call(iter([client.command("sh", ["-c", "echo $$; cat /dev/zero & wait"])]),
                             timeout=120)
    first = next(calls)
    shell_pid = int(first.standard_output.data.split()[0])
    wait_for(lambda: len(agent.children()) == 1, what="the command runs")
    group = wait_for(lambda: _group(shell_pid) if len(_group(shell_pid)) >= 2 else None,
                     what="sh and cat running")
    time.sleep(1)  # cat /dev/zero would fill any unbounded buffer by now
    assert agent.status("VmRSS") < 32 * 1024 or agent_sanitized()
    calls.cancel()
    wait_for(lambda: not any(pid_alive(p) for p in group), what="the process group killed")


def _group(pgid):
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == pgid]


def _pgid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().split(") ")[-1].split()[2])
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def test_connection_drop_kills_commands(agent):
    c = Client(agent.sock)
    calls = c.exec_call(iter([c.command("sh", ["-c", "echo $$; sleep 1000 & sleep 1000"])]),
                        timeout=120)
    pid = int(next(calls).standard_output.data.split()[0])
    wait_for(lambda: len(_group(pid)) >= 3, what="sh and two sleeps")
    c.close()  # the whole HTTP/2 connection goes away
    wait_for(lambda: not _group(pid), what="the process group killed")


def test_tty_and_resize(client):
    out, _, code = client.exec("sh", "-c", "tty")
    assert (out, code) == (b"not a tty\n", 1)  # without -t: pipes
    out, err, code = client.run([client.command("sh", ["-c", "tty; stty size; echo err >&2"],
                                                tty=True, rows=24, cols=80)])
    assert code == 0 and err == b""  # a tty merges the streams, as a terminal does
    lines = out.decode().replace("\r", "").splitlines()
    assert re.fullmatch(r"/dev/pts/\d+", lines[0]) and lines[1] == "24 80" and lines[2] == "err"

    # Resize while it runs: the command waits for a line, then prints its size.
    reqs = queue.Queue()
    reqs.put(client.command("sh", ["-c", "read x; stty size"], interactive=True, tty=True,
                            rows=24, cols=80))
    calls = client.exec_call(iter(reqs.get, None), timeout=60)
    reqs.put(client.resize(50, 132))
    reqs.put(client.stdin(b"go\n"))
    out = b"".join(r.standard_output.data for r in calls if r.WhichOneof("type") == "standard_output")
    reqs.put(None)
    assert b"50 132" in out

    # EOF on a tty is ^D: cat ends.
    out, _, code = client.run([client.command("cat", interactive=True, tty=True),
                               client.stdin(b"abc\n"), client.stdin(b"")])
    assert code == 0 and b"abc" in out


def test_concurrent_execs(agent, tmp_path):
    """8 commands that each wait for all 8 to have started: they can only finish together."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    script = (f'touch {barrier}/$0; while [ $(ls {barrier} | wc -l) -lt 8 ]; do sleep 0.05; done; '
              'echo done $0')
    c = Client(agent.sock)
    results = [None] * 8

    def one(i):
        results[i] = c.exec("sh", "-c", script, str(i), timeout=120)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    assert results == [(f"done {i}\n".encode(), b"", 0) for i in range(8)]
    c.close()


def test_resolve_ip(client):
    ip = client.resolve_ip()
    # The host's first global-unicast IPv4 in interface order (what Go's IsGlobalUnicast says).
    addrs = [line.split()[3].split("/")[0] for line in
             subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True,
                            check=True).stdout.splitlines()]
    glob = [a for a in addrs if not a.startswith(("127.", "169.254.", "0."))]
    assert glob and ip == glob[0]


def test_malformed_requests_keep_serving(agent, client):
    import grpc
    # Malformed protobuf (a truncated field).
    with pytest.raises(grpc.RpcError) as e:
        list(client.raw_exec(iter([b"\x0a\x05\x0a"]), timeout=20))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # An oversized message: 5 MiB, over the 4 MiB cap.
    with pytest.raises(grpc.RpcError) as e:
        list(client.raw_exec(iter([b"\x0a" + b"\x00" * (5 << 20)]), timeout=20))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # A call that never sends its first message ends after --first-message-timeout.
    never = threading.Event()

    def nothing():
        never.wait(60)
        yield from ()

    with pytest.raises(grpc.RpcError) as e:
        list(client.exec_call(nothing(), timeout=30))
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    never.set()
    # Unknown method.
    with pytest.raises(grpc.RpcError) as e:
        client.channel.unary_unary("/Agent/Nope")(b"", timeout=20)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert client.exec("echo", "still serving") == (b"still serving\n", b"", 0)


def test_raw_framing_errors(agent, client):
    h = RawH2(agent.sock)
    # A declared length over the cap: refused at the prefix, before any payload arrives.
    sid = h.request(body=frame(b"", length=(4 << 20) + 1))
    assert h.wait_done(sid)["headers"].get("grpc-status") == "8"
    # The compressed flag (we never negotiate compression).
    sid = h.request(body=frame(b"\x0a\x02\x0a\x00", flag=1))
    assert h.wait_done(sid)["headers"].get("grpc-status") == "12"
    # A stream that ends inside a message.
    sid = h.request(body=frame(b"abc", length=10), end=True)
    assert h.wait_done(sid)["headers"].get("grpc-status") == "3"
    # A stream that sends half a message and then nothing: the first-message timeout.
    sid = h.request(body=frame(b"abc", length=10))
    assert h.wait_done(sid, timeout=30)["headers"].get("grpc-status") == "4"
    # Not gRPC at all.
    sid = h.request(content_type="text/plain", end=True)
    assert h.wait_done(sid)["headers"].get(":status") == "415"
    # All of those on one connection, which still works.
    pb = agent_pb2()
    req = pb.ExecRequest(command=pb.ExecRequest.Command(name="echo", args=["ok"]))
    sid = h.request(body=frame(req.SerializeToString()), end=True)
    st = h.wait_done(sid)
    assert st["headers"].get("grpc-status") == "0"
    resp = pb.ExecResponse()
    resp.ParseFromString(st["data"][5:5 + int.from_bytes(st["data"][1:5], "big")])
    assert resp.standard_output.data == b"ok\n"
    h.close()
    # Garbage instead of the preface: that connection is dropped, others are served.
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(agent.sock)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\xff" * 100)
    while s.recv(4096):
        pass
    s.close()
    assert client.exec("true")[2] == 0


def test_serial_reset_convention(agent):
    """--serial-listen behaves as the virtio port: one HTTP/2 connection at a time; a host
    that goes away resets the session and kills its commands; bytes before a preface are
    dropped; the host's GOAWAY resets too."""
    c1 = Client(agent.serial)
    calls = c1.exec_call(iter([c1.command("sh", ["-c", "echo $$; exec sleep 1000"])]), timeout=60)
    pid = int(next(calls).standard_output.data.split()[0])
    assert pid_alive(pid)
    c1.close()  # tart run killed: its chardev connection closes
    wait_for(lambda: not pid_alive(pid), what="the old session's command killed")

    # The host comes back with stale bytes (the middle of an old frame) before its preface.
    h = RawH2(agent.serial, preamble=b"\x00\x00\x08\x06\x00\x00\x00\x00\x00PRI * HTTP/1.1\r\n")
    pb = agent_pb2()
    req = pb.ExecRequest(command=pb.ExecRequest.Command(name="sh", args=["-c", "echo $$; exec sleep 1000"]))
    sid = h.request(body=frame(req.SerializeToString()))
    h.pump(lambda: len(h.streams[sid]["data"]) > 5)
    resp = pb.ExecResponse()
    resp.ParseFromString(h.streams[sid]["data"][5:])
    pid = int(resp.standard_output.data.split()[0])
    assert pid_alive(pid)
    # A host that reconnects faster than the agent notices (no EOF in between): its preface
    # arrives inside the old session, which breaks on it; the agent starts over from there.
    h2 = RawH2(None, sock=h.sock)
    pid_of = lambda st: int(_exec_output(pb, st["data"]).split()[0])  # noqa: E731
    sid = h2.request(body=frame(req.SerializeToString()))
    h2.pump(lambda: len(h2.streams[sid]["data"]) > 5)
    wait_for(lambda: not pid_alive(pid), what="the old session's command killed")
    pid = pid_of(h2.streams[sid])
    assert pid_alive(pid)
    # GOAWAY from the host: reset at once, even on the same byte stream.
    h2.goaway()
    wait_for(lambda: not pid_alive(pid), what="GOAWAY kills the session's command")
    h2.close()

    # A fresh host connection is served.
    c2 = Client(agent.serial)
    assert c2.exec("echo", "again") == (b"again\n", b"", 0)
    assert c2.resolve_ip()
    c2.close()
    log = agent.read_log()
    assert "host disconnected, session reset" in log and "host sent GOAWAY" in log
    assert "new host preface inside session" in log


def _exec_output(pb, data):
    """The standard_output of the first ExecResponse in a gRPC-framed body."""
    resp = pb.ExecResponse()
    resp.ParseFromString(data[5:5 + int.from_bytes(data[1:5], "big")])
    return resp.standard_output.data


def test_agent_killed_takes_its_commands(tmp_path):
    a = AgentProcess(tmp_path)
    c = Client(a.sock)
    calls = c.exec_call(iter([c.command("sh", ["-c", "echo $$; exec sleep 1000"])]), timeout=60)
    pid = int(next(calls).standard_output.data.split()[0])
    a.proc.kill()
    a.proc.wait()
    wait_for(lambda: not pid_alive(pid), what="the command dies with the agent")
    c.close()
    a.stop()
