# SPDX-License-Identifier: MIT
#
# Integration cases: the daemon's own limits.
#
# The descriptor limit the daemon sets itself when max-connections is
# given (host/limits.c, issue 14).

import resource

from harness import eq

from .common import case


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
