# SPDX-License-Identifier: MIT
#
# Hostile cases: misbehaving backends.
#
# evil_backend.py ("/evil"): a garbage status line, an endless head, a
# short body, bad chunks, Content-Length with Transfer-Encoding, CR/LF in a
# header, no answer, a pooled connection it closed, interim answers, and
# floods.

import socket

from harness import check, eq, proc_status, wait_until

from .common import RSS_BOUND_KB, _answer, case, raw_h1


# -- cases: misbehaving backends -------------------------------------------


def _table(env, rows, what):
    """rows: (path, want) where want is a status or "aborted" (h1, h2
    alike) or a (h1, h2) pair; every answer is checked, all misses
    reported at once."""
    bad = []
    for path, want in rows:
        got = []
        for i, proto in enumerate(("h1", "h2")):
            w = want[i] if isinstance(want, tuple) else want
            r = env.curl(proto, path, timeout=20)
            a = _answer(r)
            got.append(a)
            if a != w:
                bad.append("%s %s: got %s, want %s (%s)" % (
                    proto, path, a, w, r.err.strip()[-200:]))
        print("%-28s h1 %-8s h2 %s" % (path, got[0], got[1]))
    check(not bad, "%s answers differ:\n  %s", what, "\n  ".join(bad))


@case("backend-status-garbage", evil=True)
def t_status_garbage(env, ev):
    from evil_backend import STATUS_GARBAGE
    # 10: a NUL in the reason phrase, which is never forwarded (lws
    # writes its own): the head is accepted
    _table(env, [("/evil/status-garbage/%d" % i, "200" if i == 10 else "502")
                 for i in range(len(STATUS_GARBAGE))], "garbage head")


@case("backend-head-endless", evil=True,
      pvo={"max-header-kb": "8", "head-timeout-ms": "1500"})
def t_head_endless(env, ev):
    """A head that grows forever: 502 once past max-header-kb; a head
    that stops half-way: 502 after head-timeout-ms (a partial head is a
    broken response, not a missing one).  Either way the
    proxy closes the backend connection."""
    _table(env, [("/evil/head-endless", "502"), ("/evil/head-stall", "502")],
           "endless head")
    conns = {q["conn"] for q in ev.requests()}
    wait_until(lambda: conns <= set(ev.stats()["closed"]),
               "the proxy to close the backend connections %r" % conns)


@case("backend-cl-short", evil=True)
def t_cl_short(env, ev):
    """Content-Length 100000, 50000 bytes, close: the client must see an
    aborted transfer, never a complete one."""
    _table(env, [("/evil/cl-short", "aborted")], "short body")


@case("backend-bad-chunks", evil=True, pvo={"idle-timeout-ms": "2000"})
def t_bad_chunks(env, ev):
    """Broken chunked framing: the proxy holds the head until the first
    chunk decodes, so a body that is wrong from its start is a 502; one
    that stops mid-chunk (6, 8) aborts the client's transfer after
    idle-timeout-ms.  Never a clean end."""
    from evil_backend import BAD_CHUNK
    _table(env, [("/evil/bad-chunk/%d" % i,
                  "aborted" if i in (6, 8) else "502")
                 for i in range(len(BAD_CHUNK))], "bad chunk")


@case("backend-cl-te", evil=True)
def t_cl_te(env, ev):
    """Response framing the proxy cannot trust: CL with TE, two
    different CLs -> 502.  Two equal CLs are one length (RFC 9110 8.6)."""
    _table(env, [("/evil/cl-te", "502"), ("/evil/two-cl/0", "502"),
                 ("/evil/two-cl/1", "502")], "ambiguous length")


@case("backend-crlf-header", evil=True)
def t_crlf_header(env, ev):
    """A header value with CR, NUL or obs-fold is never forwarded: the
    head is refused (502).  A bare LF (3) ends the line (RFC 9112 2.2
    allows that), so "Injected: 1" is a header of its own, re-sent
    cleanly: 200."""
    from evil_backend import CRLF_HDR
    rows = [("/evil/crlf-hdr/%d" % i, "200" if i == 3 else "502")
            for i in range(len(CRLF_HDR))]
    _table(env, rows, "CR/LF header")
    for i in range(len(CRLF_HDR)):
        if i == 3:
            continue
        a = raw_h1(env, b"GET /evil/crlf-hdr/%d HTTP/1.1\r\nHost: x\r\n\r\n"
                   % i)
        check("injected" not in a.head.lower(),
              "variant %d: injected header reached the client: %r", i,
              a.head)


@case("backend-never-answers", evil=True, pvo={"head-timeout-ms": "1000"})
def t_never_answers(env, ev):
    _table(env, [("/evil/never", "504")], "silent backend")
    conns = {q["conn"] for q in ev.requests()}
    wait_until(lambda: conns <= set(ev.stats()["closed"]),
               "the proxy to close the silent backend connections")


@case("backend-pool-reuse-closed", evil=True)
def t_pool_reuse(env, ev):
    """The backend closes (FIN or RST) a pooled keep-alive connection
    when the next request arrives: a GET is retried once on a fresh
    connection (200); a POST whose body the backend already took is not
    sent again (502)."""
    def trips(target):
        return [(q["conn"], q.get("dropped")) for q in ev.requests()
                if q["target"] == target]
    bad = []
    for proto in ("h1", "h2"):
        for how in ("fin", "rst"):
            r = env.curl(proto, "/evil/ka?drop=%s&p=%s" % (how, proto))
            eq((r.rc, r.status), (0, 200), "keep-alive answer")
            t = "/echo?t=get-%s-%s" % (how, proto)
            r = env.curl(proto, "/evil" + t)
            got = trips(t)
            print("%s GET, pooled connection %s: %s, trips %r" % (
                proto, how, _answer(r), got))
            if _answer(r) != "200" or len(got) != 2 or \
                    got[0][1] != how or got[1][1] is not None:
                bad.append("%s GET %s: %s trips %r" % (proto, how,
                                                      _answer(r), got))
        for how in ("fin-after-body", "rst-after-body"):
            r = env.curl(proto, "/evil/ka?drop=%s&p=%s" % (how, proto))
            eq((r.rc, r.status), (0, 200), "keep-alive answer")
            t = "/echo?t=post-%s-%s" % (how, proto)
            r = env.curl(proto, "/evil" + t, data=b"p" * 50000)
            got = trips(t)
            print("%s POST, pooled connection %s: %s, trips %r" % (
                proto, how, _answer(r), got))
            if _answer(r) != "502" or len(got) != 1:
                bad.append("%s POST %s: %s trips %r" % (proto, how,
                                                       _answer(r), got))
    check(not bad, "pooled-connection answers:\n  %s", "\n  ".join(bad))


@case("backend-interim", evil=True)
def t_interim(env, ev):
    """1xx interim responses (100, 103 with a Link, 102, 200 of them) are
    not passed on; the final 200 and its body are."""
    from evil_backend import INTERIM
    for i in range(len(INTERIM)):
        for proto in ("h1", "h2"):
            r = env.curl(proto, "/evil/interim/%d" % i)
            codes = [b[0] for b in r.info["blocks"]]
            print("%s interim %d: %s, heads %r" % (proto, i, _answer(r),
                                                   codes))
            eq((r.rc, r.status, r.body), (0, 200, b"final\n"),
               "%s interim variant %d" % (proto, i))
            eq(codes, [200], "%s heads the client saw (variant %d)" %
               (proto, i))


FLOOD_BOUND = 64 << 20


@case("backend-floods", evil=True, pvo={"idle-timeout-ms": "2000"},
      timeout=90)
def t_floods(env, ev):
    """The backend sends 1 GiB as fast as it can; the client reads
    nothing.  The proxy takes a bounded amount (socket buffers plus
    max-buffer-kb), its memory stays bounded, and idle-timeout-ms later
    it closes the backend connection."""
    pid = env.serving_pid()
    env.get_ok("h1", "/app/big/4194304")
    before = proc_status(pid)
    for proto in ("h1", "h2"):
        if proto == "h1":
            s = socket.create_connection(("127.0.0.1", env.http_port))
            s.sendall(b"GET /evil/flood?p=h1 HTTP/1.1\r\nHost: x\r\n\r\n")
        else:
            c = env.h2client()
            c.request("GET", "/evil/flood?p=h2")
            s = c.s
        target = "/flood?p=" + proto
        wait_until(lambda: any(q["target"] == target
                               for q in ev.requests()), "the flood")
        conn = [q["conn"] for q in ev.requests()
                if q["target"] == target][0]
        wait_until(lambda: conn in ev.stats()["closed"],
                   "the proxy to close the flooding connection %d" % conn,
                   timeout=30, alive=env.daemon.exited)
        sent = ev.stats()["flood"][str(conn)]
        after = proc_status(pid)
        print("%s: backend got %d KiB out before the proxy closed it; "
              "daemon VmHWM +%d KiB" % (proto, sent >> 10,
                                       after["VmHWM"] - before["VmHWM"]))
        check(sent < FLOOD_BOUND, "the proxy took %d bytes", sent)
        check(after["VmHWM"] - before["VmHWM"] < RSS_BOUND_KB,
              "daemon peak RSS grew %d KiB",
              after["VmHWM"] - before["VmHWM"])
        s.close()


@case("backend-many-fields", evil=True)
def t_many_fields(env, ev):
    """Heads of 16 fields (the parser's inline table), 17 (its first
    growth), 100 and 128 (the limit) reach the client whole and in order,
    h1 and h2, a few times over the pooled connection; 129 is 502."""
    bad = []
    for n in (16, 17, 100, 128, 129, 17, 16, 128):
        for proto in ("h1", "h2"):
            r = env.curl(proto, "/evil/many-fields/%d" % n)
            got = [(k.lower(), v) for k, v in r.headers
                   if k.lower().startswith("x-f-")]
            want = [("x-f-%d" % k, str(k)) for k in range(n - 1)]
            if n > 128:
                if (r.rc, r.status) != (0, 502):
                    bad.append("%s %d fields: %s, want 502"
                               % (proto, n, _answer(r)))
            elif (r.rc, r.status, r.body, got) != (0, 200, b"fields\n",
                                                   want):
                bad.append("%s %d fields: %s, %d of the fields right"
                           % (proto, n, _answer(r),
                              sum(a == b for a, b in zip(got, want))))
    check(not bad, "many fields:\n  %s", "\n  ".join(bad))
