# SPDX-License-Identifier: MIT
#
# What every topic module of the hostile cases uses: the @case decorator
# and its registry, evil_backend.py's process, a raw h1 client, and the
# helpers more than one topic needs.

import os
import select
import socket
import sys

from harness import (BACKENDS, PYTHON, Failure, Proc, check, hdr1,
                     wait_until)

EVIL = os.path.join(BACKENDS, "evil_backend.py")
# the cases read evil_backend.py's answers (STATUS_GARBAGE, BAD_CHUNK...)
# from the module itself
if BACKENDS not in sys.path:
    sys.path.insert(0, BACKENDS)

CASES = []


class Case:
    def __init__(self, name, fn, pvo, evil, jail, timeout, vhost, daemon):
        self.vhost = vhost
        self.daemon = daemon or {}
        self.name = name
        self.fn = fn
        self.pvo = pvo
        self.evil = evil
        self.jail = jail
        self.timeout = timeout


def case(name, pvo=None, evil=False, jail=False, timeout=60, vhost=None,
         daemon=None, **params):
    """daemon: more start_daemon() arguments (nofile, global_extra);
    params go to fn."""
    def deco(fn):
        CASES.append(Case(name, lambda env, ev: fn(env, ev, **params), pvo,
                          evil, jail, timeout, vhost, daemon))
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


# -- what curl saw, and memory ----------------------------------------------

RSS_BOUND_KB = 32 * 1024
# ASan keeps freed memory in quarantine: peak RSS then says nothing about
# buffering, so a sanitized run (scripts/sanitize) only reports it.
if os.environ.get("UDSP_IT_SANITIZED"):
    RSS_BOUND_KB = 1 << 40


def _aborted(r):
    """curl saw a transfer cut short (h1: 18 partial file / 56 recv
    failure; h2: 92 stream error / 16 h2 framing), not a clean end."""
    return r.rc in (18, 56, 92, 16)


def _answer(r):
    """One word for what curl saw: the status, or "aborted" after a head,
    or "failed rc=N" without one."""
    if r.rc == 0:
        return str(r.status)
    if r.status is not None and _aborted(r):
        return "aborted"
    return "failed rc=%d" % r.rc
