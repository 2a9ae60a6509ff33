#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The guest agent on the host (no VM): python3-grpcio pushes SIZE MiB of stdin into
`sha256sum` and pulls SIZE MiB of stdout from `head -c`, through tart-guest-agent on a Unix
socket; the baseline in the same invocation pipes the same bytes through the same commands
with subprocess pipes. Prints MiB/s and the agent's peak RSS, and the round-trip time of
`Exec true` (median of 50) beside fork+exec of `true`.
usage: bench/agent.py [SIZE_MIB]   (default 1024; TART_GUEST_AGENT_BIN overrides the binary)"""
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from agent_fixtures import AgentProcess, Client  # noqa: E402

size = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
chunk = os.urandom(32 << 10)
n = (size << 20) // len(chunk)
work = Path(tempfile.mkdtemp(prefix="agent-bench-"))
agent = AgentProcess(work)
c = Client(agent.sock)
want = hashlib.sha256()
for _ in range(n):
    want.update(chunk)
want = want.hexdigest()


def stdin_agent():
    def reqs():
        yield c.command("sha256sum", interactive=True)
        for _ in range(n):
            yield c.stdin(chunk)
        yield c.stdin(b"")
    out, _, code = c.run(reqs(), timeout=3600)
    assert code == 0 and out.split()[0].decode() == want


def stdout_agent():
    got = 0
    for r in c.exec_call(iter([c.command("head", ["-c", str(n * len(chunk)), "/dev/zero"])]),
                         timeout=3600):
        if r.WhichOneof("type") == "standard_output":
            got += len(r.standard_output.data)
    assert got == n * len(chunk)


def stdin_pipe():
    p = subprocess.Popen(["sha256sum"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    for _ in range(n):
        p.stdin.write(chunk)
    p.stdin.close()
    assert p.stdout.read().split()[0].decode() == want
    p.wait()


def stdout_pipe():
    p = subprocess.Popen(["head", "-c", str(n * len(chunk)), "/dev/zero"], stdout=subprocess.PIPE)
    got = 0
    while True:
        b = p.stdout.read(32 << 10)
        if not b:
            break
        got += len(b)
    p.wait()
    assert got == n * len(chunk)


def timed(f):
    t = time.monotonic()
    f()
    return time.monotonic() - t


mib = n * len(chunk) / (1 << 20)
for name, agent_f, base_f in (("stdin", stdin_agent, stdin_pipe), ("stdout", stdout_agent, stdout_pipe)):
    ta, tb = timed(agent_f), timed(base_f)
    print(f"{name} {mib:.0f} MiB: agent {mib / ta:.0f} MiB/s ({ta:.2f} s), "
          f"plain pipe {mib / tb:.0f} MiB/s ({tb:.2f} s), ratio {ta / tb:.2f}")
rt = []
for _ in range(50):
    t = time.monotonic()
    assert c.exec("true")[2] == 0
    rt.append(time.monotonic() - t)
fe = []
for _ in range(50):
    t = time.monotonic()
    subprocess.run(["true"], check=True)
    fe.append(time.monotonic() - t)
print(f"Exec true round trip: median {statistics.median(rt) * 1000:.2f} ms "
      f"(fork+exec of true from Python: {statistics.median(fe) * 1000:.2f} ms)")
with open(f"/proc/{agent.proc.pid}/stat") as f:
    st = f.read().split(") ")[-1].split()
cpu = (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
print(f"agent peak RSS: {agent.status('VmHWM')} KiB, agent CPU time for all of the above: {cpu:.2f} s")
c.close()
agent.stop()
