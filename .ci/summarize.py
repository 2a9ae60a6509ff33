# SPDX-License-Identifier: Apache-2.0
"""Sum cmocka TAP results (meson's testlog.json of each build dir given) and pytest's JUnit XML
(from the first build dir) into one line: "N passed, N failed, N skipped"."""
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def count_tap(log: Path):
    passed = failed = skipped = 0
    for line in log.read_text().splitlines():
        t = json.loads(line)
        out = t.get("stdout", "") or ""
        oks = len(re.findall(r"^ok \d+", out, re.M))
        skips = len(re.findall(r"^ok \d+ .*# SKIP", out, re.M))
        bad = len(re.findall(r"^not ok \d+", out, re.M))
        if oks + bad == 0:  # crashed before printing any TAP line
            ok = t.get("result") == "OK"
            oks, bad = (1, 0) if ok else (0, 1)
        passed += oks - skips
        skipped += skips
        failed += bad
    return passed, failed, skipped


def count_junit(path: Path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    passed = failed = skipped = 0
    for s in suites:
        n = int(s.get("tests", 0))
        f = int(s.get("failures", 0)) + int(s.get("errors", 0))
        sk = int(s.get("skipped", 0))
        passed += n - f - sk
        failed += f
        skipped += sk
    return passed, failed, skipped


def main():
    builds = [Path(a) for a in sys.argv[1:]] or [Path("build")]
    total = [0, 0, 0]
    sources = [(b / "meson-logs" / "testlog.json", count_tap) for b in builds]
    sources.append((builds[0] / "pytest-junit.xml", count_junit))
    for path, fn in sources:
        if not path.exists():
            print(f"missing test report {path} (build or runner failed)", file=sys.stderr)
            total[1] += 1
            continue
        for i, v in enumerate(fn(path)):
            total[i] += v
    print(f"{total[0]} passed, {total[1]} failed, {total[2]} skipped")
    return 1 if total[1] else 0


if __name__ == "__main__":
    sys.exit(main())
