#!/usr/bin/env python3
"""Fails a test run that skipped a test not listed as an expected skip.

Usage: check_skips.py JUNIT_XML ALLOW_LIST

JUNIT_XML is what `ctest --output-junit` wrote. ALLOW_LIST holds one ctest
test name per line (exact; `#` starts a comment); it is empty by default
(tests/expected_skips.txt), so any skip fails the run: a skipped test is a
check that did not happen. Prints every unexpected skip with its message and
exits 1; exits 2 when the report cannot be read.
"""
import sys
import xml.etree.ElementTree as ET


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    junit, allow_path = sys.argv[1:]
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError) as e:
        print(f"check_skips: cannot read the ctest report {junit}: {e}", file=sys.stderr)
        return 2
    with open(allow_path) as f:
        allowed = {line.split("#", 1)[0].strip() for line in f} - {""}
    cases = root.findall(".//testcase")
    skipped = {}
    for case in cases:
        node = case.find("skipped")
        # "disabled" (a DISABLED_ benchmark) is a decision in the code, not a
        # check that failed to run: not counted.
        if case.get("status") == "disabled":
            continue
        if node is not None or case.get("status") in ("skipped", "notrun"):
            out = case.findtext("system-out") or ""
            why = (node.get("message") if node is not None else None) or ""
            for line in out.splitlines():  # GoogleTest's skip reason
                if "Skipped" in line or "SKIPPED" in line:
                    why = (why + " " + line.strip()).strip()
                    break
            skipped[case.get("name")] = why
    unexpected = {n: w for n, w in skipped.items() if n not in allowed}
    for name in sorted(skipped):
        tag = "expected" if name in allowed else "UNEXPECTED"
        print(f"check_skips: skipped ({tag}): {name}: {skipped[name]}")
    if not cases:
        print(f"check_skips: {junit} lists no tests", file=sys.stderr)
        return 2
    if unexpected:
        print(f"check_skips: {len(unexpected)} test(s) skipped that {allow_path} does not list; "
              "a skipped test is a failed check (install what it needs: deploy/setup-debian.sh)",
              file=sys.stderr)
        return 1
    print(f"check_skips: {len(cases)} tests, {len(skipped)} skipped, none unexpected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
