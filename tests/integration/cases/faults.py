# SPDX-License-Identifier: MIT
#
# Integration cases: backend faults and the proxy's own answers.
#
# A backend missing or refusing (503), restarting, answering too late
# (504), sending garbage or an oversized head (502), going quiet
# (idle-timeout), dying mid-body, and 100-continue.  Misbehaving backends
# built for it (evil_backend.py) are in ../hostile_cases/bad_backends.py.

import os
import re
import signal

from harness import Failure, check, eq

from .common import _expect_503, case, errpage_ok


# -- backend faults ----------------------------------------------------------

def _fault_mounts(env):
    return env.standard_mounts() + [
        {"mountpoint": "/down",
         "origin": "http://+%s/missing.sock:/" % env.dir},
        {"mountpoint": "/refused",
         "origin": "http://+%s:/" % env.bound_not_listening("refused")},
        {"mountpoint": "/deadtcp",
         "origin": "http://127.0.0.1:%d/" % env.dead_port},
    ]


def _dead_port_mounts(env):
    from harness import free_port
    env.dead_port = free_port()
    return _fault_mounts(env)


@case("backend-missing", mounts=_dead_port_mounts)
def t_missing(env, proto):
    r = _expect_503(env, proto, "/down/echo")
    check("text/html" in (r.h("content-type") or ""),
          "503 page content-type %r", r.h("content-type"))
    check(re.search(rb'href="?/error\.css', r.body),
          "503 page does not link /error.css: %r", r.body[:400])
    errpage_ok(r, 503)
    # twice: the failure path must leave the client connection usable
    _expect_503(env, proto, "/down/echo?again")


@case("backend-refused", mounts=_dead_port_mounts)
def t_refused(env, proto):
    _expect_503(env, proto, "/refused/echo")
    _expect_503(env, proto, "/deadtcp/echo")


def _restart_mounts(env):
    return env.standard_mounts() + [
        {"mountpoint": "/r", "origin": env.backends["r"].origin("/")}]


@case("backend-restart", backends=(("main", "unix"), ("r", "unix")),
      mounts=_restart_mounts)
def t_restart(env, proto):
    b = env.backends["r"]
    pid = env.serving_pid()
    env.get_ok(proto, "/r/echo?before")
    env.get_ok(proto, "/r/echo?before2")   # leaves a pooled connection
    b.kill(signal.SIGKILL)
    check(os.path.exists(b.path), "socket file should outlive SIGKILL")
    _expect_503(env, proto, "/r/echo?down")
    b.start()
    env.get_ok(proto, "/r/echo?after")
    eq(env.serving_pid(), pid, "serving process pid")
    check(env.daemon.exited() is None, "daemon died")
    b.kill(signal.SIGTERM)
    _expect_503(env, proto, "/r/echo?down-again")
    b.start()
    env.get_ok(proto, "/r/echo?after-again")


@case("head-timeout-504", pvo={"head-timeout-ms": "1000"})
def t_504(env, proto):
    r = env.curl(proto, "/app/slow-head/6", timeout=20)
    eq(r.rc, 0, "curl exit code (%s)" % r.err[-300:])
    eq(r.status, 504, "status for a backend that does not answer")
    errpage_ok(r, 504)


@case("garbage-502")
def t_502(env, proto):
    r = env.curl(proto, "/app/garbage")
    eq(r.rc, 0, "curl exit code (%s)" % r.err[-300:])
    eq(r.status, 502, "status for a non-HTTP backend reply")
    errpage_ok(r, 502)
    r = env.curl(proto, "/app/status/1000")
    check(r.status == 502 or r.rc != 0,
          "status 1000 from the backend passed as %r", r)


@case("max-header-502", pvo={"max-header-kb": "8"})
def t_max_header(env, proto):
    r = env.curl(proto, "/app/bighead/2000")
    eq((r.rc, r.status), (0, 200), "2000-byte header under an 8 KiB limit")
    eq(r.h("x-big"), "b" * 2000, "X-Big value")
    r = env.curl(proto, "/app/bighead/16000")
    eq(r.rc, 0, "curl exit code (%s)" % r.err[-300:])
    eq(r.status, 502, "backend head over max-header-kb")


@case("idle-timeout", pvo={"idle-timeout-ms": "1000"})
def t_idle(env, proto):
    """A backend that stops mid-body: the client must see an incomplete
    transfer once idle-timeout-ms passes, not a hang or a clean end."""
    r = env.curl(proto, "/app/stall-body/100000", timeout=20)
    print("stalled body: curl rc %d, %d bytes" % (r.rc, len(r.body)))
    check(r.rc in (18, 56, 92, 16), "client did not see an incomplete "
          "transfer: %r", r)
    check(len(r.body) < 100000, "got all %d bytes", len(r.body))


def t_die(env, proto, path, full):
    r = env.curl(proto, path)
    print("%s: curl rc %d, %d of %s bytes" % (path, r.rc, len(r.body), full))
    check(r.rc in (18, 56, 92, 16), "client did not see an incomplete "
          "transfer: %r", r)
    if full:
        check(len(r.body) < full, "got %d bytes of %d", len(r.body), full)
    if proto == "h2":
        # lws 4.1.6 cannot send RST_STREAM (see README "Limits"): with a
        # declared content-length the stream ends short, which an h2
        # client must treat as malformed (RFC 9113 8.1.1), and the
        # connection stays usable; without one the connection is closed.
        import h2.exceptions
        c = env.h2client()
        sid = c.request("GET", path)
        try:
            st = c.wait_all([sid])[0]
            check(st["reset"] is not None, "h2 stream ended cleanly (%d "
                  "bytes) instead of aborting", len(st["data"]))
            aborted = "reset"
        except h2.exceptions.InvalidBodyLengthError:
            aborted = "short body"
        except Failure as e:
            check(c.closed, "no abort seen: %s" % e)
            aborted = "connection closed"
        print("h2 abort seen as: %s" % aborted)
        if full:
            check(aborted == "short body", "with content-length the "
                  "stream, not the connection, must end: %s" % aborted)
            # python-h2 itself drops the connection on a body-length
            # error; nghttp keeps it and resets just that stream.
            rc, got, out = env.nghttp(path, extra=[
                env.url("h2", "/app/bytes/100")])
            check("RST_STREAM" in out and "PROTOCOL_ERROR" in out,
                  "nghttp did not reset the short stream:\n%s" % out[-800:])
            check(re.search(r"recv DATA frame <length=100, flags=0x01", out),
                  "the other stream on that connection did not complete")
        else:
            check(aborted == "connection closed", "without content-length "
                  "the connection must close: %s" % aborted)
        c.close()


case("die-mid-body-cl", path="/app/die-mid-body/200000", full=200000)(t_die)
case("die-mid-body-chunked", path="/app/die-mid-chunked", full=None)(t_die)


@case("continue-100")
def t_continue(env, proto):
    r = env.curl(proto, "/app/100-continue")
    eq((r.rc, r.status), (0, 200), "final status after a 100")
    eq(r.body, b"after continue\n", "body after a 100")
