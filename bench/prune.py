#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Time `tart prune --gc` and `tart prune --space-budget 0` over a large fake OCI cache.

Usage: TART_BIN=build/tart bench/prune.py [N]   (N digests with a tag each + N unreferenced)
Prints seconds per run; compare two builds by running it twice in the same invocation.
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from prune_fixtures import make_image  # noqa: E402

TART = os.environ.get("TART_BIN", "build/tart")


def timed(home, *args):
    env = dict(os.environ, TART_HOME=str(home))
    t = time.monotonic()
    subprocess.run([TART, *args], env=env, check=True)
    return time.monotonic() - t


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory() as d:
        home = Path(d) / "home"
        home.mkdir()
        now = time.time()
        for i in range(n):
            make_image(home, f"ns{i % 10}", f"tagged{i}", now - i, tags=[f"t{i}"])
            make_image(home, f"ns{i % 10}", f"orphan{i}", now - i)
        print(f"entries: {n} tagged + {n} unreferenced digests")
        print(f"prune --gc:             {timed(home, 'prune', '--gc'):.3f} s")
        print(f"prune --space-budget 0: {timed(home, 'prune', '--space-budget', '0'):.3f} s")


if __name__ == "__main__":
    main()
