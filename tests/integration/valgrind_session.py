#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""valgrind memcheck over a short proxied session: a few integration cases
(h1 and h2, unix, TCP and TLS backends, a body each way, a 503) run with
the daemon under valgrind; every valgrind log must show no errors and no
definitely lost bytes.  Run by scripts/sanitize."""
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

CASES = ["get-native-uds-h1", "get-native-uds-h2", "get-native-tcp-h1",
         "get-native-tls-uds-h2", "body-chunked-h2", "upload-cl-h1",
         "backend-missing-h2", "pool-reuse-h1"]

ap = argparse.ArgumentParser()
ap.add_argument("--build-dir", required=True)
a = ap.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
logs = tempfile.mkdtemp(prefix="udsp-vg.")
env = dict(os.environ)
env["UDSP_IT_DAEMON_PREFIX"] = (
    "valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds="
    "definite --track-fds=no --log-file=%s/vg.%%p" % logs)
env["UDSP_IT_SANITIZED"] = "1"      # valgrind's own heap: RSS means little
rc = subprocess.call([sys.executable, os.path.join(here, "run.py"),
                      "--build-dir", a.build_dir] + CASES, env=env)
bad = []
files = glob.glob(os.path.join(logs, "vg.*"))
for f in files:
    t = open(f, errors="replace").read()
    m = re.search(r"ERROR SUMMARY: (\d+) errors", t)
    d = re.search(r"definitely lost: ([\d,]+) bytes", t)
    errs = int(m.group(1)) if m else -1
    lost = int(d.group(1).replace(",", "")) if d else 0
    print("%s: %s errors, %d bytes definitely lost" % (
        os.path.basename(f), errs if m else "no summary", lost))
    if errs != 0 or lost:
        bad.append(f)
        sys.stdout.write(t[-6000:])
if rc or bad or not files:
    print("valgrind session: FAILED (cases rc %d, %d bad logs, %d logs)" % (
        rc, len(bad), len(files)))
    sys.exit(1)
print("valgrind session: %d daemon runs, no errors, no definite leaks" %
      len(files))
