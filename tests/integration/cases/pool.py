# SPDX-License-Identifier: MIT
#
# Integration cases: pooled backend connections.
#
# Reuse and idle expiry of pooled connections, a pooled connection the
# backend closed, a POST not sent on a stale one, and a backend that closes
# right after its response while the proxy holds back reading it.

import os
import re
import socket
import subprocess

from harness import check, eq, h2_status, hdr1, pattern, sha

from .common import _abrupt_close, _pattern_sha, case, echo


@case("pool-reuse")
def t_pool(env, proto):
    """Sequential requests should share one pooled backend connection."""
    conns = []
    for i in range(4):
        conns.append(echo(env, proto, "/app/echo?i=%d" % i)["conn"])
    print("backend connections used: %r" % conns)
    eq(len(set(conns)), 1, "backend connections for 4 sequential requests")


@case("pool-idle-expiry", pvo={"pool-idle-timeout-ms": "300"})
def t_pool_idle(env, proto):
    """An idle pooled connection is closed after pool-idle-timeout-ms,
    and the next request opens a fresh one."""
    from harness import wait_until
    main = env.backends["main"]
    first = echo(env, proto, "/app/echo?i=0")["conn"]
    wait_until(lambda: first in main.stats()["closed"],
               "the idle pooled connection to be closed by the proxy")
    again = echo(env, proto, "/app/echo?i=2")["conn"]
    check(again != first, "request after expiry reused closed conn %r",
          first)


# -- pooled connection closed by the backend ---------------------------------

@case("pool-backend-closed")
def t_pool_closed(env, proto):
    main = env.backends["main"]

    def trips(target):
        return [(q["conn"], q.get("dropped")) for q in main.requests()
                if q["target"] == target]

    # Answered as keep-alive, then closed: the next request must not fail
    # on the dead connection.
    d1 = echo(env, proto, "/app/echo?close-after=1")
    d2 = echo(env, proto, "/app/echo?after-close")
    print("close-after on conn %d, next request on conn %d" % (d1["conn"],
                                                               d2["conn"]))
    check(d2["conn"] != d1["conn"], "request went to the closed backend "
          "connection %d", d1["conn"])

    # The pooled connection dies when the next request arrives, nothing
    # answered: a GET is retried once, on a fresh connection.
    d3 = echo(env, proto, "/app/echo?drop-next=before-body")
    d4 = echo(env, proto, "/app/echo?retried")
    got = trips("/echo?retried")
    print("GET after drop-next: trips %r" % got)
    eq(got, [(d3["conn"], "before-body"), (d4["conn"], None)],
       "(backend conn, dropped) of the GET's trips")
    check(d4["conn"] != d3["conn"], "retry used the dead connection")

    # A POST whose body the backend took before dying: sending it again
    # could apply it twice, so the client must get a clean 502.
    echo(env, proto, "/app/echo?drop-next=after-body")
    body = os.urandom(100000)
    r = env.curl(proto, "/app/echo?post-once", data=body)
    got = trips("/echo?post-once")
    print("POST, dropped after its body: rc %s status %s, trips %r" % (
        r.rc, r.status, got))
    eq(len(got), 1, "times the POST reached the backend")
    eq((r.rc, r.status), (0, 502), "POST whose answer was lost")

    env.get_ok(proto, "/app/echo?still-pooling")


@case("pool-post-dropped")
def t_pool_post_dropped(env, proto):
    """A POST whose pooled connection the backend drops before reading the
    body: retried (200) if no body byte had left, else a clean 502; the
    body reaches the backend at most once.  Which of the two happens is a
    race, so it runs several times."""
    main = env.backends["main"]
    body = os.urandom(100000)
    seen = []
    for i in range(10):
        echo(env, proto, "/app/echo?drop-next=before-body")
        target = "/echo?post-before=%d" % i
        r = env.curl(proto, "/app" + target, data=body, timeout=10)
        got = [(q["conn"], q.get("dropped")) for q in main.requests()
               if q["target"] == target]
        seen.append(r.status)
        check(r.rc == 0 and r.status in (200, 502), "POST %d on a dropped "
              "pooled connection (backend trips %r): %r", i, got, r)
        full = [t for t in got if t[1] != "before-body"]
        if r.status == 200:
            eq(len(full), 1, "complete POSTs at the backend")
            eq(r.json()["body_sha256"], sha(body), "retried POST body")
        else:
            eq(full, [], "complete POSTs at the backend after a 502")
    print("statuses: %r" % seen)


# -- a backend that closes right after its response ---------------------------
#
# Backends end keep-alive connections all the time: nginx after
# keepalive_requests, restarted workers, apps that close after every
# response.  When that close comes while the proxy holds back reading the
# backend (its client reads slower), the rest of the response is still in
# the socket, and must reach the client whole: a response whose framing
# is complete is a success however the connection ends.

TAIL_BACKENDS = (("main", "unix"), ("tls", "tls-unix"))
# The backend puts the whole response into the socket (a big SO_SNDBUF,
# which the kernel caps at twice net.core.wmem_max), then closes it at
# once: no Connection: close, no TLS close_notify.
try:
    with open("/proc/sys/net/core/wmem_max") as _f:
        _WMEM_MAX = int(_f.read())
except (OSError, ValueError):
    _WMEM_MAX = 212992
TAIL_SIZE = min(4 * 1024 * 1024, _WMEM_MAX)
TAIL_Q = "sndbuf=%d&hangup-every=1" % TAIL_SIZE
TAIL_ROUTES = [("/app", "main", "bytes"), ("/app", "main", "chunked"),
               ("/tlsn", "tls", "bytes"), ("/tlsn", "tls", "chunked")]


def _hung_up(env, bname):
    return len(env.backends[bname].stats()["hung_up"])


def _wait_hung_up(env, want):
    """Until each backend {name: count} has closed that many connections
    with hangup-every."""
    from harness import wait_until
    wait_until(lambda: all(_hung_up(env, b) >= n for b, n in want.items()),
               "the backends to close their connections %r" % want, 30,
               alive=env.daemon.exited)


def _tail_target(mount, route, seed):
    return "%s/%s/%d?seed=%d&%s" % (mount, route, TAIL_SIZE, seed, TAIL_Q)


def _check_tail_body(body, seed, what):
    eq(len(body), TAIL_SIZE, "%s: body length" % what)
    eq(sha(body), _pattern_sha(TAIL_SIZE, seed), "%s: body sha256" % what)


@case("backend-close-paused", backends=TAIL_BACKENDS, timeout=90)
def t_close_paused(env, proto):
    """The client reads nothing more until the backend has sent its whole
    response and closed the connection, so the proxy has paused reading
    the backend with most of the response unread: all of it must still
    arrive, CL and chunked, plain and TLS backend, and the client
    connection stays usable."""
    if proto == "h1":
        c = env.raw_h1(rcvbuf=4096)
        for i, (mount, b, route) in enumerate(TAIL_ROUTES):
            what = "%s %s" % (mount, route)
            want = {b: _hung_up(env, b) + 1}
            c.send(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (
                _tail_target(mount, route, i), env.authority("h1"))).encode())
            line, st, hs = c.read_head()
            eq(st, 200, "%s: status" % what)
            _wait_hung_up(env, want)
            # now read at full speed
            c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            if route == "chunked":
                body = c.read_chunked()
            else:
                body = c.read_exact(int(hdr1(hs, "content-length")))
            _check_tail_body(body, i, what)
            print("%s: %d bytes, whole, after the backend closed" % (
                what, len(body)))
        st, hs, body = c.request("GET", "/app/bytes/1000",
                                 env.authority("h1"))
        eq((st, body), (200, pattern(1000)), "next request on the client "
           "connection")
        c.close()
        return

    from harness import H2Client
    # the connection's window (64 KiB) is never widened while waiting
    c = H2Client(env.https_port, window=65535)
    want = {"main": _hung_up(env, "main"), "tls": _hung_up(env, "tls")}
    sids = {}
    for i, (mount, b, route) in enumerate(TAIL_ROUTES):
        sids[c.request("GET", _tail_target(mount, route, i))] = \
            (i, "%s %s" % (mount, route))
        want[b] += 1
    c.pump(lambda: all(c.streams[s]["headers"] for s in sids), ack=False)
    _wait_hung_up(env, want)
    for s in sids:
        c.c.acknowledge_received_data(len(c.streams[s]["data"]), s)
    c.flush()
    sts = c.wait_all(list(sids), timeout=60)
    for (s, (i, what)), st in zip(sids.items(), sts):
        eq(st["reset"], None, "%s: stream reset" % what)
        eq(h2_status(st), 200, "%s: status" % what)
        _check_tail_body(st["data"], i, what)
    print("%d streams whole after their backends closed" % len(sids))
    sid = c.request("GET", "/app/bytes/1000")
    st = c.wait_all([sid])[0]
    eq((h2_status(st), st["data"]), (200, pattern(1000)),
       "next stream on the client connection")
    c.close()


@case("backend-close-paused-client-gone", backends=TAIL_BACKENDS)
def t_close_paused_gone(env, proto):
    """As backend-close-paused, but the client goes away while the proxy
    still holds the rest of a closed backend connection: that is let go
    (no socket left open)."""
    from harness import H2Client
    env.get_ok(proto, "/app/bytes/1000")
    base = env.fd_baseline()
    for i, (mount, b, route) in enumerate(TAIL_ROUTES):
        want = {b: _hung_up(env, b) + 1}
        if proto == "h1":
            c = env.raw_h1(rcvbuf=4096)
            c.send(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (
                _tail_target(mount, route, i), env.authority("h1"))).encode())
            eq(c.read_head()[1], 200, "status")
            _wait_hung_up(env, want)
            c.read_exact(100000)
        else:
            c = H2Client(env.https_port, window=65535)
            sid = c.request("GET", _tail_target(mount, route, i))
            c.pump(lambda: c.streams[sid]["headers"], ack=False)
            _wait_hung_up(env, want)
        _abrupt_close(c.s)
    env.fd_settle(base, "clients gone with closed backends' rests unread")


TAIL_LOAD = [
    # 512 KiB, the backend ending connections in each of its ways; with a
    # bigger socket buffer (sndbuf), more of the response waits there
    "/app/bytes/524288?close-every=1&sndbuf=1048576",
    "/app/chunked/524288?close-every=5",
    "/app/bytes/524288?drop-every=3",
    "/app/bytes/524288?shut-every=2",
    "/tlsn/bytes/524288?hangup-every=1&sndbuf=1048576",
    "/tlsn/chunked/524288?hangup-every=3",
]
TAIL_LOAD_N = 300


@case("backend-close-load", backends=TAIL_BACKENDS, timeout=120)
def t_close_load(env, proto):
    """h2load against backends that close after every (or every Nth)
    response; h2 with 64 KiB windows (-w 16 -W 16), so that responses wait
    in the proxy.  Every request must succeed with its whole body."""
    n = TAIL_LOAD_N
    bad = []
    for path in TAIL_LOAD:
        size = int(path.split("?")[0].rsplit("/", 1)[1])
        argv = ["h2load", "-n%d" % n, "-c4"]
        argv += ["--h1"] if proto == "h1" else ["-m4", "-w16", "-W16"]
        cp = subprocess.run(argv + [env.url(proto, path)],
                            capture_output=True, timeout=100)
        out = cp.stdout.decode()
        req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, "
                        r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
        st = re.search(r"status codes: (\d+) 2xx", out)
        data = re.search(r"traffic: .*\((\d+)\) data", out)
        got = (int(req.group(4)) if req else -1,
               int(st.group(1)) if st else -1,
               int(data.group(1)) if data else -1)
        print("%-40s %d succeeded, %d 2xx, %d body bytes (want %d)" % (
            path, got[0], got[1], got[2], n * size))
        if cp.returncode or got != (n, n, n * size):
            bad.append(path)
            print(out[-800:])
    eq(bad, [], "runs with failed requests or short bodies")


@case("backend-close-slow-readers", backends=TAIL_BACKENDS, timeout=90)
def t_close_slow(env, proto):
    """Slow clients (curl --limit-rate) against backends that close after
    every response: every body whole (sha256)."""
    import tempfile
    size = 4 * 1024 * 1024
    paths = ["/app/bytes/%d?close-every=1", "/app/chunked/%d?close-every=1",
             "/app/bytes/%d?drop-every=1", "/app/bytes/%d?shut-every=1",
             "/tlsn/bytes/%d?hangup-every=1",
             "/tlsn/chunked/%d?hangup-every=1"]
    procs = []
    d = tempfile.mkdtemp(dir=env.dir)
    for i, p in enumerate(paths * 2):
        # a socket buffer that holds more than the proxy's buffer limit
        path = (p % size) + "&seed=%d&sndbuf=1048576" % i
        out = os.path.join(d, "b%d" % i)
        argv = ["curl", "-sS", "--max-time", "60", "--limit-rate", "16M",
                "-o", out, "-w", "%{http_code}"]
        argv += ["--http1.1"] if proto == "h1" else ["--http2", "-k"]
        procs.append((path, i, out, subprocess.Popen(
            argv + [env.url(proto, path)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)))
    bad = []
    for path, i, out, p in procs:
        o, e = p.communicate(timeout=80)
        body = open(out, "rb").read() if os.path.exists(out) else b""
        ok = (p.returncode == 0 and o == b"200" and len(body) == size and
              sha(body) == _pattern_sha(size, i))
        if not ok:
            bad.append(path)
            print("%s: rc %d, status %s, %d bytes: %s" % (
                path, p.returncode, o.decode(), len(body),
                e.decode().strip()))
    print("%d slow downloads, %d bad" % (len(procs), len(bad)))
    eq(bad, [], "slow downloads cut short or corrupted")
