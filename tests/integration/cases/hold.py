# SPDX-License-Identifier: MIT
#
# Integration cases: hold-ms.
#
# Zero-failure backend restarts (issue 15): requests held while the
# backend is away and sent once it is back, under load and with hold-ms off,
# the hold's limit, a backend killed outright (unix and abstract sockets),
# an upload held while its body arrives, and a POST that reached the
# backend not sent again.

import os
import re
import signal
import subprocess

from harness import check, eq, sha, wait_until

from .common import _curl_bg, _held_until_back, _log_has, case, echo


# -- hold-ms: zero-failure backend restarts (issue 15) --------------------

def _hold_mounts(env):
    b = env.backends["r"].origin("/")
    return env.standard_mounts() + [
        {"mountpoint": "/r", "origin": "callback://lws-uds-proxy",
         "pmo": [{"backend": b}]},
        {"mountpoint": "/rh", "origin": "callback://lws-uds-proxy",
         "pmo": [{"backend": b}, {"hold-ms": "5000"}]}]


def t_restart_load(env, proto, hold):
    """Steady keep-alive load (h2load, 4 clients) while the backend
    restarts as apps do (its socket file goes, answers in progress finish,
    a new process binds the path).  The restart is driven by events: the
    backend is stopped once it has served 300 of the requests and started
    again once the proxy found it gone.  With hold-ms every request gets
    its 200; without, the ones in the gap get 503."""
    b = env.backends["r"]
    n = 3000
    url = env.url(proto, "/rh/echo" if hold else "/r/echo")
    argv = ["h2load", "-n%d" % n, "-c4"] + (["--h1"] if proto == "h1"
                                             else []) + [url]
    load = subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: len(b.requests()) >= 300, "300 requests served",
                   timeout=60, alive=lambda: load.poll() is not None and
                   "h2load ended before the restart")
        old = b.proc
        os.kill(old.pid, signal.SIGUSR1)     # graceful: socket file goes
        wait_until(lambda: _log_has(env, "unreachable"),
                   "the proxy to find the backend gone", timeout=30,
                   alive=lambda: load.poll() is not None and
                   "h2load ended while the backend was down")
        old.p.wait(20)
        old.stop()
        b.start()
        out = load.communicate(timeout=120)[0].decode(errors="replace")
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    print(out[-700:])
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, "
                  r"(\d+) 5xx", out)
    check(m, "no status line in h2load's output")
    ok = int(m.group(1))
    failed = n - ok
    print("hold %s, %s: %d of %d requests failed" % (
        "on" if hold else "off", proto, failed, n))
    if hold:
        check(_log_has(env, "holding requests"), "no request was held")
        eq(failed, 0, "failed requests with hold-ms during a restart")
    else:
        check(failed > 0, "no request failed without hold-ms: the restart "
              "gap was not exercised")
    env.get_ok(proto, "/rh/echo?after")


for _hold in (True, False):
    case("hold-restart-load-" + ("on" if _hold else "off"),
         backends=(("main", "unix"), ("r", "unix")), mounts=_hold_mounts,
         timeout=180, hold=_hold)(t_restart_load)


@case("hold-max", backends=(("main", "unix"), ("r", "unix")),
      mounts=_hold_mounts, pvo={"hold-max": "1"})
def t_hold_max(env, proto):
    """hold-max 1: a second request for the missing backend gets its 503
    at once, while the first is still held; the first gets its 200 once
    the backend is back."""
    b = env.backends["r"]
    env.get_ok(proto, "/rh/echo?before")
    os.kill(b.proc.pid, signal.SIGUSR1)
    b.proc.p.wait(20)
    b.proc.stop()
    first = _curl_bg(env, proto, "/rh/echo?held")
    try:
        wait_until(lambda: _log_has(env, "holding requests"),
                   "the first request to be held",
                   alive=lambda: first.poll() is not None and
                   "the held request ended")
        r = env.curl(proto, "/rh/echo?over-hold-max")
        eq((r.rc, r.status), (0, 503), "request past hold-max")
        check(first.poll() is None, "the held request ended before the "
              "one past hold-max was answered")
        b.start()
        out, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    eq(out.decode(), "200", "held request once the backend is back (%s)" %
       err.decode()[-200:])


def t_hold_refused(env, proto):
    """A backend killed outright (SIGKILL: a unix socket file stays and
    refuses, an abstract name is gone and refuses): a request waits for the
    new process and gets its 200."""
    b = env.backends["r"]
    env.get_ok(proto, "/rh/echo?before")
    b.kill(signal.SIGKILL)
    _held_until_back(env, proto, "/rh/echo?held", b, "the backend")


for _kind in ("unix", "abstract"):
    case("hold-refused-" + _kind, backends=(("main", "unix"), ("r", _kind)),
         mounts=_hold_mounts)(t_hold_refused)


@case("hold-upload", pvo={"hold-ms": "5000"})
def t_hold_upload(env, proto):
    """A 4 MiB upload to a backend that is away: held while its body
    arrives (h1: flow-controlled at the buffer; h2: the buffer and the
    spill file), then the whole body reaches the new backend process.
    hold-ms is the vhost's here (pvo)."""
    import json
    b = env.backends["main"]
    n = 4 << 20
    data = os.urandom(n)
    f = os.path.join(env.dir, "upload.bin")
    with open(f, "wb") as fh:
        fh.write(data)
    os.kill(b.proc.pid, signal.SIGUSR1)
    b.proc.p.wait(20)
    b.proc.stop()
    up = subprocess.Popen(
        ["curl", "-sS", "-k", "--max-time", "30", "-w", "\n%{http_code}",
         "-H", "Content-Type: application/octet-stream",
         "--data-binary", "@" + f] +
        (["--http1.1"] if proto == "h1" else ["--http2"]) +
        [env.url(proto, "/app/upload")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: _log_has(env, "holding requests"),
                   "the upload to be held",
                   alive=lambda: up.poll() is not None and
                   "the upload ended: %r" % (up.communicate(),))
        b.start()
        out, err = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    body, _, status = out.decode().rpartition("\n")
    eq(status, "200", "held upload's status (%s)" % err.decode()[-200:])
    doc = json.loads(body)
    eq(doc["length"], n, "length the backend received")
    eq(doc["sha256"], sha(data), "sha256 the backend computed")


@case("hold-post-not-retried", pvo={"hold-ms": "5000"})
def t_hold_post(env, proto):
    """With hold-ms on, a POST whose body reached the backend before the
    backend dropped it is still not sent again: a clean 502, one trip."""
    main = env.backends["main"]
    echo(env, proto, "/app/echo?drop-next=after-body")
    body = os.urandom(100000)
    r = env.curl(proto, "/app/echo?post-once", data=body)
    got = [q for q in main.requests() if q["target"] == "/echo?post-once"]
    eq(len(got), 1, "times the POST reached the backend")
    eq((r.rc, r.status), (0, 502), "POST whose answer was lost")
