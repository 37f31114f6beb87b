# SPDX-License-Identifier: MIT
#
# Integration cases: several backends per mount.
#
# A mount's backend list (issue 15): sharing the load, one killed under
# load, all down, one sending garbage, down-ms 0.

import re
import signal
import subprocess

from harness import check, eq

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
    got = [_be(st, _port(env, proto), x.origin("/"))["requests"]
           for x in (a, b)]
    eq(got, [len(a.requests()), len(b.requests())],
       "status requests of a and b (the backends' own logs)")


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
