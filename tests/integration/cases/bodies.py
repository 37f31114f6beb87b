# SPDX-License-Identifier: MIT
#
# Integration cases: response bodies and h1 framing.
#
# Keep-alive and h1 framing (chunked to the client, an HTTP/1.0 client,
# responses without a body), response bodies of every framing and size, and a
# slow reader of 64 MiB (memory stays bounded).

from harness import check, eq, h2_status, hdr, hdr1, pattern, proc_status, sha

from .common import RSS_LIMIT_KB, _pattern_sha, case


# -- h1 connection handling and framing ------------------------------------

KEEPALIVE_SEQ = ["/app/chunked/5000", "/app/close/3000", "/app/bytes/10",
                 "/app/status/204", "/app/head-test", "/app/echo"]


@case("keepalive", protos=("h1",))
def t_keepalive(env, proto):
    r = env.curl(proto, KEEPALIVE_SEQ[0], urls_after=KEEPALIVE_SEQ[1:])
    eq(r.rc, 0, "curl exit code (%s)" % r.err[-400:])
    eq([i["http_code"] for i in r.info["all"]],
       [200, 200, 200, 204, 200, 200], "statuses")
    eq(sum(i["num_connects"] for i in r.info["all"]), 1,
       "client connections for %d requests" % len(KEEPALIVE_SEQ))
    check("Re-using existing connection" in r.err,
          "curl did not re-use the connection")


@case("chunked-to-client", protos=("h1",))
def t_chunked_to_client(env, proto):
    """No backend length -> chunked toward an h1.1 client, and the client
    connection survives for the next request."""
    c = env.raw_h1()
    host = env.authority("h1")
    for path, n in (("/app/chunked/70001", 70001), ("/app/close/70002", 70002),
                    ("/app/bytes/70003", 70003)):
        st, hs, body = c.request("GET", path, host)
        eq(st, 200, "%s status" % path)
        if "bytes" in path:
            eq(hdr1(hs, "content-length"), str(n), "%s CL" % path)
        else:
            eq((hdr1(hs, "transfer-encoding") or "").lower(), "chunked",
               "%s framing toward the client" % path)
            eq(hdr(hs, "content-length"), [], "%s CL" % path)
        eq(sha(body), sha(pattern(n)), "%s body" % path)
    c.close()


@case("http10-client", protos=("h1",))
def t_http10(env, proto):
    """An HTTP/1.0 client must never get chunked framing."""
    for path, n in (("/app/chunked/40000", 40000),
                    ("/app/bytes/40001", 40001)):
        r = env.curl("h1.0", path)
        check(r.rc == 0 and r.status == 200, "%s: %r", path, r)
        eq(hdr(r.headers, "transfer-encoding"), [], "TE to an h1.0 client")
        eq(sha(r.body), sha(pattern(n)), "%s body" % path)


NO_BODY = [
    # method  path               status  expected content-length (or None)
    ("HEAD",  "/app/head-test",  200,    "1234"),
    ("HEAD",  "/app/chunked/999", 200,   None),
    ("GET",   "/app/status/204", 204,    None),
    ("GET",   "/app/status/304", 304,    None),
]


@case("no-body")
def t_no_body(env, proto):
    if proto == "h1":
        c = env.raw_h1()
        host = env.authority("h1")
        for m, path, want, cl in NO_BODY:
            st, hs, _ = c.request(m, path, host, no_body=True)
            eq(st, want, "%s %s status" % (m, path))
            if cl:
                eq(hdr1(hs, "content-length"), cl, "%s %s CL" % (m, path))
            # If any body byte followed the head, this next response's
            # status line would not come first.
            st, hs, body = c.request("GET", "/app/bytes/11", host)
            eq((st, body), (200, pattern(11)),
               "request after %s %s on the same connection" % (m, path))
        c.close()
        return
    c = env.h2client()
    for m, path, want, cl in NO_BODY:
        sid = c.request(m, path)
        st = c.wait_all([sid])[0]
        eq(st["reset"], None, "%s %s stream reset" % (m, path))
        eq(h2_status(st), want, "%s %s status" % (m, path))
        eq(st["data"], b"", "%s %s body" % (m, path))
        if cl:
            eq(hdr1(st["headers"], "content-length"), cl, "%s CL" % path)
    # the connection is still usable (no stray DATA confused the framing)
    sid = c.request("GET", "/app/bytes/11")
    st = c.wait_all([sid])[0]
    eq((h2_status(st), st["data"]), (200, pattern(11)),
       "request after the bodiless responses on the same connection")
    c.close()


# -- response bodies -------------------------------------------------------

BODY_SIZES = [0, 1, 16384, 65537, 3 * 1024 * 1024 + 5]
BODY_KINDS = [("cl", "bytes"), ("chunked", "chunked"), ("close", "close")]


def t_body(env, proto, route):
    for i, n in enumerate(BODY_SIZES):
        r = env.curl(proto, "/app/%s/%d?seed=%d" % (route, n, i))
        check(r.rc == 0 and r.status == 200, "%s/%d: %r", route, n, r)
        eq(len(r.body), n, "%s/%d length" % (route, n))
        check(r.body == pattern(n, i), "%s/%d body differs", route, n)
        if proto == "h2":
            eq(hdr(r.headers, "transfer-encoding"), [], "TE on h2")
        if route == "bytes":
            eq(r.h("content-length"), str(n), "Content-Length")


for _kind, _route in BODY_KINDS:
    case("body-" + _kind, route=_route)(t_body)


# -- slow reader: memory stays bounded -------------------------------------

BIG = 64 * 1024 * 1024


@case("slow-reader-64m", timeout=120)
def t_slow_reader(env, proto):
    pid = env.serving_pid()
    # Warm up the exact path so allocator and TLS state are in place.
    env.get_ok(proto, "/app/big/4194304")
    before = proc_status(pid)
    r = env.curl(proto, "/app/big/%d" % BIG, extra=["--limit-rate", "12M"],
                 timeout=90)
    after = proc_status(pid)
    grow = after["VmHWM"] - before["VmHWM"]
    print("daemon VmHWM %d -> %d KiB (+%d KiB), VmRSS %d -> %d KiB" % (
        before["VmHWM"], after["VmHWM"], grow, before["VmRSS"],
        after["VmRSS"]))
    check(r.rc == 0 and r.status == 200, "64 MiB download: %r", r)
    eq(len(r.body), BIG, "downloaded length")
    eq(sha(r.body), _pattern_sha(BIG), "downloaded body sha256")
    check(grow < RSS_LIMIT_KB, "daemon peak RSS grew by %d KiB (limit %d)",
          grow, RSS_LIMIT_KB)
