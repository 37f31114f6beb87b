# SPDX-License-Identifier: MIT
#
# Integration cases: the daemon's own limits.
#
# The descriptor limit the daemon sets itself when max-connections is
# given (host/limits.c, issue 14), and the memory an h2 connection costs.

import re
import resource
import subprocess

from harness import check, eq, proc_status

from .common import RSS_LIMIT_KB, case


@case("nofile-for-max-connections", protos=("h1",))
def t_nofile_for_max_connections(env, proto):
    """With max-connections set, the daemon raises its soft descriptor
    limit only as far as that needs ((2 x 1000 + 256) x 64/63 + 1 = 2292),
    not to the hard limit: Debian's lws walks a table that size at every
    connection's close (host/limits.c).  Started with soft 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = (2 * 1000 + 256) * 64 // 63 + 1
    if env.lwsws or (hard != resource.RLIM_INFINITY and hard <= want):
        print("lwsws, or hard limit %d: nothing to cap" % hard)
        return
    env.daemon.stop()
    # the daemon inherits the runner's limits: soft 1024 for its start
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        env.start_daemon(mounts=env.standard_mounts(),
                         global_extra={"max-connections": "1000"})
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    env.get_ok(proto, "/app/bytes/100")
    with open("/proc/%d/limits" % env.serving_pid()) as f:
        line = [ln for ln in f if ln.startswith("Max open files")][0]
    got = int(line.split()[3])
    print("daemon's soft limit: %d (hard %s)" % (got, hard))
    eq(got, want, "the daemon's soft RLIMIT_NOFILE")


# -- memory per h2 connection (issue 14) -------------------------------------

@case("h2-connections-rss", protos=("h2",))
def t_h2_connections_rss(env, proto):
    """64 h2 connections at once, 100-byte answers: lws zeroes an HPACK
    table per connection sized by the vhost's header table setting
    (docs/lws-notes.md N54), 128 KiB at lws's stock 65536 (the peak RSS
    grew by about 11 MiB here), 8 KiB at the daemon's 4096 (about 3.5).
    The bound leaves room for the TLS handshakes and lws's and the
    relays' own share.  (64 at once: the test backend's listen backlog
    is asyncio's 100, and more streams in flight than that make its
    connects fail, which says nothing about memory.)"""
    if env.lwsws:
        print("lwsws: lws's stock header table (no key for it)")
        return
    url = env.url("h2", "/app/bytes/100")
    # the same path warm: allocator, TLS and pool state in place
    subprocess.run(["h2load", "-n64", "-c4", "-m4", url],
                   capture_output=True, timeout=60)
    pid = env.serving_pid()
    before = proc_status(pid)["VmHWM"]
    cp = subprocess.run(["h2load", "-n256", "-c64", "-m1", url],
                        capture_output=True, timeout=120)
    grow = proc_status(pid)["VmHWM"] - before
    out = cp.stdout.decode()
    print(out[-400:])
    check(re.search(r"requests: 256 total, 256 started, 256 done, "
                    r"256 succeeded", out), "h2load: not 256/256 succeeded")
    # 6 MiB; lifted with the suite's own bound under sanitizers
    limit = RSS_LIMIT_KB * 3 // 8
    print("64 h2 connections: peak RSS +%d KiB (limit %d)" % (grow, limit))
    check(grow < limit, "64 h2 connections: peak RSS grew by %d KiB "
          "(limit %d)", grow, limit)
