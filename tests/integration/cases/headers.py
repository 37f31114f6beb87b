# SPDX-License-Identifier: MIT
#
# Integration cases: headers.
#
# The request head sent on (end-to-end headers, hop-by-hop removal,
# X-Forwarded-*, a mount's forward-headers) and the response head sent back
# (headers kept and dropped, h2's forbidden ones, status codes).

from harness import check, eq, h2_status, hdr

from .common import BOTH, case, echo


# -- request headers -----------------------------------------------------

REQ_HEADERS = [
    # name                 value                               protocols
    ("If-None-Match",      '"etag-1"',                          BOTH),
    ("If-Modified-Since",  "Sat, 29 Oct 1994 19:43:31 GMT",     BOTH),
    ("Accept-Language",    "fr-CH, fr;q=0.9, en;q=0.8",         BOTH),
    ("Accept-Encoding",    "gzip, br",                          BOTH),
    ("Cache-Control",      "no-cache",                          BOTH),
    ("Authorization",      "Bearer abc.def",                    BOTH),
    ("Cookie",             "a=1; b=2",                          BOTH),
    ("Content-Type",       "text/x-test",                       BOTH),
    ("User-Agent",         "udsp-it/1.0",                       BOTH),
    ("Referer",            "https://ref.example/page",          BOTH),
    ("Range",              "bytes=0-99",                        BOTH),
    ("Origin",             "https://origin.example",            BOTH),
    # custom: lws 4.1.6 keeps unknown request headers on h1 only, and the
    # plugin forwards a default list (x-request-id...) plus forward-headers
    ("X-Request-Id",       "req-42",                            ("h1",)),
    ("X-Custom-Fwd",       "fwd-1",                             ("h1",)),
]


@case("req-headers")
def t_req_headers(env, proto):
    sent = [(n, v) for n, v, ps in REQ_HEADERS if proto in ps]
    doc = echo(env, proto, "/app/echo",
               headers=["%s: %s" % nv for nv in sent], data=b"x")
    got = doc["headers"]
    for n, v in sent:
        vals = hdr(got, n)
        if n == "Cookie" and len(vals) > 1:
            vals = ["; ".join(vals)]     # h2 may split cookie crumbs
        eq(vals, [v], "backend's %s" % n)
    eq(hdr(got, "host"), [env.authority(proto)], "backend's Host")
    if proto == "h1":
        doc = echo(env, proto, "/app/echo",
                   headers=["Host: app.example:8080"])
        eq(hdr(doc["headers"], "host"), ["app.example:8080"],
           "backend's Host for a client Host")
        eq(hdr(doc["headers"], "x-forwarded-host"), ["app.example:8080"],
           "X-Forwarded-Host for a client Host")


HOP_REQ_H1 = [
    "Connection: keep-alive, X-Hop",
    "X-Hop: secret",
    "Keep-Alive: timeout=5",
    "TE: trailers",
    "Proxy-Authorization: Basic Zm9vOmJhcg==",
    "Proxy-Connection: keep-alive",
    "X-Request-Id: still-here",
]
HOP_NAMES = ["x-hop", "keep-alive", "te", "upgrade", "proxy-authorization",
             "proxy-connection"]


@case("req-hop-by-hop")
def t_req_hop(env, proto):
    if proto == "h1":
        doc = echo(env, proto, "/app/echo", headers=HOP_REQ_H1)
        got = doc["headers"]
        # x-request-id and x-hop are both in forward-headers: only the
        # Connection header's naming of X-Hop may keep it away.
        eq(hdr(got, "x-request-id"), ["still-here"], "forwarded custom")
        for c in hdr(got, "connection"):
            check("x-hop" not in c.lower(),
                  "client Connection value forwarded: %r", c)
        # lws 4.1.6 itself answers 403 to an h1 Upgrade it does not know;
        # either way the backend must never see the Upgrade header.
        main = env.backends["main"]
        r = env.curl(proto, "/app/echo?upgrade",
                     headers=["Connection: Upgrade", "Upgrade: foo/1"])
        print("h1 request with Upgrade: foo/1 -> %s" % r.status)
        check(r.rc == 0 and r.status in (200, 400, 403),
              "request with Upgrade: %r", r)
        for req in main.requests():
            eq(hdr(req["headers"], "upgrade"), [],
               "Upgrade at the backend (%s)" % req["target"])
    else:
        c = env.h2client()
        sid = c.request("GET", "/app/echo", [
            ("te", "trailers"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("x-hop", "secret")])
        st = c.wait_all([sid])[0]
        eq(h2_status(st), 200, "h2 status")
        c.close()
        import json
        got = json.loads(st["data"])["headers"]
    for n in HOP_NAMES:
        eq(hdr(got, n), [], "hop-by-hop request header %s at backend" % n)


@case("req-forwarded")
def t_forwarded(env, proto):
    scheme = "http" if proto == "h1" else "https"
    for sent in ([], ["X-Forwarded-For: 1.2.3.4"],
                 ["X-Forwarded-For: 1.2.3.4, 5.6.7.8",
                  "X-Forwarded-Proto: gopher"]):
        doc = echo(env, proto, "/app/echo", headers=sent)
        got = doc["headers"]
        # lws listens dual-stack, so the peer may read as v4-mapped
        xff = hdr(got, "x-forwarded-for")
        check(xff in (["127.0.0.1"], ["::ffff:127.0.0.1"]),
              "X-Forwarded-For (client sent %r): got %r, want the client "
              "address only", sent, xff)
        eq(hdr(got, "x-forwarded-proto"), [scheme], "X-Forwarded-Proto")
        eq(hdr(got, "x-forwarded-host"), [env.authority(proto)],
           "X-Forwarded-Host")


@case("forward-headers-dup", protos=("h1",),
      pvo={"forward-headers": "x-request-id, X-Custom-Fwd,x-custom-fwd"})
def t_fwd_dup(env, proto):
    """A name listed twice, or also in the built-in list, goes once."""
    doc = echo(env, proto, "/app/echo",
               headers=["X-Request-Id: r1", "X-Custom-Fwd: c1"])
    eq(hdr(doc["headers"], "x-request-id"), ["r1"], "X-Request-Id")
    eq(hdr(doc["headers"], "x-custom-fwd"), ["c1"], "X-Custom-Fwd")


def _fwd_mount(env):
    return env.standard_mounts() + [
        {"mountpoint": "/fm", "origin": "callback://lws-uds-proxy",
         "pmo": [{"backend": env.backends["main"].origin("/")},
                 {"forward-headers":
                  ",X-Mount-One\tx-mount-two, x-request-id ,"}]}]


@case("forward-headers-mount", protos=("h1",), mounts=_fwd_mount)
def t_fwd_mount(env, proto):
    """A mount's own forward-headers (pmo) adds to the vhost's list, for
    that mount only; a name on both lists goes once."""
    sent = ["X-Mount-One: m1", "X-Mount-Two: m2", "X-Request-Id: r1",
            "X-Not-Listed: n1"]
    got = echo(env, proto, "/fm/echo", headers=sent)["headers"]
    eq(hdr(got, "x-mount-one"), ["m1"], "X-Mount-One on /fm")
    eq(hdr(got, "x-mount-two"), ["m2"], "X-Mount-Two on /fm")
    eq(hdr(got, "x-request-id"), ["r1"], "X-Request-Id on /fm")
    # from lws 4.3 every end-to-end custom header goes (docs/lws-notes.md
    # N13): the lists only matter on 4.1
    if env.lwsws and not env.lwsws.version.startswith("4.1"):
        return
    eq(hdr(got, "x-not-listed"), [], "unlisted X-Not-Listed on /fm")
    got = echo(env, proto, "/app/echo", headers=sent)["headers"]
    eq(hdr(got, "x-mount-one"), [], "/fm's X-Mount-One on /app")
    eq(hdr(got, "x-request-id"), ["r1"], "X-Request-Id on /app")


# -- response headers ----------------------------------------------------

RES_KEEP = [
    # name (as the backend sent it)   value(s)
    ("Set-Cookie",   ["a=1; Path=/", "b=2; HttpOnly", "c=3"]),
    ("X-Custom-One", ["one"]),
    ("Vary",         ["Accept-Encoding, Origin"]),
    ("Cache-Control", ["max-age=60"]),
    ("ETag",         ['"abc123"']),
    ("Mixed-Case-Header", ["Mixed-Case-Value"]),
    ("Access-Control-Allow-Origin", ["*"]),
    ("Content-Language", ["en"]),
    ("Content-Type", ["text/plain"]),
]
RES_DROP = ["keep-alive", "x-secret", "proxy-authenticate", "upgrade",
            "trailer"]
H2_FORBIDDEN = ["connection", "keep-alive", "proxy-connection",
                "transfer-encoding", "upgrade", "te"]


@case("resp-headers")
def t_resp_headers(env, proto):
    if proto == "h1":
        r = env.get_ok(proto, "/app/headers")
        eq(r.body, b"headers body\n", "body")
        hs = r.headers
        for c in hdr(hs, "connection"):
            check("x-secret" not in c.lower(),
                  "backend Connection value forwarded: %r", c)
    else:
        rc, got, out = env.nghttp("/app/headers")
        eq(rc, 0, "nghttp exit code")
        sids = {s for s, n, v in got if n == ":status"}
        eq(len(sids), 1, "one response stream")
        sid = sids.pop()
        hs = [(n, v) for s, n, v in got if s == sid]
        eq(hdr(hs, ":status"), ["200"], ":status")
        for n, v in hs:
            eq(n, n.lower(), "h2 header name case")
        for n in H2_FORBIDDEN:
            eq(hdr(hs, n), [], "connection-specific %s on h2" % n)
    for n, vals in RES_KEEP:
        eq(hdr(hs, n), vals, "response %s" % n)
    for n in RES_DROP:
        eq(hdr(hs, n), [], "hop-by-hop response header %s" % n)
    # the backend sends Server: backend/1.0; lws writes the server-string
    # into every head, and the header table keeps the backend's out
    eq(hdr(hs, "server"), ["udsp-it"], "response Server")


STATUSES = [200, 201, 301, 404, 418, 500]


@case("status-codes")
def t_status(env, proto):
    for s in STATUSES:
        r = env.curl(proto, "/app/status/%d" % s)
        eq((r.rc, r.status), (0, s), "status for /status/%d" % s)
        eq(r.body, b"status %d\n" % s, "body of %d" % s)


# -- the client address per h2 connection (issue 14) ---------------------

@case("xff-per-connection", protos=("h2",))
def t_xff_per_connection(env, proto):
    """An h2 connection's address is asked once (getpeername()), not per
    stream, and each connection gets its own: three connections one after
    the other from different loopback addresses (the second one likely
    takes the first one's freed memory in the daemon), three streams each,
    every X-Forwarded-For names its own connection's address."""
    import json
    import os
    import re
    import signal
    import subprocess
    url = env.url(proto, "/app/echo")
    for src in ("127.0.0.2", "127.0.0.3", "127.0.0.2"):
        cp = subprocess.run(["curl", "-sS", "-k", "--http2", "--max-time",
                             "20", "--interface", src, url, url, url],
                            stdin=subprocess.DEVNULL, capture_output=True,
                            timeout=40)
        eq(cp.returncode, 0, "curl from %s: %r" % (src, cp.stderr[-300:]))
        text, docs, dec = cp.stdout.decode(), [], json.JSONDecoder()
        while text.strip():
            doc, end = dec.raw_decode(text.strip())
            docs.append(doc)
            text = text.strip()[end:]
        eq(len(docs), 3, "responses on the connection from %s" % src)
        for doc in docs:
            check(hdr(doc["headers"], "x-forwarded-for") in
                  ([src], ["::ffff:" + src]),
                  "X-Forwarded-For on a connection from %s: %r", src,
                  hdr(doc["headers"], "x-forwarded-for"))

    n, conns = 100, 2
    out = os.path.join(env.dir, "strace.out")
    st = subprocess.Popen(["strace", "-f", "-c", "-o", out,
                           "-e", "trace=getpeername", "-p",
                           str(env.serving_pid())],
                          stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        line = st.stderr.readline().decode("latin-1")
        check("attached" in line, "strace did not attach: %r", line)
        cp = subprocess.run(["h2load", "-n", str(n), "-c", str(conns),
                             "-m", "1", url], stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=60)
        check(re.search(r"%d succeeded" % n, cp.stdout.decode()),
              "h2load: %s", cp.stdout.decode()[-400:])
    finally:
        st.send_signal(signal.SIGINT)
        st.communicate(timeout=30)
    calls = 0
    with open(out) as f:
        for ln in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?"
                         r"getpeername$", ln)
            if m:
                calls = int(m.group(1))
    print("getpeername() calls for %d h2 requests on %d connections: %d"
          % (n, conns, calls))
    # one per connection (lws may ask too); it was one per request
    check(calls < n // 4, "%d getpeername() calls for %d requests on "
          "%d connections", calls, n, conns)
