# SPDX-License-Identifier: MIT
#
# The integration cases (run.py runs them), one module per topic; README.md
# next to this package says which topic goes where.  Each @case function
# runs once per client protocol ("h1": curl --http1.1 on the plain vhost;
# "h2": TLS + ALPN h2) against a fresh daemon and the backends it names;
# the runner ends every case with a normal GET on both protocols (the
# daemon must still serve).  Where a case is a table (methods, headers,
# bodies), the table is the data.  Importing a topic module registers its
# cases in common.CASES; a new module must be imported here.

from . import (routing, headers, bodies, uploads, http2, tls,  # noqa: F401
               faults, hold, pool, disconnects, status, early, websocket,
               multi, limits)
from .common import CASES  # noqa: F401

# Cases that fail because of a known product bug, with the reason.  They
# stay registered with ctest but DISABLED (reported as "Not Run"), so the
# suite is green while the bug is open; `run.py --build-dir B known` runs
# them.  Delete an entry when its fix lands.
KNOWN = {
    "client-cancel-download-h2": "lws 4.1.6 only marks a client-reset h2 "
    "stream closed and tells nobody: the relay sends the rest of the "
    "response (all 64 MiB) into the dead stream (README, Limits)",
    "client-cancel-upload-h2": "lws 4.1.6 does not report a client "
    "RST_STREAM: the relay waits for the rest of the body until "
    "idle-timeout-ms ends it (README, Limits)",
}
