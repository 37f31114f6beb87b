#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# Runs the integration cases (cases/, one module per topic: README.md here)
# against a build tree:
#   run.py --list                      names, one a line (CMake reads this)
#   run.py --build-dir B CASE...       run the named cases, or "all", or
#                                      "known" (cases.KNOWN: known bugs)
# Each case gets a fresh temp dir, backends and daemon; on failure the
# daemon's and backends' logs are printed.  UDSP_IT_DEBUG sets the daemon's
# -d log level (default 7: err, warn, notice).

import argparse
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases  # noqa: E402
from harness import Env  # noqa: E402


def run_one(c, build_dir, keep):
    env = Env(build_dir, c.name, keep=keep)
    failed = True
    t0 = time.monotonic()
    try:
        for name, kind in c.backends:
            env.backend(name, kind)
        mounts = c.mounts(env) if c.mounts else None
        pvo = c.pvo(env) if callable(c.pvo) else c.pvo
        env.start_daemon(mounts=mounts, pvo=pvo)
        c.fn(env, c.proto)
        env.check_serving()
        failed = False
    except Exception:
        traceback.print_exc(file=sys.stdout)
    finally:
        env.close(failed)
    print("%s: %s (%.1fs)" % (c.name, "FAIL" if failed else "ok",
                              time.monotonic() - t0))
    sys.stdout.flush()
    return not failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--build-dir")
    ap.add_argument("--keep", action="store_true",
                    help="keep each case's temp dir")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    if a.list:
        for c in cases.CASES:
            print("%s %d %d" % (c.name, c.timeout, c.name in cases.KNOWN))
        return 0
    if not a.build_dir:
        ap.error("--build-dir is required")
    by_name = {c.name: c for c in cases.CASES}
    todo = []
    if a.names == ["all"]:
        todo = cases.CASES
    elif a.names == ["known"]:
        todo = [c for c in cases.CASES if c.name in cases.KNOWN]
    if not todo:
        for n in a.names:
            if n not in by_name:
                ap.error("no case %r (see --list)" % n)
            todo.append(by_name[n])
    passed = failed = 0
    for c in todo:
        if run_one(c, a.build_dir, a.keep):
            passed += 1
        else:
            failed += 1
    if len(todo) > 1:
        print("%d passed, %d failed" % (passed, failed))
    for c in todo:
        if c.name in cases.KNOWN:
            print("note: %s is a known failure: %s" % (
                c.name, cases.KNOWN[c.name]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
