# SPDX-License-Identifier: MIT
#
# Integration cases: request bodies.
#
# Uploads with Content-Length and chunked, a slow backend reading an
# upload (memory stays bounded, h2 spills to spill-dir), and a client that
# pauses mid-upload.  h2-only upload cases are in h2.py; answers that come
# before the body is read are in early.py.

import os

from harness import Failure, check, eq, h2_status, hdr1, proc_status, sha

from .common import RSS_LIMIT_KB, case


# -- uploads ---------------------------------------------------------------

UPLOAD_SIZE = 10 * 1024 * 1024


def t_upload(env, proto, how):
    f = os.path.join(env.dir, "upload.bin")
    data = os.urandom(UPLOAD_SIZE)
    with open(f, "wb") as fh:
        fh.write(data)
    hs = ["Content-Type: application/octet-stream"]
    if how == "cl":
        r = env.curl(proto, "/app/upload", data_file=f, headers=hs)
    elif proto == "h2":
        # lws 4.1.6 never reports END_STREAM of an h2 body sent without
        # content-length, so the proxy refuses it up front (README).
        r = env.curl(proto, "/app/upload", upload_file=f, method="POST",
                     headers=hs + ["Transfer-Encoding: chunked"])
        eq((r.rc, r.status), (0, 411), "h2 body without content-length")
        return
    else:
        r = env.curl(proto, "/app/upload", upload_file=f, method="POST",
                     headers=hs + ["Transfer-Encoding: chunked"])
    check(r.rc == 0 and r.status == 200, "upload: %r", r)
    doc = r.json()
    eq(doc["length"], UPLOAD_SIZE, "length the backend received")
    eq(doc["sha256"], sha(data), "sha256 the backend computed")


case("upload-cl", how="cl")(t_upload)
case("upload-chunked", how="chunked")(t_upload)


# -- slow backend upload: memory stays bounded, h2 spills to spill-dir -------

SLOW_UP = 32 * 1024 * 1024
SLOW_KBPS = 16384           # 16 MiB/s: far slower than a loopback client


def _spill_pvo(env):
    d = os.path.join(env.dir, "spill")
    os.mkdir(d)
    return {"spill-dir": d}


class Sampler:
    """Samples the daemon's VmRSS and deleted-but-open files in a thread
    while a transfer runs."""

    def __init__(self, pid):
        import threading
        self.pid = pid
        self.max_rss = 0
        self.deleted = set()
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        from harness import proc_fds
        while not self.stop.wait(0.02):
            try:
                self.max_rss = max(self.max_rss,
                                   proc_status(self.pid)["VmRSS"])
                self.deleted.update(proc_fds(self.pid)["deleted"])
            except OSError:
                return

    def done(self):
        self.stop.set()
        self.t.join()


def _in_thread(fn):
    """Runs fn() in a thread; returns a join() giving its result."""
    import threading
    box = {}

    def run():
        try:
            box["r"] = fn()
        except BaseException as e:  # noqa: B902 - re-raised in join()
            box["e"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()

    def join(timeout=None):
        t.join(timeout)
        check(not t.is_alive(), "client thread still running")
        if "e" in box:
            raise box["e"]
        return box["r"]
    return join


def t_slow_upload(env, proto, how):
    from harness import proc_fds, wait_until
    pid = env.serving_pid()
    main = env.backends["main"]
    spill = os.path.join(env.dir, "spill")
    f = os.path.join(env.dir, "slow-up.bin")
    data = os.urandom(SLOW_UP)
    with open(f, "wb") as fh:
        fh.write(data)
    hs = ["Content-Type: application/octet-stream"]
    if how == "cl":
        kw = {"data_file": f, "headers": hs}
    else:
        kw = {"upload_file": f, "method": "POST",
              "headers": hs + ["Transfer-Encoding: chunked"]}
    # Warm up the same path (allocator, TLS, pool) before the baseline.
    r = env.curl(proto, "/app/slow-upload?kbps=1000000", data=b"w" * 300000,
                 headers=hs)
    check(r.rc == 0 and r.status == 200, "warm-up upload: %r", r)
    base = env.fd_baseline()
    before = proc_status(pid)
    gate = os.path.join(env.dir, "go")
    target = "/slow-upload?kbps=%d&gate=go" % SLOW_KBPS
    samp = Sampler(pid)
    join = _in_thread(lambda: env.curl(proto, "/app" + target, timeout=90,
                                       **kw))
    try:
        # The backend holds the body until the gate opens: the proxy now
        # has a client sending as fast as it may and nowhere to put it.
        wait_until(lambda: any(q["target"] == target
                               for q in main.requests()),
                   "the upload's head at the backend", 20)
        if proto == "h2":
            # h2 cannot be flow-controlled through lws 4.1.6: the body
            # must go to an unlinked file in spill-dir
            wait_until(lambda: any(os.path.dirname(p) == spill
                                   for p in proc_fds(pid)["deleted"]),
                       "a spill file in spill-dir %s" % spill, 20)
            print("spill file seen: %r" % proc_fds(pid)["deleted"])
    finally:
        with open(gate, "w"):
            pass
        try:
            r = join(120)
        finally:
            samp.done()
    after = proc_status(pid)
    grow = after["VmHWM"] - before["VmHWM"]
    print("%s %s upload of %d MiB to a %d KiB/s backend: daemon VmHWM "
          "%d -> %d KiB (+%d KiB), max VmRSS sampled %d KiB, unlinked "
          "files seen %r" % (proto, how, SLOW_UP >> 20, SLOW_KBPS,
                             before["VmHWM"], after["VmHWM"], grow,
                             samp.max_rss, sorted(samp.deleted)))
    check(r.rc == 0 and r.status == 200, "slow upload: %r", r)
    doc = r.json()
    eq(doc["length"], SLOW_UP, "length the backend received")
    eq(doc["sha256"], sha(data), "sha256 the backend computed")
    check(grow < RSS_LIMIT_KB, "daemon peak RSS grew by %d KiB (limit %d)",
          grow, RSS_LIMIT_KB)
    for p in samp.deleted:
        eq(os.path.dirname(p), spill, "directory of the unlinked file %s"
           % p)
    eq(os.listdir(spill), [], "files left in spill-dir")
    env.fd_settle(base, "the slow upload")


case("slow-upload-cl", pvo=_spill_pvo, timeout=120, how="cl")(t_slow_upload)
case("slow-upload-chunked", protos=("h1",), pvo=_spill_pvo, timeout=120,
     how="chunked")(t_slow_upload)


# -- a client that pauses mid-upload ------------------------------------------

PAUSE_S = 7     # longer than lws's own 5 s timeout-secs, far under idle


@case("upload-client-pause", pvo={"idle-timeout-ms": "30000"})
def t_upload_pause(env, proto):
    """A client pausing mid-body for less than idle-timeout-ms must not be
    cut off (nor its connection): the relay's timeout rules, not lws's
    default timeout-secs.  The pause is the behaviour under test."""
    import json
    import time
    body = os.urandom(200000)
    half = len(body) // 2
    if proto == "h1":
        c = env.raw_h1()
        c.send(("POST /app/upload?pause HTTP/1.1\r\nHost: %s\r\n"
                "Content-Length: %d\r\n\r\n" % (env.authority("h1"),
                                                len(body))).encode())
        c.send(body[:half])
        time.sleep(PAUSE_S)
        try:
            c.send(body[half:])
        except OSError as e:
            raise Failure("connection gone after a %d s pause: %s" %
                          (PAUSE_S, e))
        line, st, hs = c.read_head()
        eq(st, 200, "status after a %d s pause mid-body" % PAUSE_S)
        doc = json.loads(c.read_exact(int(hdr1(hs, "content-length"))))
        c.close()
    else:
        c = env.h2client()
        sid = c.start("POST", "/app/upload?pause", [
            ("content-length", str(len(body)))])
        c.send_bodies({sid: body[:half]}, end=False)
        time.sleep(PAUSE_S)
        try:
            c.send_bodies({sid: body[half:]})
            st = c.wait_all([sid])[0]
        except (Failure, OSError) as e:
            raise Failure("after a %d s pause mid-body: %s (connection "
                          "closed: %s)" % (PAUSE_S, e, c.closed))
        eq(h2_status(st), 200, "status after a %d s pause mid-body" % PAUSE_S)
        doc = json.loads(st["data"])
        c.close()
    eq(doc["length"], len(body), "length the backend received")
    eq(doc["sha256"], sha(body), "sha256 the backend computed")
