#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# A misbehaving HTTP/1.1 backend for the hostile-backend tests (hostile.py):
# stdlib only, asyncio, one unix socket.  The path picks the misbehaviour
# (ROUTES); every request and every connection's end is recorded so a test
# can see what the proxy sent and when it let go of a connection.

import argparse
import asyncio
import json
import os
import signal
import socket
import struct
import sys

# The request side is the same as the well-behaved backend's: only the
# answers misbehave.
from backend import BadRequest, hget, read_body, read_head

ROUTES = """
/echo               200 JSON: method, target, headers, body_length,
                    body_sha256, conn
/stats              200 JSON: connections, open, closed (ids), requests,
                    flood (conn id -> bytes written so far)
/status-garbage/K   a broken status line / head, variant K (STATUS_GARBAGE)
/head-endless       "200 OK" then 1 KiB header lines until the peer closes
/head-stall         part of a head, then silence until the peer closes
/cl-short           Content-Length 100000, 50000 bytes, then close
/bad-chunk/K        chunked 200 whose body goes wrong, variant K (BAD_CHUNK)
/cl-te              both Content-Length and Transfer-Encoding: chunked
/two-cl/K           two Content-Length headers (K=0 differing, 1 equal)
/crlf-hdr/K         a header value with CR, LF or NUL, variant K (CRLF_HDR)
/never              reads the request, never answers
/interim/K          1xx interim responses then 200, variant K (INTERIM)
/flood              Content-Length 1 GiB, written as fast as it is taken
/hold?gate=NAME     answers once the file NAME exists in the state dir
/ka?drop=HOW        200 keep-alive; the next request on this connection is
                    logged "dropped" and the connection closed unanswered:
                    HOW = fin | rst (before reading its body),
                    fin-after-body | rst-after-body (after)
/many-fields/N      200 keep-alive whose head has N fields: X-F-0: 0 ...
                    X-F-<N-2>: <N-2>, then Content-Length
"""

# Each variant is the exact bytes written after the request (then close).
STATUS_GARBAGE = [
    b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 -200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"ICY 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 99999999999999999999 OK\r\nContent-Length: 2\r\n\r\nok",
    b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
    b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\n: empty-name\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nno-colon-here\r\nContent-Length: 2\r\n\r\nok",
    bytes((i * 37 + 11) % 256 for i in range(4096)),
    b"HTTP/1.1 200 OK\x00\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nok",
]

# chunked body variants after a "200, Transfer-Encoding: chunked" head;
# True: the body is well-formed (a strict decoder may still refuse it)
BAD_CHUNK = [
    (b"zz\r\nhello\r\n0\r\n\r\n", False),
    (b"-1\r\nhello\r\n0\r\n\r\n", False),
    (b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n", False),
    (b"10\r\n" + b"x" * 32 + b"\r\n0\r\n\r\n", False),
    (b"5\r\nabcdeXX0\r\n\r\n", False),
    (b"\r\nhello\r\n0\r\n\r\n", False),
    (b"5\r\nab", False),
    (b"0x5\r\nhello\r\n0\r\n\r\n", False),
    (b"5\r\nhello\r\n", False),
    (b"+5\r\nhello\r\n0\r\n\r\n", False),
]

CRLF_HDR = [
    b"X-Evil: a\rInjected: 1\r\n",
    b"X-Evil: a\r\n Injected: 1\r\n",
    b"X-Evil: a\x00Injected: 1\r\n",
    b"X-Evil: a\nInjected: 1\r\n",
    b"X-Evil\r\n : a\r\n",
    b"X-Evil: a\r\n\tInjected: 1\r\n",
]

INTERIM = [
    [b"HTTP/1.1 100 Continue\r\n\r\n"],
    [b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"],
    [b"HTTP/1.1 102 Processing\r\n\r\n"] * 3 +
    [b"HTTP/1.1 100 Continue\r\n\r\n"],
    [b"HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"] * 200,
]


class Stats:
    connections = 0
    requests = 0
    open = 0
    closed = []
    flood = {}


def query(target, name, default=None):
    for kv in target.partition("?")[2].split("&"):
        k, _, v = kv.partition("=")
        if k == name:
            return v
    return default


def resp(status, body=b"", headers=(), reason="OK"):
    out = "HTTP/1.1 %d %s\r\n" % (status, reason)
    for n, v in headers:
        out += "%s: %s\r\n" % (n, v)
    out += "Content-Length: %d\r\n\r\n" % len(body)
    return out.encode("latin-1") + body


class Conn:
    def __init__(self, reader, writer, args):
        Stats.connections += 1
        Stats.open += 1
        self.id = Stats.connections
        self.r = reader
        self.w = writer
        self.args = args
        self.drop = None

    def log(self, rec):
        with open(self.args.reqlog, "a") as f:
            f.write(json.dumps(rec) + "\n")

    async def send(self, data):
        self.w.write(data)
        await self.w.drain()

    async def until_closed(self):
        """Read and discard until the proxy closes this connection."""
        while await self.r.read(65536):
            pass

    def rst(self):
        sock = self.w.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))
        except OSError:
            pass

    async def run(self):
        try:
            while True:
                head = await read_head(self.r)
                if head is None or not await self.handle(*head):
                    break
        except (BadRequest, ValueError) as e:
            print("evil: conn %d: %s" % (self.id, e), file=sys.stderr)
        except (OSError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            pass
        finally:
            try:
                self.w.close()
            except OSError:
                pass
            Stats.open -= 1
            Stats.closed.append(self.id)

    async def handle(self, method, target, version, headers):
        Stats.requests += 1
        path = target.partition("?")[0]
        parts = path.split("/")
        route = parts[1] if len(parts) > 1 else ""
        arg = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
        rec = {"conn": self.id, "method": method, "target": target,
               "headers": headers}
        if self.drop:
            rec["dropped"] = self.drop
            if self.drop.endswith("after-body"):
                rec["body_length"], _ = await read_body(self.r, headers)
            self.log(rec)
            if self.drop.startswith("rst"):
                self.rst()
            return False
        if route != "stats":
            self.log(rec)

        if route == "stats":
            doc = {"connections": Stats.connections, "open": Stats.open - 1,
                   "closed": Stats.closed, "requests": Stats.requests,
                   "flood": Stats.flood}
            await self.send(resp(200, json.dumps(doc).encode(),
                                 [("Connection", "close")]))
            return False
        blen, bsha = await read_body(self.r, headers)
        if route == "echo" or route == "ka":
            doc = {"method": method, "target": target, "headers": headers,
                   "body_length": blen, "body_sha256": bsha,
                   "conn": self.id}
            await self.send(resp(200, json.dumps(doc).encode(),
                                 [("Content-Type", "application/json")]))
            if route == "ka":
                self.drop = query(target, "drop", "fin")
            return True
        if route == "status-garbage":
            await self.send(STATUS_GARBAGE[arg])
            return False
        if route == "head-endless":
            await self.send(b"HTTP/1.1 200 OK\r\n")
            n = 0
            while True:
                await self.send(b"X-Pad-%d: %s\r\n" % (n, b"p" * 1000))
                n += 1
        if route == "head-stall":
            await self.send(b"HTTP/1.1 200 OK\r\nX-A: b\r\n")
            await self.until_closed()
            return False
        if route == "cl-short":
            await self.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n"
                            b"\r\n" + b"s" * 50000)
            return False
        if route == "bad-chunk":
            await self.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                            b"\r\n\r\n" + BAD_CHUNK[arg][0])
            # close only once the proxy did: a close of ours would end
            # the body, not its framing error
            await self.until_closed()
            return False
        if route == "cl-te":
            await self.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n"
                            b"5\r\nhello\r\n0\r\n\r\n")
            await self.until_closed()
            return False
        if route == "two-cl":
            second = b"5" if arg else b"6"
            await self.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                            b"Content-Length: 5\r\n"
                            b"Content-Length: " + second + b"\r\n\r\n"
                            b"hello!")
            await self.until_closed()
            return False
        if route == "crlf-hdr":
            # close: a head that parses must not leave a pooled
            # connection behind that nobody answers on
            await self.send(b"HTTP/1.1 200 OK\r\n" + CRLF_HDR[arg] +
                            b"Connection: close\r\n"
                            b"Content-Length: 3\r\n\r\nok\n")
            await self.until_closed()
            return False
        if route == "never":
            await self.until_closed()
            return False
        if route == "interim":
            for r in INTERIM[arg]:
                await self.send(r)
            await self.send(resp(200, b"final\n"))
            return True
        if route == "flood":
            n = 1 << 30
            await self.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                            % n)
            Stats.flood[self.id] = 0
            block = b"f" * (1 << 16)
            while Stats.flood[self.id] < n:
                self.w.write(block)
                await self.w.drain()
                Stats.flood[self.id] += len(block)
            return False
        if route == "hold":
            gate = os.path.join(self.args.statedir,
                                os.path.basename(query(target, "gate", "")))
            while not os.path.exists(gate):
                await asyncio.sleep(0.01)
            await self.send(resp(200, b"held\n"))
            return True
        if route == "many-fields":
            await self.send(resp(200, b"fields\n",
                                 [("X-F-%d" % k, str(k))
                                  for k in range(arg - 1)]))
            return True
        await self.send(resp(404, b"no route\n", reason="Not Found"))
        return True


async def main(args):
    async def on_conn(reader, writer):
        await Conn(reader, writer, args).run()

    try:
        os.unlink(args.unix)
    except FileNotFoundError:
        pass
    server = await asyncio.start_unix_server(on_conn, path=args.unix,
                                             limit=1 << 17)
    with open(args.pidfile, "w") as f:
        f.write("%d\n" % os.getpid())
    print("evil: listening on %s" % args.unix, file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description="misbehaving integration-test backend", epilog=ROUTES,
        formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--unix", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--reqlog", required=True)
    ap.add_argument("--statedir")
    a = ap.parse_args()
    if not a.statedir:
        a.statedir = os.path.dirname(os.path.abspath(a.pidfile))
    asyncio.run(main(a))
