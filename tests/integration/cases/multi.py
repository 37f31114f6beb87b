# SPDX-License-Identifier: MIT
#
# Integration cases: several backends per mount.
#
# A mount's backend list (issue 15): sharing the load, one killed under
# load, all down, one sending garbage, down-ms 0; members that time out
# connecting (blackholes) and a WebSocket moving to another member.

import asyncio
import errno
import json
import os
import re
import signal
import socket
import subprocess

import websockets

from harness import check, eq, free_port

from .websocket import WS_BACKENDS, ws_connect, ws_run
from .common import (_be, _held_until_back, _log_has, _port, _status_json,
                     case, echo)


# -- several backends per mount (issue 15) --------------------------------

def _multi_mounts(env):
    """/m: backends "a" (unix) and "b" (TCP) as one group; /mh the same
    with hold-ms."""
    g = env.backends["a"].origin("/") + ", " + env.backends["b"].origin("/")
    return env.standard_mounts() + [
        {"mountpoint": "/m", "origin": "callback://lws-uds-proxy",
         "pmo": [{"backend": g}]},
        {"mountpoint": "/mh", "origin": "callback://lws-uds-proxy",
         "pmo": [{"backend": g}, {"hold-ms": "5000"}]},
        {"mountpoint": "/status", "origin": "callback://lws-uds-proxy",
         "pmo": [{"status": "json"}]}]


MULTI = dict(backends=(("main", "unix"), ("a", "unix"), ("b", "tcp")),
             mounts=_multi_mounts, pvo={"down-ms": "200"})


def _h2load(env, proto, path, n, c=4):
    """h2load's 2xx count for n requests to path (keep-alive, c clients)"""
    argv = ["h2load", "-n%d" % n, "-c%d" % c] + (
        ["--h1"] if proto == "h1" else []) + [env.url(proto, path)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def _h2load_ok(load):
    out = load.communicate(timeout=120)[0].decode(errors="replace")
    m = re.search(r"status codes: (\d+) 2xx", out)
    check(m, "no status line in h2load's output: %s", out[-500:])
    print(out[-400:])
    return int(m.group(1))


@case("multi-share", **MULTI)
def t_multi_share(env, proto):
    """Two backends with distinct answers behind one mount: one after the
    other, requests alternate (no outstanding ones: round-robin); under
    h2load both get a fair share, and each shows in /status."""
    names = [echo(env, proto, "/m/echo?%d" % i)["name"] for i in range(4)]
    eq(sorted(names), ["a", "a", "b", "b"], "answers from one at a time")
    a, b = env.backends["a"], env.backends["b"]
    a0, b0 = len(a.requests()), len(b.requests())
    n = 1000
    ok = _h2load_ok(_h2load(env, proto, "/m/echo", n))
    eq(ok, n, "2xx answers")
    na, nb = len(a.requests()) - a0, len(b.requests()) - b0
    print("a served %d, b served %d" % (na, nb))
    eq(na + nb, n, "requests the backends saw")
    check(na >= n // 10 and nb >= n // 10, "unbalanced: a %d, b %d", na, nb)
    # each member is a backend of its own in the status
    st = _status_json(env, proto)
    for be, want in ((a, na + a0), (b, nb + b0)):
        e = _be(st, _port(env, proto), be.origin("/"))
        eq((e["up"], e["requests"]), (True, want),
           "status of %s (up, requests)" % be.name)


@case("multi-kill-load", timeout=180, **MULTI)
def t_multi_kill(env, proto):
    """One of two backends goes away (as an app stops: its socket file
    goes, answers in progress finish) under h2load: no request fails, the
    other serves the rest; once the first is back it gets traffic again
    (after down-ms)."""
    a, b = env.backends["a"], env.backends["b"]
    n = 2000
    # a goes away by itself at its 100th request: no race with the load
    load = _h2load(env, proto, "/m/echo?drain=a&drain-at=100", n)
    try:
        old = a.proc
        old.p.wait(60)
        old.stop()
        after = n - len(a.requests()) - len(b.requests())
        ok = _h2load_ok(load)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    eq(n - ok, 0, "failed requests with one backend gone")
    print("%d requests came after a was gone" % after)
    check(after >= 100, "the kill came too late to matter (%d after)",
          after)
    check(_log_has(env, "unreachable"), "the proxy never found a gone")
    a.start()
    # back: some request after down-ms tries it (bounded by a count)
    for i in range(100):
        eq(_h2load_ok(_h2load(env, proto, "/m/echo?back", 100, c=2)), 100,
           "2xx answers with a back")
        if any("back" in q.get("target", "") for q in a.requests()):
            break
    else:
        check(False, "a got no request in 10000 after it came back")
    print("a back after %d batches of 100" % (i + 1))
    # a request that moved is counted on the member that answered it
    st = _status_json(env, proto)
    sa, sb = [_be(st, _port(env, proto), x.origin("/"))["requests"]
              for x in (a, b)]
    eq(sb, len(b.requests()), "status requests of b (its own log)")
    # a's log may hold one more per request a read as it drained and
    # never answered: the relay retries such a request (a reused
    # connection that closed) and, a being gone, moves it to b, where it
    # is counted
    check(0 <= len(a.requests()) - sa <= 3,
          "status requests of a %d, its own log %d", sa, len(a.requests()))


@case("multi-all-down", **MULTI)
def t_multi_all_down(env, proto):
    """Both backends gone: 503 at once without hold-ms; with hold-ms a
    request waits, trying each in turn, and is answered by whichever comes
    back."""
    a, b = env.backends["a"], env.backends["b"]
    env.get_ok(proto, "/m/echo?before")
    a.kill(signal.SIGKILL)
    b.kill(signal.SIGKILL)
    for i in range(3):
        r = env.curl(proto, "/m/echo?down%d" % i)
        eq((r.rc, r.status), (0, 503), "both backends down")
    _held_until_back(env, proto, "/mh/echo?held", b, "b")
    check(any("held" in q.get("target", "") for q in b.requests()),
          "b did not answer the held request")


@case("multi-garbage", backends=MULTI["backends"], mounts=_multi_mounts,
      pvo={"down-ms": "60000"})
def t_multi_garbage(env, proto):
    """A member that answers garbage gets its 502 and is skipped for
    down-ms (a minute here): the requests after it all go to the other."""
    r = env.curl(proto, "/m/garbage")
    eq((r.rc, r.status), (0, 502), "garbage")
    names = [echo(env, proto, "/m/echo?%d" % i)["name"] for i in range(6)]
    eq(len(set(names)), 1, "answers after garbage from one member only: %r"
       % names)
    bad = "a" if names[0] == "b" else "b"
    check(any("garbage" in q.get("target", "")
              for q in env.backends[bad].requests()),
          "the garbage came from %s" % names[0])


# down-ms 0: a member that just failed is usable again at once; a request
# must still try each member once, not go round them for ever
case("multi-all-down-0", backends=MULTI["backends"], mounts=_multi_mounts,
     pvo={"down-ms": "0"})(t_multi_all_down)


# -- multi-backend failover (issue 15 item 2) ------------------------------


def _blackholes(env):
    """Two members that never answer a connect, made without privileges:
    a TCP listener and a unix socket listener, each with backlog 0 and its
    one queue slot taken by a connection nobody accepts.  The kernel then
    drops further SYNs (the connect stays in SYN_SENT, as toward a
    firewalled address), and a unix connect gets EAGAIN.  They live as
    long as the case (env.bound_socks)."""
    tl = socket.socket()
    tl.bind(("127.0.0.1", 0))
    tl.listen(0)
    port = tl.getsockname()[1]
    tf = socket.create_connection(("127.0.0.1", port), timeout=10)
    path = os.path.join(env.dir, "blackhole.sock")
    ul = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ul.bind(path)
    ul.listen(0)
    uf = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    uf.connect(path)
    env.bound_socks += [tl, tf, ul, uf]
    # the unix one is full now: a non-blocking connect says so
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    eq(probe.connect_ex(path), errno.EAGAIN, "connect to the full backlog")
    probe.close()
    return "http://127.0.0.1:%d/" % port, "http://+%s:/" % path


def _blackhole_mounts(env):
    """/bh: the two blackholes and backend "a"; /bhdown: the blackholes
    only; /bhhold: the same with hold-ms."""
    tcp, unix = _blackholes(env)
    env.blackholes = (tcp, unix)
    g = ", ".join((tcp, unix, env.backends["a"].origin("/")))
    down = tcp + ", " + unix
    return env.standard_mounts() + [
        {"mountpoint": "/bh", "origin": "callback://lws-uds-proxy",
         "pmo": [{"backend": g}]},
        {"mountpoint": "/bhdown", "origin": "callback://lws-uds-proxy",
         "pmo": [{"backend": down}]},
        {"mountpoint": "/bhhold", "origin": "callback://lws-uds-proxy",
         "pmo": [{"backend": down}, {"hold-ms": "700"}]},
        {"mountpoint": "/status", "origin": "callback://lws-uds-proxy",
         "pmo": [{"status": "json"}]}] + ([
        {"mountpoint": "/bhb", "origin": "callback://lws-uds-proxy",
         "pmo": [{"backend": tcp + ", " + env.backends["b"].origin("/")},
                 {"hold-ms": "10000"}]}] if "b" in env.backends else [])


@case("multi-blackhole-load", timeout=180,
      backends=(("main", "unix"), ("a", "unix")), mounts=_blackhole_mounts,
      pvo={"connect-timeout-ms": "300", "down-ms": "400"})
def t_multi_blackhole(env, proto):
    """Two of three members never answer a connect (a TCP address whose
    SYNs are dropped, a unix socket whose backlog is full): under h2load
    every request is answered 200 by the third, those that tried a
    blackhole after connect-timeout-ms; each blackhole is tried again
    after down-ms.  With only the blackholes, 503 (after the hold, with
    hold-ms)."""
    a = env.backends["a"]
    n = 3000
    ok = _h2load_ok(_h2load(env, proto, "/bh/echo", n))
    eq(n - ok, 0, "failed requests with two blackholed members")
    check(_log_has(env, "connect timed out"),
          "no member was found timing out")
    check(_log_has(env, "backend %s unreachable" % env.blackholes[1]),
          "the unix blackhole was never found unreachable")
    # the TCP blackhole is tried again after each down-ms, and each time
    # the request moves on: more batches until it timed out 3 times
    st = _status_json(env, proto)
    bh = [b["backend"] for b in st["backends"]
          if b["port"] == _port(env, proto) and
          b["backend"].startswith("http://127.0.0.1:")]
    eq(len(bh), 1, "the TCP blackhole in the status")
    for i in range(50):
        fails = _be(_status_json(env, proto), _port(env, proto),
                    bh[0])["connect_failures"]
        if fails >= 3:
            break
        eq(_h2load_ok(_h2load(env, proto, "/bh/echo?more", 200, c=2)),
           200, "2xx answers with two blackholed members")
        n += 200
    else:
        check(False, "the TCP blackhole was not tried 3 times")
    print("%d requests, TCP blackhole timed out %d times" % (n, fails))
    eq(len(a.requests()), n, "requests a served")
    for path in ("/bhdown/echo", "/bhhold/echo"):
        r = env.curl(proto, path)
        eq((r.rc, r.status), (0, 503), path + ": every member down")


def _ws_failover_mounts(env):
    """/wsf: a refusing unix socket, a TCP port nobody listens on, a
    blackholed TCP address and the WebSocket backend, in that order;
    /wsdown: the three bad ones only."""
    refusing = "http://+%s:/" % env.bound_not_listening("refusing")
    closed = "http://127.0.0.1:%d/" % free_port()
    tcp, unix = _blackholes(env)
    env.ws_bad = (refusing, closed, tcp)
    bad = ", ".join(env.ws_bad)
    return env.standard_mounts() + [
        {"mountpoint": "/wsf", "origin": "callback://lws-uds-proxy",
         "pmo": [{"backend": bad + ", " + env.backends["ws"].origin("/")}]},
        {"mountpoint": "/wsdown", "origin": "callback://lws-uds-proxy",
         "pmo": [{"backend": bad}]}]


@case("multi-ws-failover", backends=WS_BACKENDS, mounts=_ws_failover_mounts,
      pvo={"connect-timeout-ms": "300", "down-ms": "60000"})
def t_multi_ws_failover(env, proto):
    """A WebSocket whose member refuses at once (unix), refuses later
    (TCP) or never answers (blackhole) moves on before anything was
    relayed, as an HTTP request does: the first goes round all three to
    the working member, the later ones straight there (the others are
    down); with only bad members, all marked down by then, the client
    gets the 503 page before any 101 (under lwsws: its 1014 close)."""
    async def run():
        for i in range(4):
            async with ws_connect(env, proto, "/wsf/hello?%d" % i) as ws:
                seen = json.loads(await asyncio.wait_for(ws.recv(), 20))
                eq(seen["path"], "/hello?%d" % i, "the upgrade's path")
                await ws.send("hello %d" % i)
                eq(await asyncio.wait_for(ws.recv(), 20), "hello %d" % i,
                   "echo through the member that works")
        if not env.lwsws:
            # all three are marked down by now: known before the 101
            try:
                async with ws_connect(env, proto, "/wsdown/x"):
                    check(False, "a 101 with every member known down")
            except websockets.InvalidStatusCode as e:
                eq(e.status_code, 503, "status with every member down")
            return
        async with ws_connect(env, proto, "/wsdown/x") as ws:
            try:
                got = await asyncio.wait_for(ws.recv(), 20)
                check(False, "a message from no backend: %r", got)
            except websockets.ConnectionClosed as e:
                eq(e.rcvd.code if e.rcvd else None, 1014,
                   "close code with every member down")

    ws_run(run())
    for spec in env.ws_bad:
        check(_log_has(env, "backend %s unreachable" % spec),
              "%s was never tried" % spec)
    check(_log_has(env, "connect timed out"), "no member timed out")


@case("multi-blackhole-hold", mounts=_blackhole_mounts,
      backends=(("main", "unix"), ("a", "unix"), ("b", "unix")),
      pvo={"connect-timeout-ms": "300", "down-ms": "400"})
def t_multi_blackhole_hold(env, proto):
    """A blackholed TCP member and a unix member that is away (killed: its
    socket refuses), with hold-ms: the first request of the list goes to
    the blackhole (round-robin starts there), times out, moves to b, is
    refused, and with both down is held, not answered 503; it gets its
    200 from b once b is back."""
    b = env.backends["b"]
    b.kill(signal.SIGKILL)
    _held_until_back(env, proto, "/bhb/echo?held", b, "b")
    check(_log_has(env, "connect timed out"), "the blackhole was not tried")
    check(any("held" in q.get("target", "") for q in b.requests()),
          "b did not answer the held request")
# -- WebSocket over h2 (RFC 8441) and upgrades refused before the 101 ----
#
# A real RFC 8441 client: python3-h2 (Debian's 4.1.0 knows the setting and
