#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# The backend HTTP/1.1 server the integration tests put behind the proxy:
# stdlib only, asyncio, one listener (unix socket, TCP, or TLS over either).
# It reports what it saw (/echo, the request log) and misbehaves on demand
# (slow head, dying mid-body, garbage).  Routes are documented in ROUTES.

import argparse
import asyncio
import hashlib
import json
import os
import signal
import socket
import ssl
import sys

ROUTES = """
/echo[/...]          200 JSON: method, target (raw), version, headers
                     [[name, value], ...] in order, body_length, body_sha256,
                     conn (backend connection number), req_on_conn, name
                     (--name: which backend answered)
/bytes/N[?seed=S]    N pattern bytes with Content-Length
/chunked/N[?seed=S]  same, chunked, in several chunks of varying size
/close/N[?seed=S]    same, no length: Connection: close, body, then close
/big/N               N pattern bytes with Content-Length, written fast
/upload              reads the whole body, 200 JSON {length, sha256}
/headers             many end-to-end response headers plus hop-by-hop ones
/status/N            status N (body unless 1xx/204/304)
/head-test           GET: body; HEAD: same headers incl. Content-Length
/slow-head/SECS      waits SECS before sending the head
/die-mid-body/N      Content-Length N, N/2 bytes, then close
/die-mid-chunked     chunked head, some chunks, then close (no last chunk)
/garbage             non-HTTP bytes, then close
/100-continue        "100 Continue", then 200 with a body
/early/N[?then=T&size=S]  status N at once, before reading any of the
                     request body (as a 404, 401 or 413 often comes), with
                     body "early N\n" or S pattern bytes; then T: close
                     (default: Connection: close, then close unread),
                     discard (keep-alive, then read the body and drop it)
                     or stall (keep-alive, then read nothing; close after
                     60 s)
/bighead/N           200 with an X-Big header of N bytes
/stall-body/N        Content-Length N, N/2 bytes, then silence (60 s)
/slow-upload         reads the body at ?kbps=K KiB/s (default 8192) in
                     small reads, after the file ?gate=NAME exists in the
                     state dir if given; 200 JSON {length, sha256}
/stats               200 JSON {connections, requests, open (connections
                     open now), closed (ids of closed connections),
                     hung_up (ids of connections hangup-every closed)}
Any route, query ?drop-next=before-body|after-body: the next request on
this connection is logged ("dropped") and the connection closed without
an answer, before or after its body is read.  ?close-after=1: answer
without Connection: close, then close anyway.
Any route, query ?close-every=K: the Kth, 2Kth... response on a
connection says Connection: close and the connection closes right after
it (nginx's keepalive_requests).  ?drop-every=K: the same without saying
so.  ?shut-every=K: the same without saying so, as a half-close
(shutdown(SHUT_WR)), then reading until the proxy closes (plain only).
?hangup-every=K closes it without saying so (no Connection: close, no
TLS close_notify) once the whole response is in the socket, so that the
proxy finds the rest of it there after the close; /stats lists such
connections once they are closed.  ?sndbuf=BYTES sets SO_SNDBUF first.
Any route, query ?drain=NAME&drain-at=N: the backend started with --name
NAME, once it has served N requests, drains as on SIGUSR1 (below).
A leading /inside is stripped before routing (for inside-path mounts).
--unix @NAME listens in the abstract namespace.
SIGUSR1 restarts gracefully, as apps do: the socket file goes at once,
answers in progress finish, idle connections close, then the process ends.
"""

PATTERN_PERIOD = 251  # prime, so offset errors show up in the bytes


def pattern(n, seed=0, offset=0):
    """Byte i of the stream is (i + seed) % 251: cheap to make and check."""
    base = bytes(range(PATTERN_PERIOD))
    start = (offset + seed) % PATTERN_PERIOD
    reps = (start + n) // PATTERN_PERIOD + 1
    return (base * reps)[start:start + n]


class Stats:
    draining = False    # SIGUSR1: a graceful restart is under way
    conns = set()       # open Conn objects
    connections = 0
    requests = 0
    open = 0
    closed = []
    hung_up = []
    stop = None
    graceful = None     # what SIGUSR1 runs


class BadRequest(Exception):
    pass


async def read_head(reader):
    try:
        data = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise BadRequest("truncated head")
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest("head too large")
    lines = data[:-4].split(b"\r\n")
    try:
        method, target, version = lines[0].decode("latin-1").split(" ")
    except ValueError:
        raise BadRequest("bad request line %r" % lines[0])
    headers = []
    for ln in lines[1:]:
        name, sep, value = ln.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest("bad header line %r" % ln)
        headers.append([name, value.strip(" \t")])
    return method, target, version, headers


def hget(headers, name):
    vals = [v for n, v in headers if n.lower() == name]
    return ", ".join(vals) if vals else None


class Pacer:
    """Holds reads to `rate` bytes/s overall (sleeps until the bytes so far
    are due), so a backend can be slower than the proxy's client."""

    def __init__(self, rate):
        self.rate = rate
        self.t0 = None

    async def pace(self, total):
        loop = asyncio.get_running_loop()
        if self.t0 is None:
            self.t0 = loop.time()
        due = self.t0 + total / self.rate
        if due > loop.time():
            await asyncio.sleep(due - loop.time())


async def read_body(reader, headers, rate=None):
    """Returns (length, sha256 hex) of the request body, CL or chunked;
    with rate (bytes/s), reads in small pieces no faster than that."""
    h = hashlib.sha256()
    total = 0
    step = 1 << 16
    pacer = None
    if rate:
        step = 1 << 14
        pacer = Pacer(rate)
    te = hget(headers, "transfer-encoding")
    if te is not None:
        if te.lower() != "chunked":
            raise BadRequest("unsupported transfer-encoding %s" % te)
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                # trailers up to the empty line
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            while size:
                chunk = await reader.read(min(size, step))
                if not chunk:
                    raise BadRequest("eof in chunk")
                h.update(chunk)
                total += len(chunk)
                size -= len(chunk)
                if pacer:
                    await pacer.pace(total)
            if await reader.readexactly(2) != b"\r\n":
                raise BadRequest("bad chunk end")
        return total, h.hexdigest()
    cl = hget(headers, "content-length")
    if cl is None:
        return 0, h.hexdigest()
    left = int(cl)
    while left:
        chunk = await reader.read(min(left, step))
        if not chunk:
            raise BadRequest("eof in body")
        h.update(chunk)
        total += len(chunk)
        left -= len(chunk)
        if pacer:
            await pacer.pace(total)
    return total, h.hexdigest()


REASONS = {100: "Continue", 200: "OK", 201: "Created", 204: "No Content",
       206: "Partial Content", 301: "Moved Permanently", 302: "Found",
       304: "Not Modified", 400: "Bad Request", 403: "Forbidden",
       401: "Unauthorized", 404: "Not Found", 413: "Content Too Large",
       418: "I'm a teapot", 500: "Internal Server Error",
       503: "Service Unavailable"}


def head_bytes(status, headers):
    out = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
    out += ["%s: %s" % (n, v) for n, v in headers]
    return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")


def query_str(query, name, default=None):
    for kv in query.split("&"):
        k, _, v = kv.partition("=")
        if k == name:
            return v
    return default


def query_int(query, name, default=0):
    v = query_str(query, name)
    return default if v is None else int(v)


async def wait_gate(path, timeout=30.0):
    """Polls for a file the test creates when the body may be read."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not os.path.exists(path):
        if loop.time() > deadline:
            raise BadRequest("gate %s never opened" % path)
        await asyncio.sleep(0.01)


class Conn:
    def __init__(self, reader, writer, args):
        Stats.connections += 1
        Stats.open += 1
        self.id = Stats.connections
        self.reader = reader
        self.writer = writer
        self.args = args
        self.nreq = 0
        self.drop_next = None
        self.busy = False   # a request is being served
        Stats.conns.add(self)

    def log(self, rec):
        if self.args.reqlog:
            with open(self.args.reqlog, "a") as f:
                f.write(json.dumps(rec) + "\n")

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def run(self):
        try:
            while not Stats.draining:
                head = await read_head(self.reader)
                if head is None:
                    break
                self.busy = True
                if not await self.handle(*head):
                    break
                self.busy = False
        except (BadRequest, ValueError) as e:
            print("backend: conn %d: %s" % (self.id, e), file=sys.stderr)
            try:
                await self.send(head_bytes(400, [["Content-Length", "0"],
                    ["Connection", "close"]]))
            except OSError:
                pass
        except (OSError, asyncio.IncompleteReadError,
            asyncio.LimitOverrunError):
            pass
        finally:
            try:
                if getattr(self, "shut", False) and \
                        self.writer.can_write_eof():
                    # half-close: our answer is all, but we still read
                    # until the proxy hangs up
                    self.writer.write_eof()
                    while await self.reader.read(65536):
                        pass
            except (OSError, asyncio.IncompleteReadError):
                pass
            try:
                self.writer.close()
            except OSError:
                pass
            Stats.open -= 1
            Stats.closed.append(self.id)
            Stats.conns.discard(self)
            if Stats.draining and not Stats.conns and Stats.stop:
                Stats.stop.set()

    async def handle(self, method, target, version, headers):
        """Serve one request; returns whether the connection stays open."""
        Stats.requests += 1
        self.nreq += 1
        path, _, query = target.partition("?")
        if self.drop_next:
            # a keep-alive connection the backend gave up on while the
            # proxy held it in its pool: no answer, just the close
            rec = {"conn": self.id, "method": method, "target": target,
                   "headers": headers, "dropped": self.drop_next}
            if self.drop_next == "after-body":
                rec["body_length"], rec["body_sha256"] = \
                    await read_body(self.reader, headers)
            self.log(rec)
            return False
        self.drop_next = query_str(query, "drop-next")
        self.log({"conn": self.id, "method": method, "target": target,
              "headers": headers})
        drain = query_str(query, "drain", "")
        if drain and Stats.graceful and not Stats.draining:
            if drain == self.args.name and \
                    Stats.requests >= query_int(query, "drain-at"):
                # this answer still goes out: the connection is busy
                asyncio.get_running_loop().call_soon(Stats.graceful)
        conn_hdr = (hget(headers, "connection") or "").lower()
        if version == "HTTP/1.1":
            keep = "close" not in conn_hdr
        else:
            keep = "keep-alive" in conn_hdr
        expect = (hget(headers, "expect") or "").lower()
        if expect == "100-continue":
            await self.send(b"HTTP/1.1 100 Continue\r\n\r\n")

        if path.startswith("/inside/") or path == "/inside":
            path = path[len("/inside"):] or "/"
        parts = path.split("/")
        route = parts[1] if len(parts) > 1 else ""
        arg = parts[2] if len(parts) > 2 else ""
        rate = None
        if route == "slow-upload":
            rate = query_int(query, "kbps", 8192) * 1024
            gate = query_str(query, "gate")
            if gate:
                await wait_gate(os.path.join(self.args.statedir,
                                             os.path.basename(gate)))
        if route == "early":
            return await self.early(int(arg), query, headers)
        body_len, body_sha = await read_body(self.reader, headers, rate)

        is_head = method == "HEAD"
        seed = query_int(query, "seed") if query else 0
        close_after = query_int(query, "close-after") if query else 0
        # closing after every Nth response on this connection
        self.shut = False
        for how in ("close-every", "drop-every", "shut-every"):
            k = query_int(query, how) if query else 0
            if k and self.nreq % k == 0:
                if how == "close-every":
                    keep = False
                else:
                    close_after = 1
                    self.shut = how == "shut-every"
        ka = [] if keep else [["Connection", "close"]]
        sndbuf = query_int(query, "sndbuf") if query else 0
        if sndbuf:
            self.writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        keep = await self.route(route, arg, query, method, target, version,
                                headers, body_len, body_sha, is_head, seed,
                                keep, ka) and not close_after
        k = query_int(query, "hangup-every") if query else 0
        if k and self.nreq % k == 0:
            await self.hangup()
            return False
        return keep

    async def hangup(self):
        """Close at once, but only once all of the response is in the
        socket (none left in asyncio's or the TLS layer's buffers)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        tr = self.writer.transport
        # over TLS, the socket's transport sits under the TLS one (whose
        # size leaves it out)
        raw = getattr(getattr(tr, "_ssl_protocol", None), "_transport", None)
        while (tr.get_write_buffer_size() or
               (raw and raw.get_write_buffer_size())) and \
                loop.time() < deadline:
            await asyncio.sleep(0.005)
        tr.abort()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass
        Stats.hung_up.append(self.id)

    async def route(self, route, arg, query, method, target, version,
                    headers, body_len, body_sha, is_head, seed, keep, ka):

        async def reply(status, hdrs, body=b""):
            hdrs = hdrs + ka
            if status not in (204, 304) and not any(
                    n.lower() in ("content-length",
                              "transfer-encoding")
                    for n, _ in hdrs):
                hdrs = hdrs + [["Content-Length", str(len(body))]]
            await self.send(head_bytes(status, hdrs) +
                    (b"" if is_head or status in (204, 304)
                     else body))
            return keep

        if route == "echo":
            doc = {"method": method, "target": target,
                   "version": version, "headers": headers,
                   "body_length": body_len, "body_sha256": body_sha,
                   "conn": self.id, "req_on_conn": self.nreq,
                   "name": self.args.name}
            return await reply(200, [["Content-Type",
                "application/json"]], json.dumps(doc).encode())
        if route == "stats":
            doc = {"connections": Stats.connections,
                   "requests": Stats.requests, "open": Stats.open,
                   "closed": Stats.closed, "hung_up": Stats.hung_up}
            return await reply(200, [["Content-Type",
                "application/json"]], json.dumps(doc).encode())
        if route in ("upload", "slow-upload"):
            doc = {"length": body_len, "sha256": body_sha}
            return await reply(200, [["Content-Type",
                "application/json"]], json.dumps(doc).encode())
        if route in ("bytes", "big"):
            n = int(arg)
            hdrs = [["Content-Type", "application/octet-stream"],
                ["Content-Length", str(n)]]
            await self.send(head_bytes(200, hdrs + ka))
            if not is_head:
                await self.send_pattern(n, seed)
            return keep
        if route == "chunked":
            n = int(arg)
            await self.send(head_bytes(200, [["Content-Type",
                "application/octet-stream"],
                ["Transfer-Encoding", "chunked"]] + ka))
            if is_head:
                return keep
            sizes = [1, 7, 100, 4096, 16385, 65536]
            off = 0
            i = 0
            while off < n:
                sz = min(sizes[i % len(sizes)], n - off)
                await self.send(b"%x\r\n" % sz +
                        pattern(sz, seed, off) + b"\r\n")
                off += sz
                i += 1
            await self.send(b"0\r\n\r\n")
            return keep
        if route == "close":
            n = int(arg)
            await self.send(head_bytes(200, [["Content-Type",
                "application/octet-stream"],
                ["Connection", "close"]]))
            if not is_head:
                await self.send_pattern(n, seed)
            return False
        if route == "headers":
            return await reply(200, [
                ["Content-Type", "text/plain"],
                ["Set-Cookie", "a=1; Path=/"],
                ["Set-Cookie", "b=2; HttpOnly"],
                ["Set-Cookie", "c=3"],
                ["X-Custom-One", "one"],
                ["Vary", "Accept-Encoding, Origin"],
                ["Cache-Control", "max-age=60"],
                ["ETag", "\"abc123\""],
                ["Mixed-Case-Header", "Mixed-Case-Value"],
                ["Access-Control-Allow-Origin", "*"],
                ["Content-Language", "en"],
                ["Keep-Alive", "timeout=5"],
                ["Connection", "X-Secret"],
                ["X-Secret", "hidden"],
                ["Proxy-Authenticate", "Basic realm=\"x\""],
                ["Upgrade", "foo/1"],
                ["Trailer", "X-Trail"],
                ["Server", "backend/1.0"],
            ], b"headers body\n")
        if route == "status":
            n = int(arg)
            return await reply(n, [["Content-Type", "text/plain"]],
                       b"status %d\n" % n)
        if route == "head-test":
            body = pattern(1234)
            return await reply(200, [["Content-Type",
                "application/octet-stream"],
                ["Content-Length", str(len(body))]], body)
        if route == "slow-head":
            await asyncio.sleep(float(arg))
            return await reply(200, [["Content-Type", "text/plain"]],
                       b"late\n")
        if route == "die-mid-body":
            n = int(arg)
            await self.send(head_bytes(200, [["Content-Type",
                "application/octet-stream"],
                ["Content-Length", str(n)]]) + pattern(n // 2))
            return False
        if route == "die-mid-chunked":
            await self.send(head_bytes(200, [["Content-Type",
                "application/octet-stream"],
                ["Transfer-Encoding", "chunked"]]))
            for i in range(4):
                await self.send(b"1000\r\n" +
                        pattern(4096, 0, i * 4096) +
                        b"\r\n")
            return False
        if route == "bighead":
            return await reply(200, [["Content-Type", "text/plain"],
                                     ["X-Big", "b" * int(arg)]], b"big\n")
        if route == "stall-body":
            n = int(arg)
            await self.send(head_bytes(200, [["Content-Type",
                "application/octet-stream"],
                ["Content-Length", str(n)]]) + pattern(n // 2))
            await asyncio.sleep(60)
            return False
        if route == "garbage":
            await self.send(b"\x00\x01\x02 this is not http \xff\xfe"
                    b"\r\n\r\nSSH-2.0-nope\r\n\r\n")
            return False
        if route == "100-continue":
            await self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            return await reply(200, [["Content-Type", "text/plain"]],
                       b"after continue\n")
        return await reply(404, [["Content-Type", "text/plain"]],
                   b"no route %s\n" % route.encode())

    async def early(self, status, query, headers):
        """Answer before the request body is read; see ROUTES."""
        then = query_str(query, "then", "close")
        size = query_int(query, "size", -1)
        body = pattern(size) if size >= 0 else b"early %d\n" % status
        hdrs = [["Content-Type", "text/plain"],
                ["Content-Length", str(len(body))]]
        if then == "close":
            hdrs.append(["Connection", "close"])
        await self.send(head_bytes(status, hdrs) + body)
        if then == "discard":
            await read_body(self.reader, headers)
            return True
        if then == "stall":
            await asyncio.sleep(60)
        return False

    async def send_pattern(self, n, seed):
        off = 0
        step = 1 << 18
        while off < n:
            sz = min(step, n - off)
            self.writer.write(pattern(sz, seed, off))
            await self.writer.drain()
            off += sz


def make_ssl(args):
    if not args.tls:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls[0], args.tls[1])
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


async def main(args):
    async def on_conn(reader, writer):
        await Conn(reader, writer, args).run()

    ctx = make_ssl(args)
    limit = 1 << 17
    if args.unix and args.unix.startswith("@"):
        server = await asyncio.start_unix_server(
            on_conn, path="\0" + args.unix[1:], ssl=ctx, limit=limit)
        where = args.unix + " (abstract)"
    elif args.unix:
        # A restart reuses the path: a stale socket file from a killed
        # predecessor must not stop the bind.
        try:
            os.unlink(args.unix)
        except FileNotFoundError:
            pass
        server = await asyncio.start_unix_server(
            on_conn, path=args.unix, ssl=ctx, limit=limit)
        where = args.unix
    else:
        host, _, port = args.tcp.rpartition(":")
        server = await asyncio.start_server(
            on_conn, host=host, port=int(port), ssl=ctx, limit=limit,
            family=socket.AF_INET, reuse_address=True)
        port = server.sockets[0].getsockname()[1]
        where = "%s:%d" % (host, port)
        if args.portfile:
            tmp = args.portfile + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\n" % port)
            os.rename(tmp, args.portfile)
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    print("backend: listening on %s%s" % (where, " (tls)" if ctx else ""),
          file=sys.stderr, flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def graceful():
        # as an app restarts: no new connections (the socket file goes),
        # answers in progress finish, idle keep-alive connections close,
        # then the process ends
        Stats.draining = True
        server.close()
        if args.unix and not args.unix.startswith("@"):
            try:
                os.unlink(args.unix)
            except FileNotFoundError:
                pass
        print("backend: draining", file=sys.stderr, flush=True)
        for c in list(Stats.conns):
            if not c.busy:
                c.writer.close()
        if not Stats.conns:
            stop.set()
    Stats.stop = stop
    Stats.graceful = graceful
    loop.add_signal_handler(signal.SIGUSR1, graceful)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description="integration-test backend",
        epilog=ROUTES, formatter_class=argparse.RawTextHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--unix", metavar="PATH")
    g.add_argument("--tcp", metavar="HOST:PORT",
               help="port 0 picks one; see --portfile")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--pidfile")
    ap.add_argument("--portfile", help="write the TCP port here")
    ap.add_argument("--reqlog", help="append one JSON line per request")
    ap.add_argument("--name", default="", help="told in /echo's answer")
    ap.add_argument("--statedir", help="where /slow-upload's gate files "
                    "appear (default: the pid file's directory)")
    a = ap.parse_args()
    if not a.statedir:
        a.statedir = os.path.dirname(os.path.abspath(a.pidfile or "."))
    asyncio.run(main(a))
