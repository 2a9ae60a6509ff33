# SPDX-License-Identifier: Apache-2.0
"""Host-side guest-agent test peers built on Debian's python3-grpcio, an independent gRPC
implementation (agent_fixtures.py has the guest side's).

- FakeAgent: a grpcio server playing the Tart guest agent on a VM's control.sock, with the run
  lock of config.json held the way `tart run` holds it, so `tart exec` sees a running VM.
(The grpcio client side is agent_fixtures.Client.)
"""
import fcntl
import hashlib
import os
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc

from agent_fixtures import agent_pb2  # noqa: E402 (protoc-generated messages)


def hold_run_lock(vm_dir: Path):
    """Take config.json's POSIX write lock as `tart run` does (vm/dir.c); keep the fd open."""
    fd = os.open(vm_dir / "config.json", os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _raw(x):
    return x


class FakeAgent:
    """A grpcio server answering /Agent/Exec and /Agent/ResolveIP on vm_dir/control.sock.

    mode: "normal" (a small command interpreter, see _exec), "malformed" (answers bytes that
    are not an ExecResponse), "oversized" (a 5 MiB message), "stall" (some output, then
    nothing, forever), "die" (some output, then the server stops mid-call), "no-exit" (ends
    the call with OK and no exit message), "flood" (stdout chunks without end).
    """

    def __init__(self, vm_dir: Path, mode="normal", ip="192.0.2.7"):
        self.pb = agent_pb2()
        self.vm_dir = vm_dir
        self.mode = mode
        self.ip = ip
        self.calls = []
        self.cancelled = threading.Event()
        self.lock_fd = hold_run_lock(vm_dir)
        sock = vm_dir / "control.sock"
        if sock.exists():
            sock.unlink()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                                  options=[("grpc.so_reuseport", 0)])
        handlers = {
            "Exec": grpc.stream_stream_rpc_method_handler(
                self._exec, request_deserializer=self.pb.ExecRequest.FromString,
                response_serializer=_raw),
            "ResolveIP": grpc.unary_unary_rpc_method_handler(
                self._resolve, request_deserializer=self.pb.ResolveIPRequest.FromString,
                response_serializer=_raw),
        }
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("Agent",
                                                                                   handlers),))
        assert len(str(sock)) < 100, "control.sock path too long for this test"
        self.server.add_insecure_port(f"unix:{sock}")
        self.server.start()

    def stop(self):
        """Idempotent: tests may stop an agent themselves (the fixture does it again)."""
        self.server.stop(0)
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1

    def _out(self, data, fd=1):
        r = self.pb.ExecResponse()
        (r.standard_output if fd == 1 else r.standard_error).data = data
        return r.SerializeToString()

    def _exit(self, code):
        r = self.pb.ExecResponse()
        r.exit.code = code
        return r.SerializeToString()

    def _resolve(self, req, ctx):
        r = self.pb.ResolveIPResponse()
        r.ip = self.ip
        return r.SerializeToString()

    def _exec(self, requests, ctx):
        ctx.add_callback(self.cancelled.set)
        first = next(requests)
        cmd = first.command
        self.calls.append(cmd)
        if self.mode == "malformed":
            yield self._out(b"ok")
            yield b"\xff\xff\xff\xff\x0f"
            return
        if self.mode == "oversized":
            yield b"\x12" + b"\x80\x80\x80\x03" + b"x" * (5 << 20)
            return
        if self.mode == "stall":
            yield self._out(b"started\n")
            while ctx.is_active():
                time.sleep(0.1)
            return
        if self.mode == "die":
            yield self._out(b"started\n")
            time.sleep(0.3)
            threading.Thread(target=self.server.stop, args=(0,)).start()
            time.sleep(5)
            return
        if self.mode == "no-exit":
            yield self._out(b"bye\n")
            return
        if self.mode == "flood":
            chunk = self._out(b"y\n" * 16384)
            while ctx.is_active():
                yield chunk
            return
        yield from self._interpret(cmd, requests)

    def _stdin(self, requests):
        """Yield stdin chunks until the empty one (Tart's EOF)."""
        for r in requests:
            if r.WhichOneof("type") == "standard_input":
                if not r.standard_input.data:
                    return
                yield r.standard_input.data

    def _interpret(self, cmd, requests):
        args = list(cmd.args)
        if cmd.name == "exit":
            if len(args) > 1:
                yield self._out(args[1].encode(), 1)
            if len(args) > 2:
                yield self._out(args[2].encode(), 2)
            yield self._exit(int(args[0]))
        elif cmd.name == "sha256":
            h = hashlib.sha256()
            n = 0
            for data in self._stdin(requests):
                h.update(data)
                n += len(data)
            yield self._out(f"{h.hexdigest()} {n}\n".encode())
            yield self._exit(0)
        elif cmd.name == "cat":
            for data in self._stdin(requests):
                yield self._out(data)
            yield self._exit(0)
        elif cmd.name == "describe":
            yield self._out(f"name={cmd.name} args={args} interactive={cmd.interactive} "
                            f"tty={cmd.tty} rows={cmd.terminal_size.rows} "
                            f"cols={cmd.terminal_size.cols}\n".encode())
            yield self._exit(0)
        elif cmd.name == "resize":
            for r in requests:
                if r.WhichOneof("type") == "terminal_resize":
                    yield self._out(f"resize {r.terminal_resize.rows}x"
                                    f"{r.terminal_resize.cols}\n".encode())
                    yield self._exit(0)
                    return
        else:
            yield self._out(f"unknown command {cmd.name}\n".encode(), 2)
            yield self._exit(127)
