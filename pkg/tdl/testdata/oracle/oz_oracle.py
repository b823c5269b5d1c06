#!/usr/bin/env python3
"""Runs Oz's own TDL parser (oz/TDL.py) over templates, as the oracle of
kiln's differential test (pkg/tdl/differential_test.go).

Input on stdin: one path per line. Output: one JSON object per line,
{"path": ..., "verdict": "pass" or "raise", "message": ...}.

Oz is imported from PYTHONPATH (a checkout of its public source, outside
kiln's repository); none of its code is in this file. Debian's
python3-lxml serves it.
"""
import json
import os
import sys
import time
import types

# oz.ozutil imports monotonic, a backport Python 3 has built in.
if "monotonic" not in sys.modules:
    m = types.ModuleType("monotonic")
    m.monotonic = time.monotonic
    sys.modules["monotonic"] = m

import oz.TDL  # noqa: E402


def main():
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        os.chdir(os.path.dirname(os.path.abspath(path)))
        try:
            with open(path, encoding="utf-8") as f:
                oz.TDL.TDL(f.read())
            out = {"path": path, "verdict": "pass"}
        except Exception as e:  # Oz raises OzException and lxml's errors alike
            out = {"path": path, "verdict": "raise", "message": " ".join(str(e).split())[:500]}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
