#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# Demo backend for lws-uds-proxy: a tiny HTTP/1.1 (keep-alive) app on a unix
# socket.  "/" shows what arrived (method, path, some headers); "/api/time"
# returns JSON.  Standard library only.
#
#   /usr/bin/python3 examples/hello-app/app.py --socket /tmp/hello.sock

import argparse
import html
import json
import os
import signal
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler

SHOWN_HEADERS = ("host", "user-agent", "accept", "x-forwarded-for",
                 "x-forwarded-proto", "x-forwarded-host", "cookie")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hello-app/1"

    def address_string(self):
        # unix socket peers have no address
        return "unix"

    def send_body(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def handle_any(self):
        body = self.read_body()
        path = self.path.split("?", 1)[0]
        if path.endswith("/api/time"):
            now = time.time()
            doc = {"epoch": now,
                   "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                        time.gmtime(now)),
                   "pid": os.getpid()}
            self.send_body(200, "application/json",
                           (json.dumps(doc) + "\n").encode())
            return
        rows = "".join(
            "<tr><th>%s</th><td>%s</td></tr>" %
            (html.escape(h), html.escape(self.headers.get(h, "")))
            for h in SHOWN_HEADERS if h in self.headers)
        page = ("<!doctype html><html><head><meta charset=utf-8>"
                "<title>hello</title></head><body>"
                "<h1>Hello from hello-app</h1>"
                "<p>%s <code>%s</code> (%s), %d body bytes</p>"
                "<table>%s</table>"
                "<p><a href=\"api/time\">api/time</a></p>"
                "</body></html>\n" %
                (html.escape(self.command), html.escape(self.path),
                 html.escape(self.request_version), len(body), rows))
        self.send_body(200, "text/html; charset=utf-8", page.encode())

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = handle_any


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    # socketserver's default backlog of 5 refuses h2 bursts through the proxy
    request_queue_size = 256


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--socket", required=True, help="unix socket path")
    args = ap.parse_args()

    try:
        os.unlink(args.socket)
    except FileNotFoundError:
        pass
    srv = Server(args.socket, Handler)
    os.chmod(args.socket, 0o660)

    def stop(sig, frame):
        # shutdown() waits for serve_forever(): run it off the main thread
        import threading
        threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    print("hello-app: listening on %s" % args.socket, file=sys.stderr)
    try:
        srv.serve_forever()
    finally:
        srv.server_close()
        try:
            os.unlink(args.socket)
        except FileNotFoundError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
