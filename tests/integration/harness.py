# SPDX-License-Identifier: MIT
#
# Integration-test harness: one Env per test case owns a temp dir, the
# backends (backend.py processes), the daemon under test and its config, and
# the clients (curl, nghttp, h2load, a python h2 client, a raw h1 socket).
# Everything it starts it also stops; waits poll sockets, never sleep blindly.

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_TOP = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(SRC_TOP, "tests", "fixtures")
CERT = os.path.join(FIXTURES, "localhost-100y.cert")
KEY = os.path.join(FIXTURES, "localhost-100y.key")
PYTHON = "/usr/bin/python3"
# the test backends' programs (backends/README.md)
BACKENDS = os.path.join(HERE, "backends")
BACKEND = os.path.join(BACKENDS, "backend.py")
WS_BACKEND = os.path.join(BACKENDS, "ws_backend.py")

sys.path.insert(0, HERE)
# backend.py's body pattern is the one the cases check against
sys.path.insert(0, BACKENDS)
from backend import pattern  # noqa: E402
import lwsws_host  # noqa: E402


class Failure(AssertionError):
    pass


def check(cond, msg, *args):
    if not cond:
        raise Failure(msg % args if args else msg)


def eq(got, want, what):
    if got != want:
        raise Failure("%s: got %r, want %r" % (what, got, want))


def sha(b):
    return hashlib.sha256(b).hexdigest()


_given_ports = set()


def free_port():
    """A loopback TCP port nobody listens on.  Picked at random below the
    kernel's ephemeral range (where bind(0) and every client's outgoing
    connections draw from, so an earlier pick could come back at once),
    never the same twice in this process, and checked bindable."""
    import random
    for _ in range(1000):
        port = random.randrange(20000, 32000)
        if port in _given_ports:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _given_ports.add(port)
        return port
    raise RuntimeError("no free loopback port in 20000-32000")


def wait_until(pred, what, timeout=10.0, alive=None):
    """Poll pred() until true; alive() returning a message aborts early."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        if pred():
            return
        if alive:
            msg = alive()
            if msg:
                raise Failure("%s: %s" % (what, msg))
        if time.monotonic() > deadline:
            raise Failure("timed out waiting for %s" % what)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def can_connect_unix(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def can_connect_tcp(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def hdr(headers, name):
    """All values of header `name` (any case) in a [(name, value)] list."""
    return [v for n, v in headers if n.lower() == name.lower()]


def hdr1(headers, name):
    v = hdr(headers, name)
    return v[0] if len(v) == 1 else (None if not v else ", ".join(v))


def proc_status(pid):
    """VmHWM / VmRSS of pid in KiB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0])
    return out


def children(pid):
    """Pids whose parent is pid, sorted."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        if int(st.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d))
    return sorted(out)


def ops_pattern(n):
    """What test-ops-backend.py serves: n bytes, i * 7 % 251."""
    return bytes(i * 7 % 251 for i in range(n))


def end_ops_run(procs, ok, log, tmp):
    """The end of an ops test: kill what is left, show the daemon's log
    if the test failed, remove its files; returns the exit code."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    if not ok and os.path.exists(log):
        sys.stdout.write("".join("    | " + line for line in open(log)))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


def _socket_inodes():
    """inode -> kind for the sockets of this network namespace: "listen"
    and "tcp" (anything else, i.e. a connection) from /proc/net/tcp{,6},
    "unix" from /proc/net/unix."""
    kinds = {}
    for name in ("tcp", "tcp6"):
        try:
            with open("/proc/net/" + name) as f:
                next(f)
                for line in f:
                    w = line.split()
                    kinds[w[9]] = "listen" if w[3] == "0A" else "tcp"
        except OSError:
            pass
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            w = line.split()
            kinds[w[6]] = "unix"
    return kinds


def proc_fds(pid):
    """The open fds of pid, counted by kind: total, listen, tcp (client
    or backend TCP connections), unix (unix sockets), deleted (paths of
    unlinked files still open) and other."""
    kinds = _socket_inodes()
    out = {"total": 0, "listen": 0, "tcp": 0, "unix": 0, "other": 0,
           "deleted": []}
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            link = os.readlink(os.path.join(d, fd))
        except OSError:
            continue            # closed meanwhile
        out["total"] += 1
        if link.startswith("socket:["):
            k = kinds.get(link[8:-1], "other")
            out[k] += 1
            continue
        if link.endswith(" (deleted)"):
            out["deleted"].append(link[:-len(" (deleted)")])
        out["other"] += 1
    return out


class Proc:
    """A child process with its output in a log file."""

    def __init__(self, name, argv, log, env=None, nofile=None):
        self.name = name
        self.argv = argv
        self.log = log
        self.logf = open(log, "ab")
        pre = None
        if nofile:
            # soft and hard: the daemon raises its soft limit to the hard
            import resource

            def pre():
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                  stdout=self.logf, stderr=subprocess.STDOUT,
                                  env=env, preexec_fn=pre)
        self.pid = self.p.pid

    def exited(self):
        rc = self.p.poll()
        if rc is None:
            return None
        return "%s exited with %s" % (self.name, rc)

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        if self.p.poll() is None:
            try:
                self.p.send_signal(sig)
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()
        return self.p.returncode


class Backend:
    """A backend.py process on a unix socket or TCP port, maybe TLS."""

    def __init__(self, env, name, kind):
        self.env = env
        self.name = name
        # "ws-" in front: ws_backend.py (a WebSocket server) instead
        self.script = BACKEND
        if kind.startswith("ws-"):
            self.script = WS_BACKEND
            kind = kind[3:]
        self.kind = kind    # unix | abstract | tcp | tls-unix | tls-tcp
        self.tls = kind.startswith("tls")
        self.unix = kind.endswith("unix") or kind == "abstract"
        if kind == "abstract":
            # unique per case: ctest may run cases side by side
            self.path = "@" + os.path.basename(env.dir) + "-" + name
        else:
            self.path = os.path.join(env.dir, name + ".sock")
        self.pidfile = os.path.join(env.dir, name + ".pid")
        self.portfile = os.path.join(env.dir, name + ".port")
        self.reqlog = os.path.join(env.dir, name + ".req.jsonl")
        self.log = os.path.join(env.dir, name + ".log")
        self.port = None
        self.proc = None

    def start(self):
        argv = [PYTHON, self.script, "--pidfile", self.pidfile,
                "--reqlog", self.reqlog]
        if self.script == BACKEND:
            argv += ["--name", self.name]
        if self.unix:
            argv += ["--unix", self.path]
        else:
            # Keep the port across restarts so the daemon's config holds.
            argv += ["--tcp", "127.0.0.1:%d" % (self.port or 0),
                     "--portfile", self.portfile]
            if os.path.exists(self.portfile):
                os.unlink(self.portfile)
        if self.tls:
            argv += ["--tls", CERT, KEY]
        if os.path.exists(self.pidfile):
            os.unlink(self.pidfile)
        self.proc = Proc("backend " + self.name, argv, self.log)
        if self.unix:
            wait_until(lambda: os.path.exists(self.pidfile) and
                       can_connect_unix(self.sockaddr()),
                       "backend %s on %s" % (self.name, self.path),
                       alive=self.proc.exited)
        else:
            wait_until(lambda: os.path.exists(self.portfile),
                       "backend %s port file" % self.name,
                       alive=self.proc.exited)
            with open(self.portfile) as f:
                self.port = int(f.read())
            wait_until(lambda: os.path.exists(self.pidfile) and
                       can_connect_tcp(self.port),
                       "backend %s on port %d" % (self.name, self.port),
                       alive=self.proc.exited)
        return self

    def kill(self, sig=signal.SIGKILL):
        """Kill via the pid file, as an operator would; leaves the socket
        file behind (SIGKILL) so the daemon sees ECONNREFUSED."""
        with open(self.pidfile) as f:
            pid = int(f.read())
        eq(pid, self.proc.pid, "backend pid file")
        os.kill(pid, sig)
        self.proc.p.wait(10)
        self.proc.stop()

    def stop(self):
        if self.proc:
            self.proc.stop()

    def sockaddr(self):
        if self.path.startswith("@"):
            return "\0" + self.path[1:]
        return self.path

    def stats(self):
        """GET /stats straight from the backend (not through the proxy);
        "open" leaves out the connection asking."""
        if self.unix:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(self.sockaddr())
        else:
            s = socket.create_connection(("127.0.0.1", self.port),
                                         timeout=10)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s, server_hostname="localhost")
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        doc = json.loads(data.split(b"\r\n\r\n", 1)[1])
        doc["open"] -= 1
        return doc

    def origin(self, inside="/"):
        scheme = "https" if self.tls else "http"
        if self.unix:
            return "%s://+%s:%s" % (scheme, self.path, inside)
        return "%s://127.0.0.1:%d%s" % (scheme, self.port, inside)

    def requests(self):
        if not os.path.exists(self.reqlog):
            return []
        with open(self.reqlog) as f:
            # a line the backend is still writing has no newline yet:
            # polling callers (wait_until) see it complete next time
            return [json.loads(line) for line in f
                    if line.strip() and line.endswith("\n")]


class Resp:
    def __init__(self, rc=0, status=None, version=None, headers=None,
                 body=b"", err="", info=None):
        self.rc = rc
        self.status = status
        self.version = version
        self.headers = headers or []
        self.body = body
        self.err = err
        self.info = info or {}

    def h(self, name):
        return hdr1(self.headers, name)

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise Failure("response body is not JSON: %r" % self.body[:300])

    def __repr__(self):
        return "<Resp rc=%s status=%s v=%s %d bytes err=%r>" % (
            self.rc, self.status, self.version, len(self.body),
            self.err.strip()[-300:])


def parse_head_blocks(raw):
    """curl -D output -> list of (status, version, [(name, value)])."""
    blocks = []
    cur = None
    for line in raw.decode("latin-1").split("\r\n"):
        if line.startswith("HTTP/"):
            parts = line.split(" ", 2)
            cur = (int(parts[1]), parts[0][5:], [])
            blocks.append(cur)
        elif line and cur is not None:
            n, _, v = line.partition(":")
            cur[2].append((n, v.strip()))
    return blocks


class Env:
    """Everything one test case runs against."""

    PVO_DEFAULTS = {
        "connect-timeout-ms": "2000",
        "head-timeout-ms": "5000",
        "forward-headers": "x-hop,x-custom-fwd",
        "tls-verify": "0",
    }

    def __init__(self, build_dir, name, debug=None, keep=False):
        self.build_dir = os.path.abspath(build_dir)
        self.daemon_bin = None
        for p in ("host/lws-uds-proxyd", "lws-uds-proxyd"):
            cand = os.path.join(self.build_dir, p)
            if os.access(cand, os.X_OK):
                self.daemon_bin = cand
                break
        self.plugin_dir = os.path.join(self.build_dir, "plugins")
        # UDSP_IT_HOST=lwsws: real lwsws hosts the plugin (lwsws_host.py)
        self.lwsws = lwsws_host.from_environ()
        if self.lwsws:
            self.plugin_dir = self.lwsws.plugin_dir
        self.dir = tempfile.mkdtemp(prefix="udsp-it-%s-" % name)
        self.keep = keep
        self.debug = debug if debug is not None else int(
            os.environ.get("UDSP_IT_DEBUG", "7"))
        self.backends = {}
        self.daemon = None
        self.procs = []
        self.http_port = None
        self.https_port = None
        self.bound_socks = []

    # -- set-up --------------------------------------------------------

    def backend(self, name, kind="unix"):
        b = Backend(self, name, kind).start()
        self.backends[name] = b
        return b

    def bound_not_listening(self, name):
        """A unix socket file that exists but refuses connections."""
        path = os.path.join(self.dir, name + ".sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        self.bound_socks.append(s)
        return path

    def standard_mounts(self):
        """Mounts for every backend started so far, named by cell."""
        m = []
        b = self.backends.get("main")
        if b:
            m += [
                {"mountpoint": "/app", "origin": b.origin("/")},
                {"mountpoint": "/cb", "origin": "callback://lws-uds-proxy",
                 "pmo": [{"backend": b.origin("/")}]},
                {"mountpoint": "/in", "origin": b.origin("/inside")},
            ]
        b = self.backends.get("tcp")
        if b:
            m += [
                {"mountpoint": "/tcp", "origin": b.origin("/")},
                {"mountpoint": "/tcb", "origin": "callback://lws-uds-proxy",
                 "pmo": [{"backend": b.origin("/")}]},
            ]
        b = self.backends.get("tls")
        if b:
            m += [
                {"mountpoint": "/tlsn", "origin": b.origin("/")},
                {"mountpoint": "/tlsc", "origin": "callback://lws-uds-proxy",
                 "pmo": [{"backend": b.origin("/")}]},
            ]
        return m

    def start_daemon(self, mounts=None, pvo=None, vhost_extra=None,
                     global_extra=None, nofile=None, environ=None):
        """nofile: the daemon's RLIMIT_NOFILE (soft and hard); environ:
        variables to add to the host's environment.  A daemon
        this Env started before is stopped first: it would go on serving
        on the same ports (lws listens with SO_REUSEPORT) and outlive the
        case."""
        if self.daemon:
            self.daemon.stop()
        check(self.daemon_bin or self.lwsws,
              "no lws-uds-proxyd under %s", self.build_dir)
        check(os.path.exists(os.path.join(
            self.plugin_dir, "libprotocol_lws_uds_proxy.so")),
            "no plugin in %s", self.plugin_dir)
        if mounts is None:
            mounts = self.standard_mounts()
        p = dict(self.PVO_DEFAULTS)
        if "main" in self.backends:
            p["backend"] = self.backends["main"].origin("/")
        p.update(pvo or {})
        self.http_port = free_port()
        self.https_port = free_port()
        confdir = os.path.join(self.dir, "conf")
        os.makedirs(os.path.join(confdir, "conf.d"), exist_ok=True)
        glob = {"global": {"plugin-dir": self.plugin_dir,
                           "server-string": "udsp-it",
                           "init-ssl": "yes"}}
        glob["global"].update(global_extra or {})
        common = {"mounts": mounts,
                  "ws-protocols": [{"lws-uds-proxy": p}]}
        common.update(vhost_extra or {})
        plain = {"name": "localhost", "port": str(self.http_port),
                 "interface": "127.0.0.1"}
        plain.update(common)
        tls = {"name": "localhost", "port": str(self.https_port),
               "interface": "127.0.0.1",
               "host-ssl-cert": CERT, "host-ssl-key": KEY,
               "h2-max-concurrent-streams": "128"}
        tls.update(common)
        vhosts = [plain, tls]
        if self.lwsws:
            glob, vhosts = self.lwsws.conf(glob, vhosts)
        with open(os.path.join(confdir, "conf"), "w") as f:
            json.dump(glob, f, indent=2)
        with open(os.path.join(confdir, "conf.d", "it"), "w") as f:
            json.dump({"vhosts": vhosts}, f, indent=2)
        self.daemon_log = os.path.join(self.dir, "daemon.log")
        penv = dict(os.environ, **environ) if environ else None
        if self.lwsws:
            self.daemon = self.lwsws.start(confdir, self.debug,
                                           self.daemon_log, env=penv)
        else:
            # UDSP_IT_DAEMON_PREFIX runs the daemon under a tool
            # (valgrind: scripts/sanitize), then as one process (-s).
            pre = os.environ.get("UDSP_IT_DAEMON_PREFIX", "").split()
            self.daemon = Proc("daemon", pre + [
                self.daemon_bin, "-c", confdir, "-d", str(self.debug)] +
                (["-s"] if pre else []), self.daemon_log, env=penv,
                nofile=nofile)
        wait_until(lambda: can_connect_tcp(self.http_port) and
                   can_connect_tcp(self.https_port),
                   "daemon ports %d/%d" % (self.http_port, self.https_port),
                   alive=self.daemon.exited)
        return self.daemon

    def close(self, failed):
        alive = self.daemon.exited() if self.daemon else None
        for b in self.backends.values():
            b.stop()
        if self.daemon:
            self.daemon.stop()
        for s in self.bound_socks:
            s.close()
        if failed:
            self.dump_logs()
        if alive:
            print("NOTE: %s before the end of the case" % alive)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("kept %s" % self.dir)

    def dump_logs(self, tail=300):
        logs = []
        if self.daemon:
            logs.append(("daemon", self.daemon_log))
        for b in self.backends.values():
            logs.append(("backend " + b.name, b.log))
        for name, path in logs:
            try:
                with open(path, "rb") as f:
                    lines = f.read().decode("utf-8", "replace").splitlines()
            except OSError:
                continue
            print("----- %s log (%s, last %d of %d lines) -----" % (
                name, path, min(tail, len(lines)), len(lines)))
            for ln in lines[-tail:]:
                print(ln)
        print("----- end of logs -----")

    # -- URLs and clients ----------------------------------------------

    def url(self, proto, path):
        if proto == "h1":
            return "http://127.0.0.1:%d%s" % (self.http_port, path)
        return "https://127.0.0.1:%d%s" % (self.https_port, path)

    def authority(self, proto):
        return "127.0.0.1:%d" % (self.http_port if proto == "h1"
                                 else self.https_port)

    def curl(self, proto, path, method=None, headers=(), data=None,
             data_file=None, upload_file=None, extra=(), timeout=30,
             urls_after=()):
        """Run curl once; returns a Resp for the last transfer, with the
        head blocks of every transfer in info['blocks'] and curl's -w json
        in info."""
        n = len(os.listdir(self.dir))
        hfile = os.path.join(self.dir, "curl%d.h" % n)
        bfile = os.path.join(self.dir, "curl%d.b" % n)
        # curl -I writes the head into -o: keep HEAD's "body" out of it
        # (the raw h1 and h2 clients check that HEAD has none).
        out = os.devnull if method == "HEAD" else bfile
        argv = ["curl", "-sS", "-v", "--max-time", str(timeout),
                "-D", hfile, "-o", out, "-w", "%{json}\\n"]
        if proto == "h1":
            argv.append("--http1.1")
        elif proto == "h1.0":
            argv.append("--http1.0")
        else:
            argv += ["--http2", "-k"]
        if method:
            if method == "HEAD":
                argv.append("-I")
            else:
                argv += ["-X", method]
        for h in headers:
            argv += ["-H", h]
        if data is not None:
            dfile = bfile + ".in"
            with open(dfile, "wb") as f:
                f.write(data)
            argv += ["--data-binary", "@" + dfile]
        if data_file:
            argv += ["--data-binary", "@" + data_file]
        if upload_file:
            argv += ["-T", upload_file]
        argv += list(extra)
        argv.append(self.url("h1" if proto.startswith("h1") else "h2", path))
        for p in urls_after:
            argv += ["-o", bfile,
                     self.url("h1" if proto.startswith("h1") else "h2", p)]
        cp = subprocess.run(argv, stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=timeout + 15)
        info = {}
        lines = [ln for ln in cp.stdout.decode("latin-1").splitlines()
                 if ln.startswith("{")]
        if lines:
            info = json.loads(lines[-1])
            info["all"] = [json.loads(ln) for ln in lines]
        blocks = []
        if os.path.exists(hfile):
            with open(hfile, "rb") as f:
                blocks = parse_head_blocks(f.read())
        body = b""
        if os.path.exists(bfile):
            with open(bfile, "rb") as f:
                body = f.read()
            os.unlink(bfile)
        info["blocks"] = blocks
        info["argv"] = argv
        st, ver, hs = blocks[-1] if blocks else (None, None, [])
        return Resp(cp.returncode, st, ver, hs, body,
                    cp.stderr.decode("latin-1"), info)

    def get_ok(self, proto, path, what=None):
        r = self.curl(proto, path)
        check(r.rc == 0 and r.status == 200, "%s %s: %r",
              proto, what or path, r)
        if proto == "h2":
            eq(r.version, "2", "%s HTTP version" % path)
        return r

    def nghttp(self, path, extra=(), timeout=20):
        """nghttp -nv; returns (rc, [(stream, name, value) received],
        output)."""
        argv = ["nghttp", "-nv", "-t", str(timeout)] + list(extra) + \
            [self.url("h2", path)]
        cp = subprocess.run(argv, stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=timeout + 10)
        out = cp.stdout.decode("latin-1") + cp.stderr.decode("latin-1")
        got = []
        for m in re.finditer(r"recv \(stream_id=(\d+)(?:, [^)]*)?\) "
                             r"(:?[^:\s]+): (.*)", out):
            got.append((int(m.group(1)), m.group(2), m.group(3)))
        return cp.returncode, got, out

    def h2client(self):
        return H2Client(self.https_port)

    def raw_h1(self, rcvbuf=None):
        return RawH1(self.http_port, rcvbuf)

    # -- health ----------------------------------------------------------

    def serving_pid(self):
        """The process that serves: lws-uds-proxyd's one child when it
        runs as a supervisor, else the daemon itself (-s, older hosts)."""
        pid = self.daemon.pid
        try:
            with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        check(len(kids) <= 1, "daemon %d has several children %r (a reload "
              "under way?)", pid, kids)
        return kids[0] if kids else pid

    def fd_key(self):
        """What of the daemon's fds must come back after any request: its
        client connections (none), listeners, files and pipes, and its
        unix sockets less those the plain unix backends count as open
        (pooled connections are not a leak; unaccounted ones are)."""
        f = proc_fds(self.serving_pid())
        bopen = sum(b.stats()["open"] for b in self.backends.values()
                    if b.unix and not b.tls and b.proc and
                    b.proc.exited() is None)
        return {"clients": f["tcp"], "listen": f["listen"],
                "other": f["other"], "own-unix": f["unix"] - bopen,
                "deleted": f["deleted"]}

    def fd_baseline(self, timeout=10):
        """fd_key() once the daemon has closed every client connection."""
        pid = self.serving_pid()
        wait_until(lambda: proc_fds(pid)["tcp"] == 0,
                   "the daemon to close its client connections", timeout,
                   alive=self.daemon.exited)
        return self.fd_key()

    def fd_settle(self, base, what, timeout=10):
        """Poll until the daemon's fds are back to base (fd_baseline)."""
        last = [None]

        def same():
            last[0] = self.fd_key()
            return last[0] == base
        try:
            wait_until(same, "fds after " + what, timeout,
                       alive=self.daemon.exited)
        except Failure:
            raise Failure("daemon fds after %s never returned to the "
                          "baseline: now %r, baseline %r" %
                          (what, last[0], base))
        print("daemon fds back to baseline after %s: %r" % (what, base))

    def check_serving(self, path="/app/bytes/4097", protos=("h1", "h2")):
        """Every case ends here: the daemon is alive and still proxies."""
        msg = self.daemon.exited()
        check(msg is None, "daemon died: %s", msg)
        for proto in protos:
            r = self.get_ok(proto, path, "health check " + path)
            n = int(path.rsplit("/", 1)[1])
            check(r.body == pattern(n), "health check body differs")


class RawH1:
    """A plain socket speaking h1 by hand, to see exact framing."""

    def __init__(self, port, rcvbuf=None):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # before connect(), so that the window is small from the start
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(15)
        self.s.connect(("127.0.0.1", port))
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        try:
            d = self.s.recv(65536)
        except OSError as e:
            raise Failure("connection error %s; have %r" % (e, self.buf[:200]))
        if not d:
            raise Failure("connection closed by the daemon; have %r" %
                          self.buf[:200])
        self.buf += d

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hs = []
        for ln in lines[1:]:
            n, _, v = ln.partition(":")
            hs.append((n, v.strip()))
        return lines[0], status, hs

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_chunked(self):
        body = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            line, self.buf = self.buf.split(b"\r\n", 1)
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while not self.buf.startswith(b"\r\n"):
                    if b"\r\n" in self.buf:
                        self.buf = self.buf.split(b"\r\n", 1)[1]
                    else:
                        self._fill()
                self.buf = self.buf[2:]
                return body
            body += self.read_exact(size)
            eq(self.read_exact(2), b"\r\n", "chunk terminator")

    def request(self, method, path, host, headers=(), no_body=False):
        """One request/response; returns (status, headers, body)."""
        req = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, path, host)
        for h in headers:
            req += h + "\r\n"
        self.send((req + "\r\n").encode("latin-1"))
        line, status, hs = self.read_head()
        if no_body or method == "HEAD" or status in (204, 304):
            return status, hs, b""
        if (hdr1(hs, "transfer-encoding") or "").lower() == "chunked":
            return status, hs, self.read_chunked()
        cl = hdr1(hs, "content-length")
        check(cl is not None, "raw h1: response with neither length nor "
              "chunking on a keep-alive request: %s %r", line, hs)
        return status, hs, self.read_exact(int(cl))

    def close(self):
        self.s.close()


class H2Client:
    """Minimal h2 client over TLS (python3-h2) for per-stream detail."""

    def __init__(self, port, window=None):
        import h2.config
        import h2.connection
        import h2.settings
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.s = ctx.wrap_socket(raw, server_hostname="localhost")
        eq(self.s.selected_alpn_protocol(), "h2", "ALPN")
        # Inbound validation off: the tests check header rules themselves
        # and want to see an offending header rather than an exception.
        cfg = h2.config.H2Configuration(client_side=True,
                                        header_encoding="latin-1",
                                        validate_inbound_headers=False)
        self.c = h2.connection.H2Connection(config=cfg)
        self.c.initiate_connection()
        if window:
            self.c.update_settings({
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        else:
            self.c.increment_flow_control_window(1 << 30)
            self.c.update_settings({
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: (1 << 31) - 1})
        self.flush()
        self.streams = {}
        self.port = port
        self.closed = False
        self.goaway = None
        self.rx_bytes = 0       # everything read off the socket

    def flush(self):
        d = self.c.data_to_send()
        if d:
            self.s.sendall(d)

    def request(self, method, path, headers=(), body=None):
        sid = self.c.get_next_available_stream_id()
        hs = [(":method", method), (":scheme", "https"),
              (":authority", "127.0.0.1:%d" % self.port), (":path", path)]
        hs += list(headers)
        self.c.send_headers(sid, hs, end_stream=body is None)
        if body is not None:
            self.c.send_data(sid, body, end_stream=True)
        self.streams[sid] = {"headers": [], "data": b"", "ended": False,
                             "reset": None, "trailers": []}
        self.flush()
        return sid

    def start(self, method, path, headers=()):
        """Open a stream whose body follows (send_bodies)."""
        sid = self.c.get_next_available_stream_id()
        hs = [(":method", method), (":scheme", "https"),
              (":authority", "127.0.0.1:%d" % self.port), (":path", path)]
        hs += list(headers)
        self.c.send_headers(sid, hs, end_stream=False)
        self.streams[sid] = {"headers": [], "data": b"", "ended": False,
                             "reset": None, "trailers": []}
        self.flush()
        return sid

    def _window(self, sid):
        """What may be sent on sid now (may be negative: a SETTINGS
        frame can shrink windows already used), None once it closed."""
        import h2.exceptions
        try:
            return min(self.c.local_flow_control_window(sid),
                       self.c.max_outbound_frame_size)
        except h2.exceptions.StreamClosedError:
            return None

    def _sendable(self, sid):
        w = self._window(sid)
        return w is None or w > 0

    def send_bodies(self, bodies, end=True, timeout=60, eager=False):
        """Send {sid: bytes} round robin, a frame per stream per round, as
        far as the peer's flow-control windows allow (reading frames for
        WINDOW_UPDATEs meanwhile); end=False leaves the streams open.  A
        stream the peer ends or resets first is left out.  eager: each
        round sends as many frames per stream as its window allows, and
        all of a round's frames leave in one write (as nghttp2 does), so
        a body's last frames share TLS records with what precedes them."""
        off = dict.fromkeys(bodies, 0)
        todo = set(bodies)
        deadline = time.monotonic() + timeout
        while todo:
            sent = False
            for sid in sorted(todo):
                st = self.streams[sid]
                body = bodies[sid]
                win = self._window(sid)
                if st["ended"] or st["reset"] is not None or win is None:
                    todo.discard(sid)
                    continue
                while True:
                    n = min(max(win, 0), len(body) - off[sid])
                    last = off[sid] + n == len(body)
                    if n > 0 or (last and end):
                        self.c.send_data(sid, body[off[sid]:off[sid] + n],
                                         end_stream=last and end)
                        off[sid] += n
                        sent = True
                    if last:
                        todo.discard(sid)
                    win = self._window(sid)
                    if not eager or last or not win or win <= 0:
                        break
            self.flush()
            if todo and not sent:
                self.pump(lambda: any(self._sendable(s) for s in todo),
                          timeout=max(deadline - time.monotonic(), 0.01))
        return off

    def pump(self, until, timeout=30, ack=True, tick=None):
        """Read and dispatch frames until until() is true; with tick,
        until() is asked at least every tick seconds even when nothing
        arrives (for conditions outside this connection)."""
        import h2.events
        deadline = time.monotonic() + timeout
        while not until():
            if self.closed:
                raise Failure("h2 connection closed early (goaway %r)" %
                              (self.goaway,))
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("h2 client timed out; streams %r" % {
                    k: (v["ended"], v["reset"], len(v["data"]))
                    for k, v in self.streams.items()})
            self.s.settimeout(min(left, tick) if tick else left)
            try:
                d = self.s.recv(65536)
            except (TimeoutError, socket.timeout):
                continue        # the deadline check above reports it
            except OSError as e:
                raise Failure("h2 connection error %s" % e)
            if not d:
                self.closed = True
                continue
            self.rx_bytes += len(d)
            for ev in self.c.receive_data(d):
                st = self.streams.get(getattr(ev, "stream_id", None))
                if isinstance(ev, h2.events.ResponseReceived):
                    st["headers"] += list(ev.headers)
                elif isinstance(ev, h2.events.InformationalResponseReceived):
                    st.setdefault("informational", []).append(
                        list(ev.headers))
                elif isinstance(ev, h2.events.TrailersReceived):
                    st["trailers"] += list(ev.headers)
                elif isinstance(ev, h2.events.DataReceived):
                    st["data"] += ev.data
                    if ack:
                        self.c.acknowledge_received_data(
                            ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    st["ended"] = True
                elif isinstance(ev, h2.events.StreamReset):
                    st["reset"] = ev.error_code
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.goaway = ev.error_code
                    self.closed = True
            self.flush()

    def wait_all(self, sids, timeout=30):
        self.pump(lambda: all(self.streams[s]["ended"] or
                              self.streams[s]["reset"] is not None
                              for s in sids), timeout)
        return [self.streams[s] for s in sids]

    def close(self):
        try:
            self.c.close_connection()
            self.flush()
        except Exception:
            pass
        self.s.close()


H2_FRAME_NAMES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM",
                  4: "SETTINGS", 5: "PUSH_PROMISE", 6: "PING", 7: "GOAWAY",
                  8: "WINDOW_UPDATE", 9: "CONTINUATION"}


def h2_raw_frames(port, path, method="GET", timeout=30):
    """One request on a fresh h2 connection, read frame by frame off the
    wire (nghttp and python3-h2 show HEADERS and its CONTINUATIONs as one
    frame).  Windows are opened wide at the start, so no WINDOW_UPDATE is
    needed later.  Returns ([(type name, flags, stream, length)], DATA
    bytes of stream 1, whether stream 1 ended)."""
    import hpack
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port),
                                                 timeout=timeout),
                        server_hostname="localhost")

    def frame(ftype, flags, sid, payload):
        return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + \
            sid.to_bytes(4, "big") + payload

    block = hpack.Encoder().encode([
        (":method", method), (":scheme", "https"),
        (":authority", "127.0.0.1:%d" % port), (":path", path)])
    # SETTINGS_INITIAL_WINDOW_SIZE 2^31-1; connection window to 2^31-1
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
              frame(4, 0, 0, (4).to_bytes(2, "big") +
                    (2 ** 31 - 1).to_bytes(4, "big")) +
              frame(8, 0, 0, (2 ** 31 - 1 - 65535).to_bytes(4, "big")) +
              frame(1, 0x5, 1, block))
    buf, pos = bytearray(), 0
    frames, data, ended = [], [], False
    deadline = time.monotonic() + timeout
    while not ended:
        while len(buf) - pos >= 9:
            ln = int.from_bytes(buf[pos:pos + 3], "big")
            if len(buf) - pos < 9 + ln:
                break
            ftype, flags = buf[pos + 3], buf[pos + 4]
            sid = int.from_bytes(buf[pos + 5:pos + 9], "big") & 0x7fffffff
            frames.append((H2_FRAME_NAMES.get(ftype, str(ftype)), flags,
                           sid, ln))
            if ftype == 4 and not flags & 1:
                s.sendall(frame(4, 1, 0, b""))
            if sid == 1 and ftype == 0:
                data.append(bytes(buf[pos + 9:pos + 9 + ln]))
            if sid == 1 and ftype in (0, 1) and flags & 1:
                ended = True
            if ftype in (3, 7) and (sid in (0, 1)):
                ended = True
            pos += 9 + ln
        del buf[:pos]
        pos = 0
        if ended:
            break
        s.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            d = s.recv(1 << 20)
        except (TimeoutError, socket.timeout):
            raise Failure("raw h2 %s: timed out after %d frames" %
                          (path, len(frames)))
        if not d:
            break
        buf += d
    s.close()
    return frames, b"".join(data), ended


def h2_status(st):
    for n, v in st["headers"]:
        if n == ":status":
            return int(v)
    return None
