# SPDX-License-Identifier: MIT
#
# Integration cases: access log and status mount.
#
# The access log's line, and the status mount (README "Status and
# metrics"): JSON, Prometheus, the allow list, under load and with
# workers.

import os
import re
import subprocess

from harness import check, eq, hdr1, wait_until

from .common import _be, _port, _status_json, case


# -- access log ----------------------------------------------------------

def _alog_pvo(env):
    return {"access-log": os.path.join(env.dir, "access.log")}


ALOG_RE = re.compile(
    r'^(127\.0\.0\.1|::ffff:127\.0\.0\.1) - - '
    r'\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
    r'"(?P<req>[^"]*)" (?P<st>\d{3}) (?P<bytes>\d+|-) '
    r'"(?P<ref>(?:[^"\\]|\\.)*)" "(?P<ua>(?:[^"\\]|\\.)*)"$')


@case("access-log-line", pvo=_alog_pvo)
def t_access_log(env, proto):
    """Apache combined lines: the request line, status, body bytes, and
    Referer and User-Agent escaped as Apache does (\\" \\\\ \\xHH)."""
    from harness import wait_until
    path = os.path.join(env.dir, "access.log")
    ver = "HTTP/1.1" if proto == "h1" else "HTTP/2.0"
    r = env.curl(proto, "/app/echo?k=v", headers=[
        'Referer: https://r.example/a"b\\c',
        "User-Agent: ua\tx"])
    check(r.rc == 0 and r.status == 200, "GET: %r", r)
    r2 = env.curl(proto, "/app/none/missing?404", headers=["User-Agent:"])
    check(r2.rc == 0, "second GET: %r", r2)

    def lines():
        if not os.path.exists(path):
            return []
        with open(path, encoding="latin-1") as f:
            return f.read().splitlines()
    wait_until(lambda: len(lines()) >= 2, "two access log lines")
    got = lines()
    eq(len(got), 2, "access log lines %r" % got)
    m = ALOG_RE.match(got[0])
    check(m, "access log line not in combined format: %r", got[0])
    eq(m.group("req"), "GET /app/echo?k=v %s" % ver, "request line")
    eq(m.group("st"), "200", "status")
    eq(m.group("bytes"), str(len(r.body)), "body bytes")
    eq(m.group("ref"), 'https://r.example/a\\"b\\\\c', "escaped Referer")
    eq(m.group("ua"), "ua\\x09x", "escaped User-Agent")
    m = ALOG_RE.match(got[1])
    check(m, "access log line not in combined format: %r", got[1])
    eq(m.group("st"), str(r2.status), "second status")
    eq(m.group("ref"), "-", "no Referer")
    eq(m.group("ua"), "-", "no User-Agent")


# -- status mount (README "Status and metrics") ------------------------------

def _status_mounts(env):
    return env.standard_mounts() + [
        {"mountpoint": "/down",
         "origin": "http://+%s/missing.sock:/" % env.dir},
        {"mountpoint": "/status", "origin": "callback://lws-uds-proxy",
         "pmo": [{"status": "json"}]},
        {"mountpoint": "/metrics", "origin": "callback://lws-uds-proxy",
         "pmo": [{"status": "prometheus"}]},
        # nothing in the tests comes from 10/8: this one always says 403
        {"mountpoint": "/status-10", "origin": "callback://lws-uds-proxy",
         "pmo": [{"status": "json", "status-allow": "10.0.0.0/8"}]},
    ]


def _status_traffic(env, proto):
    """50 proxied requests: 44 x 200 and a 404 from the backend, 5 x 503
    for a backend whose socket does not exist."""
    paths = ["/app/bytes/1000"] * 22 + ["/cb/bytes/1000"] * 22 + \
        ["/app/status/404"]
    r = env.curl(proto, paths[0], urls_after=paths[1:])
    check(r.rc == 0, "curl: %r", r)
    eq([i["http_code"] for i in r.info["all"]], [200] * 44 + [404],
       "statuses of the 45 backend requests")
    r = env.curl(proto, "/down/x", urls_after=["/down/x"] * 4)
    eq([i["http_code"] for i in r.info["all"]], [503] * 5,
       "statuses of the 5 requests to the missing backend")


@case("status-json", mounts=_status_mounts)
def t_status_json(env, proto):
    main = env.backends["main"].origin("/")
    down = "http://+%s/missing.sock:/" % env.dir
    st = _status_json(env, proto)
    eq(st["process"]["workers"], 1, "workers")
    eq(st["process"]["worker"], 0, "worker")
    check(st["process"]["uptime_seconds"] > 0, "uptime %r", st["process"])
    eq(len(st["latency_buckets_seconds"]), 13, "latency buckets")
    before = _be(st, _port(env, proto), main)   # the pvo's default
    eq(before["requests"], 0, "requests before any")

    _status_traffic(env, proto)
    st = _status_json(env, proto)
    b = _be(st, _port(env, proto), main)
    eq(b["requests"], 45, "requests to main")
    eq(b["responses"], {"1xx": 0, "2xx": 44, "3xx": 0, "4xx": 1, "5xx": 0,
                        "other": 0}, "responses from main")
    eq(b["proxy_responses"], {"502": 0, "503": 0, "504": 0, "other": 0},
       "proxy-made responses for main")
    eq(b["connect_failures"], 0, "connect failures to main")
    eq(b["up"], True, "main up")
    eq(b["head_latency"]["count"], 45, "latency observations")
    eq(b["head_latency"]["cumulative"][-1] <= 45, True, "cumulative")
    check(b["bytes_from_backend"] > 44 * 1000, "bytes from main %r", b)
    check(b["bytes_to_backend"] > 45 * 20, "bytes to main %r", b)
    check(1 <= b["connections_open"] and
          b["connections_idle"] <= b["connections_open"],
          "pooled connections %r", b)
    eq((b["held_now"], b["held_total"]), (0, 0), "held")
    d = _be(st, _port(env, proto), down)
    eq((d["requests"], d["connect_failures"], d["up"]), (5, 5, False),
       "requests, connect failures, up of the missing backend")
    eq(d["proxy_responses"]["503"], 5, "503s made for the missing backend")
    eq(sum(d["responses"].values()), 0, "responses from a missing backend")
    eq(d["head_latency"]["count"], 0, "latency of a missing backend")
    # the other vhost (other protocol) counts its own, none here
    other = env.https_port if proto == "h1" else env.http_port
    eq(_be(st, other, main)["requests"], 0, "requests on the other vhost")
    # HEAD: the head only; then a GET on the same connection, whose head
    # would come after a stray body
    if proto == "h1":
        c = env.raw_h1()
        c.send(b"HEAD /status HTTP/1.1\r\nHost: x\r\n\r\n")
        eq(c.read_head()[1], 200, "HEAD /status")
        c.send(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        _, code, hs = c.read_head()
        eq(code, 200, "GET /status after HEAD")
        body = c.read_exact(int(hdr1(hs, "content-length")))
        check(body.startswith(b'{"process"'), "GET after HEAD: %r",
              body[:100])
    else:
        r = env.curl(proto, "/status", method="HEAD")
        eq((r.status, r.info["size_download"]), (200, 0), "h2 HEAD /status")


def _prom_parse(text):
    """{(name, frozenset(labels)): value} of a Prometheus text answer."""
    out = {}
    rx = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
    lrx = re.compile(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"')
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = rx.match(ln)
        check(m, "not a sample line: %r", ln)
        labels = frozenset(lrx.findall(m.group(2) or ""))
        check((m.group(1), labels) not in out, "duplicate series %r", ln)
        out[(m.group(1), labels)] = float(m.group(3))
    return out


@case("status-prometheus", mounts=_status_mounts)
def t_status_prom(env, proto):
    _status_traffic(env, proto)
    r = env.curl(proto, "/metrics")
    check(r.rc == 0 and r.status == 200, "GET /metrics: %r", r)
    check((r.h("content-type") or "").startswith("text/plain; version=0.0.4"),
          "metrics content-type %r", r.h("content-type"))
    cp = subprocess.run(["promtool", "check", "metrics"], input=r.body,
                        capture_output=True, timeout=30)
    eq((cp.returncode, cp.stdout + cp.stderr), (0, b""),
       "promtool check metrics")
    # more than one 8 KiB write (status.c): the pieces join up
    check(len(r.body) > 2 * 8192, "metrics answer only %d bytes", len(r.body))
    m = _prom_parse(r.body.decode())
    port = str(_port(env, proto))

    def v(name, spec, **extra):
        lab = {"vhost": "localhost", "port": port, "backend": spec}
        lab.update(extra)
        key = ("lws_uds_proxy_" + name, frozenset(lab.items()))
        check(key in m, "no series %s %r", name, lab)
        return m[key]
    main = env.backends["main"].origin("/")
    down = "http://+%s/missing.sock:/" % env.dir
    eq(v("backend_requests_total", main), 45, "requests")
    eq(v("backend_responses_total", main, **{"class": "2xx"}), 44, "2xx")
    eq(v("backend_responses_total", main, **{"class": "4xx"}), 1, "4xx")
    eq(v("backend_responses_total", main, **{"class": "5xx"}), 0, "5xx")
    eq(v("backend_up", main), 1, "main up")
    eq(v("backend_head_latency_seconds_count", main), 45, "latency count")
    eq(v("backend_head_latency_seconds_bucket", main, le="+Inf"), 45,
       "latency +Inf bucket")
    check(v("backend_head_latency_seconds_sum", main) > 0, "latency sum")
    check(v("backend_received_bytes_total", main) > 44000, "bytes in")
    check(v("backend_sent_bytes_total", main) > 0, "bytes out")
    eq(v("backend_requests_total", down), 5, "requests to missing")
    eq(v("backend_connect_failures_total", down), 5, "connect failures")
    eq(v("proxy_responses_total", down, code="503"), 5, "503s")
    eq(v("backend_up", down), 0, "missing backend down")
    eq(m[("lws_uds_proxy_workers", frozenset())], 1, "workers")
    check(m[("lws_uds_proxy_uptime_seconds", frozenset())] > 0, "uptime")


@case("status-forbidden", mounts=_status_mounts)
def t_status_forbidden(env, proto):
    r = env.curl(proto, "/status-10")
    eq((r.rc, r.status), (0, 403), "status from outside status-allow")
    check(b"backends" not in r.body and b"lws_uds_proxy" not in r.body,
          "403 leaks status: %r", r.body[:200])
    # same address, default allow list (loopback): let in
    eq(env.curl(proto, "/status").status, 200, "status from loopback")


@case("status-under-load", protos=("h2",), mounts=_status_mounts,
      timeout=120)
def t_status_load(env, proto):
    import json
    n = 3000
    load = subprocess.Popen(["h2load", "-n%d" % n, "-c4", "-m16",
                             env.url("h2", "/app/bytes/2000")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    got = []
    try:
        # fetch status while the load runs (as long as it does, at most 40)
        while load.poll() is None and len(got) < 40:
            p = "h1" if len(got) % 2 else "h2"
            r = env.curl(p, "/metrics" if len(got) % 3 else "/status")
            check(r.rc == 0 and r.status == 200, "status under load: %r", r)
            if r.info["url_effective"].endswith("/status"):
                json.loads(r.body)
            got.append(r.status)
        out = load.communicate(timeout=90)[0].decode()
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    print(out[-600:], "status answers during the load:", len(got))
    eq(load.returncode, 0, "h2load exit code")
    check(re.search(r"requests: %d total, %d started, %d done, "
                    r"%d succeeded, 0 failed" % (n, n, n, n), out),
          "h2load: not %d/%d succeeded" % (n, n))
    check(got, "no status answer while the load ran")
    b = _be(_status_json(env, proto), env.https_port,
            env.backends["main"].origin("/"))
    eq((b["requests"], b["responses"]["2xx"], b["head_latency"]["count"]),
       (n, n, n), "requests, 2xx, latency count after the load")


@case("status-workers", protos=("h1",), mounts=_status_mounts)
def t_status_workers(env, proto):
    """count-processes 2: each answer is one worker's own, and says so."""
    from harness import children
    if env.lwsws:
        return      # lwsws has no count-processes
    env.daemon.stop()
    env.start_daemon(mounts=_status_mounts(env),
                     global_extra={"count-processes": "2"})
    # the master forks its workers after it answers start_daemon's probe
    wait_until(lambda: len(children(env.serving_pid())) == 2,
               "two worker processes", timeout=30)
    workers = children(env.serving_pid())
    eq(len(workers), 2, "worker processes")
    main = env.backends["main"].origin("/")
    seen, sent = {}, {}
    for i in range(10):
        # each curl a new connection, which either worker may take; the
        # request and the status after it share it (keep-alive)
        r = env.curl(proto, "/app/bytes/10", urls_after=["/status"])
        eq([x["http_code"] for x in r.info["all"]], [200, 200],
           "request and status")
        import json
        st = json.loads(r.body)
        p = st["process"]
        eq((p["workers"], p["covers"]), (2, "this worker process only"),
           "what the answer covers")
        check(p["pid"] in workers and p["worker"] in (0, 1),
              "answered by %r, workers are %r", p, workers)
        sent[p["pid"]] = sent.get(p["pid"], 0) + 1
        seen[p["pid"]] = (p["worker"],
                          _be(st, env.http_port, main)["requests"])
    print("answers by pid: (worker, requests counted)", seen)
    # one worker index per pid; each counts exactly what it was sent
    eq(len({w for w, _ in seen.values()}), len(seen), "worker indexes")
    eq({pid: n for pid, (_, n) in seen.items()}, sent,
       "requests counted by each worker")
