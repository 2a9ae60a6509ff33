#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Throughput of the registry client (tests/helpers/registry-probe) against a local
docker-registry, next to a plain curl baseline for the same blob in the same run.

    bench/registry-client.py [--build build] [--size-mib 512] [--chunk-mb 50]

Prints MB/s for: curl upload (monolithic POST+PUT), probe push monolithic, probe push chunked,
curl download, probe pull. Figures only, no assertions.
"""
import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from conftest import start_registry  # noqa: E402


def timed(cmd, **kw):
    t = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    return time.monotonic() - t


def curl_push(host, ns, path, digest):
    t = time.monotonic()
    out = subprocess.run(["curl", "-sS", "-X", "POST", "-D", "-", "-o", "/dev/null",
                          f"http://{host}/v2/{ns}/blobs/uploads/"], check=True,
                         capture_output=True, text=True).stdout
    loc = next(line.split(":", 1)[1].strip() for line in out.splitlines()
               if line.lower().startswith("location:"))
    sep = "&" if "?" in loc else "?"
    subprocess.run(["curl", "-sS", "-f", "-X", "PUT", "-H", "Content-Type: application/octet-stream",
                    "-H", "Expect:", "--data-binary", f"@{path}", "-o", "/dev/null",
                    f"{loc}{sep}digest={digest}"], check=True)
    return time.monotonic() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--chunk-mb", type=int, default=50)
    a = ap.parse_args()
    probe = Path(a.build) / "tests" / "helpers" / "registry-probe"
    size = a.size_mib * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="tart-bench-") as d:
        d = Path(d)
        reg = start_registry(d / "reg")
        try:
            blob = d / "blob.bin"
            with open(blob, "wb") as f:
                for _ in range(a.size_mib):
                    f.write(os.urandom(1024 * 1024))
            digest = "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()
            mb = size / 1e6
            res = {}
            res["curl push (monolithic)"] = curl_push(reg.host, "bench/curl", blob, digest)
            res["probe push (monolithic)"] = timed(
                [probe, "--insecure", reg.host, "bench/mono", "push-blob", blob])
            res[f"probe push (chunked {a.chunk_mb} MB)"] = timed(
                [probe, "--insecure", reg.host, "bench/chunk", "push-blob", "--chunk",
                 str(a.chunk_mb * 1000 * 1000), blob])
            res["curl pull"] = timed(["curl", "-sS", "-f", "-o", str(d / "c.out"),
                                      f"http://{reg.host}/v2/bench/mono/blobs/{digest}"])
            res["probe pull (sha256 verified)"] = timed(
                [probe, "--insecure", reg.host, "bench/mono", "pull-blob",
                 f"{digest}={d / 'p.out'}"])
            print(f"blob: {a.size_mib} MiB random, registry {reg.host} (filesystem storage)")
            for k, t in res.items():
                print(f"  {k:34s} {t:7.2f} s  {mb / t:8.1f} MB/s")
        finally:
            reg.proc.terminate()
            reg.proc.wait(timeout=10)


if __name__ == "__main__":
    main()
