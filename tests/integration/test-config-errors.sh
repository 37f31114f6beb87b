#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# lws-uds-proxyd on broken configs: it must refuse to start (non-zero exit)
# and say on stderr which file and which key or line:column is wrong.  Also
# checks that unknown keys only warn, and that SIGTERM exits cleanly (0).
#
#   tests/integration/test-config-errors.sh path/to/lws-uds-proxyd
set -u

daemon=${1:?usage: $0 path/to/lws-uds-proxyd}
tmp=$(mktemp -d /tmp/udsp-conferr.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
n=0

# fresh CONFDIR with a harmless global conf; conf.d/t gets the case's text
newconf() {
	rm -rf "$tmp/c"
	mkdir -p "$tmp/c/conf.d"
	printf '{ "global": { "server-string": "t" } }\n' > "$tmp/c/conf"
	cat > "$tmp/c/conf.d/t"
}

# expect_fail NAME PATTERN...: daemon exits non-zero, stderr has each pattern
expect_fail() {
	local name=$1 rc p ok=1
	shift
	n=$((n + 1))
	timeout 20 "$daemon" -n -c "$tmp/c" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ $rc -eq 0 ] || [ $rc -eq 124 ]; then
		echo "FAIL $name: exit code $rc, wanted a start-up failure"
		ok=0
	fi
	for p in "$@"; do
		if ! grep -qF -- "$p" "$tmp/err"; then
			echo "FAIL $name: stderr lacks '$p'"
			ok=0
		fi
	done
	if [ $ok = 1 ]; then
		echo "ok   $name"
	else
		fails=$((fails + 1))
		sed 's/^/    | /' "$tmp/err"
	fi
}

sock_path="$tmp/listen.sock"
long=/run/$(printf 'x%.0s' $(seq 120)).sock

# --- parse errors: file:line:col ---------------------------------------
newconf <<'EOT'
# a comment line, "with a quote
{
  "vhosts": [{ "name": "v", "port": "7000",  # trailing comment
    "mounts": [ ,
EOT
expect_fail "bad JSON after '#' comments" "$tmp/c/conf.d/t:4:17:" \
	"JSON parse error"

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000" }] } # fine
{ "vhosts": [] }
EOT
expect_fail "text after the top-level object" "$tmp/c/conf.d/t:2:1:"

newconf <<'EOT'
{ "vhosts": [{ "name": "v
EOT
expect_fail "unterminated string" "$tmp/c/conf.d/t:" "unexpected end of file"

# a broken global conf stops everything too
newconf </dev/null
printf '{ "global": { "uid": 1 \n' > "$tmp/c/conf"
expect_fail "bad JSON in conf" "$tmp/c/conf:2:1:"

# --- types and required keys -----------------------------------------
newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "http" }] }
EOT
expect_fail "port not an integer" "$tmp/c/conf.d/t: vhosts[0].port:" \
	"expected an integer"

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "70000" }] }
EOT
expect_fail "port out of range" "vhosts[0].port:" "out of range"

newconf <<'EOT'
{ "vhosts": [{ "port": "7000" }] }
EOT
expect_fail "vhost without name" "$tmp/c/conf.d/t: vhosts[0]:" \
	"missing required key 'name'"

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "origin": "file:///tmp" }] }] }
EOT
expect_fail "mount without mountpoint" "vhosts[0].mounts[0]:" \
	"missing required key 'mountpoint'"

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000", "mounts": { "a": 1 } }] }
EOT
expect_fail "mounts not an array" "vhosts[0].mounts:" "expected an array"

newconf <<'EOT'
{ "global": { "max-http-header-data": "100000" },
  "vhosts": [{ "name": "v", "port": "7000" }] }
EOT
expect_fail "max-http-header-data too big" "global.max-http-header-data:"

newconf <<'EOT'
{ "global": { "count-processes": "0" },
  "vhosts": [{ "name": "v", "port": "7000" }] }
EOT
expect_fail "count-processes 0" "$tmp/c/conf.d/t: global.count-processes:" \
	"out of range"

newconf <<'EOT'
{ "global": { "max-connections": -1 },
  "vhosts": [{ "name": "v", "port": "7000" }] }
EOT
expect_fail "max-connections negative" "$tmp/c/conf.d/t: global.max-connections:" \
	"out of range"

newconf <<'EOT'
{ "global": { "max-connections": "lots" },
  "vhosts": [{ "name": "v", "port": "7000" }] }
EOT
expect_fail "max-connections not an integer" \
	"$tmp/c/conf.d/t: global.max-connections:" "expected an integer, got 'lots'"

newconf <<'EOT'
{ "global": { "count-processes": "abc" },
  "vhosts": [{ "name": "v", "port": "7000" }] }
EOT
expect_fail "count-processes not an integer" \
	"$tmp/c/conf.d/t: global.count-processes:" "expected an integer, got 'abc'"

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "h2-max-concurrent-streams": "0" }] }
EOT
expect_fail "h2-max-concurrent-streams 0" \
	"vhosts[0].h2-max-concurrent-streams:" "out of range"

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "host-ssl-cert": "/nonexistent/c.pem", "host-ssl-key": "/nonexistent/k" }] }
EOT
expect_fail "missing TLS cert file" "host-ssl-cert '/nonexistent/c.pem'"

# lws picks a mount by its list order as well as its length; one
# mountpoint twice has no order that means anything
newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/s", "origin": "file:///tmp" },
	     { "mountpoint": "/", "origin": "file:///tmp" },
	     { "mountpoint": "/s", "origin": "callback://lws-uds-proxy",
	       "pmo": [{ "backend": "http://+/run/app.sock:/" }] }] }] }
EOT
expect_fail "mountpoint given twice" "$tmp/c/conf.d/t: vhosts[0].mounts:" \
	"mountpoint '/s' is given twice"

# --- backends --------------------------------------------------------
newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/app", "origin": "http://+:/in" }] }] }
EOT
expect_fail "empty socket path (native form)" \
	"$tmp/c/conf.d/t: vhost 'v' mount '/app': backend 'http://+:/in': "

newconf <<EOT
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/app", "origin": "callback://lws-uds-proxy",
	       "pmo": [{ "backend": "http://+$long:/" }] }] }] }
EOT
expect_fail "socket path too long (pmo form)" \
	"$tmp/c/conf.d/t: vhost 'v' mount '/app': backend 'http://+$long:/': " \
	"too long"

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/app", "origin": "callback://lws-uds-proxy" }] }] }
EOT
expect_fail "proxy callback mount without backend" "vhosts[0].mounts[0]:" \
	"needs a pmo \"backend\""

# several backends: each element is checked as a single one would be
newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/app", "origin": "callback://lws-uds-proxy",
	       "pmo": [{ "backend":
		 "http://+/run/a.sock:/, http://+:/in, http://127.0.0.1:8080/" }] }] }] }
EOT
expect_fail "bad element of a backend list (pmo form)" \
	"$tmp/c/conf.d/t: vhost 'v' mount '/app': backend 'http://+:/in': "

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/app",
	       "origin": "http://+/run/a.sock:/,ftp://127.0.0.1:21/" }] }] }
EOT
expect_fail "bad element of a backend list (native form)" \
	"$tmp/c/conf.d/t: vhost 'v' mount '/app': backend 'ftp://127.0.0.1:21/': "

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "ws-protocols": [{ "lws-uds-proxy": { "down-ms": "soon" } }],
  "mounts": [{ "mountpoint": "/app",
	       "origin": "http://+/run/a.sock:/, http://+/run/b.sock:/" }] }] }
EOT
expect_fail "down-ms not a number" "down-ms" "'soon' is not a number"

# hold-ms per mount: the plugin reads it per request, so it is checked here
newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/app", "origin": "http://+/run/app.sock:/",
	       "pmo": [{ "hold-ms": "5s" }] }] }] }
EOT
expect_fail "pmo hold-ms not a number (native form)" "vhosts[0].mounts[0]:" \
	"mount '/app': pmo \"hold-ms\": '5s' is not a number"

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/app", "origin": "callback://lws-uds-proxy",
	       "pmo": [{ "backend": "http://+/run/app.sock:/" },
		       { "hold-ms": "-1" }] }] }] }
EOT
expect_fail "pmo hold-ms negative (pmo form)" "vhosts[0].mounts[0]:" \
	"mount '/app': pmo \"hold-ms\": '-1' is not a number"

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "ws-protocols": [{ "lws-uds-proxy": { "hold-max": "lots" } }],
  "mounts": [{ "mountpoint": "/app", "origin": "http://+/run/app.sock:/" }] }] }
EOT
expect_fail "vhost option hold-max not a number" \
	"ws-protocols[0].lws-uds-proxy:" "option \"hold-max\": 'lots' is not a number"

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/app", "origin": "gopher://x/" }] }] }
EOT
expect_fail "unsupported origin scheme" "vhosts[0].mounts[0]:" \
	"unsupported scheme"

# --- status mounts ---------------------------------------------------
newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/s", "origin": "callback://lws-uds-proxy",
	       "pmo": [{ "status": "xml" }] }] }] }
EOT
expect_fail "status: unknown kind" "vhosts[0].mounts[0]:" \
	"\"status\" 'xml': use \"json\" or \"prometheus\""

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/s", "origin": "callback://lws-uds-proxy",
	       "pmo": [{ "status": "json", "status-allow": "::1, 10.0.0.0/33" }] }] }] }
EOT
expect_fail "status-allow: bad prefix" "vhosts[0].mounts[0]:" \
	"\"status-allow\": '10.0.0.0/33' is not an address or CIDR prefix"

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/s", "origin": "callback://lws-uds-proxy",
	       "pmo": [{ "status": "json", "status-allow": "localhost" }] }] }] }
EOT
expect_fail "status-allow: a name" "'localhost' is not an address"

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/s", "origin": "callback://lws-uds-proxy",
	       "pmo": [{ "status-allow": "127.0.0.1",
			 "backend": "http://+/run/app.sock:/" }] }] }] }
EOT
expect_fail "status-allow without status" \
	"\"status-allow\" without \"status\""

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/s", "origin": "callback://lws-uds-proxy",
	       "pmo": [{ "status": "prometheus",
			 "backend": "http://+/run/app.sock:/" }] }] }] }
EOT
expect_fail "status mount with a backend" \
	"a status mount takes no \"backend\""

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/s", "origin": "http://+/run/app.sock:/",
	       "pmo": [{ "status": "json" }] }] }] }
EOT
expect_fail "status on a proxy mount" \
	"\"status\" needs origin \"callback://lws-uds-proxy\""

# a status mount needs no backend anywhere; on a unix-socket listener
# its clients have no address: "unix" lets them in, the default does not
plugins=$(cd "$(dirname "$daemon")/.." && pwd)/plugins
if [ -e "$plugins/libprotocol_lws_uds_proxy.so" ]; then
	n=$((n + 1))
	newconf <<EOT
{ "vhosts": [{ "name": "v", "unix-socket": "1", "interface": "$sock_path",
  "mounts": [{ "mountpoint": "/s", "origin": "callback://lws-uds-proxy",
	       "pmo": [{ "status": "json", "status-allow": "unix" }] },
	     { "mountpoint": "/d", "origin": "callback://lws-uds-proxy",
	       "pmo": [{ "status": "prometheus" }] }] }] }
EOT
	printf '{ "global": { "server-string": "t", "plugin-dir": "%s" } }\n' \
		"$plugins" > "$tmp/c/conf"
	"$daemon" -n -c "$tmp/c" >"$tmp/out" 2>"$tmp/err" &
	pid=$!
	for i in $(seq 400); do
		[ -S "$sock_path" ] && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.05
	done
	ok=1
	s=$(curl -s --max-time 10 --unix-socket "$sock_path" -o "$tmp/body" \
		-w '%{http_code}' http://v/s)
	d=$(curl -s --max-time 10 --unix-socket "$sock_path" -o /dev/null \
		-w '%{http_code}' http://v/d)
	[ "$s" = 200 ] && grep -q '"backends":\[\]' "$tmp/body" ||
		{ echo "FAIL status without backend: $s $(head -c 300 "$tmp/body")"; ok=0; }
	[ "$d" = 403 ] ||
		{ echo "FAIL status on unix socket, default allow: $d"; ok=0; }
	kill -TERM $pid 2>/dev/null
	wait $pid
	rm -f "$sock_path"
	if [ $ok = 1 ]; then
		echo "ok   status mount without a backend; unix clients by \"unix\""
	else
		fails=$((fails + 1))
		sed 's/^/    | /' "$tmp/err"
	fi
fi
# --- WebSocket options of a proxied mount (both forms) ---------------
newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/ws", "origin": "http://+/run/app.sock:/",
	       "pmo": [{ "ws-max-message-kb": "0" }] }] }] }
EOT
expect_fail "ws-max-message-kb 0 (native form)" "$tmp/c/conf.d/t:" \
	"mount '/ws': ws-max-message-kb '0': expected a size in KiB, 1 to 4194304"

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/ws", "origin": "callback://lws-uds-proxy",
	       "pmo": [{ "backend": "http://+/run/app.sock:/",
			 "ws-max-message-kb": "16k" }] }] }] }
EOT
expect_fail "ws-max-message-kb not a number (pmo form)" "$tmp/c/conf.d/t:" \
	"mount '/ws': ws-max-message-kb '16k': expected a size in KiB"

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/ws", "origin": "callback://lws-uds-proxy",
	       "pmo": [{ "backend": "http://+/run/app.sock:/",
			 "ws-idle-timeout-ms": "-1" }] }] }] }
EOT
expect_fail "ws-idle-timeout-ms negative" "$tmp/c/conf.d/t:" \
	"mount '/ws': ws-idle-timeout-ms '-1': expected milliseconds (0: no limit)"

newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/ws", "origin": "http://+/run/app.sock:/",
	       "pmo": [{ "ws-subprotocols": "chat;v2" }] }] }] }
EOT
expect_fail "ws-subprotocols not a token list" "$tmp/c/conf.d/t:" \
	"mount '/ws': ws-subprotocols 'chat;v2': expected a comma list of names"

sub64=$(printf 's%.0s' $(seq 64))
newconf <<EOT
{ "vhosts": [{ "name": "v", "port": "7000",
  "mounts": [{ "mountpoint": "/ws", "origin": "http://+/run/app.sock:/",
	       "pmo": [{ "ws-subprotocols": "chat, $sub64" }] }] }] }
EOT
expect_fail "ws subprotocol name over 63 bytes" "$tmp/c/conf.d/t:" \
	"mount '/ws': subprotocol '$sub64' is too long"

# the plugin's mount table is the daemon's to write (conf-mount.c)
newconf <<'EOT'
{ "vhosts": [{ "name": "v", "port": "7000",
  "ws-protocols": [{ "lws-uds-proxy": { "udsp-mount": "/x" } }],
  "mounts": [{ "mountpoint": "/ws", "origin": "http://+/run/app.sock:/" }] }] }
EOT
expect_fail "udsp-mount given as an option" "$tmp/c/conf.d/t:" \
	"option 'udsp-mount' of lws-uds-proxy is the daemon's own"

# --- protocols that no plugin provides -------------------------------
newconf <<EOT
{ "vhosts": [{ "name": "v", "unix-socket": "1", "interface": "$sock_path",
  "mounts": [{ "mountpoint": "/app", "origin": "http://+/run/app.sock:/" }] }] }
EOT
expect_fail "missing plugin (proxy mount)" \
	"$tmp/c/conf.d/t: vhost 'v': mount '/app': protocol 'lws-uds-proxy'" \
	"not available"

newconf <<EOT
{ "vhosts": [{ "name": "v", "unix-socket": "1", "interface": "$sock_path",
  "ws-protocols": [{ "no-such-protocol": { "a": "b" } }] }] }
EOT
expect_fail "missing plugin (ws-protocols)" \
	"ws-protocols: protocol 'no-such-protocol' is not available"

# --- whole-dir problems ----------------------------------------------
rm -rf "$tmp/c"
expect_fail "no config dir" "$tmp/c/conf: cannot read"

newconf </dev/null
expect_fail "no vhosts at all" "no vhosts configured"

# --- unknown keys only warn; SIGTERM exits 0 --------------------------
n=$((n + 1))
newconf <<EOT
{ "vhosts": [{ "name": "v", "unix-socket": "1", "interface": "$sock_path",
  "bogus-vhost-key": "1",
  "mounts": [{ "mountpoint": "/", "origin": "file://$tmp", "foo": "x" }] }] }
EOT
"$daemon" -n -c "$tmp/c" >"$tmp/out" 2>"$tmp/err" &
pid=$!
for i in $(seq 400); do
	[ -S "$sock_path" ] && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.05
done
ok=1
if [ ! -S "$sock_path" ]; then
	echo "FAIL unknown keys: daemon did not start"
	ok=0
fi
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
[ $rc -eq 0 ] || { echo "FAIL unknown keys: exit $rc after SIGTERM"; ok=0; }
for p in "$tmp/c/conf.d/t: vhosts[0].bogus-vhost-key: unknown key" \
	 "$tmp/c/conf.d/t: vhosts[0].mounts[0].foo: unknown key"; do
	grep -qF -- "$p" "$tmp/err" ||
		{ echo "FAIL unknown keys: stderr lacks '$p'"; ok=0; }
done
if [ $ok = 1 ]; then
	echo "ok   unknown keys warn, SIGTERM exits 0"
else
	fails=$((fails + 1))
	sed 's/^/    | /' "$tmp/err"
fi

# --- -h ----------------------------------------------------------------
n=$((n + 1))
if "$daemon" -h 2>/dev/null | grep -q "Usage:"; then
	echo "ok   -h prints usage"
else
	echo "FAIL -h"
	fails=$((fails + 1))
fi

echo "$((n - fails)) passed, $fails failed"
[ $fails -eq 0 ]
