#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# Hostile clients and misbehaving backends (issue 5, items 3 and 4): each
# case starts its own daemon, backend.py ("main", for the health check) and
# where needed evil_backend.py ("/evil") or a jailed backend.py ("/jail"),
# attacks, asserts the daemon's exact answer, then checks that the daemon
# still serves a normal request on h1 and h2.
#   hostile.py --list                    name timeout known (CMake reads it)
#   hostile.py --build-dir B CASE...     run cases, "all", or "known"

import argparse
import os
import select
import socket
import ssl
import sys
import time
import traceback
import urllib.parse
import posixpath

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import (PYTHON, Env, Failure, Proc, check, eq,  # noqa: E402
                     h2_status, hdr1, proc_status, wait_until)

EVIL = os.path.join(HERE, "evil_backend.py")

CASES = []

# Cases that fail because of an open product bug, with the reason: ctest
# registers them DISABLED; `hostile.py --build-dir B known` runs them.
KNOWN = {
}


class Case:
    def __init__(self, name, fn, pvo, evil, jail, timeout):
        self.name = name
        self.fn = fn
        self.pvo = pvo
        self.evil = evil
        self.jail = jail
        self.timeout = timeout


def case(name, pvo=None, evil=False, jail=False, timeout=60):
    def deco(fn):
        CASES.append(Case(name, fn, pvo, evil, jail, timeout))
        return fn
    return deco


class Evil:
    """evil_backend.py on a unix socket in the case's dir."""

    def __init__(self, env):
        self.env = env
        self.path = os.path.join(env.dir, "evil.sock")
        self.pidfile = os.path.join(env.dir, "evil.pid")
        self.reqlog = os.path.join(env.dir, "evil.req.jsonl")
        self.log = os.path.join(env.dir, "evil.log")
        self.proc = Proc("evil backend", [
            PYTHON, EVIL, "--unix", self.path, "--pidfile", self.pidfile,
            "--reqlog", self.reqlog], self.log)

        def up():
            if not os.path.exists(self.pidfile):
                return False
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.path)
                return True
            except OSError:
                return False
            finally:
                s.close()
        wait_until(up, "evil backend", alive=self.proc.exited)

    def origin(self):
        return "http://+%s:/" % self.path

    def requests(self):
        import json
        if not os.path.exists(self.reqlog):
            return []
        with open(self.reqlog) as f:
            return [json.loads(ln) for ln in f if ln.strip()]

    def stats(self):
        import json
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.path)
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        return json.loads(data.split(b"\r\n\r\n", 1)[1])

    def stop(self):
        self.proc.stop()


# -- raw clients ------------------------------------------------------------

class Answer:
    """What came back on one raw h1 connection: the first response's
    status and head (or None), its body, and whether the daemon closed."""

    def __init__(self, status, head, body, closed, raw):
        self.status = status
        self.head = head
        self.body = body
        self.closed = closed
        self.raw = raw

    def short(self):
        if self.status is None:
            return "close" if self.closed else "nothing"
        return str(self.status)

    def __repr__(self):
        return "<Answer %s closed=%s head=%r>" % (
            self.short(), self.closed, self.head[:200])


def _recv(s, timeout):
    r, _, _ = select.select([s], [], [], timeout)
    if not r:
        raise Failure("no answer within %ss" % timeout)
    try:
        return s.recv(65536)
    except ConnectionResetError:
        return b""


def raw_h1(env, data, timeout=15, shut=False):
    """Send data on a fresh plain connection and read one response (or
    the close); returns an Answer."""
    s = socket.create_connection(("127.0.0.1", env.http_port), timeout=10)
    try:
        s.sendall(data)
    except OSError:
        pass
    if shut:
        s.shutdown(socket.SHUT_WR)
    buf = b""
    closed = False
    try:
        while b"\r\n\r\n" not in buf:
            d = _recv(s, timeout)
            if not d:
                closed = True
                break
            buf += d
        if b"\r\n\r\n" not in buf:
            s.close()
            check(not buf, "partial response head %r", buf[:300])
            return Answer(None, "", b"", closed, buf)
        head, body = buf.split(b"\r\n\r\n", 1)
        head = head.decode("latin-1")
        status = int(head.split("\r\n")[0].split(" ")[1])
        hs = [ln.partition(":") for ln in head.split("\r\n")[1:]]
        hs = [(n, v.strip()) for n, _, v in hs]
        cl = hdr1(hs, "content-length")
        if cl is not None:
            while len(body) < int(cl):
                d = _recv(s, timeout)
                if not d:
                    closed = True
                    break
                body += d
            body = body[:int(cl)]
        elif status >= 200 and status not in (204, 304):
            while not closed and not body.endswith(b"0\r\n\r\n"):
                d = _recv(s, timeout)
                if not d:
                    closed = True
                body += d
        return Answer(status, head, body, closed, buf)
    finally:
        s.close()


def h2conn(env):
    return env.h2client()


# -- cases: hostile clients ------------------------------------------------


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
        env.start_daemon(mounts=mounts, pvo=pvo)
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
