# SPDX-License-Identifier: Apache-2.0
"""Sum cmocka TAP results (from meson's testlog.json) and pytest's JUnit XML into one line."""
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

build = Path(sys.argv[1] if len(sys.argv) > 1 else "build")
passed = failed = skipped = 0

log = build / "meson-logs" / "testlog.json"
if log.exists():
    for line in log.read_text().splitlines():
        t = json.loads(line)
        out = t.get("stdout", "") or ""
        oks = len(re.findall(r"^ok \d+", out, re.M))
        skips = len(re.findall(r"^ok \d+ .*# SKIP", out, re.M))
        bad = len(re.findall(r"^not ok \d+", out, re.M))
        if oks + bad == 0:  # crashed before printing, or not TAP
            bad = 0 if t.get("result") == "OK" else 1
            oks = 1 if t.get("result") == "OK" else 0
        passed += oks - skips
        skipped += skips
        failed += bad
else:
    failed += 1
    print("no unit test log (build failed?)", file=sys.stderr)

junit = build / "pytest-junit.xml"
if junit.exists():
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for s in suites:
        n = int(s.get("tests", 0))
        f = int(s.get("failures", 0)) + int(s.get("errors", 0))
        sk = int(s.get("skipped", 0))
        passed += n - f - sk
        failed += f
        skipped += sk
else:
    failed += 1
    print("no integration test report (pytest did not run?)", file=sys.stderr)

print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
