# SPDX-License-Identifier: MIT
#
# Hostile cases: abusive h2 clients.
#
# Rapid reset, bursts of cancelled streams, many streams on one
# connection and more than 255 over its life, and a client gone in the
# middle of transfers.

import socket
import ssl

from harness import Failure, check, eq, h2_status, wait_until

from .common import case


def _reset_burst(env, total, per):
    """Open `per` streams and cancel each at once, `total` in all, on one
    connection; returns (streams sent, the connection still serves)."""
    import h2.errors
    import h2.exceptions
    c = env.h2client()
    n = 0
    try:
        while n < total:
            for i in range(per):
                sid = c.request("GET", "/app/bytes/100?t=rr%d" % n)
                c.c.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                n += 1
            c.flush()
            # take what came back, so windows and socket buffers move
            c.s.settimeout(0.01)
            try:
                d = c.s.recv(1 << 20)
            except (socket.timeout, ssl.SSLWantReadError):
                d = None
            if d == b"":
                raise OSError("closed by the daemon")
            if d:
                c.c.receive_data(d)
                c.flush()
        c.s.settimeout(30)
        sid = c.request("GET", "/app/bytes/4097")
        st = c.wait_all([sid])[0]
        eq(h2_status(st), 200, "request after the resets")
        alive = True
    except (Failure, OSError, h2.exceptions.ProtocolError) as e:
        print("connection lost after %d cancelled streams: %s" % (n, e))
        alive = False
    try:
        c.close()
    except OSError:
        pass
    return n, alive


@case("h2-rapid-reset", timeout=90)
def t_rapid_reset(env, ev):
    """CVE-2023-44487 style: 2000 streams opened and cancelled at once,
    50 at a time; where the daemon drops a connection the attack goes on
    on a new one.  The daemon stays up and serves, fds and backend
    connections come back."""
    main = env.backends["main"]
    env.get_ok("h2", "/app/bytes/100")
    base = env.fd_baseline()
    sent = drops = 0
    while sent < 2000:
        n, alive = _reset_burst(env, 2000 - sent, 50)
        sent += n
        drops += not alive
        check(env.daemon.exited() is None, "daemon died")
    print("%d cancelled streams, %d connections dropped by the daemon, "
          "backend saw %d" % (sent, drops, len(
              [q for q in main.requests() if "t=rr" in q["target"]])))
    env.get_ok("h2", "/app/echo?t=after")
    env.fd_settle(base, "rapid reset", timeout=30)
    wait_until(lambda: main.stats()["open"] <= 32, "backend connections "
               "back to the pool size", timeout=30)


@case("h2-cancel-burst")
def t_cancel_burst(env, ev):
    """A client cancelling 50 in-flight proxied streams at once (a page
    navigation) keeps its connection: the other streams go on."""
    n, alive = _reset_burst(env, 1000, 50)
    check(alive, "the daemon dropped the h2 connection after %d cancelled "
          "streams", n)


@case("h2-many-streams", timeout=90, pvo={"max-conns": "64"})
def t_many_streams(env, ev):
    """128 streams at once (the configured maximum) all complete; a client
    that opens one more while 128 are open loses the connection.
    max-conns 64: backend.py's listen backlog is 100, and a unix socket
    connect past a full backlog fails at once (EAGAIN), which is a 503."""
    import h2.settings
    c = env.h2client()
    c.pump(lambda: c.c.remote_settings.max_concurrent_streams < 2**31,
           timeout=5)
    limit = c.c.remote_settings.max_concurrent_streams
    print("server max concurrent streams: %d" % limit)
    sids = [c.request("GET", "/app/bytes/%d?seed=%d" % (20000 + i, i))
            for i in range(limit)]
    res = c.wait_all(sids, timeout=60)
    from harness import pattern
    for i, st in enumerate(res):
        eq(h2_status(st), 200, "stream %d status" % i)
        check(st["data"] == pattern(20000 + i, i), "stream %d body" % i)
    c.close()
    # Hold 128 streams open (a 1-byte window the client never updates,
    # bodies small enough that the backend connections go back to the
    # pool), then open one more, ignoring the limit: lws closes the
    # connection (lws_h2_goaway "Another stream not allowed", but the
    # GOAWAY does not get out first), where RFC 9113 5.1.2 wants the
    # stream refused (PROTOCOL_ERROR or REFUSED_STREAM).
    from harness import H2Client
    c = H2Client(env.https_port, window=1)
    c.pump(lambda: c.c.remote_settings.max_concurrent_streams < 2**31,
           timeout=5, ack=False)
    sids = [c.request("GET", "/app/bytes/10000?t=held%d" % i)
            for i in range(limit)]
    c.pump(lambda: all(c.streams[s]["headers"] for s in sids), ack=False)
    eq({h2_status(c.streams[s]) for s in sids}, {200}, "held streams")
    check(not any(c.streams[s]["ended"] for s in sids),
          "a held stream ended despite its 1-byte window")
    c.c.remote_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = \
        10 ** 6
    c.c.remote_settings.acknowledge()
    extra = c.request("GET", "/app/bytes/100?t=excess")
    try:
        c.pump(lambda: c.streams[extra]["reset"] is not None or
               c.streams[extra]["headers"], ack=False, timeout=15)
        ans = "stream: status %s reset %s" % (
            h2_status(c.streams[extra]), c.streams[extra]["reset"])
    except Failure:
        check(c.closed, "no answer to the excess stream, and no close")
        ans = "connection closed"
    print("stream %d with %d held open: %s (goaway %r)" % (
        limit + 1, limit, ans, c.goaway))
    try:
        c.close()
    except OSError:
        pass
    eq(ans, "connection closed", "answer to one stream too many")
    check(not any("t=excess" in q["target"]
                  for q in env.backends["main"].requests()),
          "the excess stream reached the backend")


@case("h2-streams-over-255", pvo={"max-conns": "64"},
      vhost={"h2-max-concurrent-streams": "250"})
def t_streams_over_255(env, ev):
    """An operator allows 250 concurrent h2 streams (the most lws-uds-proxyd
    accepts: lws 4.1.6 aborts past 255 immortal streams); a client uses 250 of
    them at once (each held open by a 1-byte window): every one is
    answered and the daemon survives."""
    from harness import H2Client
    c = H2Client(env.https_port, window=1)
    c.pump(lambda: c.c.remote_settings.max_concurrent_streams < 2**31,
           timeout=5, ack=False)
    eq(c.c.remote_settings.max_concurrent_streams, 250, "advertised limit")
    sids = [c.request("GET", "/app/bytes/10000?t=s%d" % i)
            for i in range(250)]
    try:
        c.pump(lambda: all(c.streams[s]["headers"] for s in sids),
               ack=False, timeout=30)
        ans = sorted({h2_status(c.streams[s]) for s in sids})
    except Failure as e:
        ans = "connection lost (%s); daemon: %s" % (
            e, env.daemon.exited() or "alive")
    print("250 concurrent h2 streams: %s" % (ans,))
    try:
        c.close()
    except OSError:
        pass
    eq(ans, [200], "answers to 250 concurrent streams")


def _rst_close(sock):
    """Close with RST (SO_LINGER 0): the rudest way to go."""
    import struct
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


@case("client-gone-mid-transfer", timeout=90)
def t_gone_mid_transfer(env, ev):
    """Ten h1 and ten h2 clients each start a 64 MiB download or a 16 MiB
    upload and vanish (FIN or RST) part-way, all at once: the daemon
    closes every client socket, its fds come back to the baseline and
    the backend's connections are closed or back in the pool."""
    main = env.backends["main"]
    env.get_ok("h1", "/app/bytes/100")
    env.get_ok("h2", "/app/bytes/100")
    base = env.fd_baseline()
    up = 16 << 20
    socks = []
    for i in range(10):
        s = socket.create_connection(("127.0.0.1", env.http_port))
        if i % 2:
            s.sendall(b"GET /app/big/67108864?t=d%d HTTP/1.1\r\nHost: x"
                      b"\r\n\r\n" % i)
            got = b""
            while len(got) < 100000:
                got += s.recv(65536)
        else:
            s.sendall(b"POST /app/upload?t=u%d HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: %d\r\n\r\n" % (i, up))
            s.sendall(b"u" * (up // 4))
        socks.append(s)
    conns = []
    for i in range(10):
        c = env.h2client()
        if i % 2:
            sid = c.request("GET", "/app/big/67108864?t=h2d%d" % i)
            c.pump(lambda: len(c.streams[sid]["data"]) >= 100000)
        else:
            sid = c.start("POST", "/app/upload?t=h2u%d" % i,
                          [("content-length", str(up))])
            c.send_bodies({sid: b"u" * (up // 4)}, end=False)
        conns.append(c)
    for i, s in enumerate(socks + [c.s for c in conns]):
        if i % 3:
            _rst_close(s)
        else:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
    env.fd_settle(base, "20 clients gone mid-transfer", timeout=30)
    wait_until(lambda: main.stats()["open"] <= 32,
               "backend connections closed or pooled", timeout=30)
    print("backend connections open afterwards: %d" % main.stats()["open"])
