#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# WebSocket relay cost (issue 11): messages/s through lws-uds-proxyd and
# the serving process's CPU per message, for one ws connection, next to
# the same peers talking directly (python3-websockets both ends: they are
# the ceiling of the rate; the daemon's CPU per message is the figure of
# ours).  Counts, not durations; uses the integration harness's Env.
#
#   bench/ws_bench.py --build-dir build [--n 20000] [--rounds 3]

import argparse
import asyncio
import os
import sys
import time

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(top, "tests", "integration"))
import websockets  # noqa: E402
from harness import Env  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    rest = st[st.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / TICK


async def echo(url, n, size):
    """n messages of size bytes sent and echoed, the sender at most 64
    messages ahead (so both directions are busy, with bounded queues)."""
    blob = b"m" * size
    async with websockets.connect(url, max_size=None, ping_interval=None,
                                  max_queue=64) as ws:
        ahead = asyncio.Semaphore(64)

        async def send():
            for _ in range(n):
                await ahead.acquire()
                await ws.send(blob)

        async def recv():
            for _ in range(n):
                m = await ws.recv()
                assert len(m) == size
                ahead.release()

        await asyncio.gather(send(), recv())


async def down(url, n, size):
    """The backend floods n messages of size bytes; the client reads."""
    got = 0
    async with websockets.connect("%s/flood?n=%d&size=%d" % (url, n, size),
                                  max_size=None, ping_interval=None) as ws:
        try:
            while True:
                got += len(await ws.recv())
        except websockets.ConnectionClosedOK:
            pass
    assert got == n * size, (got, n * size)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()

    env = Env(a.build_dir, "ws-bench")
    failed = True
    try:
        b = env.backend("ws", "ws-unix")
        env.start_daemon(mounts=[{"mountpoint": "/ws",
                                  "origin": b.origin("/")}])
        pid = env.serving_pid()
        proxied = "ws://127.0.0.1:%d/ws" % env.http_port
        rows = []
        for what, fn, n, size in (
                ("echo 32 B", echo, a.n, 32),
                ("echo 4 KiB", echo, a.n // 4, 4096),
                ("down 32 B", down, a.n, 32),
                ("down 64 KiB", down, a.n // 40, 65536)):
            best = None
            for _ in range(a.rounds):
                c0, t0 = cpu_s(pid), time.monotonic()
                asyncio.run(fn(proxied + ("/echo" if fn is echo else ""),
                               n, size))
                t, c = time.monotonic() - t0, cpu_s(pid) - c0
                # one proxied echo message crosses the relay twice
                msgs = n * (2 if fn is echo else 1)
                r = (msgs / t, c * 1e6 / msgs, c / t)
                if best is None or r[0] > best[0]:
                    best = r
            t0 = time.monotonic()
            asyncio.run(direct_run(b, fn, n, size))
            td = time.monotonic() - t0
            msgs = n * (2 if fn is echo else 1)
            rows.append((what, best[0], msgs / td, best[1], best[2]))
        print("| load, one ws | relayed msg/s (proxied) | msg/s direct "
              "| daemon CPU µs/msg | daemon CPU share |")
        print("| --- | --- | --- | --- | --- |")
        for what, rate, drate, us, share in rows:
            print("| %s | %.0f | %.0f | %.1f | %.0f%% |" % (
                what, rate, drate, us, share * 100))
        failed = False
    finally:
        env.close(failed)
    return 0 if not failed else 1


async def direct_run(b, fn, n, size):
    """The same load straight to the backend's unix socket."""
    orig = websockets.connect

    def via_unix(url, **kw):
        path = url.split("://", 1)[1]
        path = path[path.index("/"):]
        return websockets.unix_connect(b.path, "ws://localhost" + path, **kw)

    websockets.connect = via_unix
    try:
        await fn("ws://localhost" + ("/echo" if fn is echo else ""), n, size)
    finally:
        websockets.connect = orig


if __name__ == "__main__":
    sys.exit(main())
