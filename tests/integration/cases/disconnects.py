# SPDX-License-Identifier: MIT
#
# Integration cases: clients that go away.
#
# A client gone mid-download or mid-upload (h1 and h2), and an h2 client
# that cancels its stream (RST_STREAM).

import os

from harness import Failure, check, eq, h2_status, pattern

from .common import _abrupt_close, case, echo


# -- client disconnects --------------------------------------------------------

GONE_BIG = 64 * 1024 * 1024
GONE_UP = 10 * 1024 * 1024


def _backend_conn_done(env, target):
    """The backend connection that served target must be closed by the
    proxy, or (if the proxy drained it) be reused cleanly next."""
    from harness import wait_until
    main = env.backends["main"]
    wait_until(lambda: any(q["target"] == target for q in main.requests()),
               "%s at the backend" % target, 10)
    conn = [q["conn"] for q in main.requests() if q["target"] == target][0]
    try:
        wait_until(lambda: conn in main.stats()["closed"],
                   "backend connection %d closed" % conn, 10)
        print("backend connection %d of %s closed" % (conn, target))
    except Failure:
        doc = echo(env, "h1", "/app/echo?after-gone")
        eq(doc["conn"], conn, "backend connection %d of %s is neither "
           "closed nor reused" % (conn, target))
        print("backend connection %d of %s reused" % (conn, target))


@case("client-gone-download")
def t_gone_download(env, proto):
    env.get_ok(proto, "/app/bytes/1000")
    base = env.fd_baseline()
    target = "/big/%d" % GONE_BIG
    if proto == "h1":
        c = env.raw_h1()
        c.send(("GET /app%s HTTP/1.1\r\nHost: %s\r\n\r\n" %
                (target, env.authority("h1"))).encode())
        line, st, hs = c.read_head()
        eq(st, 200, "status of the download")
        c.read_exact(256 * 1024)
        _abrupt_close(c.s)
    else:
        c = env.h2client()
        sid = c.request("GET", "/app" + target)
        c.pump(lambda: len(c.streams[sid]["data"]) >= 256 * 1024)
        eq(h2_status(c.streams[sid]), 200, "status of the download")
        _abrupt_close(c.s)
    _backend_conn_done(env, target)
    env.fd_settle(base, "a client gone mid-download")


@case("client-gone-upload")
def t_gone_upload(env, proto):
    env.get_ok(proto, "/app/bytes/1000")
    base = env.fd_baseline()
    target = "/upload?gone"
    half = os.urandom(GONE_UP // 2)
    if proto == "h1":
        c = env.raw_h1()
        c.send(("POST /app%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n"
                "Content-Type: application/octet-stream\r\n\r\n" %
                (target, env.authority("h1"), GONE_UP)).encode())
        c.send(half)
        _abrupt_close(c.s)
    else:
        c = env.h2client()
        sid = c.start("POST", "/app" + target, [
            ("content-length", str(GONE_UP)),
            ("content-type", "application/octet-stream")])
        sent = c.send_bodies({sid: half}, end=False)
        eq(sent[sid], len(half), "bytes sent before the disconnect")
        _abrupt_close(c.s)
    _backend_conn_done(env, target)
    env.fd_settle(base, "a client gone mid-upload")


def _cancel_check(env, c, target, what):
    """After a client RST_STREAM, with the client still reading its
    connection: the proxy must stop relaying that stream and let go of
    its backend connection (closed, or drained and pooled), and the
    client connection must go on serving other streams."""
    main = env.backends["main"]
    conn = [q["conn"] for q in main.requests() if q["target"] == target][0]
    rx0 = c.rx_bytes
    limit = 8 << 20
    # the connection and its other streams go on
    sid = c.request("GET", "/app/bytes/5000?seed=4")
    st = c.wait_all([sid])[0]
    eq(h2_status(st), 200, "status on the same connection after a cancel")
    check(st["data"] == pattern(5000, 4), "body after a cancel differs")

    def settled():
        return conn in main.stats()["closed"] or c.rx_bytes - rx0 > limit
    try:
        c.pump(settled, timeout=10, tick=0.1)
    except Failure as e:
        print("after the reset of the %s: %s" % (what, e))
    rx = c.rx_bytes - rx0
    closed = conn in main.stats()["closed"]
    print("cancelled %s: backend connection %d %s; client read %d bytes "
          "after the reset" % (what, conn, "closed" if closed else "open",
                               rx))
    check(rx <= limit, "%d bytes still reached the client after it reset "
          "the %s stream", rx, what)
    check(not c.closed, "the daemon closed the client connection (goaway "
          "%r) after the %s was cancelled", c.goaway, what)
    if not closed:
        doc = echo(env, "h1", "/app/echo?after-cancel")
        eq(doc["conn"], conn, "backend connection %d of the cancelled %s "
           "is neither closed nor reused" % (conn, what))


@case("client-cancel-download", protos=("h2",))
def t_cancel_download(env, proto):
    """RST_STREAM mid-download on a connection that stays open."""
    import h2.errors
    env.get_ok(proto, "/app/bytes/1000")
    base = env.fd_baseline()
    c = env.h2client()
    target = "/big/%d?cancel" % GONE_BIG
    sid = c.request("GET", "/app" + target)
    c.pump(lambda: len(c.streams[sid]["data"]) >= 256 * 1024)
    c.c.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    c.flush()
    _cancel_check(env, c, target, "download")
    c.close()
    env.fd_settle(base, "a cancelled download")


@case("client-cancel-upload", protos=("h2",))
def t_cancel_upload(env, proto):
    """RST_STREAM mid-upload on a connection that stays open."""
    import h2.errors
    env.get_ok(proto, "/app/bytes/1000")
    base = env.fd_baseline()
    c = env.h2client()
    target = "/upload?cancel"
    sid = c.start("POST", "/app" + target, [
        ("content-length", str(GONE_UP))])
    c.send_bodies({sid: os.urandom(GONE_UP // 2)}, end=False)
    c.c.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    c.flush()
    _cancel_check(env, c, target, "upload")
    c.close()
    env.fd_settle(base, "a cancelled upload")
