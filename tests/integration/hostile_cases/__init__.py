# SPDX-License-Identifier: MIT
#
# The hostile cases (hostile.py runs them), one module per topic; README.md
# in tests/integration says which topic goes where.  Each case starts its
# own daemon, backend.py ("main", for the health check) and where needed
# evil_backend.py ("/evil") or a jailed backend.py ("/jail"), attacks,
# asserts the daemon's exact answer; the runner then checks that the daemon
# still serves a normal request on h1 and h2.  Importing a topic module
# registers its cases in common.CASES; a new module must be imported here.

from . import bad_requests, slow, http2, bad_backends, limits  # noqa: F401
from .common import CASES, Evil  # noqa: F401

# Cases that fail because of an open product bug, with the reason: ctest
# registers them DISABLED; `hostile.py --build-dir B known` runs them.
KNOWN = {
    "h2-cancel-burst": "an h2 client that cancels 50 proxied streams at "
    "once loses its whole connection after a few hundred: lws 4.1.6 keeps "
    "a client-reset stream as a child (it tells the plugin nothing, see "
    "cases.KNOWN client-cancel-*), so later HEADERS push its child count "
    "past h2-max-concurrent-streams and lws closes the connection "
    "('Another stream not allowed'); 1 or 5 at a time is fine",
}
