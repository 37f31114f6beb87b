# SPDX-License-Identifier: MIT
#
# Integration cases: early answers.
#
# Backends that answer before they read a request body (issue 11, item
# 3): raw h1, a quiet client, the linger bound, h2, curl, the pool after it,
# and under load.

import os
import re
import socket
import subprocess

from harness import Failure, check, eq, h2_status, pattern

from .common import case, echo


# -- early answers to uploads (issue 11, item 3) ---------------------------
#
# Backends often answer before they read a request body (404, 401, 413).
# backend.py's /early/N answers at once and then closes (then=close), reads
# the body and keeps the connection (then=discard) or reads nothing and
# keeps it (then=stall).  The client must get the whole answer every time:
# over h1 the connection must end with a FIN after it, not a reset (the
# kernel resets a socket closed with unread bytes, and a reset can destroy
# the answer), over h2 the stream must end and the connection go on.

EARLY_SIZES = (1 << 20, 16 << 20)
EARLY_THEN = ("close", "discard", "stall")


def _early_body(status):
    return b"early %d\n" % status


def _raw_early_upload(port, path, body, chunked=False, keep_sending=True,
                      timeout=40):
    """POST body over a plain socket, sending and reading at once (the
    client does not wait for the answer before it sends, as most don't).
    keep_sending=False stops sending once the answer's head is in.
    Returns (how the connection ended: "FIN" or the error, bytes sent of
    the request, its size, bytes received)."""
    import select
    import time
    head = "POST %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (
        path, "Transfer-Encoding: chunked\r\n" if chunked else
        "Content-Length: %d\r\n" % len(body))
    out = bytearray(head.encode())
    if chunked:
        for i in range(0, len(body), 65536):
            c = body[i:i + 65536]
            out += b"%x\r\n" % len(c) + c + b"\r\n"
        out += b"0\r\n\r\n"
    else:
        out += body
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    rx, end, sent = b"", None, 0
    deadline = time.monotonic() + timeout
    while end is None:
        left = deadline - time.monotonic()
        if left <= 0:
            end = "timeout"
            break
        want_w = sent < len(out) and (keep_sending or b"\r\n\r\n" not in rx)
        r, w, _ = select.select([s], [s] if want_w else [], [], left)
        if w:
            try:
                sent += s.send(out[sent:sent + 65536])
            except OSError as e:
                end = "send: %s" % e.__class__.__name__
        if r:
            try:
                d = s.recv(65536)
            except OSError as e:
                end = "recv: %s" % e.__class__.__name__
                break
            if not d:
                end = "FIN"
            rx += d
    s.close()
    return end, sent, len(out), rx


def _check_early_h1(rx, status, what):
    head, sep, body = rx.partition(b"\r\n\r\n")
    check(sep, "%s: no complete answer head, got %r", what, rx[:200])
    lines = head.decode("latin-1").split("\r\n")
    eq(int(lines[0].split(" ")[1]), status, "%s: status" % what)
    hs = [ln.partition(":") for ln in lines[1:]]
    hs = {n.strip().lower(): v.strip() for n, _, v in hs}
    eq(hs.get("connection"), "close", "%s: Connection header" % what)
    eq(body, _early_body(status), "%s: answer body" % what)


@case("early-answer-raw", protos=("h1",), timeout=240)
def t_early_raw(env, proto):
    """h1, plain sockets: the client sends all of a 1 or 16 MiB body while
    the backend answers at once; it must read the whole answer and then a
    FIN (the rest of its body read and dropped), never a reset."""
    bad = []
    for then in EARLY_THEN:
        for chunked in (False, True):
            for i, size in enumerate(EARLY_SIZES):
                status = (404, 413)[i]
                what = "%s %s %d B" % (then, "chunked" if chunked else "cl",
                                       size)
                end, sent, total, rx = _raw_early_upload(
                    env.http_port, "/app/early/%d?then=%s" % (status, then),
                    os.urandom(size), chunked)
                print("%s: %s after %d of %d bytes sent, %d received" % (
                    what, end, sent, total, len(rx)))
                try:
                    eq(end, "FIN", "%s: how the connection ended" % what)
                    _check_early_h1(rx, status, what)
                except Failure as e:
                    bad.append(str(e))
    eq(bad, [], "early answers lost or reset")


@case("early-answer-quiet-client", protos=("h1",), timeout=60)
def t_early_quiet(env, proto):
    """h1: a client that stops sending once the answer comes gets the
    answer and then a FIN after the linger's idle bound (5 s), not a
    reset."""
    end, sent, total, rx = _raw_early_upload(
        env.http_port, "/app/early/404?then=stall", os.urandom(64 << 20),
        keep_sending=False)
    print("quiet client: %s after %d of %d bytes sent" % (end, sent, total))
    check(sent < total, "the client sent its whole body (%d B) before the "
          "answer came", total)
    eq(end, "FIN", "how the connection ended")
    _check_early_h1(rx, 404, "quiet client")


@case("early-answer-linger-bound", protos=("h1",), timeout=60,
      pvo={"linger-kb": "256"})
def t_early_bound(env, proto):
    """h1: lingering is bounded by linger-kb: a client that sends 16 MiB
    after an early answer is cut off long before its end, and still has
    the whole answer."""
    end, sent, total, rx = _raw_early_upload(
        env.http_port, "/app/early/413?then=close", os.urandom(16 << 20))
    print("bounded linger: %s after %d of %d bytes sent" % (end, sent,
                                                           total))
    check(end != "FIN" or sent < total, "the proxy read all %d bytes "
          "despite linger-kb 256", total)
    check(sent < 8 << 20, "%d bytes went in before the proxy closed", sent)
    _check_early_h1(rx, 413, "bounded linger")


def _h2_keep_sending(c, sid, body, timeout=60):
    """Send all of body on sid whatever the peer does with the stream
    (an answer with END_STREAM does not stop a client's upload: only an
    RST_STREAM would, RFC 9113 8.1), as far as the windows allow."""
    import time
    off = 0
    deadline = time.monotonic() + timeout
    while off < len(body):
        check(time.monotonic() < deadline, "upload stalled at %d of %d "
              "bytes (no window)", off, len(body))
        w = min(c.c.local_flow_control_window(sid),
                c.c.max_outbound_frame_size)
        if w > 0:
            n = min(w, len(body) - off)
            c.c.send_data(sid, body[off:off + n],
                          end_stream=off + n == len(body))
            off += n
            c.flush()
        else:
            c.pump(lambda: c.c.local_flow_control_window(sid) > 0,
                   timeout=max(deadline - time.monotonic(), 0.1))
    return off


@case("early-answer-python", protos=("h2",), timeout=240)
def t_early_h2(env, proto):
    """h2 (python3-h2): the client sends all of its body after the answer
    came; the stream keeps its window until the body ends, no reset, no
    GOAWAY, and the connection serves another stream after each."""
    c = env.h2client()
    k = 0
    for then in EARLY_THEN:
        for i, size in enumerate(EARLY_SIZES):
            status = (404, 413)[i]
            what = "%s %d B" % (then, size)
            sid = c.start("POST", "/app/early/%d?then=%s" % (status, then),
                          [("content-length", str(size))])
            sent = _h2_keep_sending(c, sid, os.urandom(size))
            st = c.wait_all([sid], timeout=30)[0]
            eq((h2_status(st), st["data"], st["reset"]),
               (status, _early_body(status), None), "%s: answer" % what)
            eq(sent, size, "%s: body bytes the client could send" % what)
            # a new path each time: lws 4.1.6 garbles a :path with a
            # query that comes from HPACK's dynamic table (403)
            k += 1
            sid2 = c.request("GET", "/app/bytes/5000?seed=%d" % k)
            st2 = c.wait_all([sid2], timeout=30)[0]
            check(h2_status(st2) == 200 and st2["data"] == pattern(5000, k),
                  "%s: the next stream on the connection failed: %r", what,
                  (h2_status(st2), len(st2["data"])))
            check(not c.closed, "%s: the connection closed (goaway %r)",
                  what, c.goaway)
    c.close()


@case("early-answer-curl", timeout=240)
def t_early_curl(env, proto):
    """curl uploads 1 and 16 MiB (Content-Length; on h1 also chunked)
    to backends that answer at once: status and body every time."""
    bad = []
    for i, size in enumerate(EARLY_SIZES):
        f = os.path.join(env.dir, "early%d.bin" % size)
        with open(f, "wb") as fh:
            fh.write(os.urandom(size))
        status = (404, 413)[i]
        for then in EARLY_THEN:
            path = "/app/early/%d?then=%s" % (status, then)
            runs = [("cl", dict(data_file=f))]
            if proto == "h1":
                runs.append(("chunked", dict(
                    upload_file=f, method="POST",
                    headers=["Transfer-Encoding: chunked"])))
            for how, kw in runs:
                r = env.curl(proto, path, timeout=60, **kw)
                got = (r.status, r.body)
                print("curl %s %s %d B: rc %d, status %s" % (
                    then, how, size, r.rc, r.status))
                if got != (status, _early_body(status)):
                    bad.append("%s %s %d B: rc %d, %r" % (
                        then, how, size, r.rc, got))
    eq(bad, [], "curl uploads without their early answer")


@case("early-answer-pool")
def t_early_pool(env, proto):
    """A backend that answers early without closing is in no known state:
    its connection is not reused, and the next request works."""
    main = env.backends["main"]
    f = os.path.join(env.dir, "early.bin")
    with open(f, "wb") as fh:
        fh.write(os.urandom(1 << 20))
    for then in ("discard", "stall"):
        target = "/early/404?then=%s&pool" % then
        r = env.curl(proto, "/app" + target, data_file=f)
        eq((r.status, r.body), (404, _early_body(404)),
           "early answer (%s)" % then)
        conn = [q["conn"] for q in main.requests()
                if q["target"] == target][0]
        for k in range(3):
            doc = echo(env, proto, "/app/echo?after-%s-%d" % (then, k))
            check(doc["conn"] != conn, "backend connection %d reused after "
                  "an early answer (%s) to a body it never read", conn, then)


@case("early-answer-load", timeout=240)
def t_early_load(env, proto):
    """200 uploads of 1 MiB across 4 connections (h2load; --h1 on h1) to
    backends answering at once, each way of ending: zero failures."""
    f = os.path.join(env.dir, "early.bin")
    with open(f, "wb") as fh:
        fh.write(os.urandom(1 << 20))
    bad = []
    for then in EARLY_THEN:
        argv = ["h2load", "-n200", "-c4", "-d", f]
        argv += ["--h1"] if proto == "h1" else ["-m4"]
        cp = subprocess.run(argv + [env.url(proto, "/app/early/404?then=%s"
                                            % then)],
                            capture_output=True, timeout=180)
        out = cp.stdout.decode()
        print("%s:\n%s" % (then, "\n".join(
            ln for ln in out.splitlines()
            if "requests:" in ln or "status codes" in ln)))
        if not (re.search(r"requests: 200 total, 200 started, 200 done, "
                          r"0 succeeded, 200 failed, 0 errored, 0 timeout",
                          out) and
                re.search(r"status codes: 0 2xx, 0 3xx, 200 4xx, 0 5xx",
                          out)):
            bad.append(then)
    eq(bad, [], "h2load runs with lost answers")
