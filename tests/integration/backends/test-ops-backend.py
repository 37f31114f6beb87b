#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# A small HTTP/1.1 backend on a unix socket for the operations tests
# (test-ops-*): GET /who answers NAME; GET /hold/N sends N pattern bytes,
# but after the first half it creates DIR/NAME.holding and waits for
# DIR/NAME.release, so a test can keep a download in flight exactly as long
# as it needs (no timing guesses).
#
#   test-ops-backend.py SOCKET NAME DIR

import http.server
import os
import socketserver
import sys
import time


def pattern(n, off=0):
    return bytes((off + i) * 7 % 251 for i in range(n))


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        name, d = self.server.name, self.server.dir
        if self.path == "/who":
            self.send(200, name.encode() + b"\n")
            return
        if self.path.startswith("/hold/"):
            n = int(self.path[6:])
            half = n // 2
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            self.wfile.write(pattern(half))
            self.wfile.flush()
            open(os.path.join(d, name + ".holding"), "w").close()
            rel = os.path.join(d, name + ".release")
            while not os.path.exists(rel):
                time.sleep(0.02)
            self.wfile.write(pattern(n - half, half))
            self.wfile.flush()
            return
        self.send(404, b"not found\n")


class S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    path, name, d = sys.argv[1:4]
    if os.path.exists(path):
        os.unlink(path)
    srv = S(path, H)
    srv.name, srv.dir = name, d
    srv.serve_forever()


if __name__ == "__main__":
    main()
