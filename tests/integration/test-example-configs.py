#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# The example configs in lwsws-conf/ work, and README.md quotes only them.
# For each example (demo, tls-h2, lwsws) a copy is run by the real daemon in
# front of the real hello-app, with only its machine-specific paths and its
# ports replaced (SUBST below); a copy with a broken backend origin must be
# refused naming its file; every ```json block in README.md must be an
# excerpt of some file under lwsws-conf/, and README.md must quote
# `lws-uds-proxyd -h` as the binary prints it.
#
#   test-example-configs.py --build-dir BUILD [demo|tls-h2|lwsws|readme]...
#
# With --lwsws BIN --lwsws-plugins DIR (scripts/build-lwsws makes both) the
# lwsws example also runs under real lwsws ("lwsws-real").

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import (CERT, KEY, PYTHON, SRC_TOP, Failure, Proc,  # noqa: E402
                     can_connect_tcp, can_connect_unix, check, eq, free_port,
                     parse_head_blocks, wait_until)

CONF_TOP = os.path.join(SRC_TOP, "lwsws-conf")
APP = os.path.join(SRC_TOP, "examples", "hello-app", "app.py")
DEMO_WWW = os.path.join(CONF_TOP, "demo", "www")
README = os.path.join(SRC_TOP, "README.md")

# What is machine-specific in each example, and what it becomes in the
# copy: the literal text in the shipped file -> a key of Run.paths.  Every
# literal must occur somewhere in the example (so this table cannot rot).
# Ports are handled separately: every `"port": "N"` and `localhost:N` gets
# a free port instead of N.
SUBST = {
    "demo": [
        ("@PLUGINS@", "plugins"),
        ("@WWW@", "www"),
        ("@SOCK@", "sock"),
        ("@STATE@", "state"),   # holds localhost.cert / localhost.key
    ],
    "tls-h2": [
        ("/usr/local/lib/lws-uds-proxy/plugins", "plugins"),
        ("/etc/lws-uds-proxy/tls/server.crt", "cert"),
        ("/etc/lws-uds-proxy/tls/server.key", "key"),
        ("/run/lws-uds-proxy/app.sock", "sock"),
        # a second instance of the app: /app has both (a backend group)
        ("/run/lws-uds-proxy/app2.sock", "sock2"),
        ("/var/www/lws-uds-proxy", "www"),
    ],
    "lwsws": [
        ("/usr/local/lib/lws-uds-proxy/plugins", "plugins"),
        ("/run/lws-uds-proxy/app.sock", "sock"),
        ("/var/www/lws-uds-proxy", "www"),
    ],
}
SUBST["lwsws-real"] = SUBST["lwsws"]

# Nothing of the machine may be left in a rendered copy.
LEFTOVER = re.compile(r"@[A-Z]+@|/run/lws-uds-proxy|/etc/lws-uds-proxy|"
                      r"/var/www/lws-uds-proxy|/usr/local/lib/lws-uds-proxy")
PORT_RE = re.compile(r'"port": "(\d+)"')


def conf_files(d):
    """CONFDIR/conf and CONFDIR/conf.d/*: the files the daemon reads."""
    out = [os.path.join(d, "conf")]
    cd = os.path.join(d, "conf.d")
    out += [os.path.join(cd, f) for f in sorted(os.listdir(cd))]
    return out


class Curl:
    def __init__(self, rc, status, version, headers, body, err):
        self.rc, self.status, self.version = rc, status, version
        self.headers, self.body, self.err = headers, body, err

    def h(self, name):
        v = [b for a, b in self.headers if a.lower() == name.lower()]
        return v[0] if v else None

    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<curl rc=%s status=%s http/%s %d bytes %r>" % (
            self.rc, self.status, self.version, len(self.body),
            self.err.strip()[-300:])


class Lwsws(Proc):
    """Real lwsws: it forks (a root process that waits for SIGHUP, and
    the server), so it runs in its own session and is stopped as a group."""

    def __init__(self, binary, confdir, log):
        self.name = "lwsws"
        self.argv = [binary, "-n", "-c", confdir]
        self.log = log
        self.logf = open(log, "ab")
        env = dict(os.environ)
        lib = os.path.join(os.path.dirname(os.path.dirname(binary)), "lib")
        env["LD_LIBRARY_PATH"] = lib
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                  stdout=self.logf, stderr=subprocess.STDOUT,
                                  env=env, start_new_session=True)
        self.pid = self.p.pid

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.p.wait()
        # the forked server may outlive the root process briefly
        wait_until(lambda: not group_alive(self.pid), "lwsws group exit")
        self.logf.close()
        return self.p.returncode


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


class Run:
    """One example: its rendered copy, the app and the daemon."""

    def __init__(self, name, build_dir, lwsws=None):
        self.name = name
        self.build_dir = build_dir
        self.lwsws = lwsws      # (binary, plugin dir): run under lwsws
        self.daemon_bin = os.path.join(build_dir, "host", "lws-uds-proxyd")
        check(os.access(self.daemon_bin, os.X_OK), "no %s", self.daemon_bin)
        plugins = os.path.join(build_dir, "plugins")
        if lwsws:
            plugins = lwsws[1]
        check(os.path.exists(os.path.join(
            plugins, "libprotocol_lws_uds_proxy.so")),
            "no plugin in %s", plugins)
        # short: unix socket paths are limited to 107 bytes
        self.dir = tempfile.mkdtemp(prefix="udsp-ex-")
        self.paths = {
            "plugins": plugins,
            "www": os.path.join(self.dir, "www"),
            "sock": os.path.join(self.dir, "app.sock"),
            "sock2": os.path.join(self.dir, "app2.sock"),
            "state": os.path.join(self.dir, "state"),
            "cert": os.path.join(self.dir, "state", "localhost.cert"),
            "key": os.path.join(self.dir, "state", "localhost.key"),
        }
        shutil.copytree(DEMO_WWW, self.paths["www"])
        os.makedirs(self.paths["state"])
        shutil.copy(CERT, self.paths["cert"])
        shutil.copy(KEY, self.paths["key"])
        self.ports = {}
        self.procs = []
        self.apps = []
        # the app instances the example uses (SUBST has only used ones)
        self.socks = [k for _, k in SUBST[self.name] if k.startswith("sock")]
        self.daemon = None

    # -- rendering -------------------------------------------------------

    def render(self, confdir):
        """Copy the example to confdir with SUBST and fresh ports."""
        src = os.path.join(CONF_TOP, self.name.replace("-real", ""))
        shutil.copytree(src, confdir)
        used = set()
        for path in conf_files(confdir):
            with open(path) as f:
                text = f.read()
            for lit, key in SUBST[self.name]:
                if lit in text:
                    used.add(lit)
                    text = text.replace(lit, self.paths[key])
            for p in PORT_RE.findall(text):
                if p not in self.ports:
                    self.ports[p] = free_port()
            for old, new in self.ports.items():
                text = text.replace('"port": "%s"' % old,
                                    '"port": "%d"' % new)
                text = text.replace("localhost:%s" % old,
                                    "localhost:%d" % new)
            m = LEFTOVER.search(text)
            check(not m, "%s: machine path %r left after substitution "
                  "(extend SUBST)", path, m and m.group(0))
            with open(path, "w") as f:
                f.write(text)
        unused = [lit for lit, _ in SUBST[self.name] if lit not in used]
        check(not unused, "%s: SUBST entries not found in the example: %r",
              self.name, unused)
        check(self.ports, "%s: no ports found", self.name)

    def port(self, shipped):
        return self.ports[str(shipped)]

    # -- processes ---------------------------------------------------------

    def start_app(self):
        """The hello-app, once per socket the example names."""
        self.apps = []
        for k in self.socks:
            sock = self.paths[k]
            app = Proc("hello-app " + k, [PYTHON, APP, "--socket", sock],
                       os.path.join(self.dir, k + "-app.log"))
            self.procs.append(app)
            self.apps.append(app)
            wait_until(lambda: can_connect_unix(sock),
                       "hello-app on " + sock, alive=app.exited)

    def stop_app(self):
        for app in self.apps:
            app.stop()
        for k in self.socks:
            check(not os.path.exists(self.paths[k]),
                  "hello-app left its socket behind")

    def start_daemon(self):
        confdir = os.path.join(self.dir, "conf-" + self.name)
        self.render(confdir)
        log = os.path.join(self.dir, "daemon.log")
        # -n: only the build tree's plugin, via the rendered plugin-dir
        if self.lwsws:
            self.daemon = Lwsws(self.lwsws[0], confdir, log)
        else:
            self.daemon = Proc("daemon", [self.daemon_bin, "-n", "-c",
                                          confdir], log)
        self.procs.append(self.daemon)
        ports = list(self.ports.values())
        wait_until(lambda: all(can_connect_tcp(p) for p in ports),
                   "daemon ports %r" % ports, alive=self.daemon.exited)

    def check_refuses_broken_origin(self):
        """A copy whose first unix-socket origin is relative must not
        start, and the error must name the file it is in."""
        confdir = os.path.join(self.dir, "broken-" + self.name)
        self.render(confdir)
        broken = None
        for path in conf_files(confdir):
            with open(path) as f:
                text = f.read()
            if "http://+/" in text:
                text = text.replace("http://+/", "http://+relative/", 1)
                with open(path, "w") as f:
                    f.write(text)
                broken = path
                break
        check(broken, "%s: no unix-socket origin to break", self.name)
        try:
            cp = subprocess.run([self.daemon_bin, "-n", "-c", confdir],
                                stdin=subprocess.DEVNULL,
                                capture_output=True, timeout=20)
        except subprocess.TimeoutExpired:
            raise Failure("%s: daemon started with a broken origin in %s" %
                          (self.name, broken))
        err = cp.stderr.decode("latin-1")
        check(cp.returncode != 0, "%s: broken origin: exit code 0",
              self.name)
        check(broken in err and "+relative/" in err,
              "%s: the error does not name %s and the origin:\n%s",
              self.name, broken, err)

    def close(self, failed):
        for p in reversed(self.procs):
            if p.p.poll() is None:
                p.stop()
            elif not p.logf.closed:
                p.logf.close()
        if failed:
            for p in self.procs:
                try:
                    with open(p.log, "rb") as f:
                        lines = f.read().decode("utf-8",
                                                "replace").splitlines()
                except OSError:
                    continue
                print("----- %s log (last 100 of %d lines) -----" % (
                    p.name, len(lines)))
                for ln in lines[-100:]:
                    print(ln)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- clients -------------------------------------------------------

    def curl(self, url, *args):
        """curl once (h1 unless --http2 is in args); TLS not verified."""
        n = len(os.listdir(self.dir))
        hfile = os.path.join(self.dir, "h%d" % n)
        bfile = os.path.join(self.dir, "b%d" % n)
        argv = ["curl", "-sS", "-k", "--max-time", "20", "-D", hfile,
                "-o", bfile]
        if "--http2" not in args:
            argv.append("--http1.1")
        argv += list(args) + [url]
        cp = subprocess.run(argv, stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=40)
        status = version = None
        headers = []
        if os.path.exists(hfile):
            with open(hfile, "rb") as f:
                blocks = parse_head_blocks(f.read())
            if blocks:
                status, version, headers = blocks[-1]
        body = b""
        if os.path.exists(bfile):
            with open(bfile, "rb") as f:
                body = f.read()
        return Curl(cp.returncode, status, version, headers, body,
                    cp.stderr.decode("latin-1"))

    def get(self, url, status=200, version="1.1", *args):
        r = self.curl(url, *args)
        check(r.rc == 0 and r.status == status,
              "GET %s: want %d, got %r", url, status, r)
        if version:
            eq(r.version, version, "GET %s: HTTP version" % url)
        return r


def hello(r, what):
    check("Hello from hello-app" in r.text(), "%s: not hello-app's page: %r",
          what, r.body[:300])


def api_time(r, what):
    check(r.h("content-type") == "application/json" and
          b'"epoch"' in r.body, "%s: not hello-app's JSON: %r %r", what,
          r.headers, r.body[:300])


def error_page(r, what):
    check("/error.css" in r.text(), "%s: no /error.css link: %r", what,
          r.body[:400])


# -- the examples ----------------------------------------------------------

def ex_demo(run):
    run.start_app()
    run.start_daemon()
    h1 = "http://127.0.0.1:%d" % run.port(7681)
    h2 = "https://127.0.0.1:%d" % run.port(7682)
    hello(run.get(h1 + "/app/"), "demo h1 /app/ (native origin)")
    hello(run.get(h1 + "/app2/"), "demo h1 /app2/ (callback + pmo)")
    api_time(run.get(h1 + "/app/api/time"), "demo h1 /app/api/time")
    r = run.get(h2 + "/app/", 200, "2", "--http2")
    hello(r, "demo h2 /app/")
    check("https" in r.text(), "demo h2: no X-Forwarded-Proto https")
    api_time(run.get(h2 + "/app2/api/time", 200, "2", "--http2"),
             "demo h2 /app2/api/time")
    check("<h1" in run.get(h1 + "/").text(), "demo: no index.html")

    # the app goes away: a 503 page that links the vhost's /error.css
    run.stop_app()
    r = run.get(h1 + "/app/", 503)
    error_page(r, "demo h1 503")
    check(r.h("retry-after") is not None, "demo 503: no Retry-After: %r",
          r.headers)
    error_page(run.get(h2 + "/app2/", 503, "2", "--http2"), "demo h2 503")
    css = run.get(h1 + "/error.css")
    check(b"body {" in css.body and
          (css.h("content-type") or "").startswith("text/css"),
          "demo /error.css: %r %r", css.headers, css.body[:100])
    run.get(h2 + "/error.css", 200, "2", "--http2")

    # and comes back: served again without restarting the daemon
    run.start_app()
    hello(run.get(h1 + "/app/"), "demo h1 /app/ after the app restarted")


def ex_tls_h2(run):
    run.start_app()
    run.start_daemon()
    tls = "https://127.0.0.1:%d" % run.port(8443)
    r = run.get(tls + "/app/", 200, "2", "--http2")
    hello(r, "tls-h2 h2 /app/")
    check(re.search(r"x-forwarded-proto</th><td>https<", r.text()),
          "tls-h2: the app did not see X-Forwarded-Proto: https: %r",
          r.body[:600])
    api_time(run.get(tls + "/app/api/time", 200, "2", "--http2"),
             "tls-h2 h2 /app/api/time")
    # h1 over TLS (ALPN http/1.1) on the same vhost
    hello(run.get(tls + "/app/"), "tls-h2 h1 /app/")
    # the plain vhost only redirects (lws 4.1.6 says HTTP/1.0 there)
    r = run.get("http://127.0.0.1:%d/app/" % run.port(8080), 301, None)
    eq(r.h("location"), "https://localhost:%d/" % run.port(8443),
       "tls-h2 redirect Location")
    run.stop_app()
    error_page(run.get(tls + "/app/", 503, "2", "--http2"), "tls-h2 503")
    run.get(tls + "/error.css", 200, "2", "--http2")


def css_ok(run, url, what):
    """/error.css as a browser gets it (after lws's 301 to /error.css/):
    the file's bytes, as text/css."""
    with open(os.path.join(DEMO_WWW, "error.css"), "rb") as f:
        want = f.read()
    # (lws 4.1.6 says HTTP/1.0 in its 301)
    r = run.get(url, 200, None, "-L")
    check(r.body == want and
          (r.h("content-type") or "").startswith("text/css"),
          "%s: not error.css as text/css: %r %r", what, r.headers,
          r.body[:100])


def status_ok(run, h1):
    """The status mounts answer, counting what went before."""
    import json
    st = json.loads(run.get(h1 + "/status").body)
    # "/", "/api/time" and "/api/" so far
    check(sum(b["requests"] for b in st["backends"]) == 3 and
          sum(b["responses"]["2xx"] for b in st["backends"]) == 3,
          "lwsws /status does not count the requests so far: %r", st)
    r = run.get(h1 + "/metrics")
    check(re.search(rb"^lws_uds_proxy_backend_requests_total\{.*\} [1-9]",
                    r.body, re.M),
          "lwsws /metrics: no request counter: %r", r.body[:600])


def ex_lwsws(run):
    run.start_app()
    run.start_daemon()
    h1 = "http://127.0.0.1:%d" % run.port(7681)
    r = run.get(h1 + "/", 200, "1.1",
                "-H", "X-Forwarded-For: 203.0.113.7")
    hello(r, "lwsws / (the app owns /, pmo backend)")
    # trusted-proxies 127.0.0.1: the client's XFF is kept and appended to
    check("203.0.113.7, 127.0.0.1" in r.text(),
          "lwsws: trusted-proxies not applied to X-Forwarded-For: %r",
          r.body[:600])
    # the pvo default backend, inside path /api
    api_time(run.get(h1 + "/api/time"), "lwsws /api/time (pvo backend)")
    r = run.get(h1 + "/api/", 200)
    check("<code>/api/</code>" in r.text(),
          "lwsws /api/: the app did not see /api/: %r", r.body[:400])
    # the file mounts under the app's "/" are lws's, not the app's
    css_ok(run, h1 + "/error.css", "lwsws /error.css, app up")
    check("<h1" in run.get(h1 + "/static/index.html").text(),
          "lwsws /static/index.html")
    status_ok(run, h1)
    run.stop_app()
    error_page(run.get(h1 + "/", 503), "lwsws 503 on /")
    error_page(run.get(h1 + "/api/time", 503), "lwsws 503 on /api")
    css_ok(run, h1 + "/error.css", "lwsws /error.css, app down")


EXAMPLES = {"demo": ex_demo, "tls-h2": ex_tls_h2, "lwsws": ex_lwsws,
            "lwsws-real": ex_lwsws}


# -- README.md quotes only real config ---------------------------------------

def squash(s):
    return re.sub(r"\s+", "", s)


def check_readme(daemon_bin):
    with open(README) as f:
        readme = f.read()
    cp = subprocess.run([daemon_bin, "-h"], stdin=subprocess.DEVNULL,
                        capture_output=True, timeout=20)
    check(cp.returncode == 0, "%s -h: exit %d", daemon_bin, cp.returncode)
    usage = cp.stdout.decode().replace(daemon_bin, "lws-uds-proxyd", 1)
    check(usage in readme, "README.md does not quote `lws-uds-proxyd -h` "
          "as it is now:\n%s", usage)
    files = {}
    for dp, _, fns in os.walk(CONF_TOP):
        for fn in fns:
            p = os.path.join(dp, fn)
            with open(p, errors="replace") as f:
                files[os.path.relpath(p, SRC_TOP)] = squash(f.read())
    blocks = re.findall(r"^```json[ \t]*\n(.*?)^```", readme, re.M | re.S)
    check(len(blocks) >= 4, "README.md: only %d ```json blocks; the check "
          "would be vacuous", len(blocks))
    # docs/*.md quote configs too: same rule
    docs = os.path.join(SRC_TOP, "docs")
    for fn in sorted(os.listdir(docs)) if os.path.isdir(docs) else []:
        if fn.endswith(".md"):
            with open(os.path.join(docs, fn)) as f:
                blocks += re.findall(r"^```json[ \t]*\n(.*?)^```", f.read(),
                                     re.M | re.S)
    # A line holding only "..." elides lines: the pieces must appear in
    # that order in one file.
    bad = []
    for b in blocks:
        pieces = [squash(p) for p in
                  re.split(r"^[ \t]*(?:\.\.\.|…)[ \t]*$", b, flags=re.M)]
        pieces = [p for p in pieces if p]
        found = False
        for text in files.values():
            at = 0
            for p in pieces:
                at = text.find(p, at)
                if at < 0:
                    break
                at += len(p)
            if at >= 0:
                found = True
                break
        if not found:
            bad.append(b)
    check(not bad, "README.md: %d ```json block(s) are not excerpts of any "
          "file under lwsws-conf/:\n%s", len(bad),
          "\n----\n".join(bad))
    print("readme: %d json blocks, each found under lwsws-conf/" %
          len(blocks))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--lwsws", help="a real lwsws binary")
    ap.add_argument("--lwsws-plugins", help="the plugin built for it")
    ap.add_argument("names", nargs="*", help="demo, tls-h2, lwsws, "
                    "lwsws-real, readme (default: all; lwsws-real only "
                    "with --lwsws)")
    a = ap.parse_args()
    build_dir = os.path.abspath(a.build_dir)
    lwsws = None
    if a.lwsws or a.lwsws_plugins:
        if not (a.lwsws and a.lwsws_plugins):
            ap.error("--lwsws and --lwsws-plugins go together")
        lwsws = (os.path.abspath(a.lwsws), os.path.abspath(a.lwsws_plugins))
    names = a.names or ["demo", "tls-h2", "lwsws"] + \
        (["lwsws-real"] if lwsws else []) + ["readme"]
    failed = []
    for name in names:
        ok = False
        try:
            if name == "readme":
                check_readme(os.path.join(build_dir, "host",
                                          "lws-uds-proxyd"))
                ok = True
                continue
            check(name in EXAMPLES, "no example %r", name)
            real = name == "lwsws-real"
            check(lwsws or not real, "lwsws-real needs --lwsws")
            run = Run(name, build_dir, lwsws if real else None)
            try:
                EXAMPLES[name](run)
                msg = run.daemon.exited()
                check(msg is None, "%s: %s", name, msg)
                if not real:
                    run.check_refuses_broken_origin()
                ok = True
            finally:
                run.close(not ok)
        except Exception:
            traceback.print_exc(file=sys.stdout)
        finally:
            print("%s: %s" % (name, "ok" if ok else "FAIL"))
            sys.stdout.flush()
            if not ok:
                failed.append(name)
    if failed:
        print("failed: %s" % " ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
