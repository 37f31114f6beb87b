# SPDX-License-Identifier: MIT
#
# Integration cases: WebSocket.
#
# WebSocket through a proxied mount (issue 11): messages, closes,
# subprotocols, the message size limit, a flood (memory stays bounded),
# browser-like flow control and the idle timeout; ws over h2 (RFC 8441)
# with a python3-h2 client.

import asyncio
import json
import logging
import os
import re
import signal
import ssl as _ssl
import time

import websockets

from harness import (Failure, H2Client, check, eq, h2_status, proc_status,
                     wait_until)

from .common import RSS_LIMIT_KB, _log_has, case


# ---- WebSocket through a proxied mount (issue 11) ----------------------
#
# "h1" runs ws:// on the plain port, "h2" wss:// on the TLS one (an h1
# upgrade over TLS: python3-websockets has no RFC 8441).  The backend is
# ws_backend.py ("ws", next to backend.py as "main" for pages): /ws is the
# proxy-origin mount form, /wscb the callback one.

WS_MOUNTS = ("/ws", "/wscb")
WS_BACKENDS = (("main", "unix"), ("ws", "ws-unix"))


def ws_mounts(env, pmo=None, kind="ws"):
    b = env.backends[kind]
    extra = [dict(pmo)] if pmo else []
    return env.standard_mounts() + [
        {"mountpoint": "/ws", "origin": b.origin("/"),
         **({"pmo": extra} if extra else {})},
        {"mountpoint": "/wscb", "origin": "callback://lws-uds-proxy",
         "pmo": [{"backend": b.origin("/")}] + extra},
    ]


def ws_url(env, proto, path):
    if proto == "h1":
        return "ws://127.0.0.1:%d%s" % (env.http_port, path)
    return "wss://127.0.0.1:%d%s" % (env.https_port, path)


def ws_connect(env, proto, path, **kw):
    ctx = None
    if proto != "h1":
        ctx = _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = _ssl.CERT_NONE
    kw.setdefault("max_size", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 20)
    return websockets.connect(ws_url(env, proto, path), ssl=ctx, **kw)


def ws_run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class WsCloseWaits(logging.Handler):
    """Counts the client's close handshakes after which the server did not
    close the connection within the client's close_timeout (pass 2.5 s).
    lws closes at once when it reads the client's close answer; when it
    does not read it (rx still paused) only its fixed 5 s close-ack timer
    ends the connection (lib/roles/ws/ops-ws.c:1277 in 4.1.6)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.n = 0
        self.log = logging.getLogger("websockets.client")

    def emit(self, rec):
        if "timed out waiting for TCP close" in rec.getMessage():
            self.n += 1

    def __enter__(self):
        self.level = self.log.level
        self.log.setLevel(logging.DEBUG)
        self.log.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.log.removeHandler(self)
        self.log.setLevel(self.level)


def ws_closes(env, name="ws"):
    return [r for r in env.backends[name].requests() if "closed" in r]


@case("ws-messages", backends=WS_BACKENDS)
def t_ws_messages(env, proto):
    """Text, binary, empty, fragmented and large messages both ways through
    both mount forms; the upgrade reaches the backend at the mapped path
    with the query, Host, Cookie, Origin, X-Forwarded-* and no client
    Sec-WebSocket-* of its own; a client's close code and reason reach the
    backend."""
    env.start_daemon(mounts=ws_mounts(env))

    async def one(mount):
        async with ws_connect(env, proto, mount + "/hello?x=1&y=a%20b",
                              origin="http://example.test",
                              extra_headers=[("Cookie", "a=1"),
                                             ("X-Request-Id", "rq1")]) as ws:
            seen = json.loads(await ws.recv())
            eq(seen["path"], "/hello?x=1&y=a%20b", "path at the backend")
            h = {}
            for k, v in seen["headers"]:
                h.setdefault(k.lower(), []).append(v)
            eq(h.get("host"), [env.authority(proto)], "Host")
            eq(h.get("origin"), ["http://example.test"], "Origin")
            eq(h.get("cookie"), ["a=1"], "Cookie")
            eq(h.get("x-request-id"), ["rq1"], "X-Request-Id")
            eq(h.get("x-forwarded-for"), ["127.0.0.1"], "X-Forwarded-For")
            eq(h.get("x-forwarded-proto"),
               ["http" if proto == "h1" else "https"], "X-Forwarded-Proto")
            eq(seen["subprotocol"], None, "subprotocol")
            for m in ("h\u00e9llo", b"\x00\x01\xff", "", b"",
                      bytes(range(256)) * 4096, "x" * 70000):
                await ws.send(m)
                got = await ws.recv()
                eq(type(got), type(m), "message type")
                check(got == m, "echo of %d bytes differs", len(m))
            # fragmented, both types: one message at the backend
            await ws.send(["ab", "", "cd"])
            eq(await ws.recv(), "abcd", "fragmented text")
            await ws.send([b"\x01" * 5000, b"\x02" * 3])
            eq(await ws.recv(), b"\x01" * 5000 + b"\x02" * 3,
               "fragmented binary")
            # lws answers the client's own pings
            await asyncio.wait_for(await ws.ping(b"p1"), 10)
            await ws.close(4001, "bye now")
        eq((ws.close_code, ws.close_reason), (4001, "bye now"),
           "the close the client saw echoed")

    for mount in WS_MOUNTS:
        ws_run(one(mount))
    wait_until(lambda: len(ws_closes(env)) == 2, "backend saw the closes")
    for r in ws_closes(env):
        eq((r["closed"], r["reason"]), (4001, "bye now"),
           "close code and reason at the backend")


@case("ws-closes", backends=WS_BACKENDS)
def t_ws_closes(env, proto):
    """The backend's close code and reason reach the client; a backend that
    pings gets the client's pong; a backend missing (connect refused) and
    one dropping the connection or writing garbage end the client's ws
    with 1014 / 1011 / 1014, and the daemon serves on.  Once the refusing
    backend is known down, lws-uds-proxyd answers an upgrade to it 503
    before the 101."""
    env.start_daemon(mounts=ws_mounts(env))

    async def closes(mount):
        async with ws_connect(env, proto, mount +
                              "/close?code=4321&reason=gone%20away") as ws:
            try:
                await ws.recv()
            except websockets.ConnectionClosed:
                pass
        eq((ws.close_code, ws.close_reason), (4321, "gone away"),
           "backend's close at the client")
        async with ws_connect(env, proto, mount + "/ping") as ws:
            eq(await ws.recv(), "pong-ok", "backend's ping answered")
        for path, code in (("/abort", 1011), ("/garbage", 1014)):
            async with ws_connect(env, proto, mount + path) as ws:
                try:
                    await ws.recv()
                except websockets.ConnectionClosed:
                    pass
            eq(ws.close_code, code, "close code after " + path)

    async def missing(mount):
        async with ws_connect(env, proto, mount + "/echo",
                              close_timeout=2.5) as ws:
            try:
                await ws.recv()
            except websockets.ConnectionClosed:
                pass
        eq(ws.close_code, 1014, "close code, backend missing")

    for mount in WS_MOUNTS:
        ws_run(closes(mount))
    env.backends["ws"].kill(signal.SIGKILL)
    # closed before the backend's 101, while the client is still paused:
    # the close handshake must still complete
    with WsCloseWaits() as waits:
        ws_run(missing(WS_MOUNTS[0]))
        if env.lwsws:
            ws_run(missing(WS_MOUNTS[1]))
    eq(waits.n, 0, "close handshakes the proxy left hanging")
    if not env.lwsws:
        # that connect failed, so the backend (the other mount's too) is
        # known down: its upgrade gets the 503 page, no 101 (ws-down-503)
        res, _ = ws_handshake(env, proto, WS_MOUNTS[1] + "/echo")
        eq(res.status_code, 503, "upgrade to a backend known down")
    env.get_ok(proto, "/app/bytes/100", "after the ws failures")


@case("ws-subprotocols", backends=WS_BACKENDS)
def t_ws_subprotocols(env, proto):
    """With ws-subprotocols listed, the 101 names the subprotocol the
    client offered and the backend accepted; a backend choosing another
    or none is a 1014, never bridged; a name no mount lists is refused by
    lws before any 101.  Under lwsws the plugin exports the names from
    LWS_UDS_PROXY_WS_SUBPROTOCOLS (the host enables them on the vhost,
    lwsws_host.py); lws-uds-proxyd ignores the variable."""
    env.start_daemon(mounts=ws_mounts(env, {"ws-subprotocols":
                                            "chat, superchat"}),
                     environ={"LWS_UDS_PROXY_WS_SUBPROTOCOLS":
                              "chat,superchat"})

    async def one(mount):
        async with ws_connect(env, proto, mount + "/hello",
                              subprotocols=["superchat"]) as ws:
            eq(ws.subprotocol, "superchat", "subprotocol in the 101")
            seen = json.loads(await ws.recv())
            eq(seen["subprotocol"], "superchat", "offered to the backend")
            await ws.send("x")
            eq(await ws.recv(), "x", "echo")
        for path in ("/proto-none", "/proto-other"):
            async with ws_connect(env, proto, mount + path,
                                  subprotocols=["chat"]) as ws:
                eq(ws.subprotocol, "chat", "subprotocol in the 101")
                try:
                    await ws.recv()
                except websockets.ConnectionClosed:
                    pass
            eq(ws.close_code, 1014, "close code for " + path)
        try:
            async with ws_connect(env, proto, mount + "/echo",
                                  subprotocols=["nope"]):
                pass
            check(False, "a subprotocol nobody lists was bridged")
        except websockets.InvalidHandshake:
            pass
        except (ConnectionError, EOFError, OSError):
            pass

    for mount in WS_MOUNTS:
        ws_run(one(mount))


@case("ws-max-message", backends=WS_BACKENDS)
def t_ws_max_message(env, proto):
    """ws-max-message-kb 64: a 64 KiB message passes both ways, a larger
    one from the client or the backend ends the ws with 1009."""
    env.start_daemon(mounts=ws_mounts(env, {"ws-max-message-kb": "64"}))

    async def one(mount):
        async with ws_connect(env, proto, mount + "/echo") as ws:
            await ws.send(b"a" * 65536)
            eq(len(await ws.recv()), 65536, "64 KiB echoed")
            await ws.send([b"b" * 40000, b"c" * 40000])
            try:
                await ws.recv()
            except websockets.ConnectionClosed:
                pass
        eq(ws.close_code, 1009, "client's too big message")
        async with ws_connect(env, proto, mount +
                              "/flood?n=1&size=70000") as ws:
            try:
                await ws.recv()
            except websockets.ConnectionClosed:
                pass
        eq(ws.close_code, 1009, "backend's too big message")

    for mount in WS_MOUNTS:
        ws_run(one(mount))


@case("ws-flood-rss", protos=("h1",), backends=WS_BACKENDS, timeout=180)
def t_ws_flood_rss(env, proto):
    """A backend flooding a slow client and a client flooding a slow
    backend (64 MiB each way): all bytes arrive and the serving process's
    peak RSS stays within 16 MiB of where it started."""
    env.start_daemon(mounts=ws_mounts(env))
    pid = env.serving_pid()
    base = proc_status(pid)["VmRSS"]
    n, size = 1024, 65536

    async def down():
        async with ws_connect(env, proto, "/ws/flood?n=%d&size=%d" %
                              (n, size), max_queue=1,
                              read_limit=65536) as ws:
            got = 0
            while True:
                try:
                    m = await ws.recv()
                except websockets.ConnectionClosed:
                    break
                got += len(m)
                if got % (size * 64) == 0:
                    await asyncio.sleep(0.05)
            eq(got, n * size, "bytes the client got")

    async def up():
        async with ws_connect(env, proto, "/ws/sink?delay=2",
                              write_limit=65536) as ws:
            blob = b"z" * size
            for _ in range(n):
                await ws.send(blob)
            await ws.send("end")
            eq(await ws.recv(), "got %d" % (n * size), "bytes the backend got")

    ws_run(down(), 150)
    ws_run(up(), 150)
    peak = proc_status(pid)["VmHWM"]
    print("ws flood: RSS %d KiB at start, peak %d KiB" % (base, peak))
    check(peak - base < RSS_LIMIT_KB, "peak RSS grew by %d KiB", peak - base)


@case("ws-browser-flow", backends=WS_BACKENDS)
def t_ws_browser_flow(env, proto):
    """A browser's flow through both mount forms: the app's page comes over
    http(s) (h1, or h2 on TLS) with a cookie; the ws its script opens to
    the same origin (h1 upgrade, as browsers do when RFC 8441 is not
    offered) reaches the same backend at the mapped path with that cookie
    and the page's Origin, and messages flow both ways."""
    env.start_daemon(mounts=ws_mounts(env))
    origin = ("http://127.0.0.1:%d" % env.http_port if proto == "h1" else
              "https://127.0.0.1:%d" % env.https_port)

    async def ws_part(mount, cookie):
        async with ws_connect(env, proto, mount + "/hello",
                              origin=origin,
                              extra_headers=[("Cookie", cookie)]) as ws:
            seen = json.loads(await ws.recv())
            eq(seen["path"], "/hello", "ws path at the backend")
            h = {k.lower(): v for k, v in seen["headers"]}
            eq(h.get("cookie"), cookie, "the page's cookie on the ws")
            eq(h.get("origin"), origin, "the page's Origin on the ws")
            await ws.send("from the page")
            eq(await ws.recv(), "from the page", "echo")
            await ws.send(b"\x00\x01")
            eq(await ws.recv(), b"\x00\x01", "binary echo")

    for mount in WS_MOUNTS:
        r = env.get_ok(proto, mount + "/page")
        check(b"new WebSocket" in r.body, "the page: %r", r.body[:200])
        sc = r.h("set-cookie") or ""
        check(sc.startswith("sid=s3cr3t"), "Set-Cookie of the page: %r", sc)
        ws_run(ws_part(mount, sc.split(";")[0]))
    pages = [q for q in env.backends["ws"].requests() if "page" in q]
    eq([q["page"] for q in pages], ["/page"] * len(WS_MOUNTS),
       "page requests at the ws backend")


WS_IDLE_MOUNTS = ("/wsi", "/wsicb")


@case("ws-idle", backends=WS_BACKENDS, timeout=90)
def t_ws_idle(env, proto):
    """A quiet ws outlives lws's timeout-secs, the vhost's
    keepalive_timeout and the plugin's idle-timeout-ms (all set to 1 s
    here, for lws's 5 s and 60 s), then still carries messages; a mount's
    ws-idle-timeout-ms ends a quiet one with 1001 "idle timeout" toward
    both peers.  The waits are the idleness under test."""
    b = env.backends["ws"]
    idle = {"ws-idle-timeout-ms": "500"}
    mounts = ws_mounts(env) + [
        {"mountpoint": "/wsi", "origin": b.origin("/"), "pmo": [idle]},
        {"mountpoint": "/wsicb", "origin": "callback://lws-uds-proxy",
         "pmo": [{"backend": b.origin("/")}, idle]},
    ]
    env.start_daemon(mounts=mounts, pvo={"idle-timeout-ms": "1000"},
                     global_extra={"timeout-secs": "1"},
                     vhost_extra={"keepalive_timeout": "1"})

    async def run():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        quiet = [await ws_connect(env, proto, m + "/echo")
                 for m in WS_MOUNTS]
        bounded = [await ws_connect(env, proto, m + "/echo")
                   for m in WS_IDLE_MOUNTS]
        try:
            for m, ws in zip(WS_IDLE_MOUNTS, bounded):
                try:
                    await asyncio.wait_for(ws.recv(), 20)
                    check(False, "%s: a message on an idle ws", m)
                except websockets.ConnectionClosed:
                    pass
                eq((ws.close_code, ws.close_reason), (1001, "idle timeout"),
                   m + ": close at the client")
            # three times every timeout that could cut the quiet ones
            await asyncio.sleep(max(0.0, 3.5 - (loop.time() - t0)))
            for m, ws in zip(WS_MOUNTS, quiet):
                await ws.send("still here")
                eq(await asyncio.wait_for(ws.recv(), 10), "still here",
                   m + ": echo after 3.5 s quiet")
        finally:
            for ws in quiet + bounded:
                await ws.close()

    ws_run(run())
    closed = {}
    for q in ws_closes(env):
        closed.setdefault(q["path"], []).append((q["closed"], q["reason"]))
    eq(closed.get("/echo", [])[:len(WS_IDLE_MOUNTS)].count(
        (1001, "idle timeout")), len(WS_IDLE_MOUNTS),
        "idle closes at the backend: %r" % closed)

# ":protocol") sends the extended CONNECT; the ws frames inside DATA are
# made and read here (RFC 6455 5.2, client frames masked).

def _ws8441_frame(op, payload, fin=True):
    mask = os.urandom(4)
    n = len(payload)
    b0 = (0x80 if fin else 0) | op
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, 0x80 | 127]) + n.to_bytes(8, "big")
    key = (mask * (n // 4 + 1))[:n]
    return head + mask + (int.from_bytes(payload, "big") ^
                          int.from_bytes(key, "big")).to_bytes(n, "big")


def _ws8441_parse(buf):
    """One unmasked server frame off buf: (fin, op, payload, rest) or
    None when buf does not hold a whole one yet."""
    if len(buf) < 2:
        return None
    check(not buf[1] & 0x80, "server frame is masked")
    n, off = buf[1] & 0x7f, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, off = int.from_bytes(buf[2:4], "big"), 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, off = int.from_bytes(buf[2:10], "big"), 10
    if len(buf) < off + n:
        return None
    return bool(buf[0] & 0x80), buf[0] & 0x0f, buf[off:off + n], buf[off + n:]


class Ws8441:
    """One ws over an h2 stream of an H2Client (RFC 8441 extended
    CONNECT)."""

    def __init__(self, env, path, headers=()):
        import h2.events
        import h2.settings
        self.h = H2Client(env.https_port)
        # the server's first SETTINGS, seen as it is applied
        got = []
        rd = self.h.c.receive_data

        def receive_data(d):
            evs = rd(d)
            got.extend(e for e in evs
                       if isinstance(e, h2.events.RemoteSettingsChanged))
            return evs
        self.h.c.receive_data = receive_data
        self.h.pump(lambda: got, timeout=10)
        self.offered = self.h.c.remote_settings.get(
            h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL, 0)
        self.sid = None
        self.env, self.path, self.headers = env, path, headers
        self.buf = b""

    def open(self):
        c = self.h
        self.sid = c.c.get_next_available_stream_id()
        hs = [(":method", "CONNECT"), (":protocol", "websocket"),
              (":scheme", "https"),
              (":authority", "127.0.0.1:%d" % self.env.https_port),
              (":path", self.path), ("sec-websocket-version", "13")]
        c.c.send_headers(self.sid, hs + list(self.headers),
                         end_stream=False)
        c.streams[self.sid] = {"headers": [], "data": b"", "ended": False,
                               "reset": None, "trailers": []}
        c.flush()
        st = c.streams[self.sid]
        c.pump(lambda: st["headers"] or st["ended"] or
               st["reset"] is not None, timeout=20)
        return h2_status(st)

    def poll(self):
        """Has anything arrived on the stream (waiting 10 ms at most)?"""
        st = self.h.streams[self.sid]

        def any_():
            return bool(st["data"] or self.buf) or st["ended"] or \
                st["reset"] is not None
        try:
            self.h.pump(any_, timeout=0.01)
        except Failure:
            if self.h.closed:
                raise
        return any_()

    def send(self, op, payload, fin=True):
        # DATA frames as the window and frame size allow
        self.h.send_bodies({self.sid: _ws8441_frame(op, payload, fin)},
                           end=False)

    def recv(self, timeout=20):
        """(op, payload) of the next whole message (control frames
        included, one each), or None when the stream ended first."""
        st = self.h.streams[self.sid]
        msg, mop = b"", None
        while True:
            def have():
                return (_ws8441_parse(self.buf + st["data"]) is not None or
                        st["ended"] or st["reset"] is not None)
            self.h.pump(have, timeout=timeout)
            self.buf += st["data"]
            st["data"] = b""
            f = _ws8441_parse(self.buf)
            if f is None:
                return None
            fin, op, payload, self.buf = f
            if op >= 8:
                return op, payload
            if op:
                mop = op
            msg += payload
            if fin:
                return mop, msg

    def close(self):
        try:
            self.h.close()
        except Exception:
            pass


@case("ws-h2", protos=("h2",), backends=WS_BACKENDS)
def t_ws_h2(env, proto):
    """RFC 8441: the server's SETTINGS offer ENABLE_CONNECT_PROTOCOL; an
    extended CONNECT (":protocol websocket") on both mount forms gets 200,
    reaches the backend as an h1 upgrade at the mapped path with the
    query and Origin; text, binary, fragmented and 70000-byte messages go
    both ways; the client's close code and reason reach the backend and
    come back; a second ws on the same connection works after it.  A
    quiet one outlives lws's timeout-secs and keepalive_timeout (1 s
    here; the wait is the idleness under test)."""
    env.start_daemon(mounts=ws_mounts(env), pvo={"idle-timeout-ms": "1000"},
                     global_extra={"timeout-secs": "1"},
                     vhost_extra={"keepalive_timeout": "1"})
    for mount in WS_MOUNTS:
        w = Ws8441(env, mount + "/hello?x=1",
                   headers=[("origin", "https://example.test")])
        try:
            eq(w.offered, 1, "SETTINGS_ENABLE_CONNECT_PROTOCOL")
            eq(w.open(), 200, mount + ": status of the extended CONNECT")
            op, m = w.recv()
            eq((op, m[:2]), (1, b"{\""), "hello is text: %r" % m)
            seen = json.loads(m)
            eq(seen["path"], "/hello?x=1", "path at the backend")
            h = {k.lower(): v for k, v in seen["headers"]}
            eq(h.get("origin"), "https://example.test", "Origin")
            eq(h.get("x-forwarded-proto"), "https", "X-Forwarded-Proto")
            if mount == WS_MOUNTS[0]:
                time.sleep(2.5)
            for op, m in ((1, "h\u00e9llo".encode()), (2, b"\x00\xff"),
                          (1, b""), (2, bytes(range(256)) * 273)):
                w.send(op, m)
                eq(w.recv(), (op, m), "echo of %d bytes" % len(m))
            w.send(1, b"ab", fin=False)
            w.send(0, b"cd")
            eq(w.recv(), (1, b"abcd"), "fragmented text")
            w.send(9, b"p1")
            eq(w.recv(), (10, b"p1"), "pong to the client's ping")
            w.send(8, (4001).to_bytes(2, "big") + b"bye now")
            eq(w.recv(), (8, (4001).to_bytes(2, "big") + b"bye now"),
               "close echoed")
            # another ws on the same h2 connection (another :path: see
            # the README's Limits for lws 4.1.6 and a repeated one)
            w.path = mount + "/echo"
            eq(w.open(), 200, mount + ": second extended CONNECT")
            w.send(2, b"again")
            eq(w.recv(), (2, b"again"), "echo on the second stream")
            w.send(8, (1000).to_bytes(2, "big"))
            eq(w.recv(), (8, (1000).to_bytes(2, "big")), "second close")
        finally:
            w.close()
    wait_until(lambda: len(ws_closes(env)) == 4, "backend saw the closes")
    eq(sorted((r["closed"], r["reason"]) for r in ws_closes(env)),
       [(1000, ""), (1000, ""), (4001, "bye now"), (4001, "bye now")],
       "close codes and reasons at the backend")


@case("ws-h2-flood-rss", protos=("h2",), backends=WS_BACKENDS, timeout=180)
def t_ws_h2_flood_rss(env, proto):
    """Backpressure over an RFC 8441 stream.  A backend flooding a client
    that reads slowly (8 MiB): all bytes arrive.  A client flooding a
    backend that has stopped reading: lws cannot pause an h2 stream
    (README Limits), so once the relay's queue is full the ws ends with a
    close 1008 that the client answers, and the h2 connection carries
    another ws after it (no GOAWAY).  The serving process's peak RSS stays
    within 16 MiB of where it started."""
    env.start_daemon(mounts=ws_mounts(env))
    pid = env.serving_pid()
    base = proc_status(pid)["VmRSS"]
    n, size = 128, 65536
    w = Ws8441(env, "/ws/flood?n=%d&size=%d" % (n, size))
    try:
        eq(w.open(), 200, "extended CONNECT")
        got, msgs = 0, 0
        while True:
            r = w.recv(timeout=60)
            if r is None or r[0] == 8:
                break
            got += len(r[1])
            msgs += 1
            if msgs % 16 == 0:
                time.sleep(0.05)
        eq(got, n * size, "bytes the client got")
    finally:
        w.close()
    w = Ws8441(env, "/ws/sink?delay=60000")
    try:
        eq(w.open(), 200, "extended CONNECT")
        blob, sent = b"z" * size, 0
        while not w.poll():
            check(sent < 64 << 20, "64 MiB went to a backend that does "
                  "not read, and no close came")
            w.send(2, blob)
            sent += size
        op, m = w.recv()
        eq((op, m[:2]), (8, (1008).to_bytes(2, "big")),
           "close after %d bytes" % sent)
        w.send(8, m[:2])
        print("ws h2 flood: closed 1008 after %d KiB sent" % (sent >> 10))
        w.path = "/ws/echo"
        eq(w.open(), 200, "another ws on the connection")
        w.send(1, b"still here")
        eq(w.recv(), (1, b"still here"), "echo after the close")
    finally:
        w.close()
    peak = proc_status(pid)["VmHWM"]
    print("ws h2 flood: RSS %d KiB at start, peak %d KiB" % (base, peak))
    check(peak - base < RSS_LIMIT_KB, "peak RSS grew by %d KiB", peak - base)


# ---- a backend known down before the 101 (issue 11) ----------------------
#
# lws-uds-proxyd hands the plugin its mount table, so an h1 upgrade whose
# mount's backend is known down gets the 503 page, not a 101 and a close
# 1014 (plugin/ws_early.c).  Under lwsws nothing changes.  The handshake
# is made with python3-websockets's sans-I/O client, which keeps the
# response body (the asyncio one raises InvalidStatusCode without it).

def ws_handshake(env, proto, path, timeout=20, get_first=None):
    """One upgrade on a fresh connection, after an HTTP GET of get_first
    on it if given (keep-alive: lws binds such a connection's later
    requests to another protocol): (response, handshake error); the
    response's status_code, headers and body as the client read them."""
    import socket
    from websockets.client import ClientConnection
    from websockets.http11 import Response
    from websockets.uri import parse_uri
    c = ClientConnection(parse_uri(ws_url(env, proto, path)))
    c.send_request(c.connect())
    port = env.http_port if proto == "h1" else env.https_port
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if proto != "h1":
            ctx = _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = _ssl.CERT_NONE
            s = ctx.wrap_socket(s, server_hostname="localhost")
        if get_first:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" %
                      get_first.encode())
            got = b""
            while b"\r\n\r\n" not in got:
                d = s.recv(65536)
                check(d, "%s: closed", get_first)
                got += d
            head, body = got.split(b"\r\n\r\n", 1)
            check(head.startswith(b"HTTP/1.1 200"), "%s: %r", get_first, head)
            n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            while len(body) < n:
                d = s.recv(65536)
                check(d, "%s: closed in the body", get_first)
                body += d
        for d in c.data_to_send():
            s.sendall(d)
        eof = False
        while True:
            got = [e for e in c.events_received() if isinstance(e, Response)]
            if got:
                return got[0], c.handshake_exc
            check(not eof, "%s: connection closed without a response", path)
            d = s.recv(65536)
            if d:
                c.receive_data(d)
            else:
                c.receive_eof()
                eof = True
    finally:
        s.close()


def ws_down_mounts(env):
    """/wsgone: a unix socket that is not there; /wsrefuse: one bound but
    not listening; /wsgroup: a list of two missing ones; /wstcpgroup: a
    list of two TCP ports nobody listens on."""
    from harness import free_port
    gone = os.path.join(env.dir, "gone%d.sock")
    refuse = env.bound_not_listening("refuse")
    env.refuse_sock = env.bound_socks[-1]
    env.dead_tcp = (free_port(), free_port())

    def cb(mp, backend):
        return {"mountpoint": mp, "origin": "callback://lws-uds-proxy",
                "pmo": [{"backend": backend}]}
    return ws_mounts(env) + [
        cb("/wsgone", "http://+%s:/" % (gone % 1)),
        cb("/wsrefuse", "http://+%s:/" % refuse),
        cb("/wsgroup", "http://+%s:/, http://+%s:/" % (gone % 2,
                                                      gone % 3)),
        cb("/wstcpgroup", "http://127.0.0.1:%d/, http://127.0.0.1:%d/" %
           env.dead_tcp),
    ]


def ws_closed_with(env, proto, path):
    """The close code a ws to path ends with (it must open first)."""
    async def one():
        async with ws_connect(env, proto, path, close_timeout=2.5) as ws:
            try:
                await ws.recv()
            except websockets.ConnectionClosed:
                pass
        return ws.close_code
    return ws_run(one())


def ws_check_503(env, proto, path, page, get_first=None):
    """path's upgrade gets the 503 page (status, body, headers) that the
    HTTP request `page` got."""
    res, exc = ws_handshake(env, proto, path, get_first=get_first)
    eq(res.status_code, 503, path + ": status of the upgrade")
    check(isinstance(exc, websockets.InvalidStatus), "%s: %r", path, exc)
    eq(res.body, page.body, path + ": body is the 503 page")
    for h in ("content-type", "cache-control", "retry-after"):
        eq(res.headers.get(h), page.h(h), path + ": " + h)
    check(b'href="/error.css"' in res.body, "%s: no /error.css link", path)


@case("ws-down-503", backends=WS_BACKENDS)
def t_ws_down_503(env, proto):
    """A ws upgrade whose backend is known down gets the same 503 page as
    an HTTP request, before any 101: a unix socket missing, one refusing
    (known once a connect to it failed: the first ws gets its 101 and a
    close 1014), a list of missing ones, a list of TCP members marked
    down.  A backend that is up still echoes; one that takes the
    connection but answers the upgrade with no 101 still closes the ws
    as before.  Under lwsws (no mount table) and over RFC 8441 the close
    1014 stays (README Limits)."""
    env.start_daemon(mounts=ws_down_mounts(env))
    lwsws = bool(env.lwsws)

    async def echo():
        async with ws_connect(env, proto, "/ws/echo") as ws:
            await ws.send("still up")
            eq(await ws.recv(), "still up", "echo through a live backend")

    ws_run(echo())
    # the main backend is HTTP only: its answer to the upgrade is no 101
    eq(ws_closed_with(env, proto, "/app/echo"), 1014,
       "upgrade refused by the backend")

    page = env.curl(proto, "/wsgone/x")
    eq(page.status, 503, "HTTP GET of a missing backend")
    # the TCP members are marked down by a request that tried both
    eq(env.curl(proto, "/wstcpgroup/x").status, 503, "HTTP GET, TCP list")
    if lwsws:
        for mp in ("/wsgone", "/wsrefuse", "/wsgroup", "/wstcpgroup"):
            eq(ws_closed_with(env, proto, mp + "/echo"), 1014,
               mp + " under lwsws")
    else:
        ws_check_503(env, proto, "/wsgone/echo", page)
        ws_check_503(env, proto, "/wsgone/echo", page,
                     get_first="/app/bytes/10")
        ws_check_503(env, proto, "/wsgroup/echo?x=1", page)
        ws_check_503(env, proto, "/wstcpgroup/echo", page)
        # refusing and not yet known: the ws finds out after its 101
        eq(ws_closed_with(env, proto, "/wsrefuse/echo"), 1014,
           "first ws to a refusing backend")
        ws_check_503(env, proto, "/wsrefuse/echo", page)
        ws_check_503(env, proto, "/wsrefuse/echo", page)
        # back within down-ms: never refused; one probe (an empty
        # connection, before the ws's own), then none (it is up again)
        ls = env.refuse_sock
        ls.listen(8)
        ls.settimeout(20)
        for rnd, probes in ((1, 1), (2, 0)):
            res, _ = ws_handshake(env, proto, "/wsrefuse/echo")
            eq(res.status_code, 101, "upgrade once it listens, %d" % rnd)
            for k in range(probes + 1):
                c, _ = ls.accept()
                c.settimeout(20)
                first = c.recv(65536)
                c.close()
                if k < probes:
                    eq(first, b"", "round %d: the probe is empty" % rnd)
                else:
                    check(first.startswith(b"GET /echo"), "round %d: the "
                          "ws's connection sent %r", rnd, first[:40])
    ws_run(echo())
    if proto == "h2":
        # RFC 8441: the page as ":status 503", ending the stream; the h2
        # connection carries a ws after it
        page2 = env.curl("h2", "/wsgone/x")
        w = Ws8441(env, "/wsgone/echo")
        try:
            if lwsws:
                eq(w.open(), 200, "extended CONNECT under lwsws")
                op, m = w.recv()
                eq((op, m[:2]), (8, (1014).to_bytes(2, "big")),
                   "close over h2 under lwsws")
            else:
                eq(w.open(), 503, "extended CONNECT to a missing backend")
                st = w.h.streams[w.sid]
                w.h.pump(lambda: st["ended"] or st["reset"] is not None,
                         timeout=20)
                check(st["ended"], "the 503 did not end its stream: %r", st)
                eq(st["data"], page2.body, "h2: body is the 503 page")
                h = dict(st["headers"])
                for k in ("content-type", "cache-control", "retry-after"):
                    eq(h.get(k), page2.h(k), "h2: " + k)
            w.path = "/ws/echo"
            eq(w.open(), 200, "a ws on the same h2 connection after it")
            w.send(1, b"after")
            eq(w.recv(), (1, b"after"), "echo after the 503")
        finally:
            w.close()
    env.get_ok(proto, "/app/bytes/100", "after the refused upgrades")


@case("ws-down-503-load", backends=WS_BACKENDS, timeout=180)
def t_ws_down_503_load(env, proto):
    """200 ws upgrades to a missing backend from 4 concurrent clients all
    get the 503 page (and, on the TLS port, 200 RFC 8441 streams on 4 h2
    connections); the daemon's descriptors (/proc) come back to where
    they were and a ws through a live backend works after."""
    import threading
    from harness import proc_fds
    env.start_daemon(mounts=ws_down_mounts(env))
    check(not env.lwsws, "lws-uds-proxyd only (no mount table in lwsws)")
    pid = env.serving_pid()
    # before any client (env.fd_baseline() asks each unix backend for
    # /stats, which the ws backend has not; a ws's backend connection is
    # never pooled, so nothing stays open after one)
    wait_until(lambda: proc_fds(pid)["tcp"] == 0, "no client connection",
               alive=env.daemon.exited)
    base = proc_fds(pid)
    ws_run(_ws_echo_once(env, proto))
    n, clients = 200, 4
    bad = []

    def worker(k):
        for i in range(k, n, clients):
            try:
                res, exc = ws_handshake(env, proto, "/wsgone/l%d" % i)
                if res.status_code != 503 or b"503" not in (res.body or b""):
                    bad.append((i, res.status_code))
            except Exception as e:  # noqa: BLE001 - counted, not raised
                bad.append((i, repr(e)))
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    eq(len(bad), 0, "upgrades without their 503 (of %d): %r" % (n, bad[:5]))
    print("ws down load: %d upgrades, %d failed" % (n, len(bad)))
    if proto == "h2":
        # as many RFC 8441 streams, 4 h2 connections one stream at a time
        def h2worker(k):
            w = None
            try:
                w = Ws8441(env, "/wsgone/h2")
                for i in range(k, n, clients):
                    w.path = "/wsgone/h2-%d" % i
                    st = w.open()
                    s_ = w.h.streams[w.sid]
                    w.h.pump(lambda: s_["ended"] or
                             s_["reset"] is not None, timeout=20)
                    if st != 503 or b"503" not in s_["data"]:
                        bad.append((i, st))
            except Exception as e:  # noqa: BLE001 - counted
                bad.append((k, repr(e)))
            finally:
                if w:
                    w.close()
        ts = [threading.Thread(target=h2worker, args=(k,))
              for k in range(clients)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        eq(len(bad), 0, "h2 streams without their 503 (of %d): %r" %
           (n, bad[:5]))
        print("ws down load: %d RFC 8441 streams, %d failed" % (n, len(bad)))
    last = [None]

    def same():
        last[0] = proc_fds(pid)
        return last[0] == base
    wait_until(same, "daemon fds back to %r (now %r)" % (base, last),
               alive=env.daemon.exited)
    print("ws down load: daemon fds back to %r" % (base,))
    ws_run(_ws_echo_once(env, proto))


async def _ws_echo_once(env, proto):
    async with ws_connect(env, proto, "/wscb/echo") as ws:
        await ws.send(b"x" * 1000)
        eq(await ws.recv(), b"x" * 1000, "echo")


@case("ws-subprotocols-per-mount", backends=WS_BACKENDS)
def t_ws_subprotocols_per_mount(env, proto):
    """A subprotocol the vhost has (another mount lists it) but this mount
    does not list gets the 101 from lws and then a close 1014, never the
    backend; the mount's own one is bridged.  The vhost enables the names
    in ws-protocols as lwsws needs, which lws-uds-proxyd accepts too.
    LWS_UDS_PROXY_WS_SUBPROTOCOLS
    with bad names: under lwsws the plugin logs each and exports the rest;
    lws-uds-proxyd says it ignores the variable."""
    b = env.backends["ws"]
    mounts = env.standard_mounts() + [
        {"mountpoint": "/ws", "origin": b.origin("/"),
         "pmo": [{"ws-subprotocols": "chat"}]},
        {"mountpoint": "/wscb", "origin": "callback://lws-uds-proxy",
         "pmo": [{"backend": b.origin("/")},
                 {"ws-subprotocols": "superchat"}]},
    ]
    # the names enabled on the vhost as lwsws needs them (README, WebSocket
    # options): lws-uds-proxyd takes the same config
    pvo = dict(env.PVO_DEFAULTS, backend=env.backends["main"].origin("/"))
    env.start_daemon(mounts=mounts, vhost_extra={"ws-protocols": [
        {"lws-uds-proxy": pvo}, {"chat": {}}, {"superchat": {}}]},
        environ={"LWS_UDS_PROXY_WS_SUBPROTOCOLS":
                 " chat,, bad/name ,superchat,lws-uds-proxy,chat," + "x" * 64})

    async def bridged(mount, sub):
        async with ws_connect(env, proto, mount + "/hello",
                              subprotocols=[sub]) as ws:
            eq(ws.subprotocol, sub, "subprotocol in the 101 on " + mount)
            seen = json.loads(await ws.recv())
            eq(seen["subprotocol"], sub, "offered to the backend")
            await ws.send("x")
            eq(await ws.recv(), "x", "echo")

    def upgrades():
        return len([r for r in b.requests() if "closed" not in r])

    async def refused(mount, sub):
        before = upgrades()
        async with ws_connect(env, proto, mount + "/hello",
                              subprotocols=[sub]) as ws:
            eq(ws.subprotocol, sub, "subprotocol in the 101 on " + mount)
            try:
                got = await ws.recv()
                check(False, "%s bridged on %s: %r" % (sub, mount, got))
            except websockets.ConnectionClosed:
                pass
        eq(ws.close_code, 1014, "close code for %s on %s" % (sub, mount))
        eq(upgrades(), before, "upgrades reaching the backend")

    ws_run(bridged("/ws", "chat"))
    ws_run(bridged("/wscb", "superchat"))
    ws_run(refused("/ws", "superchat"))
    ws_run(refused("/wscb", "chat"))
    if env.lwsws:
        for n, shown, why in (
                (3, "bad/name", "not a token"),
                (5, "lws-uds-proxy", "the plugin's own protocol"),
                (6, "chat", "listed twice"),
                (7, "x" * 39 + "...", "longer than 63 bytes")):
            check(_log_has(env, "name %d '%s' ignored: %s" % (n, shown, why)),
                  "log line for LWS_UDS_PROXY_WS_SUBPROTOCOLS name %d" % n)
    else:
        check(_log_has(env, "LWS_UDS_PROXY_WS_SUBPROTOCOLS is for lwsws and "
                       "ignored here"), "the daemon's note on the variable")
