# SPDX-License-Identifier: MIT
#
# Hostile cases: malformed and smuggled requests.
#
# Raw request bytes the daemon must refuse or pass on exactly: malformed
# request lines, what each lws version's parser lets through, control
# characters in headers, a 64 KiB head, smuggling (CL/TE), a duplicate Host
# and escapes out of a mount's path.

import posixpath
import urllib.parse

from harness import Failure, check, eq, h2_status

from .common import case, raw_h1


# -- cases: hostile clients ------------------------------------------------


def tag_targets(backend, prefix):
    """Targets the backend saw that carry a ?t= tag, as a set."""
    return {q["target"] for q in backend.requests()
            if q["target"].startswith(prefix)}


# (request bytes, daemon's answer, whether the backend sees it).  Answers:
# a status, or "close" (closed with nothing written).  shut: the client
# half-closes after sending (lws otherwise waits out its timeout for the
# rest of a head it cannot parse).
MALFORMED = [
    (b"GET\r\n\r\n", "403", False),
    (b"GET /app/echo?t=09\r\n\r\n", "400", False),           # HTTP/0.9 form
    (b"GET /app/echo?t=extra HTTP/1.1 extra\r\nHost: x\r\n\r\n", "400",
     False),
    (b"GET /app/echo?t=v99 HTTP/9.9\r\nHost: x\r\n\r\n", "505", False),
    (b"G\x00ET /app/echo?t=nul HTTP/1.1\r\nHost: x\r\n\r\n", "403", False),
    (b"GET  /app/echo?t=sp  HTTP/1.1\r\nHost: x\r\n\r\n", "200", True),
    (b"\r\n\r\n", "close", False),
    (bytes(range(256)) + b"\r\n\r\n", "403", False),
    (b"A" * 5000 + b" /app/echo?t=longm HTTP/1.1\r\nHost: x\r\n\r\n", "403",
     False),
    (b"GET http://evil.example/app/echo?t=abs HTTP/1.1\r\nHost: x\r\n\r\n",
     "403", False),
    (b"GET app/echo?t=noslash HTTP/1.1\r\nHost: x\r\n\r\n", "403", False),
    (b"GET /app/echo?t=lf HTTP/1.1\nHost: x\n\n", "200", True),
    (b"GET /app/echo?t=" + b"q" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
     "close", False),
    (b"GET /app/echo?t=emptyname HTTP/1.1\r\nHost: x\r\n: y\r\n\r\n",
     "close", False),
    (b"GET /app/echo?t=nocolon HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n",
     "close", False),
    (b"GET /app/echo?t=fold HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
     "close", False),
    (b"GET /app/echo?t=spname HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n",
     "200", True),
    (b"PROPFIND /app/echo?t=propfind HTTP/1.1\r\nHost: x\r\n\r\n", "403",
     False),
]


def _tag(req):
    i = req.find(b"?t=")
    if i < 0:
        return None
    return "/echo?t=" + req[i + 3:].split(b" ")[0].split(b"\r")[0] \
        .split(b"\n")[0].decode("latin-1")


@case("malformed-request-lines")
def t_malformed(env, ev):
    main = env.backends["main"]
    want_seen = set()
    bad = []
    for req, want, seen in MALFORMED:
        a = raw_h1(env, req, shut=True)
        print("%-60r -> %s" % (req[:60], a.short()))
        if a.short() != want:
            bad.append("%r: got %s, want %s" % (req[:80], a.short(), want))
        if seen:
            want_seen.add(_tag(req))
    check(not bad, "answers differ:\n  %s", "\n  ".join(bad))
    got = tag_targets(main, "/echo?t=")
    eq(got, want_seen, "requests the backend saw")


# What lws's h1 parser lets through on the request line (RFC 9112 3: nothing
# after HTTP-version; 2.2: no bare CR).  lws takes all that follows the
# target's space as the version token, and decodes %0a / %0d in the target
# before it looks for the end of the line, so the line ends inside the
# target and its rest becomes a header (lib/roles/http/parsers.c:1052-1081
# in 4.1.6, :1111-1141 in 4.3.5).  The plugin sees that in the version
# token (wrong, or none at all) and answers 400 (505 for a well-formed
# version other than 1.x) without forwarding anything.  The last three are
# lws's alone: it drops the damage before the plugin sees anything
# (README, Limits).  (request line and more, answer, what the backend got:
# None for nothing, else {header: value or None for absent})
LINE_DAMAGE = [
    (b"GET /app/echo?t=d1 HTTP/1.1 junk", "400", None),
    (b"GET /app/echo?t=d2 b HTTP/1.1", "400", None),   # SP in the target
    (b"GET /app/echo?t=d3 http/1.1", "400", None),
    (b"GET /app/echo?t=d4 HTTP/1.10", "400", None),
    (b"GET /app/echo?t=d5 HTTP/2.0", "505", None),
    (b"GET /app/echo?t=d6\tHTTP/1.1", "400", None),    # HTAB is no SP
    (b"GET /app/echo?t=d7\rX HTTP/1.1", "400", None),  # bare CR in the line
    # an encoded LF ends the line: "x-request-id: %20inj?t=d8 HTTP/1.1"
    # would be forwarded (it is on the built-in list; lws 4.3 lists all)
    (b"GET /app/echo%0aX-Request-Id:%20inj?t=d8 HTTP/1.1", "400", None),
    (b"GET /app/echo%0aX-Injected:%20c?t=d9 HTTP/1.1", "400", None),
    (b"GET /app/echo%0aCookie:%20inj?t=d10 HTTP/1.1", "400", None),
    (b"GET /app/echo?t=d11%0d%0aX-Request-Id:%20inj HTTP/1.1", "400", None),
    (b"GET /app/echo?t=d12%0aHost:%20evil HTTP/1.1", "400", None),
    # a NUL after a query's '=': lws 4.1.6 closes the connection, 4.3.5
    # keeps it and the plugin answers 400
    (b"GET /app/echo?t=d13&a=b%00c HTTP/1.1", ("close", "400"), None),
    # lws's: a bare CR after the version drops the rest of the line
    (b"GET /app/echo?t=d14 HTTP/1.1\rX-Request-Id: inj", "200",
     {"x-request-id": None}),
    # in a known field's value: ends it, drops the rest of the line
    (b"GET /app/echo?t=d15 HTTP/1.1\r\nUser-Agent: a\rX-Request-Id: inj",
     "200", {"user-agent": "a", "x-request-id": None}),
    # in a custom field's value: dropped, the bytes either side joined
    (b"GET /app/echo?t=d16 HTTP/1.1\r\nX-Request-Id: a\rb", "200",
     {"x-request-id": "ab"}),
]


@case("request-line-damage")
def t_line_damage(env, ev):
    main = env.backends["main"]
    bad = []
    for req, want, got in LINE_DAMAGE:
        n = len(main.requests())
        a = raw_h1(env, req + b"\r\nHost: x\r\n\r\n", timeout=5)
        reqs = main.requests()[n:]
        print("%-60r -> %s, backend got %r" % (req, a.short(), [
            (q["target"], q["headers"]) for q in reqs]))
        if a.short() not in ((want,) if isinstance(want, str) else want):
            bad.append("%r: got %s, want %s" % (req, a.short(), want))
        if got is None:
            if reqs:
                bad.append("%r reached the backend: %r" % (req, reqs))
            continue
        if len(reqs) != 1:
            bad.append("%r: the backend saw %d requests" % (req, len(reqs)))
            continue
        for name, v in got.items():
            vs = [hv for hn, hv in reqs[0]["headers"] if hn.lower() == name]
            if vs != ([] if v is None else [v]):
                bad.append("%r: backend's %s: %r, want %r" % (
                    req, name, vs, v))
    check(not bad, "request-line damage:\n  %s", "\n  ".join(bad))


# header values with CR, LF or NUL (h1): the answer, and what the
# backend got in their place
CTL_HEADERS = [
    (b"X-Custom-Fwd: a\rInjected: 1", "200"),
    # lws keeps the NUL: the plugin sees it (RFC 9110 5.5: reject)
    (b"X-Custom-Fwd: a\x00Injected: 1", "400"),
    (b"X-Custom-Fwd: a\nInjected: 1", "200"),
    (b"User-Agent: a\rInjected: 1", "200"),
    (b"User-Agent: a\x00b", "400"),
    (b"Cookie: a=1\r\x00\nX-Custom-Fwd: b", "200"),
]


def _no_ctl(headers, what):
    for n, v in headers:
        check(not any(c in n + v for c in "\r\n\0"),
              "%s: the backend got a header with CR/LF/NUL: %r", what,
              (n, v))


@case("header-ctl-chars")
def t_header_ctl(env, ev):
    main = env.backends["main"]
    for i, (h, want) in enumerate(CTL_HEADERS):
        req = b"GET /app/echo?t=ctl%d HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n" % (
            i, h)
        a = raw_h1(env, req)
        reqs = [q for q in main.requests()
                if q["target"] == "/echo?t=ctl%d" % i]
        print("%r -> %s, backend got %r" % (h, a.short(), [
            x for q in reqs for x in q["headers"]
            if x[0].lower() not in ("host", "x-forwarded-for",
                                    "x-forwarded-proto",
                                    "x-forwarded-host")]))
        eq(a.short(), want, "answer to %r" % h)
        check(len(reqs) <= 1, "%r: backend saw %d requests", h, len(reqs))
        for q in reqs:
            _no_ctl(q["headers"], repr(h))
    # h2: a field value with CR, LF or NUL is malformed (RFC 9113 8.2.1);
    # it must never reach the backend
    c = env.h2client()
    c.c.config.validate_outbound_headers = False
    c.c.config.normalize_outbound_headers = False
    sids = []
    for i, v in enumerate(["a\r\nInjected: 1", "a\x00b", "a\rb", "a\nb"]):
        sids.append(c.request("GET", "/app/echo?t=h2ctl%d" % i,
                              [("user-agent", v)]))
    res = c.wait_all(sids, timeout=15)
    c.close()
    # lws 4.1.6 hands such a value to the plugin as it came (its hpack
    # decoder does not check it); the plugin refuses the request (RFC 9113
    # 8.2.1: malformed, never forwarded)
    ans = [h2_status(st) for st in res]
    print("h2 user-agent with CR/LF/NUL -> %r" % ans)
    eq(ans, [400] * 4, "h2 answers")
    for i in range(4):
        reqs = [q for q in main.requests()
                if q["target"] == "/echo?t=h2ctl%d" % i]
        eq(len(reqs), 0, "backend requests for h2 stream %d" % i)
    for q in main.requests():
        _no_ctl(q["headers"], q["target"])


@case("header-64k")
def t_header_64k(env, ev):
    """A 64 KiB header: lws 4.1.6 has no 431 and closes the connection
    when its header buffer (max-http-header-data) is full."""
    main = env.backends["main"]
    for name in (b"X-Big", b"User-Agent", b"Cookie"):
        req = b"GET /app/echo?t=big HTTP/1.1\r\nHost: x\r\n%s: %s\r\n\r\n" \
            % (name, b"b" * 65536)
        a = raw_h1(env, req)
        print("h1 %s: 64 KiB -> %s" % (name.decode(), a.short()))
        eq(a.short(), "close", "answer to a 64 KiB %s" % name.decode())
    c = env.h2client()
    try:
        sid = c.request("GET", "/app/echo?t=big2",
                        [("user-agent", "b" * 65536)])
        st = c.wait_all([sid], timeout=15)[0]
        ans = "status %s reset %s" % (h2_status(st), st["reset"])
    except (Failure, OSError) as e:
        # the daemon closes while the header block is still being sent
        print("h2: %s" % e)
        ans = "close"
    print("h2 64 KiB user-agent -> %s" % ans)
    eq(ans, "close", "h2 answer to a 64 KiB header")
    try:
        c.s.close()
    except OSError:
        pass
    eq(tag_targets(main, "/echo?t=big"), set(), "oversized requests the "
       "backend saw")


SMUGGLE = b"GET /app/echo?smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
SMUGGLING = [
    # (name, head lines, body), daemon's answer
    ("cl+te", b"Content-Length: 5\r\nTransfer-Encoding: chunked",
     b"0\r\n\r\n" + SMUGGLE, "400"),
    ("te+cl", b"Transfer-Encoding: chunked\r\nContent-Length: 5",
     b"0\r\n\r\n" + SMUGGLE, "400"),
    ("two-cl", b"Content-Length: 5\r\nContent-Length: 40",
     b"hello" + SMUGGLE, "400"),
    ("two-cl-same", b"Content-Length: 5\r\nContent-Length: 5",
     b"hello" + SMUGGLE, "400"),
    ("cl-list", b"Content-Length: 5, 5", b"hello" + SMUGGLE, "400"),
    ("cl-plus", b"Content-Length: +5", b"hello" + SMUGGLE, "400"),
    ("te-chunked-identity", b"Transfer-Encoding: chunked, identity",
     b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLE, "400"),
    ("te-identity-chunked", b"Transfer-Encoding: identity, chunked",
     b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLE, "400"),
    ("te-twice", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
     b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLE, "400"),
    ("te-xchunked", b"Transfer-Encoding: xchunked\r\nContent-Length: 5",
     b"hello" + SMUGGLE, "400"),
    ("te-tab", b"Transfer-Encoding:\tchunked",
     b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLE, "400"),
    ("chunk-bad-size", b"Transfer-Encoding: chunked",
     b"zz\r\nhello\r\n0\r\n\r\n" + SMUGGLE, "400"),
    # well-formed chunked: the body is de-chunked and the connection
    # closed after the answer, so what follows is never parsed
    ("chunked-then-more", b"Transfer-Encoding: chunked",
     b"5;ext\r\nhello\r\n0\r\n\r\n" + SMUGGLE, "200"),
]


@case("smuggling")
def t_smuggling(env, ev):
    """The backend must never see a request the client did not send as
    one: every ambiguous framing is refused (400, and the client
    connection closed) before anything reaches the backend."""
    main = env.backends["main"]
    bad = []
    for name, lines, body, want in SMUGGLING:
        req = b"POST /app/echo?t=%s HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n%s" % (
            name.encode(), lines, body)
        a = raw_h1(env, req)
        print("%-22s -> %s%s" % (name, a.short(), " (connection: close)" if
                                 "connection: close" in a.head.lower()
                                 else ""))
        if a.short() != want:
            bad.append("%s: got %s, want %s" % (name, a.short(), want))
        if a.status == 400:
            check("connection: close" in a.head.lower(),
                  "%s: 400 without connection: close", name)
    seen = [q["target"] for q in main.requests()]
    print("backend saw %r" % seen)
    check(not any("smuggled" in t for t in seen),
          "the backend saw a smuggled request: %r", seen)
    eq(sorted(t for t in seen if t.startswith("/echo?t=")),
       sorted("/echo?t=" + n for n, _, _, w in SMUGGLING if w == "200"),
       "requests that reached the backend")
    check(not bad, "answers differ:\n  %s", "\n  ".join(bad))
    # h2: a content-length the DATA does not match is malformed
    c = env.h2client()
    c.c.config.validate_outbound_headers = False
    sid = c.start("POST", "/app/echo?t=h2-cl-short",
                  [("content-length", "5")])
    # The DATA goes once the daemon's window says the stream exists (its
    # initial window is 0), so never in the same read as the HEADERS:
    # lws 4.1.6 drops such a first flight (README Limits), which is not
    # what this case is about.
    body = b"hello" + SMUGGLE
    c.pump(lambda: (c._window(sid) or 0) >= len(body), timeout=15)
    c.c.send_data(sid, body, end_stream=True)
    c.flush()
    try:
        st = c.wait_all([sid], timeout=15)[0]
        ans = "status %s reset %s" % (h2_status(st), st["reset"])
    except Failure:
        if c.closed:
            ans = "goaway %r" % c.goaway
        else:
            # The excess came after lws had delivered the declared bytes:
            # lws 4.1.6 closes the stream without a RST_STREAM (README
            # Limits).  The connection must still serve.
            sid2 = c.request("GET", "/app/echo?t=h2-cl-after")
            st2 = c.wait_all([sid2], timeout=15)[0]
            eq(h2_status(st2), 200, "the next request on the connection")
            ans = "stream dropped by lws, connection serves"
    print("h2 content-length 5 with %d bytes -> %s" % (5 + len(SMUGGLE),
                                                       ans))
    c.close()
    seen = [q["target"] for q in main.requests()]
    check(not any("smuggled" in t for t in seen),
          "the backend saw a smuggled request: %r", seen)
    # The request head may already be on its way onward when lws sees
    # the DATA overrun (the relay streams requests as they come); what
    # must not happen is an answer to it, or the overrun reaching the
    # backend as data of its own (checked above).
    check(not ans.startswith("status 2"),
          "h2 body longer than its content-length was answered: %s", ans)


@case("duplicate-host")
def t_dup_host(env, ev):
    """RFC 9112 3.2: more than one Host is a 400.  The backend must never
    see a Host the client did not send as one value."""
    main = env.backends["main"]
    a = raw_h1(env, b"GET /app/echo?t=duphost HTTP/1.1\r\nHost: good\r\n"
               b"Host: evil.example\r\n\r\n")
    hosts = [v for q in main.requests() if q["target"] == "/echo?t=duphost"
             for n, v in q["headers"] if n.lower() == "host"]
    print("two Host headers -> %s, backend saw Host %r" % (a.short(), hosts))
    eq(a.short(), "400", "answer to two Host headers")
    eq(hosts, [], "Host values the backend saw")
    # the proxy's own 400 page (a body of Content-Length bytes)
    check(b"<h1>400 Bad Request</h1><p>The request could not be "
          b"understood.</p>" in a.body, "400 page: %r", a.body[:300])


# paths that try to leave /jail (-> jail backend's /inside); the answer
# to each, h1 raw (exactly these bytes) and h2 (exactly this :path)
ESCAPES = [
    ("/jail/../app/echo?t=e1", "200"),
    ("/jail/%2e%2e/%2e%2e/etc/passwd?t=e2", "404"),
    ("/jail/%2E%2E%2Fapp/echo?t=e3", "200"),     # lws: /app/echo
    ("/jail/..%2f..%2fetc/passwd?t=e4", "404"),
    ("/jail//../../etc/passwd?t=e5", "404"),
    ("/jail/echo/..%5c..%5cetc?t=e6", "200"),    # '\' is no separator
    ("/jail/%252e%252e/%252e%252e/etc?t=e7", "404"),
    ("/jail/.%2e/.%2e/etc?t=e8", "404"),
    ("/jail/echo/../../../../etc/passwd?t=e9", "404"),
    ("/jail/./echo/%2e/x?t=e10", "200"),
    ("//jail/../../etc?t=e11", "404"),
    ("/jail/%c0%ae%c0%ae/etc?t=e12", "404"),
]


@case("path-escape", jail=True)
def t_path_escape(env, ev):
    jail = env.backends["jail"]
    bad = []
    c = env.h2client()
    for path, want in ESCAPES:
        a = raw_h1(env, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" %
                   path.encode())
        sid = c.request("GET", path)
        st = c.wait_all([sid])[0]
        h2s = str(h2_status(st))
        print("%-45s h1 %s h2 %s" % (path, a.short(), h2s))
        if a.short() != want:
            bad.append("h1 %s: got %s, want %s" % (path, a.short(), want))
    c.close()
    seen = [q["target"] for q in jail.requests()]
    print("jail backend saw %r" % seen)
    for t in seen:
        p = urllib.parse.unquote(t.partition("?")[0])
        norm = posixpath.normpath(p)
        check(norm == "/inside" or norm.startswith("/inside/"),
              "jail backend saw %r, outside /inside", t)
        check(".." not in p.split("/"),
              "jail backend saw a dot-dot segment: %r", t)
    check(not bad, "answers differ:\n  %s", "\n  ".join(bad))
