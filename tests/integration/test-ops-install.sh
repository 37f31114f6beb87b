#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# `cmake --install` with DESTDIR into a temporary root: the daemon, the
# plugin where the daemon looks by default, the systemd unit, the example
# configs, the default site (index.html, error.css) and the man page; then the installed daemon, pointed at the installed
# plugin dir, proxies a request to a real backend (200) and writes an
# Apache combined access-log line for it.
#
#   tests/integration/test-ops-install.sh BUILD_DIR
set -u

build=${1:?usage: $0 build-dir}
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
tmp=$(mktemp -d /tmp/udsp-ops-install.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
fails=0

fail() {
	echo "FAIL $*"
	fails=$((fails + 1))
}

dest=$tmp/dest
if ! DESTDIR=$dest cmake --install "$build" >"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log"
	fail "cmake --install"
	exit 1
fi
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
root=$dest$prefix

bin=$root/bin/lws-uds-proxyd
[ -x "$bin" ] || fail "no $bin"
so=$(find "$dest" -name libprotocol_lws_uds_proxy.so | head -1)
[ -n "$so" ] || fail "plugin not installed"
plugdir=$(dirname "$so")
want=${plugdir#"$dest"}
have=$("$bin" -h | sed -n 's/^Default plugin dir: //p')
[ "$have" = "$want" ] ||
	fail "daemon's default plugin dir '$have' is not the installed '$want'"
grep -qF "copy or symlink $so" "$tmp/install.log" ||
	fail "install does not say where lwsws users get the plugin"

unit=$(find "$dest" -name lws-uds-proxyd.service | head -1)
if [ -z "$unit" ]; then
	fail "no systemd unit installed"
else
	case $unit in
	"$root"/lib/systemd/system/*) ;;
	*) fail "unit at $unit, not under $root/lib/systemd/system" ;;
	esac
	for l in "ExecStart=$prefix/bin/lws-uds-proxyd -c /etc/lwsws" \
		 'ExecReload=/bin/kill -HUP $MAINPID' "Restart=on-failure"; do
		grep -qxF -- "$l" "$unit" || fail "unit lacks '$l'"
	done
fi
share=$root/share/lws-uds-proxy
for f in www/error.css www/index.html; do
	[ -f "$share/$f" ] || fail "no $share/$f"
done
[ -f "$root/share/man/man8/lws-uds-proxyd.8" ] || fail "no man page"
[ -f "$share/lwsws-conf/demo/conf" ] || fail "no example configs in $share"
[ $fails -eq 0 ] && echo "ok   install layout (bin, plugin dir, unit, share)"

# --- run the installed daemon --------------------------------------------
"$py" "$here/backends/test-ops-backend.py" "$tmp/app.sock" installed "$tmp" \
	</dev/null >/dev/null 2>&1 &
pids+=($!)
port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$tmp/conf/conf.d"
cat > "$tmp/conf/conf" <<EOT
{ "global": { "plugin-dir": "$plugdir" } }
EOT
cat > "$tmp/conf/conf.d/app" <<EOT
{ "vhosts": [{ "name": "localhost", "port": "$port",
    "interface": "127.0.0.1", "access-log": "$tmp/access.log",
    "mounts": [{ "mountpoint": "/app", "origin": "http://+$tmp/app.sock:/" }] }] }
EOT
"$bin" -n -c "$tmp/conf" </dev/null >"$tmp/daemon.log" 2>&1 &
dpid=$!
pids+=($dpid)

ok=0
for i in $(seq 200); do
	out=$(curl -sS -A ops-test/1 -o "$tmp/body" -w '%{http_code}' \
		"http://127.0.0.1:$port/app/who" 2>/dev/null)
	[ "$out" = 200 ] && [ "$(cat "$tmp/body")" = installed ] &&
		{ ok=1; break; }
	kill -0 $dpid 2>/dev/null || break
	sleep 0.05
done
if [ $ok = 1 ]; then
	echo "ok   installed daemon proxies to a backend: 200"
else
	fail "installed daemon: got '$out'"
	sed 's/^/    | /' "$tmp/daemon.log"
fi

# one combined-format line with status and bytes (plugin writes it)
re='^127\.0\.0\.1 - - \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9:]{8} [-+][0-9]{4}\] "GET /app/who HTTP/1\.1" 200 10 "-" "ops-test/1"$'
for i in $(seq 100); do
	grep -qE "$re" "$tmp/access.log" 2>/dev/null && break
	sleep 0.05
done
if grep -qE "$re" "$tmp/access.log" 2>/dev/null; then
	echo "ok   access-log: Apache combined line with status and bytes"
else
	fail "access-log line: $(cat "$tmp/access.log" 2>&1)"
fi

kill -TERM $dpid
wait $dpid
rc=$?
[ $rc -eq 0 ] || fail "installed daemon exit code $rc after SIGTERM"

[ $fails -eq 0 ] && echo "all passed"
[ $fails -eq 0 ]
