# SPDX-License-Identifier: MIT
#
# The benchmark driver behind scripts/bench: starts one nginx backend, our
# daemon, nginx and HAProxy as the peer proxies and lws's own file serving
# (the floor), measures them interleaved with wrk and h2load, profiles ours,
# and writes the table to bench/results/.  Asserts nothing: it only reports.
import argparse
import datetime
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(TOP, "bench")

SMALL = b"0123456789abcdefghijklmnopqrstuvwxyz" \
	b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz!\n"
assert len(SMALL) == 100


def say(*a):
	print(*a, flush=True)


def echo_cmd(cmd):
	say("+ " + " ".join(shlex.quote(c) for c in cmd))


def run(cmd, **kw):
	echo_cmd(cmd)
	return subprocess.run(cmd, check=True, **kw)


def out(cmd):
	try:
		return subprocess.run(cmd, capture_output=True, text=True,
				      check=True).stdout.strip()
	except (OSError, subprocess.CalledProcessError):
		return "?"


def free_port():
	s = socket.socket()
	s.bind(("127.0.0.1", 0))
	p = s.getsockname()[1]
	s.close()
	return p


def loadavg():
	with open("/proc/loadavg") as f:
		return float(f.read().split()[0])


def wait_calm(limit, max_wait):
	"""Wait (polling every 30 s, at most max_wait s) for the 1-min load
	average to drop to limit; returns the load when we go on."""
	t0 = time.time()
	while True:
		la = loadavg()
		if la <= limit:
			return la
		if time.time() - t0 >= max_wait:
			say("bench: load %.2f still above %.2f after %d s; "
			    "measuring anyway" % (la, limit, max_wait))
			return la
		say("bench: load average %.2f > %.2f, waiting 30 s" % (la, limit))
		time.sleep(30)


# ---- processes -------------------------------------------------------------

class Procs:
	def __init__(self):
		self.list = []

	def start(self, name, cmd, log, **kw):
		echo_cmd(cmd)
		f = open(log, "ab")
		p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
				     start_new_session=True, **kw)
		f.close()
		self.list.append((name, p))
		return p

	def stop(self, p, sig=signal.SIGTERM, timeout=20):
		if p.poll() is None:
			try:
				p.send_signal(sig)
				p.wait(timeout)
			except subprocess.TimeoutExpired:
				p.kill()
				p.wait()
		self.list = [(n, q) for n, q in self.list if q is not p]

	def stop_all(self):
		for _, p in list(reversed(self.list)):
			self.stop(p, timeout=5)


def tcp_up(port):
	try:
		with socket.create_connection(("127.0.0.1", port), timeout=0.5):
			return True
	except OSError:
		return False


def unix_up(path):
	s = socket.socket(socket.AF_UNIX)
	try:
		s.connect(path)
		return True
	except OSError:
		return False
	finally:
		s.close()


def wait_up(p, name, ports=(), sock=None, timeout=30.0):
	"""Poll until every port (and the socket) accepts; fail if p dies."""
	t0 = time.time()
	while time.time() - t0 < timeout:
		if p.poll() is not None:
			sys.exit("bench: %s exited with %d during start-up"
				 % (name, p.returncode))
		if all(tcp_up(x) for x in ports) and (not sock or unix_up(sock)):
			return
		time.sleep(0.05)
	sys.exit("bench: %s not listening after %d s" % (name, timeout))


def workers(parent, n):
	"""The n serving processes under parent: an nginx master's workers,
	or those of our daemon with count-processes n (its children)."""
	for _ in range(200):
		try:
			with open("/proc/%d/task/%d/children" % (parent, parent)) \
					as f:
				kids = [int(x) for x in f.read().split()]
		except OSError:
			kids = []
		if len(kids) == n:
			return sorted(kids)
		time.sleep(0.05)
	sys.exit("bench: %d has %d worker(s), not %d" % (parent, len(kids), n))


def proc_status(pid, key):
	"""VmHWM / VmRSS in KiB."""
	with open("/proc/%d/status" % pid) as f:
		for line in f:
			if line.startswith(key + ":"):
				return int(line.split()[1])
	return 0


def sys_busy_ticks():
	"""All CPUs' non-idle time so far, in clock ticks."""
	with open("/proc/stat") as f:
		v = [int(x) for x in f.readline().split()[1:]]
	return sum(v) - v[3] - v[4]	# minus idle, iowait


def own_ticks(pids):
	"""CPU ticks of our servers (every pid) and of the finished client
	children."""
	t = os.times()
	return sum(cpu_ticks(p) for p in pids) + \
		(t.children_user + t.children_system) * os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
	with open("/proc/%d/stat" % pid) as f:
		st = f.read().rsplit(")", 1)[1].split()
	return int(st[11]) + int(st[12])	# utime + stime


# ---- load generators -------------------------------------------------------

UNIT_T = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
UNIT_B = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def ms(v):
	m = re.match(r"([\d.]+)(us|ms|s|m|h)$", v)
	return float(m.group(1)) * UNIT_T[m.group(2)] if m else float("nan")


def nbytes(v):
	m = re.match(r"([\d.]+)([KMGT]?B)$", v)
	return float(m.group(1)) * UNIT_B[m.group(2)] if m else float("nan")


def parse_wrk(text):
	r = {"rps": float("nan"), "p50": float("nan"), "p99": float("nan"),
	     "mbps": float("nan"), "errors": 0}
	m = re.search(r"Requests/sec:\s+([\d.]+)", text)
	if m:
		r["rps"] = float(m.group(1))
	m = re.search(r"Transfer/sec:\s+(\S+)", text)
	if m:
		r["mbps"] = nbytes(m.group(1)) / 1e6
	for pct, key in (("50", "p50"), ("99", "p99")):
		m = re.search(r"^\s+%s(?:\.000)?%%\s+(\S+)" % pct, text, re.M)
		if m:
			r[key] = ms(m.group(1))
	m = re.search(r"Socket errors: connect (\d+), read (\d+), "
		      r"write (\d+), timeout (\d+)", text)
	if m:
		r["errors"] += sum(int(x) for x in m.groups())
	m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
	if m:
		r["errors"] += int(m.group(1))
	return r


def parse_h2load(text):
	r = {"rps": float("nan"), "mbps": float("nan"), "errors": 0,
	     "p50": float("nan"), "p99": float("nan")}
	m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s, ([\d.]+)(\w+)/s",
		      text)
	if m:
		r["rps"] = float(m.group(1))
		r["mbps"] = nbytes(m.group(2) + m.group(3)) / 1e6
	m = re.search(r"requests: \d+ total, \d+ started, \d+ done, "
		      r"\d+ succeeded, (\d+) failed, (\d+) errored, "
		      r"(\d+) timeout", text)
	if m:
		r["errors"] += sum(int(x) for x in m.groups())
	m = re.search(r"status codes: \d+ 2xx, \d+ 3xx, (\d+) 4xx, (\d+) 5xx",
		      text)
	if m:
		r["errors"] += int(m.group(1)) + int(m.group(2))
	if not m or r["rps"] != r["rps"]:
		r["errors"] += 1 if "finished in" not in text else 0
	# every h2 test is over TLS: a server that did not pick h2 by ALPN
	# would not be measuring h2 at all
	if not re.search(r"^Application protocol: h2$", text, re.M):
		r["errors"] += 1
	return r


# A test: (key, title, url kind, path, command maker, parser)
def tests(dur):
	d = str(dur)
	return [
		("h1-small", "h1 small (100 B), keep-alive", "h1", "/small.txt",
		 lambda u: ["wrk", "-t1", "-c64", "-d%ss" % d, "--latency", u],
		 parse_wrk),
		("h2-m16", "h2 small over TLS, 16 conns x 16 streams", "h2",
		 "/small.txt",
		 lambda u: ["h2load", "-c16", "-m16", "-D", d, u], parse_h2load),
		("h2-m1", "h2 small over TLS, 16 conns x 1 stream", "h2",
		 "/small.txt",
		 lambda u: ["h2load", "-c16", "-m1", "-D", d, u], parse_h2load),
		("h1-1m", "h1 1 MiB bodies, 8 conns", "h1", "/big.txt",
		 lambda u: ["wrk", "-t1", "-c8", "-d%ss" % d, "--latency", u],
		 parse_wrk),
		# 1 MiB over h2 goes in many DATA frames: a server that breaks
		# the peer's frame size limit (a 32 KiB lws file piece) fails
		# every request here
		("h2-1m", "h2 1 MiB bodies over TLS, 8 conns x 1 stream", "h2",
		 "/big.txt",
		 lambda u: ["h2load", "-c8", "-m1", "-D", d, u], parse_h2load),
		("h1-chunked", "h1 chunked small (100 B), keep-alive", "h1",
		 "/chunked.txt",
		 lambda u: ["wrk", "-t1", "-c64", "-d%ss" % d, "--latency", u],
		 parse_wrk),
	]


TARGETS = ["ours", "nginx", "haproxy", "backend", "floor"]
# the other proxies in front of the same backend socket
PEERS = ["nginx", "haproxy"]
LABEL = {"ours": "lws-uds-proxyd", "nginx": "nginx proxy",
	 "haproxy": "HAProxy", "backend": "backend direct",
	 "floor": "lws floor (file:// mount)"}


def base_url(t, kind, ports):
	if kind == "h1":
		return "http://127.0.0.1:%d" % ports[t + "_h1"]
	return "https://127.0.0.1:%d" % ports[t + "_h2"]


# lws's file serving has no chunked framing: the floor is measured on all
# but the chunked test (the 1 MiB file from its file:// mount included)
FLOOR_TESTS = ("h1-small", "h2-m16", "h2-m1", "h1-1m", "h2-1m")
BIG_TESTS = ("h1-1m", "h2-1m")	# reported in MB/s


def check_bodies(ports, www):
	"""Every target must serve the expected bytes, over h1 and h2 (curl),
	before we time it."""
	import urllib.request
	want = {}
	for path in ("/small.txt", "/big.txt", "/chunked.txt"):
		with open(os.path.join(www, path[1:]), "rb") as f:
			want[path] = f.read()
	for t in TARGETS:
		for path, data in want.items():
			if t == "floor" and path == "/chunked.txt":
				continue
			u = base_url(t, "h1", ports) + path
			with urllib.request.urlopen(u, timeout=10) as r:
				body = r.read()
				te = r.headers.get("Transfer-Encoding", "")
			if body != data:
				sys.exit("bench: %s gave %d bytes, not the %d of %s"
					 % (u, len(body), len(data), path))
			if path == "/chunked.txt" and t != "floor" and \
			   "chunked" not in te.lower():
				say("bench: note: %s not chunked (TE '%s')" % (u, te))
			u = base_url(t, "h2", ports) + path
			cp = subprocess.run(["curl", "-sS", "-k", "--http2",
					     "--max-time", "10", "-o", "-", "-w",
					     "\n%{http_version}", u],
					    capture_output=True)
			body, _, ver = cp.stdout.rpartition(b"\n")
			if cp.returncode or ver != b"2" or body != data:
				sys.exit("bench: %s over h2: curl exit %d, HTTP/%s, "
					 "%d bytes, not the %d of %s (%s)"
					 % (u, cp.returncode, ver.decode(), len(body),
					    len(data), path,
					    cp.stderr.decode().strip()))
	say("bench: all targets serve the expected bodies over h1 and h2")


# ---- profiling -------------------------------------------------------------

CATS = [
	("lws", re.compile(r"libwebsockets")),
	("OpenSSL", re.compile(r"libssl|libcrypto")),
	("libc", re.compile(r"libc[.-]|libc\.so|ld-linux|libm[.-]")),
	("http_parser", re.compile(r"libhttp_parser")),
	("our plugin", re.compile(r"libprotocol_lws_uds_proxy")),
	("our daemon", re.compile(r"lws-uds-proxyd")),
	("json-c", re.compile(r"libjson-c")),
	("kernel", re.compile(r"kernel|\[k\]|vmlinux")),
	("nginx", re.compile(r"^nginx$|/nginx$|nginx-1\.")),
	("haproxy", re.compile(r"^haproxy$|/haproxy$")),
]


# Debian's libwebsockets17 4.1.6-3 has no symbols for its static functions;
# these were told apart by the log strings and asserts they reference
# (objdump -d), so they name the function only on that exact build
LWS_HINTS = {
	"0x000000000002c000": "lws_parse (h1 request parser)",
	"0x000000000002aaf0": "issue_char (h1 header byte store)",
	"0x000000000002a8c0": "lws_pos_in_bounds (h1 header store)",
	"0x000000000002bb60": "lws_parse_urldecode",
	"0x0000000000023aa0": "_lws_change_pollfd",
	"0x0000000000025570": "__lws_sul_insert (timer list)",
	"0x0000000000034230": "rops_handle_POLLIN_h1",
}
LWS_HINT_VERSION = "4.1.6-3"


def fn_name(dso, fn, lws_version):
	if "libwebsockets" in dso and lws_version == LWS_HINT_VERSION:
		m = re.match(r"(0x[0-9a-f]+)$", fn)
		if m and m.group(1) in LWS_HINTS:
			return "%s = %s?" % (fn, LWS_HINTS[m.group(1)])
	return fn


def category(dso):
	for name, rx in CATS:
		if rx.search(dso):
			return name
	return "other (%s)" % dso


def perf_profile(pids, seconds, data, load_cmd):
	"""perf record (cpu-clock: this VM has no hardware counters) on pids
	while load_cmd runs; returns [(share%, dso, sym)] exclusive."""
	rec = ["perf", "record", "-e", "cpu-clock", "-F", "1999", "-g",
	       "-o", data, "-p", ",".join(str(p) for p in pids), "--",
	       "sleep", str(seconds)]
	echo_cmd(rec)
	pr = subprocess.Popen(rec, stdout=subprocess.DEVNULL,
			      stderr=subprocess.DEVNULL)
	time.sleep(0.3)	# let perf attach; it only samples, nothing to sync
	run(load_cmd, capture_output=True)
	pr.wait()
	rep = ["perf", "report", "-i", data, "--no-children", "--stdio",
	       "--sort", "dso,sym", "-g", "none", "--percent-limit", "0.01"]
	echo_cmd(rep)
	text = subprocess.run(rep, capture_output=True, text=True).stdout
	rows = []
	for line in text.splitlines():
		m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
		if m:
			dso = m.group(2)
			if m.group(3) == "k":
				dso = "[kernel]"
			rows.append((float(m.group(1)), dso, m.group(4).strip()))
	return rows


def syscall_profile(pids, seconds, load_cmd):
	"""perf trace -s on pids while load_cmd (wrk) runs: returns
	({syscall: calls}, requests done)."""
	tr = ["perf", "trace", "-s", "-p", ",".join(str(p) for p in pids),
	      "--", "sleep", str(seconds + 1)]
	echo_cmd(tr)
	pt = subprocess.Popen(tr, stdout=subprocess.DEVNULL,
			      stderr=subprocess.PIPE, text=True)
	time.sleep(0.5)	# attach; only counts are read, nothing to sync
	load = run(load_cmd, capture_output=True, text=True).stdout
	_, err = pt.communicate()
	calls = {}
	for line in err.splitlines():
		m = re.match(r"\s+(\w+)\s+(\d+)\s+(\d+)\s+[\d.]+", line)
		if m:
			calls[m.group(1)] = calls.get(m.group(1), 0) + \
				int(m.group(2))
	m = re.search(r"(\d+) requests in", load) or \
		re.search(r"(\d+) succeeded", load)	# h2load
	return calls, int(m.group(1)) if m else 0


def parse_callgrind(dump):
	"""Self cost per (object, function) from a callgrind dump."""
	ann = ["callgrind_annotate", "--inclusive=no", "--auto=no",
	       "--threshold=100", dump]
	echo_cmd(ann)
	text = subprocess.run(ann, capture_output=True, text=True).stdout
	rows = []
	total = 0
	objs = {}
	for line in text.splitlines():
		m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+PROGRAM TOTALS",
			     line)
		if m:
			total = int(m.group(1).replace(",", ""))
			continue
		# "Ir (share) file:function [object]"; a function's lines that
		# were inlined from another file come without the object
		m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*?):(\S.*?)"
			     r"(?: \[(.*)\])?$", line)
		if m:
			ir = int(m.group(1).replace(",", ""))
			fn = m.group(3)
			if m.group(4):
				objs[fn] = m.group(4)
			rows.append([ir, m.group(4), fn])
	merged = {}
	for ir, obj, fn in rows:
		obj = obj or objs.get(fn, "?")
		merged[(obj, fn)] = merged.get((obj, fn), 0) + ir
	# zeroing the counters mid-run leaves the frames that were on the
	# stack then (main, lws_service...) with the whole total: not self
	# cost, so drop them
	rows = sorted(((ir, obj, fn) for (obj, fn), ir in merged.items()
		       if ir < total * 0.999), key=lambda r: -r[0])
	return rows, total


# functions whose call counts per request tell how the work is cut up
COUNTED = ("SSL_write", "SSL_read", "malloc", "calloc", "realloc", "free",
	   "lws_write", "lws_set_timeout", "lws_callback_on_writable",
	   "send", "recv", "__send", "__libc_recv", "__libc_send", "writev",
	   "getpeername", "http_parser_execute", "lws_snprintf")


def callgrind_calls(dump):
	"""Calls into each function of COUNTED, read from the dump's
	cfn=/calls= lines (names are compressed to "(id)" after first use)."""
	names = {}
	calls = {}
	cur = None
	with open(dump, errors="replace") as f:
		for line in f:
			if line.startswith("cfn="):
				m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line.rstrip())
				if not m:
					cur = None
					continue
				if m.group(2):
					names[m.group(1)] = m.group(2)
				cur = names.get(m.group(1))
			elif line.startswith("fn="):
				m = re.match(r"fn=\((\d+)\)(?: (.*))?", line.rstrip())
				if m and m.group(2):
					names[m.group(1)] = m.group(2)
			elif line.startswith("calls=") and cur in COUNTED:
				calls[cur] = calls.get(cur, 0) + \
					int(line[6:].split()[0])
	return calls


def callgrind_profile(cmd, ports, outfile, path, nreq, log, procs):
	"""Run cmd under callgrind; for h1 then h2, warm up, zero the
	counters, drive nreq requests, dump.  Returns {"h1"|"h2": ([(Ir, dso,
	fn)], total Ir, requests done)}."""
	vg = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + outfile,
	      "--dump-instr=no"] + cmd
	p = procs.start("callgrind", vg, log)
	wait_up(p, "server under callgrind", ports=ports, timeout=120)
	phases = [
		("h1", ["h2load", "--h1", "-c", "10"],
		 "http://127.0.0.1:%d%s" % (ports[0], path)),
		("h2", ["h2load", "-c", "10", "-m", "10"],
		 "https://127.0.0.1:%d%s" % (ports[1], path)),
	]
	res = {}
	ndump = 0
	nsmall = 400

	def measure(load, n):
		nonlocal ndump
		run(["callgrind_control", "-z", str(p.pid)], capture_output=True)
		text = run(load + ["-n", str(n), u], capture_output=True,
			   text=True).stdout
		run(["callgrind_control", "-d", str(p.pid)],
		    capture_output=True)
		ndump += 1
		ok = re.search(r"(\d+) succeeded", text)
		dump = "%s.%d" % (outfile, ndump)
		if not ok or not os.path.exists(dump):
			return None
		rows, total = parse_callgrind(dump)
		return rows, total, int(ok.group(1)), callgrind_calls(dump)

	for kind, load, u in phases:
		# warm the pool and lazy paths first
		run(load + ["-n", "200", u], capture_output=True)
		# two runs on the same number of new connections: their
		# difference is the steady per-request cost, without accepts
		# and TLS handshakes
		small = measure(load, nsmall)
		big = measure(load, nreq)
		if not small or not big or big[2] <= small[2]:
			continue
		sm = {(o, f): ir for ir, o, f in small[0]}
		rows = sorted(((ir - sm.get((o, f), 0), o, f)
			       for ir, o, f in big[0]), key=lambda r: -r[0])
		calls = {k: v - small[3].get(k, 0) for k, v in big[3].items()}
		res[kind] = ([r for r in rows if r[0] > 0], big[1] - small[1],
			     big[2] - small[2], calls)
	procs.stop(p, timeout=60)
	return res


def categorise(rows):
	cats = {}
	for share, dso, _ in rows:
		c = category(dso)
		cats[c] = cats.get(c, 0) + share
	return sorted(cats.items(), key=lambda kv: -kv[1])


# ---- report ----------------------------------------------------------------

def fmt(v, nd=0):
	if v != v:
		return "—"
	if nd == 0:
		return "{:,.0f}".format(v)
	return "{:,.{}f}".format(v, nd)


def ratio(a, b):
	if a != a or b != b or not b:
		return "—"
	return "%.2f" % (a / b)


def median(xs):
	xs = [x for x in xs if x == x]
	return statistics.median(xs) if xs else float("nan")


def main():
	ap = argparse.ArgumentParser(prog="scripts/bench")
	ap.add_argument("--rounds", type=int, default=3)
	ap.add_argument("--duration", type=int, default=5,
			help="seconds per measurement (wrk -d, h2load -D)")
	ap.add_argument("--build-dir", default=os.path.join(TOP, "build-release"))
	ap.add_argument("--no-profile", action="store_true")
	ap.add_argument("--no-wait", action="store_true",
			help="do not wait for the load average to drop")
	ap.add_argument("--load-limit", type=float, default=0.7)
	ap.add_argument("--max-wait", type=int, default=1200)
	ap.add_argument("--out", help="results file (default "
			"bench/results/YYYY-MM-DD-HOST.md)")
	ap.add_argument("--callgrind-requests", type=int, default=4000)
	ap.add_argument("--keep", action="store_true",
			help="keep the run dir (configs, logs, perf and "
			"callgrind data) under /tmp")
	ap.add_argument("--processes", type=int, default=1, metavar="N",
			help="workers of every proxy: our count-processes, "
			"nginx's worker_processes and HAProxy's nbthread (it "
			"has no worker processes); the backend and the floor "
			"keep one; CPU and RSS are summed over the workers")
	ap.add_argument("--tests", metavar="LIST",
			help="only these figures, comma-separated, of: " +
			", ".join(t[0] for t in tests(0)))
	ap.add_argument("--profile-targets", metavar="LIST",
			default="ours,nginx,haproxy,floor,backend",
			help="profile only these servers (comma-separated; "
			"default all)")
	a = ap.parse_args()
	if not 1 <= a.processes <= 64:
		ap.error("--processes: 1 to 64")
	keys = [t[0] for t in tests(0)]
	if a.tests and not set(a.tests.split(",")) <= set(keys):
		ap.error("--tests: of " + ", ".join(keys))
	ptargets = a.profile_targets.split(",")
	if not set(ptargets) <= set(TARGETS):
		ap.error("--profile-targets: of " + ", ".join(TARGETS))

	build = os.path.abspath(a.build_dir)
	daemon = os.path.join(build, "host", "lws-uds-proxyd")
	plugins = os.path.join(build, "plugins")
	state = os.path.join(build, "bench")
	os.makedirs(state, exist_ok=True)
	cert = os.path.join(state, "localhost.cert")
	key = os.path.join(state, "localhost.key")
	# unix socket paths are limited to 107 bytes: run state under /tmp
	rundir = tempfile.mkdtemp(prefix="udsp-bench.")
	os.chmod(rundir, 0o755)
	www = os.path.join(rundir, "www")
	os.makedirs(www)
	with open(os.path.join(www, "small.txt"), "wb") as f:
		f.write(SMALL)
	with open(os.path.join(www, "chunked.txt"), "wb") as f:
		f.write(SMALL)
	with open(os.path.join(www, "big.txt"), "wb") as f:
		f.write((SMALL * ((1 << 20) // 100 + 1))[:1 << 20])
	for d in ("backend-tmp", "proxy-tmp"):
		os.makedirs(os.path.join(rundir, d))
	sock = os.path.join(rundir, "backend.sock")
	# HAProxy takes the certificate and its key from one file
	pem = os.path.join(rundir, "haproxy.pem")
	with open(os.open(pem, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
		for src in (cert, key):
			with open(src) as g:
				f.write(g.read())

	ports = {}
	for t in TARGETS:
		for k in ("h1", "h2"):
			ports["%s_%s" % (t, k)] = free_port()
	subst = {
		"@RUN@": rundir, "@WWW@": www, "@SOCK@": sock, "@CERT@": cert,
		"@KEY@": key, "@PEM@": pem, "@PLUGINS@": plugins,
		# nginx's workers drop to 'nobody' when started as root, and
		# could not reach the root-owned socket and run dir then
		"@USER@": "user root;" if os.getuid() == 0 else "",
		"@PROCESSES@": str(a.processes),
	}
	for t in TARGETS:
		for k in ("h1", "h2"):
			subst["@%s_%s@" % (t.upper(), k.upper())] = \
				str(ports["%s_%s" % (t, k)])

	def render(src, dst):
		with open(src) as f:
			text = f.read()
		for k, v in subst.items():
			text = text.replace(k, v)
		with open(dst, "w") as f:
			f.write(text)

	render(os.path.join(BENCH, "nginx-backend.conf.in"),
	       os.path.join(rundir, "backend.conf"))
	render(os.path.join(BENCH, "nginx-proxy.conf.in"),
	       os.path.join(rundir, "nginx-proxy.conf"))
	for which in ("proxy", "floor", "proxy-1"):
		cd = os.path.join(rundir, "lwsws-" + which)
		os.makedirs(os.path.join(cd, "conf.d"))
		src = os.path.join(BENCH, "lwsws-conf", which.split("-")[0])
		# callgrind follows one process: proxy-1 has no workers
		subst["@PROCESSES@"] = "1" if which == "proxy-1" else \
			str(a.processes)
		render(os.path.join(src, "conf.in"), os.path.join(cd, "conf"))
		render(os.path.join(src, "conf.d", "bench.in"),
		       os.path.join(cd, "conf.d", "bench"))
	# haproxy-1: the one thread callgrind follows
	for cfg, n in (("haproxy.cfg", a.processes), ("haproxy-1.cfg", 1)):
		subst["@PROCESSES@"] = str(n)
		render(os.path.join(BENCH, "haproxy.cfg.in"),
		       os.path.join(rundir, cfg))
	subst["@PROCESSES@"] = str(a.processes)

	nginx = shutil.which("nginx") or "/usr/sbin/nginx"
	haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
	cmd = {
		"backend": [nginx, "-p", rundir, "-e",
			    os.path.join(rundir, "backend-error.log"),
			    "-c", os.path.join(rundir, "backend.conf")],
		"nginx": [nginx, "-p", rundir, "-e",
			  os.path.join(rundir, "nginx-proxy-error.log"),
			  "-c", os.path.join(rundir, "nginx-proxy.conf")],
		# -db: foreground, no master: the pid serves, with its threads
		"haproxy": [haproxy, "-db", "-f",
			    os.path.join(rundir, "haproxy.cfg")],
		"ours": [daemon, "-s", "-n", "-d", "3", "-c",
			 os.path.join(rundir, "lwsws-proxy")],
		"floor": [daemon, "-s", "-n", "-d", "3", "-c",
			  os.path.join(rundir, "lwsws-floor")],
	}
	# under callgrind: one process each (nginx adds master_process off)
	cg_cmd = dict(cmd)
	cg_cmd["ours"] = [daemon, "-s", "-n", "-d", "3", "-c",
			  os.path.join(rundir, "lwsws-proxy-1")]
	cg_cmd["haproxy"] = [haproxy, "-db", "-f",
			     os.path.join(rundir, "haproxy-1.cfg")]

	load_start = wait_calm(a.load_limit, 0 if a.no_wait else a.max_wait)
	t_start = time.time()
	procs = Procs()
	pid = {}	# target -> its serving processes (workers)
	try:
		for t in ("backend", "nginx", "haproxy", "ours", "floor"):
			p = procs.start(t, cmd[t], os.path.join(rundir, t + ".log"))
			wait_up(p, LABEL[t], ports=(ports[t + "_h1"],
						    ports[t + "_h2"]),
				sock=sock if t == "backend" else None)
			if t == "backend":
				pid[t] = workers(p.pid, 1)
			elif t == "nginx":
				pid[t] = workers(p.pid, a.processes)
			elif t == "ours" and a.processes > 1:
				# -s with count-processes: the workers are the
				# daemon's children
				pid[t] = workers(p.pid, a.processes)
			else:
				pid[t] = [p.pid]
		check_bodies(ports, www)

		# warm-up: pools filled, lazy allocations made, caches hot
		for t in TARGETS:
			run(["wrk", "-t1", "-c64", "-d1s",
			     base_url(t, "h1", ports) + "/small.txt"],
			    capture_output=True)

		srv = sorted(set([p.pid for _, p in procs.list] +
				 [x for t in TARGETS for x in pid[t]]))
		busy0, own0, wall0 = sys_busy_ticks(), own_ticks(srv), time.time()
		res = {}	# (test, target) -> [result per round]
		rforeign = []	# cores used by other work, per round
		cpu = {}	# (test, target) -> [cpu us per request]
		tl = [t for t in tests(a.duration)
		      if not a.tests or t[0] in a.tests.split(",")]
		for rnd in range(a.rounds):
			say("bench: round %d of %d (load %.2f)"
			    % (rnd + 1, a.rounds, loadavg()))
			rb, ro, rw = sys_busy_ticks(), own_ticks(srv), time.time()
			# the proxies take turns going first
			prox = ["ours"] + PEERS
			i = rnd % len(prox)
			order = prox[i:] + prox[:i] + ["backend", "floor"]
			for key_, title, kind, path, mk, parse in tl:
				for t in order:
					if t == "floor" and key_ not in FLOOR_TESTS:
						continue
					u = base_url(t, kind, ports) + path
					c0 = sum(cpu_ticks(x) for x in pid[t])
					cp = run(mk(u), capture_output=True,
						 text=True)
					c1 = sum(cpu_ticks(x) for x in pid[t])
					r = parse(cp.stdout)
					res.setdefault((key_, t), []).append(r)
					ticks = os.sysconf("SC_CLK_TCK")
					n = r["rps"] * a.duration
					cpu.setdefault((key_, t), []).append(
						(c1 - c0) / ticks * 1e6 / n
						if n == n and n else float("nan"))
					say("  %-10s %-26s %10s req/s%s"
					    % (key_, LABEL[t], fmt(r["rps"]),
					       "  (%d errors)" % r["errors"]
					       if r["errors"] else ""))

			tck = os.sysconf("SC_CLK_TCK")
			rforeign.append(((sys_busy_ticks() - rb) -
					 (own_ticks(srv) - ro)) / tck /
					(time.time() - rw))
			say("bench: other work during round %d: %.2f cores"
			    % (rnd + 1, rforeign[-1]))

		tck = os.sysconf("SC_CLK_TCK")
		foreign = ((sys_busy_ticks() - busy0) - (own_ticks(srv) - own0)) \
			/ tck / (time.time() - wall0)
		# summed over the workers (each one's own peak, for VmHWM)
		rss = {t: (sum(proc_status(x, "VmHWM") for x in pid[t]),
			   sum(proc_status(x, "VmRSS") for x in pid[t]))
		       for t in TARGETS}

		prof = {}
		if not a.no_profile:
			small_h1 = lambda t: ["wrk", "-t1", "-c64",
					      "-d%ds" % a.duration,
					      base_url(t, "h1", ports) +
					      "/small.txt"]
			small_h2 = lambda t: ["h2load", "-c16", "-m16", "-D",
					      str(a.duration),
					      base_url(t, "h2", ports) +
					      "/small.txt"]
			for t in ["ours"] + PEERS:
				if t not in ptargets:
					continue
				prof["perf-" + t] = perf_profile(
					pid[t], a.duration,
					os.path.join(rundir, "perf-%s.data" % t),
					small_h1(t))
			for t in ["ours"] + PEERS + ["floor", "backend"]:
				if t not in ptargets:
					continue
				prof["sys-" + t] = syscall_profile(
					pid[t], a.duration, small_h1(t))
				prof["sys2-" + t] = syscall_profile(
					pid[t], a.duration, small_h2(t))
		load_end = loadavg()
		t_meas = time.time() - t_start

		if not a.no_profile:
			# callgrind: our daemon alone (same config, same ports)
			# and the floor, each for a fixed number of requests
			for t in ["ours", "floor"] + PEERS:
				if t not in ptargets:
					continue
				p = [q for n, q in procs.list if n == t][0]
				procs.stop(p)
				# nginx in one process, so callgrind sees the
				# worker's work
				c = cg_cmd[t] + (["-g", "master_process off;"]
						 if t == "nginx" else [])
				prof["cg-" + t] = callgrind_profile(
					c, (ports[t + "_h1"], ports[t + "_h2"]),
					os.path.join(rundir, "callgrind-%s.out" % t),
					"/small.txt", a.callgrind_requests,
					os.path.join(rundir, "cg-%s.log" % t), procs)
	finally:
		procs.stop_all()

	report = make_report(a, res, cpu, rss, prof, ports, cmd, load_start,
			     load_end, t_meas, tl, foreign, rforeign)
	say("")
	say(report)
	outp = a.out or os.path.join(
		BENCH, "results", "%s-%s.md" % (datetime.date.today().isoformat(),
					       socket.gethostname()))
	with open(outp, "w") as f:
		f.write(report)
	say("bench: wrote %s" % outp)
	if a.keep:
		say("bench: run dir kept: %s" % rundir)
	else:
		shutil.rmtree(rundir, ignore_errors=True)


def make_report(a, res, cpu, rss, prof, ports, cmd, load_start, load_end,
		t_meas, tl, foreign, rforeign):
	L = []
	cpu_model = "?"
	with open("/proc/cpuinfo") as f:
		for line in f:
			if line.startswith("model name"):
				cpu_model = line.split(":", 1)[1].strip()
				break
	L.append("# lws-uds-proxy benchmark, %s on %s\n"
		 % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
		    socket.gethostname()))
	L.append("| | |\n| --- | --- |")
	for k, v in (
		("machine", "%s cores (`nproc`), %s, Linux %s"
		 % (os.cpu_count(), cpu_model, os.uname().release)),
		("lws", "Debian libwebsockets17 " +
		 out(["dpkg-query", "-W", "-f=${Version}", "libwebsockets17"])),
		("nginx", out(["dpkg-query", "-W", "-f=${Version}", "nginx"])),
		("HAProxy", out(["dpkg-query", "-W", "-f=${Version}",
				 "haproxy"])),
		("tools", "wrk " + out(["dpkg-query", "-W", "-f=${Version}",
					"wrk"]) + ", h2load (nghttp2-client " +
		 out(["dpkg-query", "-W", "-f=${Version}", "nghttp2-client"])
		 + ")"),
		("tree", out(["git", "-C", TOP, "describe", "--always",
			      "--dirty"])),
		("run", "%d rounds x %d s per figure, median shown; "
		 "measuring took %.0f s" % (a.rounds, a.duration, t_meas)),
		("load average (1 min)", "%.2f before starting, %.2f at the end "
		 "(the benchmark's own clients and servers count in the latter)"
		 % (load_start, load_end)),
		("other work during the rounds", "%.2f cores on average (all "
		 "CPU time in /proc/stat less that of the benchmark's servers "
		 "and clients)" % max(0.0, foreign)),
		("processes", "ours `count-processes` %d, nginx proxy "
		 "`worker_processes` %d, HAProxy `nbthread` %d (one "
		 "process); the backend and the floor one each"
		 % (a.processes, a.processes, a.processes)),
	):
		L.append("| %s | %s |" % (k, v))
	L.append("")
	if a.processes == 1:
		L.append("Every process serves with one worker / one process "
			 "(HAProxy: one thread), all on 127.0.0.1; the three "
			 "proxies reach the same nginx backend over the same unix "
			 "socket. Clients and servers share the %d cores."
			 % os.cpu_count())
	else:
		L.append("Each proxy serves with %d workers (ours: a manager "
			 "that serves nothing and its worker processes; nginx: "
			 "master and worker processes; HAProxy: one process with "
			 "%d threads); the backend and the floor with one. "
			 "All on 127.0.0.1; the three proxies reach the same nginx "
			 "backend over the same unix socket. The load generators "
			 "are unchanged (wrk -t1). Clients and servers share the "
			 "%d cores." % (a.processes, a.processes, os.cpu_count()))
	L.append("")

	def m(test, t, k):
		return median([r[k] for r in res.get((test, t), [])])

	L.append("| test | ours | nginx | HAProxy | best peer | "
		 "ours / best peer | backend direct | ours / backend | "
		 "lws floor | ours / floor |")
	L.append("| --- |" + " ---: |" * 3 + " --- |" + " ---: |" * 5)

	def row(title, v, nd=0, more_is_better=True, backend_ratio=True):
		"""v: target -> figure.  The best peer is the one of PEERS with
		the better figure (more req/s; less latency, CPU, memory)."""
		have = [t for t in PEERS if v[t] == v[t]]
		best = (max if more_is_better else min)(
			have, key=lambda t: v[t]) if have else None
		bv = v[best] if best else float("nan")
		L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
			title, fmt(v["ours"], nd), fmt(v["nginx"], nd),
			fmt(v["haproxy"], nd), LABEL[best] if best else "—",
			ratio(v["ours"], bv), fmt(v["backend"], nd),
			ratio(v["ours"], v["backend"]) if backend_ratio else "",
			fmt(v["floor"], nd), ratio(v["ours"], v["floor"])))

	for key_, title, kind, path, mk, parse in tl:
		unit = "MB/s" if key_ in BIG_TESTS else "req/s"
		k = "mbps" if key_ in BIG_TESTS else "rps"
		row("%s, %s" % (title, unit),
		    {t: m(key_, t, k) for t in TARGETS})
		if kind == "h1" and key_ not in BIG_TESTS:
			for k, name in (("p50", "p50"), ("p99", "p99")):
				row("&nbsp;&nbsp;%s latency, ms" % name,
				    {t: m(key_, t, k) for t in TARGETS}, 2,
				    more_is_better=False)
	row("h1 small: server CPU per request, µs",
	    {t: median(cpu.get(("h1-small", t), [])) for t in TARGETS}, 1,
	    more_is_better=False)
	row("%s, KiB" % ("peak RSS (VmHWM) of the serving process"
			 if a.processes == 1 else "peak RSS (VmHWM) summed over "
			 "each proxy's %d workers" % a.processes),
	    {t: float(rss[t][0]) for t in TARGETS}, more_is_better=False,
	    backend_ratio=False)
	errs = {t: sum(r["errors"] for (k, tt), rs in res.items() if tt == t
		       for r in rs) for t in TARGETS}
	L.append("| errors (all tests, all rounds) | %d | %d | %d | | | %d | | "
		 "%d | |" % (errs["ours"], errs["nginx"], errs["haproxy"],
			     errs["backend"], errs["floor"]))
	L.append("")
	L.append("The best peer is whichever of nginx and HAProxy has the "
		 "better median in that row (more req/s or MB/s; less latency, "
		 "CPU or memory), and ours / best peer compares ours with it. "
		 "Ratios are of medians; above 1 means more of that figure "
		 "(for latency, CPU and RSS, above 1 is worse). Server CPU per "
		 "request is the serving processes' utime+stime over the run "
		 "divided by the requests done (/proc/PID/stat). The lws floor "
		 "is a second lws-uds-proxyd with no plugin that serves the "
		 "same files from a `file://` mount: lws 4.1.6's own cost per "
		 "request; it has no chunked or proxied path, so the chunked "
		 "row lacks it. The backend is measured on its TCP "
		 "and TLS listeners (wrk cannot use a unix socket).")
	L.append("")
	L.append("Per-round figures (req/s; MB/s for 1 MiB):\n")
	L.append("| test | target | " + " | ".join(
		"round %d" % (i + 1) for i in range(a.rounds)) + " |")
	L.append("| --- | --- |" + " ---: |" * a.rounds)
	L.append("| (all) | other work on the machine, cores | " + " | ".join(
		"%.2f" % max(0.0, f) for f in rforeign) + " |")
	for key_, title, kind, path, mk, parse in tl:
		for t in TARGETS:
			rs = res.get((key_, t))
			if not rs:
				continue
			k = "mbps" if key_ in BIG_TESTS else "rps"
			L.append("| %s | %s | %s |" % (key_, LABEL[t], " | ".join(
				fmt(r[k], 1 if k == "mbps" else 0) for r in rs)))
	L.append("")
	L.append("## Commands\n")
	L.append("Made by `scripts/bench --rounds %d --duration %d%s`. "
		 "Servers:\n" % (a.rounds, a.duration,
				 " --processes %d" % a.processes
				 if a.processes != 1 else ""))
	L.append("```")
	for t in ("backend", "nginx", "haproxy", "ours", "floor"):
		L.append(" ".join(shlex.quote(x) for x in cmd[t]))
	L.append("```")
	L.append("")
	L.append("Configs are bench/nginx-backend.conf.in, "
		 "bench/nginx-proxy.conf.in, bench/haproxy.cfg.in and "
		 "bench/lwsws-conf/{proxy,floor} with the ports and paths "
		 "filled in (HAProxy's PEM is the bench's certificate and key "
		 "in one file). Per target (URL = "
		 "`http://127.0.0.1:PORT` for h1, `https://127.0.0.1:PORT` for "
		 "h2):\n")
	L.append("```")
	for key_, title, kind, path, mk, parse in tl:
		L.append(" ".join(mk("URL" + path)))
	L.append("```")
	L.append("")
	if prof:
		L.extend(profile_section(a, prof))
	return "\n".join(L) + "\n"


def callgrind_section(a, t, kind, cg, lwsv):
	rows, total, nok, calls = cg
	L = []
	who = {"ours": "lws-uds-proxyd (proxying to the backend%s)"
	       % (", count-processes 1" if a.processes > 1 else ""),
	       "floor": "lws floor (file:// mount)",
	       "nginx": "nginx proxy (master_process off)",
	       "haproxy": "HAProxy (nbthread 1)"}[t]
	load = "h2load --h1 -n %d -c 10" if kind == "h1" else \
		"h2load -n %d -c 10 -m 10"
	L.append("### callgrind, %s, %s: `%s` on /small.txt\n"
		 % (kind, who, load % a.callgrind_requests))
	per = total / nok if nok else 0
	L.append("After a 200-request warm-up, two counted runs on 10 new "
		 "connections each (`callgrind_control -z`, load, `-d`): 400 "
		 "requests and %d. Their difference, %s instructions for %d "
		 "requests, leaves out accepts and TLS handshakes: **%s "
		 "instructions per request**.\n"
		 % (a.callgrind_requests, fmt(total), nok, fmt(per)))
	shares = [(ir * 100.0 / total if total else 0, dso, f)
		  for ir, dso, f in rows]
	L.append("| where | share | instr/request |")
	L.append("| --- | ---: | ---: |")
	for c, sh in categorise(shares):
		L.append("| %s | %.1f%% | %s |" % (c, sh, fmt(sh * per / 100)))
	L.append("")
	if calls and nok:
		L.append("Calls per request: " + ", ".join(
			"`%s` %.2f" % (k, v / nok) for k, v in
			sorted(calls.items(), key=lambda kv: -kv[1])
			if v / nok >= 0.01) + ".\n")
	L.append("| share | instr/request | object | function |")
	L.append("| ---: | ---: | --- | --- |")
	for sh, dso, f in shares[:25]:
		L.append("| %.2f%% | %s | %s | `%s` |"
			 % (sh, fmt(sh * per / 100), os.path.basename(dso),
			    fn_name(dso, f, lwsv)))
	L.append("")
	if t == "ours":
		ours = [r for r in shares if category(r[1]) == "our plugin"]
		if ours:
			L.append("Our plugin by function (callgrind, %s):\n" % kind)
			L.append("| share | instr/request | function |")
			L.append("| ---: | ---: | --- |")
			for sh, dso, f in ours[:20]:
				L.append("| %.2f%% | %s | `%s` |"
					 % (sh, fmt(sh * per / 100), f))
			L.append("")
	return L


def profile_section(a, prof):
	L = ["## Profiles\n"]
	lwsv = out(["dpkg-query", "-W", "-f=${Version}", "libwebsockets17"])
	for t in ["ours"] + PEERS:
		rows = prof.get("perf-" + t)
		if not rows:
			continue
		who = {"ours": "lws-uds-proxyd",
		       "nginx": "the nginx proxy worker",
		       "haproxy": "HAProxy"}[t]
		if a.processes > 1:
			who += " (%d %s)" % (a.processes, "threads"
					     if t == "haproxy" else "workers")
		L.append("### perf, %s, h1 small (`wrk -t1 -c64 -d%ds`)\n"
			 % (who, a.duration))
		if t == "ours":
			L.append("`perf record -e cpu-clock -F 1999 -g -p PID` "
				 "(no hardware counters on this VM), exclusive "
				 "(self) samples. Symbols are only what the "
				 "Debian libraries export: a static function "
				 "shows as a sample address, and all of a "
				 "library's samples are summed into its row "
				 "of the first table.\n")
		L.append("| where | share |")
		L.append("| --- | ---: |")
		for c, s in categorise(rows):
			L.append("| %s | %.1f%% |" % (c, s))
		L.append("")
		L.append("| share | object | function |")
		L.append("| ---: | --- | --- |")
		for share, dso, sym in rows[:25]:
			L.append("| %.2f%% | %s | `%s` |"
				 % (share, dso, fn_name(dso, sym, lwsv)))
		L.append("")
		if t == "ours":
			ours = [r for r in rows if category(r[1]) == "our plugin"]
			if ours:
				L.append("Our plugin by function (perf):\n")
				L.append("| share | function |")
				L.append("| ---: | --- |")
				for share, dso, sym in ours[:20]:
					L.append("| %.2f%% | `%s` |" % (share, sym))
				L.append("")
	for kind, load in (("h1", "wrk -t1 -c64 -d%ds" % a.duration),
			   ("h2", "h2load -c16 -m16 -D %d" % a.duration)):
		L.extend(syscall_section(prof, kind, load))
	for kind in ("h1", "h2"):
		for t in ["ours", "floor"] + PEERS:
			cg = prof.get("cg-" + t, {}).get(kind)
			if cg:
				L.extend(callgrind_section(a, t, kind, cg, lwsv))
	return L


def syscall_section(prof, kind, load):
	L = []
	sysc = {t: prof.get(("sys-" if kind == "h1" else "sys2-") + t)
		for t in TARGETS}
	if any(sysc.values()):
		L.append("### System calls per request, %s small "
			 "(`perf trace -s -p PID` during `%s`)\n"
			 % (kind, load))
		names = set()
		for v in sysc.values():
			if v:
				names.update(v[0])
		per = {}
		for t, v in sysc.items():
			if v and v[1]:
				per[t] = {k: c / v[1] for k, c in v[0].items()}
			else:
				per[t] = {}
		cols = [t for t in TARGETS if per.get(t)]
		L.append("| syscall | " + " | ".join(LABEL[t] for t in cols)
			 + " |")
		L.append("| --- |" + " ---: |" * len(cols))
		L.append("| **all** | " + " | ".join(
			"**%.2f**" % sum(per[t].values()) for t in cols) + " |")
		for n in sorted(names, key=lambda n: -max(per[t].get(n, 0)
							 for t in cols)):
			if max(per[t].get(n, 0) for t in cols) < 0.01:
				continue
			L.append("| %s | %s |" % (n, " | ".join(
				"%.2f" % per[t].get(n, 0) for t in cols)))
		L.append("")
		L.append("Tracing slows the servers down; the counts per "
			 "request are what matters here, not the rate.\n")
	return L


if __name__ == "__main__":
	main()
