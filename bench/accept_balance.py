#!/usr/bin/python3
"""How lws-uds-proxyd's workers share a burst of new connections.

Starts the daemon from a build with count-processes N (the integration
harness's config and Python backend), makes sure every worker has taken a
connection (the port answers once bound, before the workers exist), then,
round after round, opens C connections at once the way `wrk -cC` starts
and counts each worker's accepted TCP connections in /proc/PID/fd once
all C are in.  Counts, not rates: it means the same on a busy machine,
where the split is decided by which worker gets a core (docs/scaling.md).

    bench/accept_balance.py [--build-dir build] [--processes 2]
                            [--rounds 10] [--conns 64]

Nothing is asserted; it prints each round's split and a summary.
"""
import argparse
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
from harness import Env, children, proc_fds, wait_until  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--conns", type=int, default=64)
    a = ap.parse_args()

    env = Env(a.build_dir, "accept-balance")
    failed = True
    try:
        env.backend("main", "unix")
        env.start_daemon(global_extra={"count-processes":
                                       str(a.processes)})
        workers = children(env.serving_pid())
        if len(workers) != a.processes:
            raise SystemExit("%d workers, not %d" % (len(workers),
                                                     a.processes))

        def counts():
            return [proc_fds(p)["tcp"] for p in workers]

        taken = set()
        for i in range(100 * a.processes):
            s = socket.create_connection(("127.0.0.1", env.http_port))
            try:
                wait_until(lambda: sum(counts()) == 1, "an accept")
                taken |= {p for p, c in zip(workers, counts()) if c}
            finally:
                s.close()
            wait_until(lambda: sum(counts()) == 0, "a close")
            if len(taken) == a.processes:
                break

        total, whole = [0] * a.processes, 0
        for rnd in range(a.rounds):
            socks = []
            for i in range(a.conns):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", env.http_port))
                socks.append(s)
            try:
                wait_until(lambda: sum(counts()) >= a.conns,
                           "%d accepts" % a.conns, timeout=30)
                got = counts()
            finally:
                for s in socks:
                    s.close()
            wait_until(lambda: sum(counts()) == 0, "closes", timeout=30)
            print("round %d: %r" % (rnd, got))
            total = [x + y for x, y in zip(total, got)]
            whole += max(got) == a.conns
        print("in all %r of %d; rounds taken whole by one worker: %d; "
              "load average %s" % (total, a.conns * a.rounds, whole,
                                   open("/proc/loadavg").read().split()[0]))
        failed = False
    finally:
        env.close(failed)


if __name__ == "__main__":
    main()
