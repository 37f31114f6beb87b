#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# SIGHUP reload of lws-uds-proxyd: a download in flight (held open by the
# backend until the test releases it) completes intact across a reload that
# re-points a mount, adds a mount and adds a listener; afterwards the new
# config answers on h1 and TLS/h2; the old serving process drains and
# exits; a broken config on SIGHUP is refused and the running one keeps
# serving; SIGTERM stops everything with exit 0.
#
#   test-ops-reload.py path/to/lws-uds-proxyd PLUGIN_DIR

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import (Failure, can_connect_unix, children,  # noqa: E402
                     end_ops_run, free_port, ops_pattern, wait_until)

TOP = os.path.dirname(os.path.dirname(HERE))
CERT = os.path.join(TOP, "tests", "fixtures", "localhost-100y.cert")
KEY = os.path.join(TOP, "tests", "fixtures", "localhost-100y.key")
BACKEND = os.path.join(HERE, "backends", "test-ops-backend.py")
PY = "/usr/bin/python3"
N = 8 * 1024 * 1024


def curl(url, *extra, out=None):
    argv = ["curl", "-sS", "-k", "--max-time", "20", "-o", out or "-",
            "-w", "%{http_code}"] + list(extra) + [url]
    r = subprocess.run(argv, capture_output=True)
    return r.returncode, r.stdout


def who(url, *extra):
    """Body of GET url (a /who endpoint), or None when not a 200."""
    rc, out = curl(url, *extra)
    if rc or not out.endswith(b"200"):
        return None
    return out[:-3].strip().decode()


def write_conf(confdir, plugins, ports, socks, tmp, version):
    mounts_v1 = [
        {"mountpoint": "/app", "origin": "http://+%s:/" % socks["A"]},
        {"mountpoint": "/x", "origin": "http://+%s:/" % socks["A"]},
    ]
    mounts_v2 = [
        {"mountpoint": "/app", "origin": "http://+%s:/" % socks["A"]},
        {"mountpoint": "/x", "origin": "http://+%s:/" % socks["B"]},
        {"mountpoint": "/new", "origin": "callback://lws-uds-proxy",
         "pmo": [{"backend": "http://+%s:/" % socks["B"]}]},
    ]
    mounts = mounts_v1 if version == 1 else mounts_v2
    # a small pool idle time and keep-alive: the old process drains fast
    pvo = [{"lws-uds-proxy": {"pool-idle-timeout-ms": "500"}}]
    vhosts = [
        {"name": "localhost", "port": str(ports["http"]),
         "interface": "127.0.0.1", "keepalive_timeout": "1",
         "access-log": os.path.join(tmp, "access.log"),
         "mounts": mounts, "ws-protocols": pvo},
        {"name": "localhost", "port": str(ports["https"]),
         "interface": "127.0.0.1", "keepalive_timeout": "1",
         "host-ssl-cert": CERT, "host-ssl-key": KEY,
         "mounts": mounts, "ws-protocols": pvo},
    ]
    if version == 2:
        vhosts.append({"name": "added", "port": str(ports["added"]),
                       "interface": "127.0.0.1", "mounts": mounts_v2})
    conf = {"global": {"plugin-dir": plugins, "timeout-secs": "5"}}
    os.makedirs(os.path.join(confdir, "conf.d"), exist_ok=True)
    with open(os.path.join(confdir, "conf"), "w") as f:
        json.dump(conf, f, indent=1)
    tmpf = os.path.join(confdir, "conf.d", ".v.tmp")
    with open(tmpf, "w") as f:
        f.write("# version %d\n" % version)
        json.dump({"vhosts": vhosts}, f, indent=1)
    os.rename(tmpf, os.path.join(confdir, "conf.d", "v"))


def main():
    daemon, plugins = sys.argv[1], os.path.abspath(sys.argv[2])
    tmp = tempfile.mkdtemp(prefix="udsp-ops-reload.")
    procs = []
    log = os.path.join(tmp, "daemon.log")
    ok = False
    try:
        socks = {}
        for name in ("A", "B"):
            socks[name] = os.path.join(tmp, name + ".sock")
            procs.append(subprocess.Popen(
                [PY, BACKEND, socks[name], name, tmp],
                stdin=subprocess.DEVNULL))
        for name in ("A", "B"):
            wait_until(lambda: can_connect_unix(socks[name]),
                       "backend " + name, timeout=20.0)

        ports = {"http": free_port(), "https": free_port(),
                 "added": free_port()}
        http = "http://127.0.0.1:%d" % ports["http"]
        https = "https://127.0.0.1:%d" % ports["https"]
        added = "http://127.0.0.1:%d" % ports["added"]
        confdir = os.path.join(tmp, "conf")
        write_conf(confdir, plugins, ports, socks, tmp, 1)

        with open(log, "w") as lf:
            d = subprocess.Popen([daemon, "-n", "-c", confdir],
                                 stdin=subprocess.DEVNULL, stdout=lf,
                                 stderr=lf)
        procs.append(d)
        wait_until(lambda: who(http + "/x/who") == "A", "first config",
                   timeout=20.0)
        kids = children(d.pid)
        if len(kids) != 1:
            raise Failure("serving processes before reload: %r" % kids)
        old = kids[0]

        # a download held half-way by backend A
        dl_path = os.path.join(tmp, "dl.bin")
        dl = subprocess.Popen(["curl", "-sS", "--max-time", "60", "-o",
                               dl_path, "-w", "%{http_code}",
                               http + "/app/hold/%d" % N],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_until(lambda: os.path.exists(os.path.join(tmp, "A.holding")),
                   "the download to be in flight", timeout=20.0)

        write_conf(confdir, plugins, ports, socks, tmp, 2)
        d.send_signal(signal.SIGHUP)
        wait_until(lambda: who(http + "/x/who") == "B",
                   "/x to move to backend B after SIGHUP", timeout=20.0)
        for url, extra in ((http + "/new/who", ()),
                           (https + "/x/who", ("--http2",)),
                           (https + "/new/who", ("--http1.1",)),
                           (added + "/new/who", ())):
            got = who(url, *extra)
            if got != "B":
                raise Failure("after reload %s %r answered %r" %
                           (url, extra, got))
        if dl.poll() is not None:
            raise Failure("the download ended during the reload: %r" %
                       (dl.communicate(),))
        kids = children(d.pid)
        if old not in kids or len(kids) != 2:
            raise Failure("want the old process %d draining beside a new "
                       "one, have %r" % (old, kids))

        open(os.path.join(tmp, "A.release"), "w").close()
        out, err = dl.communicate(timeout=60)
        if dl.returncode or out != b"200":
            raise Failure("download: curl rc %d, status %r, %r" %
                       (dl.returncode, out, err))
        with open(dl_path, "rb") as f:
            body = f.read()
        if len(body) != N or hashlib.sha256(body).digest() != \
                hashlib.sha256(ops_pattern(N)).digest():
            raise Failure("download across the reload is not intact "
                       "(%d bytes)" % len(body))
        print("ok   in-flight download intact across SIGHUP; new "
              "mounts, backend and listener answer (h1, TLS h1/h2)")

        wait_until(lambda: old not in children(d.pid),
                   "the old serving process to drain and exit", 60)
        new = children(d.pid)
        if len(new) != 1:
            raise Failure("serving processes after the drain: %r" % new)
        print("ok   old serving process %d drained and exited" % old)

        # a broken config is refused; the running one stays
        with open(os.path.join(confdir, "conf.d", "v"), "a") as f:
            f.write("\n{ broken\n")
        d.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload: failed" in open(log).read(),
                   "the failed reload to be logged", timeout=20.0)
        if who(http + "/x/who") != "B" or children(d.pid) != new:
            raise Failure("a broken config disturbed the running one")
        if "conf.d/v:" not in open(log).read():
            raise Failure("the failed reload does not name the file")
        print("ok   broken config on SIGHUP: refused, still serving")

        d.send_signal(signal.SIGTERM)
        rc = d.wait(timeout=30)
        if rc != 0:
            raise Failure("exit code %d after SIGTERM" % rc)
        if children(d.pid):
            raise Failure("serving processes left after SIGTERM")
        if "signal 11" in open(log).read():
            raise Failure("a serving process crashed")
        print("ok   SIGTERM: all processes gone, exit 0")
        ok = True
    except Failure as e:
        print("FAIL", e)
    finally:
        rc = end_ops_run(procs, ok, log, tmp)
    return rc


if __name__ == "__main__":
    sys.exit(main())
