# SPDX-License-Identifier: MIT
#
# Integration cases: routing.
#
# Where a request goes and what target the backend sees: GET through every
# kind of mount and backend, the methods, the request target (query, path
# encoding, dot-segments), an abstract-namespace backend, and the order of
# the app's mount and the file mounts under it.

import os
import posixpath
import re
import signal
import urllib.parse

from harness import check, eq, pattern, sha

from .common import ALL_BACKENDS, BOTH, _expect_503, case, echo, last_req


# -- GET through every kind of mount and backend -------------------------

GET_CELLS = [
    # cell              mount   backend that must see it
    ("native-uds",      "/app",  "main"),
    ("pmo-uds",         "/cb",   "main"),
    ("pvo-default-uds", "/dflt", "main"),
    ("native-tcp",      "/tcp",  "tcp"),
    ("pmo-tcp",         "/tcb",  "tcp"),
    ("native-tls-uds",  "/tlsn", "tls"),
    ("pmo-tls-uds",     "/tlsc", "tls"),
]


def t_get(env, proto, cell, mount, bname):
    n = 100003
    r = env.get_ok(proto, "%s/bytes/%d?seed=3" % (mount, n))
    eq(len(r.body), n, "body length")
    check(r.body == pattern(n, 3), "CL body differs from the pattern")
    r = env.get_ok(proto, "%s/chunked/%d?seed=5" % (mount, n))
    check(r.body == pattern(n, 5), "chunked body differs (%d bytes)",
          len(r.body))
    doc = echo(env, proto, "%s/echo?cell=%s" % (mount, cell))
    eq(doc["target"], "/echo?cell=" + cell, "backend target")
    eq(last_req(env.backends[bname])["target"], doc["target"],
       "request went to backend %s" % bname)


def _dflt_mounts(env):
    """A callback mount with no pmo: the pvo "backend" serves it."""
    return env.standard_mounts() + [
        {"mountpoint": "/dflt", "origin": "callback://lws-uds-proxy"}]


for _cell, _mount, _b in GET_CELLS:
    case("get-" + _cell, backends=ALL_BACKENDS, cell=_cell, mount=_mount,
         bname=_b, mounts=_dflt_mounts if _mount == "/dflt" else None)(t_get)


# -- methods -------------------------------------------------------------

METHODS = [
    # method     request body   protocols
    ("GET",      None,          BOTH),
    ("HEAD",     None,          BOTH),
    ("POST",     b"post-body",  BOTH),
    ("PUT",      b"put body\n", BOTH),
    ("PATCH",    b'{"op":1}',   BOTH),
    ("DELETE",   None,          BOTH),
    ("OPTIONS",  None,          BOTH),
    # lws 4.1.6 refuses unknown methods on h1 before any callback (403);
    # on h2 the literal :method reaches the plugin.
    ("PROPFIND", None,          ("h2",)),
]


@case("methods")
def t_methods(env, proto):
    main = env.backends["main"]
    for m, body, protos in METHODS:
        if proto not in protos:
            continue
        r = env.curl(proto, "/app/echo?m=" + m, method=m, data=body)
        check(r.rc == 0 and r.status == 200, "%s: %r", m, r)
        req = last_req(main)
        eq(req["method"], m, "method seen by backend")
        eq(req["target"], "/echo?m=" + m, "%s target" % m)
        if m == "HEAD":
            eq(r.body, b"", "HEAD response body")
            check(r.h("content-length") not in (None, "0"),
                  "HEAD kept the GET Content-Length: %r", r.headers)
            continue
        doc = r.json()
        eq(doc["method"], m, "method in echo")
        want = body or b""
        eq(doc["body_length"], len(want), "%s body length" % m)
        eq(doc["body_sha256"], sha(want), "%s body sha256" % m)


# -- request target ------------------------------------------------------

@case("target-inside")
def t_target_inside(env, proto):
    doc = echo(env, proto, "/in/echo/a/b?x=1&y=2")
    eq(doc["target"], "/inside/echo/a/b?x=1&y=2", "inside path + rest")
    doc = echo(env, proto, "/app/echo/deep/er?k=v")
    eq(doc["target"], "/echo/deep/er?k=v", "root inside path + rest")
    doc = echo(env, proto, "/cb/echo/x?k=v&k=w")
    eq(doc["target"], "/echo/x?k=v&k=w", "pmo mount: rest + query")


QUERY_CASES = [
    # raw query sent                        decoded pairs the backend needs
    ("q=a%26b%3Dc%2Bd%20e%25f&z=1",        [("q", "a&b=c+d e%f"),
                                             ("z", "1")]),
    ("k=%2B%2B&e=%3D%3D",                   [("k", "++"), ("e", "==")]),
]


@case("target-query-encoding")
def t_query(env, proto):
    """lws decodes the query before the plugin sees it; what reaches the
    backend must still decode to the same pairs (so %26 %3D %2B %25 must
    be re-encoded, never sent raw)."""
    for q, want in QUERY_CASES:
        doc = echo(env, proto, "/app/echo?" + q)
        path, _, query = doc["target"].partition("?")
        print("query sent %r -> backend saw %r" % (q, doc["target"]))
        eq(path, "/echo", "path part")
        got = urllib.parse.parse_qsl(query, keep_blank_values=True)
        eq(got, want, "query pairs decoded by the backend from %r" % query)


@case("target-path-encoding")
def t_path_enc(env, proto):
    doc = echo(env, proto, "/app/echo/p%20a%3Fb%23c%25d")
    print("backend saw %r" % doc["target"])
    path, sep, query = doc["target"].partition("?")
    eq(sep, "", "an encoded ? in the path must not start a query")
    eq(urllib.parse.unquote(path), "/echo/p a?b#c%d", "decoded path")


DOTDOT = [
    "/jail/../app/echo",
    "/jail/a/../../echo",
    "/jail/%2e%2e/echo",
    "/jail/x/%2e%2e/%2e%2e/echo",
    "/jail/%2e%2e%2fecho",
    "/jail/.%2e/.%2e/echo",
    "/jail/echo/..%2f..%2f..%2fecho",
    "/jail/%252e%252e/%252e%252e/echo",
    # these stay inside and must reach the jail backend, so the check
    # below is not vacuous
    "/jail/echo/a/./b/../c",
    "/jail/echo/%2e/x",
]


def _jail_mounts(env):
    return env.standard_mounts() + [
        {"mountpoint": "/jail",
         "origin": env.backends["jail"].origin("/inside")}]


@case("target-dotdot", backends=(("main", "unix"), ("jail", "unix")),
      mounts=_jail_mounts)
def t_dotdot(env, proto):
    """Nothing that entered through /jail may reach its backend outside
    /inside, however the dots are spelled."""
    jail = env.backends["jail"]
    for p in DOTDOT:
        r = env.curl(proto, p, extra=["--path-as-is"])
        check(r.rc == 0 and r.status is not None, "%s: %r", p, r)
        print("%s -> %d %r" % (p, r.status, r.body[:120]))
        # lws may normalise /jail/../app/echo into /app/echo, which is the
        # /app mount and fine; only what the jail backend saw matters.
    reqs = jail.requests()
    print("jail backend saw %r" % [q["target"] for q in reqs])
    check(len(reqs) >= 2, "the in-jail requests did not reach the backend")
    for req in reqs:
        path = urllib.parse.unquote(req["target"].partition("?")[0])
        norm = posixpath.normpath(path)
        check(norm == "/inside" or norm.startswith("/inside/"),
              "jail backend saw %r, which leaves /inside", req["target"])
        check(".." not in path.split("/"),
              "jail backend saw a '..' segment: %r", req["target"])


# -- abstract-namespace backend ----------------------------------------------

def _abstract_mounts(env):
    b = env.backends["abs"]
    return env.standard_mounts() + [
        {"mountpoint": "/abs", "origin": b.origin("/")},
        {"mountpoint": "/absin", "origin": b.origin("/inside")},
        {"mountpoint": "/abscb", "origin": "callback://lws-uds-proxy",
         "pmo": [{"backend": b.origin("/")}]},
    ]


@case("abstract-backend", backends=(("main", "unix"), ("abs", "abstract")),
      mounts=_abstract_mounts)
def t_abstract(env, proto):
    ab = env.backends["abs"]
    print("abstract backend origin %s" % ab.origin("/"))
    r = env.get_ok(proto, "/abs/bytes/70001?seed=2")
    check(r.body == pattern(70001, 2), "body from the abstract backend")
    for path, want in (("/abs/echo?x=1", "/echo?x=1"),
                       ("/absin/echo/a", "/inside/echo/a"),
                       ("/abscb/echo?cb=1", "/echo?cb=1")):
        doc = echo(env, proto, path)
        eq(doc["target"], want, "target of %s" % path)
        eq(last_req(ab)["target"], want, "%s reached the abstract backend"
           % path)
    eq(env.backends["main"].requests(), [], "requests at the file backend")


# -- mount order: the app on "/" and file mounts under it -----------------
#
# lws 4.1.6 lets a callback mount that comes later in the list win over a
# longer matching mount (lws_find_mount); lws-uds-proxyd hands lws its
# mounts shortest first, so the longest mountpoint wins in any config
# order.  The app ("r") owns "/"; "/error.css" (the file the error pages
# link) and "/static" are file mounts.

CSS = b"/* mount-order */\nbody { color: #123456; }\n"
STATIC = b"static bytes\n" * 100


def _order_mounts(order):
    def mounts(env):
        www = os.path.join(env.dir, "www")
        os.makedirs(os.path.join(www, "static"), exist_ok=True)
        with open(os.path.join(www, "error.css"), "wb") as f:
            f.write(CSS)
        with open(os.path.join(www, "static", "s.css"), "wb") as f:
            f.write(STATIC)
        by = {
            "app": {"mountpoint": "/",
                    "origin": env.backends["r"].origin("/")},
            # lws serves a file mount's mountpoint itself after a 301 to
            # "/error.css/", and there the "default" file
            "css": {"mountpoint": "/error.css", "origin": "file://" + www,
                    "default": "error.css"},
            "static": {"mountpoint": "/static",
                       "origin": "file://" + os.path.join(www, "static")},
        }
        return [by[k] for k in order] + env.standard_mounts()
    return mounts


def _css_ok(env, proto, path, body, what):
    r = env.curl(proto, path, extra=("-L",))
    check(r.rc == 0 and r.status == 200, "%s %s: %r", what, path, r)
    eq((r.h("content-type") or "").split(";")[0], "text/css",
       "%s %s content-type" % (what, path))
    check(r.body == body, "%s %s: not the file's bytes: %r", what, path,
          r.body[:200])


def t_mount_order(env, proto):
    app = env.backends["r"]
    for when in ("app up", "app down"):
        _css_ok(env, proto, "/error.css", CSS, when)
        _css_ok(env, proto, "/error.css/", CSS, when)
        _css_ok(env, proto, "/static/s.css", STATIC, when)
        if when == "app up":
            # siblings that only share a prefix are the app's
            for path in ("/", "/echo?t=o", "/staticx/echo?t=p",
                         "/error.cssx?t=q", "/app-not/echo?t=r"):
                n = len(app.requests())
                r = env.curl(proto, path)
                check(r.rc == 0 and r.status in (200, 404), "%s: %r",
                      path, r)
                eq(len(app.requests()), n + 1, "the app's requests")
                eq(last_req(app)["target"], path, "the app's target")
            # the longer callback mounts still win over "/"
            eq(echo(env, proto, "/app/echo?t=s")["target"], "/echo?t=s",
               "/app's backend target")
            eq(last_req(env.backends["main"])["target"], "/echo?t=s",
               "/app went to its own backend")
            app.kill(signal.SIGKILL)
        else:
            r = _expect_503(env, proto, "/echo?t=down")
            check(re.search(rb'href="?/error\.css', r.body),
                  "503 page does not link /error.css: %r", r.body[:400])


MOUNT_ORDERS = {
    "app-first": ("app", "css", "static"),
    "app-last": ("css", "static", "app"),
    "app-middle": ("static", "app", "css"),
}
for _o, _order in MOUNT_ORDERS.items():
    case("mount-order-" + _o, backends=(("main", "unix"), ("r", "unix")),
         mounts=_order_mounts(_order))(t_mount_order)
