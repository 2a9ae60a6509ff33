#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Write seed inputs for fuzz-agent: HTTP/2 client byte streams (python3-h2) carrying gRPC
calls to the agent. Each seed starts with two shape bytes (see fuzz-agent.c): 0x00 = the
fuzzer prepends the client preface, then 0x00 = feed in one piece. Run from the repository:
tests/fuzz/make-agent-corpus.py tests/fuzz/corpus-agent"""
import os
import subprocess
import sys
import tempfile

import h2.config
import h2.connection

proto_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "agent")
tmp = tempfile.mkdtemp()
subprocess.run(["protoc", f"--proto_path={proto_dir}", f"--python_out={tmp}", "agent.proto"],
               check=True, cwd=proto_dir)
sys.path.insert(0, tmp)
import agent_pb2 as pb  # noqa: E402


def frame(b, flag=0):
    return bytes([flag]) + len(b).to_bytes(4, "big") + b


def stream(calls, chunk=0):
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    for path, msgs, end in calls:
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", path),
                             (":authority", "localhost"), ("content-type", "application/grpc"),
                             ("te", "trailers")])
        body = b"".join(msgs)
        c.send_data(sid, body, end_stream=end)
    data = c.data_to_send()
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    assert data.startswith(preface)
    return bytes([0, chunk]) + data[len(preface):]


def cmd(name, args=(), **kw):
    return frame(pb.ExecRequest(command=pb.ExecRequest.Command(name=name, args=list(args), **kw))
                 .SerializeToString())


def stdin(d):
    return frame(pb.ExecRequest(standard_input=pb.IOChunk(data=d)).SerializeToString())


def resize(r, c):
    return frame(pb.ExecRequest(terminal_resize=pb.TerminalSize(rows=r, cols=c)).SerializeToString())


seeds = {
    "exec": stream([("/Agent/Exec", [cmd("echo", ["hi"])], True)]),
    "exec-stdin": stream([("/Agent/Exec", [cmd("cat", interactive=True), stdin(b"abc"), stdin(b"")], True)]),
    "exec-tty": stream([("/Agent/Exec", [cmd("sh", tty=True, interactive=True,
                                             terminal_size=pb.TerminalSize(rows=24, cols=80)),
                                         resize(50, 132), stdin(b"exit\n")], False)]),
    "resolve": stream([("/Agent/ResolveIP", [frame(b"")], True)]),
    "two-calls-split": stream([("/Agent/Exec", [cmd("true")], True),
                               ("/Agent/ResolveIP", [frame(b"")], True)], chunk=1),
    "unknown": stream([("/Agent/Other", [frame(b"x")], True)]),
    "compressed": stream([("/Agent/Exec", [frame(b"\x0a\x02\x0a\x00", flag=1)], True)]),
    "partial": stream([("/Agent/Exec", [frame(b"\x0a\x05\x0a\x03abc")[:6]], True)]),
}
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"{len(seeds)} seeds in {out}")
