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
    "duplicate-host": "two Host headers are joined by lws 4.1.6 "
    "('good,  evil.example') and forwarded with 200 instead of a 400 "
    "(RFC 9112 3.2); the plugin could refuse a Host containing ','",
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


def tag_targets(backend, prefix):
    """Targets the backend saw that carry a ?t= tag, as a set."""
    return {q["target"] for q in backend.requests()
            if q["target"].startswith(prefix)}


# (request bytes, daemon's answer, whether the backend sees it).  Answers:
# a status, or "close" (closed with nothing written).  shut: the client
# half-closes after sending (lws otherwise waits out its timeout for the
# rest of a head it cannot parse).
MALFORMED = [
    (b"GET\r\n\r\n", "403", False),
    (b"GET /app/echo?t=09\r\n\r\n", "200", True),            # HTTP/0.9 form
    (b"GET /app/echo?t=extra HTTP/1.1 extra\r\nHost: x\r\n\r\n", "200",
     True),
    (b"GET /app/echo?t=v99 HTTP/9.9\r\nHost: x\r\n\r\n", "200", True),
    (b"G\x00ET /app/echo?t=nul HTTP/1.1\r\nHost: x\r\n\r\n", "403", False),
    (b"GET  /app/echo?t=sp  HTTP/1.1\r\nHost: x\r\n\r\n", "200", True),
    (b"\r\n\r\n", "close", False),
    (bytes(range(256)) + b"\r\n\r\n", "403", False),
    (b"A" * 5000 + b" /app/echo?t=longm HTTP/1.1\r\nHost: x\r\n\r\n", "403",
     False),
    (b"GET http://evil.example/app/echo?t=abs HTTP/1.1\r\nHost: x\r\n\r\n",
     "403", False),
    (b"GET app/echo?t=noslash HTTP/1.1\r\nHost: x\r\n\r\n", "403", False),
    (b"GET /app/echo?t=lf HTTP/1.1\nHost: x\n\n", "200", True),
    (b"GET /app/echo?t=" + b"q" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
     "close", False),
    (b"GET /app/echo?t=emptyname HTTP/1.1\r\nHost: x\r\n: y\r\n\r\n",
     "close", False),
    (b"GET /app/echo?t=nocolon HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n",
     "close", False),
    (b"GET /app/echo?t=fold HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
     "close", False),
    (b"GET /app/echo?t=spname HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n",
     "200", True),
    (b"PROPFIND /app/echo?t=propfind HTTP/1.1\r\nHost: x\r\n\r\n", "403",
     False),
]


def _tag(req):
    i = req.find(b"?t=")
    if i < 0:
        return None
    return "/echo?t=" + req[i + 3:].split(b" ")[0].split(b"\r")[0] \
        .split(b"\n")[0].decode("latin-1")


@case("malformed-request-lines")
def t_malformed(env, ev):
    main = env.backends["main"]
    want_seen = set()
    bad = []
    for req, want, seen in MALFORMED:
        a = raw_h1(env, req, shut=True)
        print("%-60r -> %s" % (req[:60], a.short()))
        if a.short() != want:
            bad.append("%r: got %s, want %s" % (req[:80], a.short(), want))
        if seen:
            want_seen.add(_tag(req))
    check(not bad, "answers differ:\n  %s", "\n  ".join(bad))
    got = tag_targets(main, "/echo?t=")
    eq(got, want_seen, "requests the backend saw")


# header values with CR, LF or NUL (h1): the answer, and what the
# backend got in their place
CTL_HEADERS = [
    (b"X-Custom-Fwd: a\rInjected: 1", "200"),
    (b"X-Custom-Fwd: a\x00Injected: 1", "200"),
    (b"X-Custom-Fwd: a\nInjected: 1", "200"),
    (b"User-Agent: a\rInjected: 1", "200"),
    (b"User-Agent: a\x00b", "200"),
    (b"Cookie: a=1\r\x00\nX-Custom-Fwd: b", "200"),
]


def _no_ctl(headers, what):
    for n, v in headers:
        check(not any(c in n + v for c in "\r\n\0"),
              "%s: the backend got a header with CR/LF/NUL: %r", what,
              (n, v))


@case("header-ctl-chars")
def t_header_ctl(env, ev):
    main = env.backends["main"]
    for i, (h, want) in enumerate(CTL_HEADERS):
        req = b"GET /app/echo?t=ctl%d HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n" % (
            i, h)
        a = raw_h1(env, req)
        reqs = [q for q in main.requests()
                if q["target"] == "/echo?t=ctl%d" % i]
        print("%r -> %s, backend got %r" % (h, a.short(), [
            x for q in reqs for x in q["headers"]
            if x[0].lower() not in ("host", "x-forwarded-for",
                                    "x-forwarded-proto",
                                    "x-forwarded-host")]))
        eq(a.short(), want, "answer to %r" % h)
        check(len(reqs) <= 1, "%r: backend saw %d requests", h, len(reqs))
        for q in reqs:
            _no_ctl(q["headers"], repr(h))
    # h2: a field value with CR, LF or NUL is malformed (RFC 9113 8.2.1);
    # it must never reach the backend
    c = env.h2client()
    c.c.config.validate_outbound_headers = False
    c.c.config.normalize_outbound_headers = False
    sids = []
    for i, v in enumerate(["a\r\nInjected: 1", "a\x00b", "a\rb", "a\nb"]):
        sids.append(c.request("GET", "/app/echo?t=h2ctl%d" % i,
                              [("user-agent", v)]))
    res = c.wait_all(sids, timeout=15)
    c.close()
    # lws drops such a field before the plugin sees it: the request goes
    # through without it
    ans = [h2_status(st) for st in res]
    print("h2 user-agent with CR/LF/NUL -> %r" % ans)
    eq(ans, [200] * 4, "h2 answers")
    for i in range(4):
        reqs = [q for q in main.requests()
                if q["target"] == "/echo?t=h2ctl%d" % i]
        eq(len(reqs), 1, "backend requests for h2 stream %d" % i)
        print("  backend got user-agent %r" % [
            v for n, v in reqs[0]["headers"] if n.lower() == "user-agent"])
    for q in main.requests():
        _no_ctl(q["headers"], q["target"])


@case("header-64k")
def t_header_64k(env, ev):
    """A 64 KiB header: lws 4.1.6 has no 431 and closes the connection
    when its header buffer (max-http-header-data) is full."""
    main = env.backends["main"]
    for name in (b"X-Big", b"User-Agent", b"Cookie"):
        req = b"GET /app/echo?t=big HTTP/1.1\r\nHost: x\r\n%s: %s\r\n\r\n" \
            % (name, b"b" * 65536)
        a = raw_h1(env, req)
        print("h1 %s: 64 KiB -> %s" % (name.decode(), a.short()))
        eq(a.short(), "close", "answer to a 64 KiB %s" % name.decode())
    c = env.h2client()
    try:
        sid = c.request("GET", "/app/echo?t=big2",
                        [("user-agent", "b" * 65536)])
        st = c.wait_all([sid], timeout=15)[0]
        ans = "status %s reset %s" % (h2_status(st), st["reset"])
    except (Failure, OSError) as e:
        # the daemon closes while the header block is still being sent
        print("h2: %s" % e)
        ans = "close"
    print("h2 64 KiB user-agent -> %s" % ans)
    eq(ans, "close", "h2 answer to a 64 KiB header")
    try:
        c.s.close()
    except OSError:
        pass
    eq(tag_targets(main, "/echo?t=big"), set(), "oversized requests the "
       "backend saw")


SMUGGLE = b"GET /app/echo?smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
SMUGGLING = [
    # (name, head lines, body), daemon's answer
    ("cl+te", b"Content-Length: 5\r\nTransfer-Encoding: chunked",
     b"0\r\n\r\n" + SMUGGLE, "400"),
    ("te+cl", b"Transfer-Encoding: chunked\r\nContent-Length: 5",
     b"0\r\n\r\n" + SMUGGLE, "400"),
    ("two-cl", b"Content-Length: 5\r\nContent-Length: 40",
     b"hello" + SMUGGLE, "400"),
    ("two-cl-same", b"Content-Length: 5\r\nContent-Length: 5",
     b"hello" + SMUGGLE, "400"),
    ("cl-list", b"Content-Length: 5, 5", b"hello" + SMUGGLE, "400"),
    ("cl-plus", b"Content-Length: +5", b"hello" + SMUGGLE, "400"),
    ("te-chunked-identity", b"Transfer-Encoding: chunked, identity",
     b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLE, "400"),
    ("te-identity-chunked", b"Transfer-Encoding: identity, chunked",
     b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLE, "400"),
    ("te-twice", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
     b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLE, "400"),
    ("te-xchunked", b"Transfer-Encoding: xchunked\r\nContent-Length: 5",
     b"hello" + SMUGGLE, "400"),
    ("te-tab", b"Transfer-Encoding:\tchunked",
     b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLE, "400"),
    ("chunk-bad-size", b"Transfer-Encoding: chunked",
     b"zz\r\nhello\r\n0\r\n\r\n" + SMUGGLE, "400"),
    # well-formed chunked: the body is de-chunked and the connection
    # closed after the answer, so what follows is never parsed
    ("chunked-then-more", b"Transfer-Encoding: chunked",
     b"5;ext\r\nhello\r\n0\r\n\r\n" + SMUGGLE, "200"),
]


@case("smuggling")
def t_smuggling(env, ev):
    """The backend must never see a request the client did not send as
    one: every ambiguous framing is refused (400, and the client
    connection closed) before anything reaches the backend."""
    main = env.backends["main"]
    bad = []
    for name, lines, body, want in SMUGGLING:
        req = b"POST /app/echo?t=%s HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n%s" % (
            name.encode(), lines, body)
        a = raw_h1(env, req)
        print("%-22s -> %s%s" % (name, a.short(), " (connection: close)" if
                                 "connection: close" in a.head.lower()
                                 else ""))
        if a.short() != want:
            bad.append("%s: got %s, want %s" % (name, a.short(), want))
        if a.status == 400:
            check("connection: close" in a.head.lower(),
                  "%s: 400 without connection: close", name)
    seen = [q["target"] for q in main.requests()]
    print("backend saw %r" % seen)
    check(not any("smuggled" in t for t in seen),
          "the backend saw a smuggled request: %r", seen)
    eq(sorted(t for t in seen if t.startswith("/echo?t=")),
       sorted("/echo?t=" + n for n, _, _, w in SMUGGLING if w == "200"),
       "requests that reached the backend")
    check(not bad, "answers differ:\n  %s", "\n  ".join(bad))
    # h2: a content-length the DATA does not match is malformed
    c = env.h2client()
    c.c.config.validate_outbound_headers = False
    sid = c.start("POST", "/app/echo?t=h2-cl-short",
                  [("content-length", "5")])
    c.c.send_data(sid, b"hello" + SMUGGLE, end_stream=True)
    c.flush()
    try:
        st = c.wait_all([sid], timeout=15)[0]
        ans = "status %s reset %s" % (h2_status(st), st["reset"])
    except Failure:
        check(c.closed, "h2: no answer and no close")
        ans = "goaway %r" % c.goaway
    print("h2 content-length 5 with %d bytes -> %s" % (5 + len(SMUGGLE),
                                                       ans))
    c.close()
    seen = [q["target"] for q in main.requests()]
    check(not any("smuggled" in t for t in seen),
          "the backend saw a smuggled request: %r", seen)
    for q in main.requests():
        if q["target"] == "/echo?t=h2-cl-short":
            check(False, "h2 body longer than its content-length reached "
                  "the backend: %r", q)


@case("duplicate-host")
def t_dup_host(env, ev):
    """RFC 9112 3.2: more than one Host is a 400.  The backend must never
    see a Host the client did not send as one value."""
    main = env.backends["main"]
    a = raw_h1(env, b"GET /app/echo?t=duphost HTTP/1.1\r\nHost: good\r\n"
               b"Host: evil.example\r\n\r\n")
    hosts = [v for q in main.requests() if q["target"] == "/echo?t=duphost"
             for n, v in q["headers"] if n.lower() == "host"]
    print("two Host headers -> %s, backend saw Host %r" % (a.short(), hosts))
    eq(a.short(), "400", "answer to two Host headers")
    eq(hosts, [], "Host values the backend saw")


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
