#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""What a hung etcd member (SIGSTOP, not dead) does to a controller's WebSocket traffic.

For each orchard binary given (the first is the baseline; default build/orchard), on a fresh
3-member etcd: a controller (etcd endpoints in order, so it talks to member 0), a fake worker,
a running VM and an open port-forward whose echo round trip is timed every 50 ms. Then member
0 is SIGSTOPped for 20 s while a client asks for the VM's IP and opens a second port-forward
(the work that used to call etcd inside the event loop). Prints, per binary, the echo round
trips during the pause (max, and how many took over 1 s) and how the IP request and the new
port-forward ended.

usage: bench/orchard-hung-etcd.py [ORCHARD_BIN...]
"""
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "tests" / "integration"))
import orchard_fixtures as of  # noqa: E402

PAUSE_S = 20


def run(binary, work):
    of.ORCHARD_BIN = binary
    etcd = of.EtcdCluster(work / "etcd")
    ctl = w = None
    try:
        ctl = of.Controller(work / "ctl", etcd.endpoints, prefix="/bench/")
        api = ctl.api()
        w = of.FakeWorker(api, "w1")
        api.ok("POST", "/vms", of.vm_body("v"))
        of.wait_until(lambda: api.ok("GET", "/vms/v").get("worker") == "w1", what="placement")
        api.ok("PUT", "/vms/v/state", {"status": "running"})
        c = api.ws("/vms/v/port-forward?port=22&wait=10")
        c.send_binary(b"warm")
        c.recv()
        rtts, stop = [], threading.Event()

        def echo():
            while not stop.wait(0.05):
                t = time.monotonic()
                c.send_binary(b"x" * 16)
                c.recv()
                rtts.append(time.monotonic() - t)

        outcome = {}

        def ip():
            t = time.monotonic()
            r = api.get("/vms/v/ip", params={"wait": "10"}, timeout=120)
            outcome["ip"] = f"{r.status_code} after {time.monotonic() - t:.1f} s"

        def forward():
            t = time.monotonic()
            try:
                c2 = api.ws("/vms/v/port-forward?port=22&wait=10", timeout=120)
                c2.send_binary(b"y")
                c2.recv()
                c2.close()
                outcome["port-forward"] = f"echoed after {time.monotonic() - t:.1f} s"
            except Exception as e:  # noqa: BLE001 (a figure, whatever the failure)
                outcome["port-forward"] = f"{type(e).__name__} after {time.monotonic() - t:.1f} s"

        etcd.pause(0)
        try:
            te = threading.Thread(target=echo)
            te.start()
            time.sleep(0.5)
            jobs = [threading.Thread(target=ip), threading.Thread(target=forward)]
            for j in jobs:
                j.start()
            time.sleep(PAUSE_S)
            stop.set()
            te.join()
        finally:
            etcd.resume(0)
        for j in jobs:
            j.join()
        c.close()
        slow = sum(1 for r in rtts if r > 1)
        print(f"{binary}: {len(rtts)} echo round trips in the {PAUSE_S} s of the pause, "
              f"max {max(rtts) * 1000:.0f} ms, {slow} over 1 s; ip: {outcome.get('ip')}; "
              f"new port-forward: {outcome.get('port-forward')}", flush=True)
    finally:
        if w:
            w.stop()
        if ctl:
            ctl.stop()
        etcd.stop()


def main():
    binaries = sys.argv[1:] or [str(HERE / "build" / "orchard")]
    for i, b in enumerate(binaries):
        with tempfile.TemporaryDirectory(prefix="orchard-hung-") as d:
            run(b, Path(d))


if __name__ == "__main__":
    main()
