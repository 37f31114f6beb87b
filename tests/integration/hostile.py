#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# Hostile clients and misbehaving backends (issue 5, items 3 and 4); the
# cases are in hostile_cases/, one module per topic (README.md here).
#   hostile.py --list                    name timeout known (CMake reads it)
#   hostile.py --build-dir B CASE...     run cases, "all", or "known"

import argparse
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Env  # noqa: E402
from hostile_cases import CASES, KNOWN, Evil  # noqa: E402


# -- runner ----------------------------------------------------------------

def run_one(c, build_dir, keep):
    env = Env(build_dir, c.name, keep=keep)
    ev = None
    failed = True
    t0 = time.monotonic()
    try:
        env.backend("main", "unix")
        mounts = None
        if c.jail:
            env.backend("jail", "unix")
        if c.evil:
            ev = Evil(env)
        mounts = env.standard_mounts()
        if ev:
            mounts.append({"mountpoint": "/evil", "origin": ev.origin()})
        if c.jail:
            mounts.append({"mountpoint": "/jail",
                           "origin": env.backends["jail"].origin("/inside")})
        pvo = c.pvo(env) if callable(c.pvo) else c.pvo
        env.start_daemon(mounts=mounts, pvo=pvo, vhost_extra=c.vhost,
                         **c.daemon)
        c.fn(env, ev)
        env.check_serving()
        failed = False
    except Exception:
        traceback.print_exc(file=sys.stdout)
    finally:
        if ev:
            ev.stop()
            if failed:
                with open(ev.log, "rb") as f:
                    print("----- evil backend log -----")
                    print(f.read().decode("utf-8", "replace")[-4000:])
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
        for c in CASES:
            print("%s %d %d" % (c.name, c.timeout, c.name in KNOWN))
        return 0
    if not a.build_dir:
        ap.error("--build-dir is required")
    by_name = {c.name: c for c in CASES}
    if a.names == ["all"]:
        todo = CASES
    elif a.names == ["known"]:
        todo = [c for c in CASES if c.name in KNOWN]
    else:
        todo = []
        for n in a.names:
            if n not in by_name:
                ap.error("no case %r (see --list)" % n)
            todo.append(by_name[n])
    failed = sum(not run_one(c, a.build_dir, a.keep) for c in todo)
    if len(todo) > 1:
        print("%d passed, %d failed" % (len(todo) - failed, failed))
    for c in todo:
        if c.name in KNOWN:
            print("note: %s is a known failure: %s" % (c.name, KNOWN[c.name]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
