#!/usr/bin/env python3
"""Runs pykickstart's parser over kickstarts, as the oracle of kiln's
differential test (pkg/kickstart/differential_test.go).

Input on stdin: one JSON object per line, {"path": ..., "version": ...}.
Output on stdout: one JSON object per line with the verdicts of
  - "parse": the way Anaconda parses (errors fatal, warnings not);
  - "strict": the way ksvalidator checks (warnings are errors too);
each "ok" or "error", with the line of the first problem and its message.

pykickstart is imported from PYTHONPATH (a checkout of its public
source, outside kiln's repository); none of its code is in this file.
"""
import copy
import json
import multiprocessing
import os
import re
import sys
import warnings

from pykickstart.errors import KickstartError, KickstartParseWarning
from pykickstart.parser import KickstartParser, preprocessKickstart
from pykickstart.version import makeVersion

LINE = re.compile(r"on line (\d+)")


def line_of(err):
    n = getattr(err, "lineno", None)
    if isinstance(n, int):
        return n
    m = LINE.search(str(err))
    return int(m.group(1)) if m else 0


# A fresh handler costs a third as much copied as made.
PRISTINE = {}


def handler_for(version):
    if version not in PRISTINE:
        PRISTINE[version] = makeVersion(version)
    return copy.deepcopy(PRISTINE[version])


def verdict(path, version, strict):
    os.chdir(os.path.dirname(os.path.abspath(path)))
    with warnings.catch_warnings(record=not strict) as seen:
        if strict:
            warnings.filterwarnings("error", category=KickstartParseWarning)
        else:
            warnings.simplefilter("always")
        try:
            handler = handler_for(version)
            parser = KickstartParser(handler)
            processed = preprocessKickstart(path)
            if processed is None:
                if not strict:
                    return {"verdict": "ok"}  # Anaconda runs it; ksvalidator refuses it
                raise KickstartError("Empty file")
            parser.readKickstart(processed)
        except (KickstartError, KickstartParseWarning) as e:
            return {"verdict": "error", "line": line_of(e), "message": " ".join(str(e).split())}
        except Exception as e:  # what ksvalidator reports as a general error
            return {"verdict": "error", "line": 0, "message": "general: %s: %s" % (type(e).__name__, " ".join(str(e).split()))}
        out = {"verdict": "ok"}
        if seen:
            out["warnings"] = [" ".join(str(w.message).split()) for w in seen if issubclass(w.category, Warning)]
        return out


def check(job):
    parse = verdict(job["path"], job["version"], False)
    # What fails the parse fails ksvalidator too.
    strict = parse if parse["verdict"] != "ok" else verdict(job["path"], job["version"], True)
    return {"path": job["path"], "version": job["version"], "parse": parse, "strict": strict}


def main():
    jobs = [json.loads(l) for l in sys.stdin if l.strip()]
    with multiprocessing.Pool() as pool:
        for r in pool.imap(check, jobs, chunksize=32):
            sys.stdout.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
