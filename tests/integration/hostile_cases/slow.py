# SPDX-License-Identifier: MIT
#
# Hostile cases: slow clients.
#
# Clients that hold connections without finishing them: slowloris (half a
# head, TLS handshakes never finished) and a client that never reads its
# answer (memory stays bounded).

import select
import socket
import time

from harness import check, eq, proc_fds, proc_status, wait_until

from .common import RSS_BOUND_KB, case


SLOW_N = 300


@case("slowloris", timeout=90)
def t_slowloris(env, ev):
    """SLOW_N connections each with half a request head, plus 50 TLS
    connections that never finish the handshake: a normal request still
    gets through on h1 and h2, and the daemon closes the idle ones (lws
    timeout) without answering them."""
    base = env.fd_baseline()
    socks = []
    for i in range(SLOW_N):
        s = socket.create_connection(("127.0.0.1", env.http_port))
        s.sendall(b"GET /app/echo?t=slow%d HTTP/1.1\r\nHost: x\r\n"
                  b"X-Custom-Fwd: " % i)
        socks.append(s)
    for i in range(50):
        s = socket.create_connection(("127.0.0.1", env.https_port))
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        socks.append(s)
    pid = env.serving_pid()
    wait_until(lambda: proc_fds(pid)["tcp"] >= len(socks),
               "the daemon to accept %d idle connections" % len(socks),
               alive=env.daemon.exited)
    env.get_ok("h1", "/app/echo?t=normal1")
    env.get_ok("h2", "/app/echo?t=normal2")
    t0 = time.monotonic()
    got = {}
    pending = list(socks)
    deadline = t0 + 60
    while pending and time.monotonic() < deadline:
        r, _, _ = select.select(pending, [], [], 1)
        for s in r:
            try:
                d = s.recv(65536)
            except OSError:
                d = b""
            if d:
                got[s] = got.get(s, b"") + d
                continue
            pending.remove(s)
    print("%d idle connections closed by the daemon after %.1fs, %d still "
          "open" % (len(socks) - len(pending), time.monotonic() - t0,
                    len(pending)))
    answered = [d[:60] for d in got.values()]
    for s in socks:
        s.close()
    eq(len(pending), 0, "idle connections the daemon left open")
    http_answers = [d for d in answered if d.startswith(b"HTTP/")]
    eq(http_answers, [], "answers to half-sent requests")
    seen = [q["target"] for q in env.backends["main"].requests()
            if q["target"].startswith("/echo?t=slow")]
    eq(seen, [], "half-sent requests the backend saw")
    env.fd_settle(base, "slowloris")


NEVER_BIG = 1 << 30


def _never_reads(env, proto):
    """A client asks for 1 GiB and never reads: the daemon's memory stays
    bounded and idle-timeout-ms (1500) later it lets go of the backend
    connection; the backend sees the close."""
    main = env.backends["main"]
    pid = env.serving_pid()
    env.get_ok(proto, "/app/big/4194304")
    before = proc_status(pid)
    target = "/big/%d" % NEVER_BIG
    if proto == "h1":
        s = socket.create_connection(("127.0.0.1", env.http_port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /app%s HTTP/1.1\r\nHost: x\r\n\r\n" % target.encode())
        c = None
    else:
        c = env.h2client()
        c.request("GET", "/app" + target)
        s = c.s
    wait_until(lambda: any(q["target"] == target for q in main.requests()),
               "the download to reach the backend")
    conn = [q["conn"] for q in main.requests() if q["target"] == target][0]
    wait_until(lambda: conn in main.stats()["closed"],
               "backend connection %d closed after idle-timeout-ms" % conn,
               timeout=30, alive=env.daemon.exited)
    after = proc_status(pid)
    grow = after["VmHWM"] - before["VmHWM"]
    print("%s: backend connection %d closed; daemon VmHWM +%d KiB" % (
        proto, conn, grow))
    check(grow < RSS_BOUND_KB, "daemon peak RSS grew %d KiB", grow)
    s.close()


@case("client-never-reads-h1", pvo={"idle-timeout-ms": "1500"})
def t_never_reads_h1(env, ev):
    _never_reads(env, "h1")


@case("client-never-reads-h2", pvo={"idle-timeout-ms": "1500"})
def t_never_reads_h2(env, ev):
    _never_reads(env, "h2")
