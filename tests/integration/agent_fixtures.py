# SPDX-License-Identifier: Apache-2.0
"""The guest agent on the host, and gRPC peers for it.

- agent_pb2(): Python messages generated from src/agent/agent.proto with Debian's protoc at
  test time (no stubs in the tree).
- AgentProcess: build/guest/tart-guest-agent started with --listen-unix and/or
  --serial-listen, stopped (and its leftovers checked) by the fixture.
- Client: python3-grpcio's generic stream_stream/unary_unary calls, an independent gRPC
  implementation, on a channel to a Unix socket.
- RawH2: a hand-driven HTTP/2 client (python3-h2) for what grpcio refuses to send: broken
  framing, garbage, GOAWAY, stale bytes before a preface.
"""
import importlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AGENT_BIN = os.environ.get("TART_GUEST_AGENT_BIN", str(ROOT / "build" / "guest" / "tart-guest-agent"))
PROTO = ROOT / "src" / "agent" / "agent.proto"


def agent_sanitized():
    """An ASan build (build-asan): its memory figures say nothing about the agent's."""
    try:
        with open(AGENT_BIN, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False

_pb2 = None


def agent_pb2():
    global _pb2
    if _pb2 is None:
        out = tempfile.mkdtemp(prefix="agent-pb2-")
        subprocess.run(["protoc", f"--proto_path={PROTO.parent}", f"--python_out={out}", str(PROTO)],
                       check=True)
        sys.path.insert(0, out)
        _pb2 = importlib.import_module("agent_pb2")
    return _pb2


def wait_for(pred, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        # A process that exits between open() and read() makes the read fail with ESRCH.
        return False


class AgentProcess:
    def __init__(self, workdir: Path, *args, unix=True, serial=False):
        self.workdir = workdir
        self.sock = str(workdir / "agent.sock") if unix else None
        self.serial = str(workdir / "serial.sock") if serial else None
        self.log = workdir / "agent.log"
        cmd = [AGENT_BIN, "--debug", *args]
        if self.sock:
            cmd += ["--listen-unix", self.sock]
        if self.serial:
            cmd += ["--serial-listen", self.serial]
        self.logf = open(self.log, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT)
        for path in (self.sock, self.serial):
            if path:
                wait_for(lambda: os.path.exists(path) or self.proc.poll() is not None,
                         what=f"agent socket {path}")
        assert self.proc.poll() is None, self.read_log()

    def read_log(self):
        return self.log.read_text(errors="replace")

    def status(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)

    def children(self):
        """Live processes whose parent is the agent."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read().split(") ")[-1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(st[1]) == self.proc.pid and st[0] != "Z":
                out.append(int(d))
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        return self.proc.returncode


class Client:
    """grpcio on a Unix socket. exec() returns (stdout, stderr, exit code)."""

    def __init__(self, path, options=()):
        import grpc
        self.grpc = grpc
        self.pb = agent_pb2()
        self.channel = grpc.insecure_channel(f"unix:{path}", options=list(options))
        self.exec_call = self.channel.stream_stream(
            "/Agent/Exec", request_serializer=self.pb.ExecRequest.SerializeToString,
            response_deserializer=self.pb.ExecResponse.FromString)
        self.raw_exec = self.channel.stream_stream(
            "/Agent/Exec", request_serializer=lambda b: b, response_deserializer=lambda b: b)
        self.resolve_call = self.channel.unary_unary(
            "/Agent/ResolveIP", request_serializer=self.pb.ResolveIPRequest.SerializeToString,
            response_deserializer=self.pb.ResolveIPResponse.FromString)

    def close(self):
        self.channel.close()

    def command(self, name, args=(), interactive=False, tty=False, rows=0, cols=0):
        pb = self.pb
        cmd = pb.ExecRequest.Command(name=name, args=list(args), interactive=interactive, tty=tty)
        if rows or cols:
            cmd.terminal_size.rows = rows
            cmd.terminal_size.cols = cols
        return pb.ExecRequest(command=cmd)

    def stdin(self, data):
        return self.pb.ExecRequest(standard_input=self.pb.IOChunk(data=data))

    def resize(self, rows, cols):
        return self.pb.ExecRequest(terminal_resize=self.pb.TerminalSize(rows=rows, cols=cols))

    def run(self, requests, timeout=60):
        """Drive a call; returns (stdout, stderr, code or None)."""
        out, err, code = bytearray(), bytearray(), None
        for r in self.exec_call(iter(requests), timeout=timeout):
            kind = r.WhichOneof("type")
            if kind == "standard_output":
                out += r.standard_output.data
            elif kind == "standard_error":
                err += r.standard_error.data
            elif kind == "exit":
                assert code is None, "two exit messages"
                code = r.exit.code
        return bytes(out), bytes(err), code

    def exec(self, name, *args, stdin=None, timeout=60):
        reqs = [self.command(name, args, interactive=stdin is not None)]
        if stdin is not None:
            reqs += [self.stdin(stdin), self.stdin(b"")]
        return self.run(reqs, timeout=timeout)

    def resolve_ip(self, timeout=20):
        return self.resolve_call(self.pb.ResolveIPRequest(), timeout=timeout).ip


class RawH2:
    """A minimal HTTP/2 client over a Unix socket, driven by hand with python3-h2."""

    def __init__(self, path, preamble=b"", send_preface=True, sock=None):
        import h2.config
        import h2.connection
        import h2.events
        self.events_mod = h2.events
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(20)
            sock.connect(path)
        self.sock = sock
        if preamble:
            self.sock.sendall(preamble)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                         header_encoding="utf-8"))
        self.streams = {}
        if send_preface:
            self.conn.initiate_connection()
            self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path="/Agent/Exec", body=b"", end=False, content_type="application/grpc"):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", path),
                                     (":authority", "localhost"), ("content-type", content_type),
                                     ("te", "trailers")], end_stream=end and not body)
        self.streams[sid] = {"headers": {}, "data": b"", "ended": False, "reset": None}
        if body:
            self.conn.send_data(sid, body, end_stream=end)
        self.flush()
        return sid

    def send(self, sid, body, end=False):
        self.conn.send_data(sid, body, end_stream=end)
        self.flush()

    def goaway(self):
        self.conn.close_connection()
        self.flush()

    def pump(self, until, timeout=20):
        """Read and handle events until until() is true; returns False on EOF."""
        deadline = time.time() + timeout
        while not until():
            if time.time() > deadline:
                raise AssertionError("timed out waiting on the agent")
            self.sock.settimeout(max(0.05, deadline - time.time()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return False
            for ev in self.conn.receive_data(data):
                st = self.streams.get(getattr(ev, "stream_id", None))
                if isinstance(ev, (self.events_mod.ResponseReceived, self.events_mod.TrailersReceived)):
                    st["headers"].update(dict(ev.headers))
                elif isinstance(ev, self.events_mod.DataReceived):
                    st["data"] += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, self.events_mod.StreamEnded):
                    st["ended"] = True
                elif isinstance(ev, self.events_mod.StreamReset):
                    if st is not None:
                        st["reset"] = ev.error_code
            self.flush()
        return True

    def wait_done(self, sid, timeout=20):
        st = self.streams[sid]
        self.pump(lambda: st["ended"] or st["reset"] is not None, timeout)
        return st

    def close(self):
        self.sock.close()


def frame(msg: bytes, flag=0, length=None) -> bytes:
    """A gRPC length-prefixed message (with a lie about its length if asked)."""
    n = len(msg) if length is None else length
    return bytes([flag]) + n.to_bytes(4, "big") + msg


def collect(events_iter):
    out = []
    t = threading.Thread(target=lambda: out.extend(events_iter), daemon=True)
    t.start()
    return t, out
