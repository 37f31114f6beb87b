# SPDX-License-Identifier: MIT
#
# Integration cases: TLS.
#
# TLS writes toward the client (host/tlsbuf.c: a slow reader closing, how
# many sends a response takes) and TLS toward the backend (verified against
# a CA, refused when untrusted).

import os
import re
import signal
import socket
import subprocess

from harness import CERT, check, eq, sha

from .common import ALL_BACKENDS, _pattern_sha, case


# -- TLS writes (host/tlsbuf.c) --------------------------------------------

TLS_CLOSE_BIG = 24 * 1024 * 1024


@case("tls-close-slow-reader", protos=("h1",), timeout=120)
def t_tls_close_slow_reader(env, proto):
    """h1 over TLS with Connection: close to a slow reader: the daemon holds
    the last bytes of the body in its TLS write buffer when lws closes the
    connection, with the socket full; they must still all arrive."""
    for n in (TLS_CLOSE_BIG, TLS_CLOSE_BIG + 77):
        url = "https://127.0.0.1:%d/app/big/%d" % (env.https_port, n)
        cp = subprocess.run(
            ["curl", "-sS", "-k", "--http1.1", "--max-time", "90",
             "-H", "Connection: close", "--limit-rate", "12M",
             "-o", "-", "-w", "\n%{http_code}", url],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=105)
        body, _, code = cp.stdout.rpartition(b"\n")
        check(cp.returncode == 0 and code == b"200",
              "curl rc %d, status %r: %s", cp.returncode, code,
              cp.stderr.decode("latin-1")[-300:])
        eq(len(body), n, "downloaded length")
        eq(sha(body), _pattern_sha(n), "downloaded body sha256")


@case("tls-sends-per-response", protos=("h2",))
def t_tls_sends(env, proto):
    """One response to a new h2 stream is four TLS records (lws's two
    WINDOW_UPDATEs, HEADERS, DATA); lws-uds-proxyd sends what one service
    round wrote with one sendmsg(): about two client-side send calls per
    response (the window updates and the response are written in different
    rounds), where each record used to be its own write(): four."""
    if env.lwsws:
        print("real lwsws hosts the plugin: it writes each record itself")
        return
    n = 200
    pid = env.serving_pid()
    env.get_ok(proto, "/app/bytes/100")
    out = os.path.join(env.dir, "strace.out")
    st = subprocess.Popen(["strace", "-f", "-c", "-o", out,
                           "-e", "trace=write,writev,sendmsg", "-p",
                           str(pid)], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # strace says so on stderr once it has attached to every thread
        line = st.stderr.readline().decode("latin-1")
        check("attached" in line, "strace did not attach: %r", line)
        cp = subprocess.run(["h2load", "-n", str(n), "-c", "1", "-m", "10",
                             env.url("h2", "/app/bytes/100")],
                            stdin=subprocess.DEVNULL, capture_output=True,
                            timeout=60)
        check(re.search(r"%d succeeded" % n, cp.stdout.decode()),
              "h2load: %s", cp.stdout.decode()[-400:])
    finally:
        st.send_signal(signal.SIGINT)
        st.communicate(timeout=30)
    calls = {}
    with open(out) as f:
        for ln in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?"
                         r"(\w+)$", ln)
            if m and m.group(2) != "total":
                calls[m.group(2)] = int(m.group(1))
    sends = sum(calls.values())
    print("client-side send calls for %d h2 responses: %r" % (n, calls))
    check(sends < 3 * n, "%d send calls for %d responses (%.2f each)",
          sends, n, sends / n)


# -- TLS toward the backend ------------------------------------------------

@case("tls-verify-ca", protos=("h1",), backends=ALL_BACKENDS,
      pvo={"tls-verify": "1", "tls-ca": CERT})
def t_tls_ca(env, proto):
    env.get_ok(proto, "/tlsn/echo")


@case("tls-verify-untrusted", protos=("h1",), backends=ALL_BACKENDS,
      pvo={"tls-verify": "1"})
def t_tls_untrusted(env, proto):
    """Self-signed backend cert, no tls-ca: the handshake must fail."""
    r = env.curl(proto, "/tlsn/echo")
    eq(r.rc, 0, "curl exit code")
    check(r.status in (502, 503), "untrusted backend cert gave %r", r)



# -- TLS records per response (host/tlsbuf.c, issue 14) ---------------------

def _tls_records(env, proto, n, args, path):
    """Run h2load (args) through a relay of ours that parses the TLS record
    headers the daemon sends (they are in the clear); returns the number
    of application-data records (type 23) it saw."""
    import selectors
    import threading
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    port = ls.getsockname()[1]
    counts = {"records": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def pump(c):
        up = socket.create_connection(("127.0.0.1", env.https_port))
        sel = selectors.DefaultSelector()
        sel.register(c, selectors.EVENT_READ, up)
        sel.register(up, selectors.EVENT_READ, c)
        acc = b""
        recs = 0
        try:
            while not stop.is_set():
                for key, _ in sel.select(timeout=1):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
                    if key.fileobj is not up:
                        continue
                    acc += data
                    while len(acc) >= 5:
                        ln = 5 + int.from_bytes(acc[3:5], "big")
                        if len(acc) < ln:
                            break
                        recs += acc[0] == 23
                        acc = acc[ln:]
        finally:
            with lock:
                counts["records"] += recs
            sel.close()
            up.close()
            c.close()

    def accept():
        ths = []
        ls.settimeout(1)
        while not stop.is_set():
            try:
                c, _ = ls.accept()
            except socket.timeout:
                continue
            th = threading.Thread(target=pump, args=(c,))
            th.start()
            ths.append(th)
        for th in ths:
            th.join()

    at = threading.Thread(target=accept)
    at.start()
    try:
        cp = subprocess.run(["h2load", "-n", str(n)] + args +
                            ["https://127.0.0.1:%d%s" % (port, path)],
                            stdin=subprocess.DEVNULL, capture_output=True,
                            timeout=60)
    finally:
        stop.set()
        at.join()
        ls.close()
    out = cp.stdout.decode()
    check(re.search(r"%d succeeded" % n, out), "h2load: %s", out[-400:])
    return counts["records"]


@case("tls-records-per-response", protos=("h2",))
def t_tls_records(env, proto):
    """lws hands OpenSSL each h2 frame as its own SSL_write(), and sends
    the two WINDOW_UPDATEs of a new stream in two service rounds: four
    records per response (WINDOW_UPDATE, WINDOW_UPDATE, HEADERS, DATA).
    lws-uds-proxyd gathers what one round writes into one record and
    drains lws's queue of WINDOW_UPDATEs in the same round: two records
    per response (the updates, then the response a backend round trip
    later).  /app/echo: the backend writes head and body at once.  (h1
    over TLS was already one record per response: not tested here.)"""
    if env.lwsws:
        print("real lwsws hosts the plugin: each SSL_write is a record")
        return
    n = 200
    env.get_ok(proto, "/app/echo")
    recs = _tls_records(env, proto, n, ["-c", "1", "-m", "1"], "/app/echo")
    print("%d TLS application-data records for %d %s responses (%.2f each)"
          % (recs, n, proto, recs / n))
    check(recs < 2.5 * n, "%d records for %d responses (%.2f each)",
          recs, n, recs / n)

