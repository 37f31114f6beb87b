#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# WebSocket test backend (Debian's python3-websockets 10.4), with the same
# command line as backend.py.  Upgrades by path:
#   /hello...        first message: JSON of the upgrade request as seen
#                    here (path, headers, subprotocol), then echo
#   /echo...         echo every message, type kept
#   /flood?n=N&size=S   N binary messages of S bytes, then close 1000
#   /close?code=C&reason=R   close at once with C and R
#   /sink?delay=MS   read slowly; on the text "end" answer "got <bytes>"
#   /ping            ping the client, answer "pong-ok" when it pongs
#   /abort           drop the TCP connection after the handshake
#   /garbage         write bytes that are no ws frame after the handshake
#   /page (plain GET, no upgrade)   an HTML page whose script opens a ws
#                    to ./hello, with a Set-Cookie
# select_subprotocol: /proto-none picks none, /proto-other picks "other",
# else the first offered that the server knows (chat, superchat).

import argparse
import asyncio
import http
import json
import os
import ssl
import sys
import urllib.parse

import websockets
import websockets.server

KNOWN = ["chat", "superchat"]

# what a browser would run: a ws to the page's own origin and path prefix
PAGE = """<!doctype html><title>ws</title><script>
var u = new URL("hello", location.href); u.protocol = u.protocol.replace("http", "ws");
var ws = new WebSocket(u); ws.onmessage = function (e) { document.title = e.data; };
</script>
"""

reqlog = None


class Proto(websockets.server.WebSocketServerProtocol):
    def select_subprotocol(self, client_subprotocols, server_subprotocols):
        if self.path.startswith("/proto-none"):
            return None
        if self.path.startswith("/proto-other"):
            return "other"
        for p in client_subprotocols:
            if p in KNOWN:
                return p
        return None

    async def process_request(self, path, request_headers):
        # The app's own page, on the same socket as its WebSockets (a
        # browser's flow: this page, then a ws from its script).
        if not path.startswith("/page") or \
                "upgrade" in request_headers.get("Connection", "").lower():
            return None
        if reqlog:
            with open(reqlog, "a") as f:
                f.write(json.dumps({"page": path, "headers": [
                    [k, v] for k, v in request_headers.raw_items()]}) + "\n")
        body = PAGE.encode()
        return (http.HTTPStatus.OK, [("Content-Type", "text/html"),
                      ("Set-Cookie", "sid=s3cr3t; Path=/; HttpOnly")], body)




async def handler(ws, path):
    u = urllib.parse.urlsplit(path)
    q = dict(urllib.parse.parse_qsl(u.query))
    seen = {"path": path,
            "headers": [[k, v] for k, v in ws.request_headers.raw_items()],
            "subprotocol": ws.subprotocol}
    if reqlog:
        with open(reqlog, "a") as f:
            f.write(json.dumps(seen) + "\n")
    p = u.path
    try:
        if p.startswith("/hello"):
            await ws.send(json.dumps(seen))
            p = "/echo"
        if p.startswith("/echo") or p.startswith("/proto"):
            async for m in ws:
                await ws.send(m)
        elif p == "/flood":
            blob = bytes(i % 251 for i in range(int(q.get("size", 1000))))
            for _ in range(int(q.get("n", 1))):
                await ws.send(blob)
            await ws.close(1000, "flood done")
        elif p == "/close":
            await ws.close(int(q.get("code", 1000)), q.get("reason", ""))
        elif p == "/sink":
            delay = int(q.get("delay", 0)) / 1000.0
            got = 0
            async for m in ws:
                if m == "end":
                    await ws.send("got %d" % got)
                    continue
                got += len(m)
                if delay:
                    await asyncio.sleep(delay)
        elif p == "/ping":
            waiter = await ws.ping(b"hi")
            await asyncio.wait_for(waiter, 10)
            await ws.send("pong-ok")
            async for m in ws:
                await ws.send(m)
        elif p == "/abort":
            ws.transport.abort()
        elif p == "/garbage":
            ws.transport.write(b"\xff\xff\xff\xff garbage \x00\x01")
            await asyncio.sleep(5)
    except websockets.ConnectionClosed:
        pass
    if reqlog:
        await ws.wait_closed()
        with open(reqlog, "a") as f:
            f.write(json.dumps({"path": path, "closed": ws.close_code,
                                "reason": ws.close_reason}) + "\n")


async def main(a):
    global reqlog
    reqlog = a.reqlog
    ctx = None
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls[0], a.tls[1])
    kw = dict(create_protocol=Proto,
              subprotocols=KNOWN + ["other"], max_size=None,
              ping_interval=None, ssl=ctx)
    if a.unix:
        path = a.unix
        if path.startswith("@"):
            path = "\0" + path[1:]
        srv = await websockets.unix_serve(handler, path, **kw)
    else:
        host, port = a.tcp.rsplit(":", 1)
        srv = await websockets.serve(handler, host, int(port), **kw)
        if a.portfile:
            with open(a.portfile + ".tmp", "w") as f:
                f.write(str(srv.sockets[0].getsockname()[1]))
            os.rename(a.portfile + ".tmp", a.portfile)
    if a.pidfile:
        with open(a.pidfile, "w") as f:
            f.write(str(os.getpid()))
    await asyncio.Future()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--unix", metavar="PATH")
    g.add_argument("--tcp", metavar="HOST:PORT")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--pidfile")
    ap.add_argument("--portfile")
    ap.add_argument("--reqlog")
    ap.add_argument("--statedir")
    try:
        asyncio.run(main(ap.parse_args()))
    except KeyboardInterrupt:
        sys.exit(0)
