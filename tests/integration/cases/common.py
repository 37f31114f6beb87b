# SPDX-License-Identifier: MIT
#
# What every topic module of the integration cases uses: the @case
# decorator and its registry, and the helpers more than one topic needs.
# A helper only one topic uses stays in that topic's module.

import hashlib
import os
import subprocess

from harness import check, eq, pattern, wait_until

CASES = []
BOTH = ("h1", "h2")


class Case:
    def __init__(self, name, fn, proto, backends, pvo, mounts, timeout):
        self.name = name
        self.fn = fn
        self.proto = proto
        self.backends = backends
        self.pvo = pvo
        self.mounts = mounts
        self.timeout = timeout


def case(name, protos=BOTH, backends=(("main", "unix"),), pvo=None,
         mounts=None, timeout=60, **params):
    """Register fn(env, proto, **params) as <name>-<proto> per protocol."""
    def deco(fn):
        for p in protos:
            CASES.append(Case("%s-%s" % (name, p),
                              lambda env, proto, fn=fn: fn(env, proto,
                                                           **params),
                              p, backends, pvo, mounts, timeout))
        return fn
    return deco


def echo(env, proto, path, **kw):
    r = env.curl(proto, path, **kw)
    check(r.rc == 0 and r.status == 200, "%s %s: %r", proto, path, r)
    return r.json()


def last_req(backend):
    reqs = backend.requests()
    check(reqs, "backend %s saw no request", backend.name)
    return reqs[-1]


# a backend.py of each kind: unix socket, TCP, TLS on a unix socket
ALL_BACKENDS = (("main", "unix"), ("tcp", "tcp"), ("tls", "tls-unix"))


# -- bodies and memory -----------------------------------------------------

RSS_LIMIT_KB = 16 * 1024
# Under AddressSanitizer freed memory sits in a quarantine (256 MiB by
# default), so peak RSS says nothing about buffering: scripts/sanitize sets
# this and the memory bound is then only reported.
if os.environ.get("UDSP_IT_SANITIZED"):
    RSS_LIMIT_KB = 1 << 40


def _pattern_sha(n, seed=0):
    h = hashlib.sha256()
    step = 251 * 4096
    off = 0
    while off < n:
        sz = min(step, n - off)
        h.update(pattern(sz, seed, off))
        off += sz
    return h.hexdigest()


def _abrupt_close(sock):
    import socket as so
    try:
        sock.shutdown(so.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


# -- the proxy's own answers -------------------------------------------------

# What the proxy's own pages say (plugin/private.h UDSP_ERR_MAP), as a
# client sees them: a row edited by mistake shows here.
ERRPAGE = {
    502: ("Bad Gateway", "The application server sent an invalid response."),
    503: ("Service Unavailable", "The application server is not running or "
          "is restarting. Please try again shortly."),
    504: ("Gateway Timeout", "The application server did not answer in time."),
    413: ("Content Too Large", "The request body is too large."),
    400: ("Bad Request", "The request could not be understood."),
}


def errpage_ok(r, status):
    """r (a curl result) is the proxy's own page for status."""
    title, text = ERRPAGE[status]
    want = ("<title>%d %s</title>" % (status, title),
            "<h1>%d %s</h1><p>%s</p>" % (status, title, text))
    for w in want:
        check(w.encode() in r.body, "%d page lacks %r: %r", status, w,
              r.body[:400])


def _expect_503(env, proto, path):
    r = env.curl(proto, path)
    eq(r.rc, 0, "curl exit code for %s (%s)" % (path, r.err[-300:]))
    eq(r.status, 503, "status for %s" % path)
    return r


# -- held requests (hold.py, multi.py) ---------------------------------------

def _log_has(env, text):
    with open(env.daemon_log, errors="replace") as f:
        return text in f.read()


def _curl_bg(env, proto, path):
    args = ["curl", "-sS", "-k", "-o", "/dev/null", "-w", "%{http_code}",
            "--max-time", "30"]
    args += ["--http1.1"] if proto == "h1" else ["--http2"]
    return subprocess.Popen(args + [env.url(proto, path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _held_until_back(env, proto, path, backend, name):
    """GET path while backend is away: it must be held (the daemon says
    so), then answered 200 once backend is started again."""
    held = _curl_bg(env, proto, path)
    try:
        wait_until(lambda: _log_has(env, "holding requests"),
                   "the request to be held",
                   alive=lambda: held.poll() is not None and
                   "the held request ended")
        backend.start()
        out, err = held.communicate(timeout=30)
    finally:
        if held.poll() is None:
            held.kill()
            held.wait()
    eq(out.decode(), "200", "held request once %s is back (%s)" % (
        name, err.decode()[-200:]))


# -- the status mount (status.py, multi.py) ----------------------------------

def _status_json(env, proto):
    import json
    r = env.curl(proto, "/status")
    check(r.rc == 0 and r.status == 200, "GET /status: %r", r)
    check((r.h("content-type") or "").startswith("application/json"),
          "status content-type %r", r.h("content-type"))
    return json.loads(r.body)


def _port(env, proto):
    return env.http_port if proto == "h1" else env.https_port


def _be(st, port, spec):
    got = [b for b in st["backends"]
           if b["port"] == port and b["backend"] == spec]
    eq(len(got), 1, "status entries for %s on port %d" % (spec, port))
    return got[0]
