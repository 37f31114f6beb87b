#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# count-processes 2: the serving process becomes a manager with exactly two
# worker processes that share its listeners (TCP and unix).  The manager
# never serves (no connection, no access log); each worker has its own
# plugin state and its own lws event fd; many h1 requests all succeed and
# are logged whole; each worker serves on its own (the other one stopped
# with SIGSTOP, so which one accepts is not left to chance); a worker killed
# with SIGKILL, or ended with SIGTERM, is replaced and the unix socket path
# survives it; SIGHUP with a download in flight from one worker: the
# download completes intact, the new config answers, the old manager and
# its workers drain and exit; SIGTERM ends every process with exit code 0;
# -s with count-processes 2 forks the workers too.
#
#   test-ops-workers.py path/to/lws-uds-proxyd PLUGIN_DIR

import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import (Failure, can_connect_unix, children,  # noqa: E402
                     end_ops_run, free_port, ops_pattern, proc_fds,
                     wait_until)

BACKEND = os.path.join(HERE, "backends", "test-ops-backend.py")
PY = "/usr/bin/python3"
N = 8 * 1024 * 1024
WORKERS = 2
LOG_LINE = re.compile(r'^127\.0\.0\.1 - - \[[^]]+\] "GET /(x|app)/who '
                      r'HTTP/1\.1" 200 2 "-" "[^"]*"$')


def gone(pid):
    return not os.path.exists("/proc/%d" % pid)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=20)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read()


def who(port, path="/x/who"):
    """Body of GET path on a fresh connection, or None when not a 200."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        st, body = get(c, path)
    except (OSError, http.client.HTTPException):
        return None
    finally:
        c.close()
    return body.decode().strip() if st == 200 else None


def who_unix(sock):
    c = UnixHTTPConnection(sock)
    try:
        st, body = get(c, "/x/who")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        c.close()
    return body.decode().strip() if st == 200 else None


def server_side(port, client_port):
    """Inode of the daemon's end of the TCP connection from client_port."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as f:
            next(f)
            for line in f:
                w = line.split()
                if int(w[1].split(":")[1], 16) == port and \
                        int(w[2].split(":")[1], 16) == client_port:
                    return w[9]
    return None


def holder(pids, port, client_port):
    """Which of pids holds the daemon's end of that connection."""
    ino = server_side(port, client_port)
    if not ino:
        return None
    want = "socket:[%s]" % ino
    for pid in pids:
        d = "/proc/%d/fd" % pid
        try:
            fds = os.listdir(d)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(os.path.join(d, fd)) == want:
                    return pid
            except OSError:
                pass
    return None


def eventfd_ids(pid):
    """eventfd-id of each eventfd pid holds (kernels that show it)."""
    ids = []
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            if os.readlink(os.path.join(d, fd)) != "anon_inode:[eventfd]":
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                for line in f:
                    if line.startswith("eventfd-id:"):
                        ids.append(int(line.split()[1]))
        except OSError:
            pass
    return ids


def listener_fds(pid):
    """pid's listening sockets (TCP and unix) by fd number."""
    inodes = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as f:
            next(f)
            inodes.update(w[9] for w in (ln.split() for ln in f)
                          if w[3] == "0A")
    with open("/proc/net/unix") as f:
        next(f)
        # flags 00010000: __SO_ACCEPTCON
        inodes.update(w[6] for w in (ln.split() for ln in f)
                      if int(w[3], 16) & 0x10000)
    out = []
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            link = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            out.append(int(fd))
    return sorted(out)


def nonblocking(pid, fd):
    with open("/proc/%d/fdinfo/%d" % (pid, fd)) as f:
        for line in f:
            if line.startswith("flags:"):
                return bool(int(line.split()[1], 8) & os.O_NONBLOCK)
    return False


def holds_file(pid, path):
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            if os.readlink(os.path.join(d, fd)) == path:
                return True
        except OSError:
            pass
    return False


def write_conf(confdir, plugins, port, lsock, socks, tmp, version,
               procs="2"):
    # v1: /x on A; v2 (after SIGHUP): /x on B
    x = socks["A"] if version == 1 else socks["B"]
    mounts = [
        {"mountpoint": "/app", "origin": "http://+%s:/" % socks["A"]},
        {"mountpoint": "/x", "origin": "http://+%s:/" % x},
    ]
    # short pool idle time and keep-alive: old workers drain fast
    pvo = [{"lws-uds-proxy": {"pool-idle-timeout-ms": "500"}}]
    vhosts = [
        {"name": "localhost", "port": str(port), "interface": "127.0.0.1",
         "keepalive_timeout": "1",
         "access-log": os.path.join(tmp, "access.log"),
         "mounts": mounts, "ws-protocols": pvo},
        {"name": "unix", "unix-socket": "1", "interface": lsock,
         "keepalive_timeout": "1", "mounts": mounts, "ws-protocols": pvo},
    ]
    conf = {"global": {"plugin-dir": plugins, "timeout-secs": "5",
                       "count-processes": procs}}
    os.makedirs(os.path.join(confdir, "conf.d"), exist_ok=True)
    with open(os.path.join(confdir, "conf"), "w") as f:
        json.dump(conf, f, indent=1)
    tmpf = os.path.join(confdir, "conf.d", ".v.tmp")
    with open(tmpf, "w") as f:
        f.write("# version %d\n" % version)
        json.dump({"vhosts": vhosts}, f, indent=1)
    os.rename(tmpf, os.path.join(confdir, "conf.d", "v"))


def workers_of(manager, what):
    """The manager's workers, once there are exactly WORKERS of them."""
    wait_until(lambda: len(children(manager)) == WORKERS,
               "%d workers %s" % (WORKERS, what), 20)
    return children(manager)


class Download(threading.Thread):
    """GET path over one connection whose local port is known at once."""

    def __init__(self, port, path):
        super().__init__(daemon=True)
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.c.connect()
        self.client_port = self.c.sock.getsockname()[1]
        self.path = path
        self.status = None
        self.body = b""
        self.error = None

    def run(self):
        try:
            self.status, self.body = get(self.c, self.path)
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            self.c.close()


def check_workers(master, port, lsock, tmp, log):
    """Steps up to and including the worker replacement.  Returns the
    manager and its workers."""
    managers = children(master)
    if len(managers) != 1:
        raise Failure("serving processes: %r" % managers)
    manager = managers[0]
    workers = workers_of(manager, "at start")
    if len(children(manager)) != WORKERS:
        raise Failure("workers: %r" % children(manager))

    # the manager's lws never serves: listeners only, no plugin state
    m = proc_fds(manager)
    if m["listen"] != 1 or m["tcp"] or m["unix"] != 1:
        raise Failure("manager holds %r, want its two listeners only" % m)
    alog = os.path.join(tmp, "access.log")
    if holds_file(manager, alog):
        raise Failure("the manager has the access log open")
    for w in workers:
        if not holds_file(w, alog):
            raise Failure("worker %d has no access log open" % w)
        f = proc_fds(w)
        # the TCP listener twice: lws's and the accept gate's copy, which
        # it puts back after a pause (host/limits.c)
        if f["listen"] != 2 or f["unix"] < 1:
            raise Failure("worker %d holds %r, want the listeners" % (w, f))
    # a worker that loses the race for a connection must get EAGAIN
    lfds = listener_fds(manager)
    if len(lfds) != 2:
        raise Failure("manager's listeners: fds %r, want 2" % lfds)
    for fd in lfds:
        if not nonblocking(manager, fd):
            raise Failure("listener fd %d is blocking: losing workers "
                          "would hang in accept()" % fd)
    ids = [eventfd_ids(p) for p in [manager] + workers]
    if all(len(i) == 1 for i in ids) and len(set(i[0] for i in ids)) != 3:
        raise Failure("the workers share lws's event fd: %r" % ids)
    print("ok   %d workers under manager %d, which holds only the "
          "listeners; own access log fds%s" % (
              WORKERS, manager, " and event fds" if ids[0] else ""))

    # many requests, fresh and keep-alive connections, TCP and unix
    total = 0
    for i in range(60):
        if who(port, "/x/who" if i % 2 else "/app/who") != "A":
            raise Failure("request %d on a fresh connection failed" % i)
        total += 1
    for i in range(3):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        for j in range(20):
            st, body = get(c, "/x/who")
            if st != 200 or body != b"A\n":
                raise Failure("keep-alive request %d/%d: %d %r" %
                              (i, j, st, body))
            total += 1
        c.close()
    for i in range(20):
        if who_unix(lsock) != "A":
            raise Failure("request %d on the unix listener failed" % i)
    wait_until(lambda: sum(1 for _ in open(alog)) >= total,
               "%d access log lines" % total)
    lines = open(alog).read().splitlines()
    bad = [ln for ln in lines if not LOG_LINE.match(ln)]
    if len(lines) != total or bad:
        raise Failure("access log: %d lines for %d requests, bad: %r" %
                      (len(lines), total, bad[:3]))
    print("ok   %d h1 requests (TCP fresh and keep-alive, unix) answered, "
          "%d whole access log lines" % (total + 20, total))

    # each worker serves alone: the other is stopped and cannot accept
    for w in workers:
        others = [o for o in workers if o != w]
        try:
            for o in others:
                os.kill(o, signal.SIGSTOP)
            for i in range(5):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
                c.connect()
                cport = c.sock.getsockname()[1]
                st, body = get(c, "/x/who")
                h = holder(workers + [manager], port, cport)
                c.close()
                if st != 200 or body != b"A\n" or h != w:
                    raise Failure("with only worker %d running: %d %r, "
                                  "connection held by %r" % (w, st, body, h))
            if who_unix(lsock) != "A":
                raise Failure("unix listener with only worker %d" % w)
        finally:
            for o in others:
                os.kill(o, signal.SIGCONT)
    print("ok   each worker serves on its own (the other one stopped)")

    # SIGKILL: the manager replaces the worker, and says how it ended
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in children(manager) and
               len(children(manager)) == WORKERS,
               "a worker in place of the killed one", 20)
    if "worker process %d exited on signal 9" % victim not in \
            open(log).read():
        raise Failure("the killed worker is not logged")
    # SIGTERM to one worker: it exits cleanly, and must leave the unix
    # socket path (its manager and the other worker still listen on it)
    victim = [w for w in children(manager) if w != victim][0]
    os.kill(victim, signal.SIGTERM)
    wait_until(lambda: victim not in children(manager) and
               len(children(manager)) == WORKERS,
               "a worker in place of the ended one", 20)
    workers = children(manager)
    for i in range(20):
        if who(port) != "A":
            raise Failure("request %d after the replacements" % i)
    if not os.path.exists(lsock) or who_unix(lsock) != "A":
        raise Failure("the unix listener is gone after a worker ended")
    print("ok   killed (signal 9, logged) and ended workers replaced; "
          "TCP and unix listeners still answer")
    return manager, workers


def check_reload(d, port, lsock, socks, tmp, confdir, plugins, manager,
                 workers):
    dl = Download(port, "/app/hold/%d" % N)
    dl.start()
    wait_until(lambda: os.path.exists(os.path.join(tmp, "A.holding")),
               "the download to be in flight")
    serving = holder(workers, port, dl.client_port)
    if not serving:
        raise Failure("no worker holds the download's connection")

    write_conf(confdir, plugins, port, lsock, socks, tmp, 2)
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: who(port) == "B", "/x to move to B after SIGHUP",
               20)
    for i in range(10):
        if who(port) != "B" or who_unix(lsock) != "B":
            raise Failure("request %d after the reload: not the new config"
                          % i)
    if not dl.is_alive():
        raise Failure("the download ended during the reload: %r %r" %
                      (dl.status, dl.error))
    if gone(serving) or gone(manager):
        raise Failure("the old manager or the download's worker is gone")
    new = [p for p in children(d.pid) if p != manager]
    if len(new) != 1:
        raise Failure("want one new manager beside the old, have %r" %
                      children(d.pid))
    new_workers = workers_of(new[0], "after the reload")
    print("ok   SIGHUP: new config answers (TCP, unix) from %d new "
          "workers while the download is in flight" % len(new_workers))

    open(os.path.join(tmp, "A.release"), "w").close()
    dl.join(60)
    if dl.is_alive() or dl.error or dl.status != 200:
        raise Failure("download: status %r, error %r" %
                      (dl.status, dl.error))
    if len(dl.body) != N or hashlib.sha256(dl.body).digest() != \
            hashlib.sha256(ops_pattern(N)).digest():
        raise Failure("download across the reload is not intact (%d "
                      "bytes)" % len(dl.body))
    wait_until(lambda: gone(manager) and all(gone(w) for w in workers),
               "the old manager and its workers to drain and exit", 60)
    if children(d.pid) != new or len(children(new[0])) != WORKERS:
        raise Failure("after the drain: %r, workers %r" %
                      (children(d.pid), children(new[0])))
    # (the new socket file may well have the old one's inode number)
    if not os.path.exists(lsock):
        raise Failure("the old manager took the unix socket path along")
    got = who_unix(lsock)
    if got != "B":
        raise Failure("the unix listener after the drain answered %r" % got)
    print("ok   download from worker %d intact; old manager %d and its "
          "workers drained and exited" % (serving, manager))
    return new[0]


def main():
    daemon, plugins = sys.argv[1], os.path.abspath(sys.argv[2])
    tmp = tempfile.mkdtemp(prefix="udsp-ops-workers.")
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
                       "backend " + name)

        port = free_port()
        lsock = os.path.join(tmp, "listen.sock")
        confdir = os.path.join(tmp, "conf")
        write_conf(confdir, plugins, port, lsock, socks, tmp, 1)

        r = subprocess.run([daemon, "-n", "-t", "-c", confdir],
                           capture_output=True, text=True)
        if r.returncode or "configuration ok" not in r.stderr or \
                "count-processes" in r.stderr:
            raise Failure("-t on the config: %d %s" %
                          (r.returncode, r.stderr))

        with open(log, "w") as lf:
            d = subprocess.Popen([daemon, "-n", "-c", confdir],
                                 stdin=subprocess.DEVNULL, stdout=lf,
                                 stderr=lf)
        procs.append(d)
        # on the unix listener, which logs nothing: the access log
        # then holds exactly the requests counted below
        wait_until(lambda: who_unix(lsock) == "A", "first config", 20)

        manager, workers = check_workers(d.pid, port, lsock, tmp, log)
        new = check_reload(d, port, lsock, socks, tmp, confdir, plugins,
                           manager, workers)

        everyone = [new] + children(new)
        d.send_signal(signal.SIGTERM)
        rc = d.wait(timeout=30)
        if rc != 0:
            raise Failure("exit code %d after SIGTERM" % rc)
        left = [p for p in everyone if not gone(p)]
        if left:
            raise Failure("processes left after SIGTERM: %r" % left)
        if os.path.exists(lsock):
            raise Failure("the unix socket path is left after the stop")
        if "signal 11" in open(log).read():
            raise Failure("a process crashed")
        print("ok   SIGTERM: manager and workers gone, exit 0")

        # -s: no supervisor, but still the workers
        with open(log, "a") as lf:
            s = subprocess.Popen([daemon, "-n", "-s", "-c", confdir],
                                 stdin=subprocess.DEVNULL, stdout=lf,
                                 stderr=lf)
        procs.append(s)
        wait_until(lambda: who(port) == "B", "-s to serve", 20)
        kids = workers_of(s.pid, "under -s")
        s.send_signal(signal.SIGTERM)
        rc = s.wait(timeout=30)
        if rc != 0 or not all(gone(p) for p in kids):
            raise Failure("-s: exit code %d, left %r" %
                          (rc, [p for p in kids if not gone(p)]))
        print("ok   -s forks %d workers too; SIGTERM exits 0" % WORKERS)
        ok = True
    except Failure as e:
        print("FAIL", e)
    finally:
        rc = end_ops_run(procs, ok, log, tmp)
    return rc


if __name__ == "__main__":
    sys.exit(main())
