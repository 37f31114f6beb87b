#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# lws-uds-proxyd -t: a good configuration says "configuration ok" and exits
# 0; a broken one lists every problem of every file with file and position
# (or key path) and exits non-zero; neither ever listens (the TCP port
# stays free, the unix socket file is never created).
#
#   tests/integration/test-ops-check.sh path/to/lws-uds-proxyd PLUGIN_DIR
set -u

daemon=${1:?usage: $0 path/to/lws-uds-proxyd plugin-dir}
plugins=${2:?usage: $0 path/to/lws-uds-proxyd plugin-dir}
top=$(cd "$(dirname "$0")/../.." && pwd)
cert=$top/tests/fixtures/localhost-100y.cert
key=$top/tests/fixtures/localhost-100y.key
py=/usr/bin/python3
tmp=$(mktemp -d /tmp/udsp-ops-check.XXXXXX)
holder=
trap '[ -n "$holder" ] && kill $holder 2>/dev/null; rm -rf "$tmp"' EXIT
fails=0
n=0

port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
lsock=$tmp/listen.sock

say() {
	if [ "$2" = 1 ]; then
		echo "ok   $1"
	else
		echo "FAIL $1"
		fails=$((fails + 1))
		sed 's/^/    | /' "$tmp/err"
	fi
}

port_free() {
	$py - "$port" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    sys.exit(1)          # something listens
except ConnectionRefusedError:
    sys.exit(0)
PY
}

# --- a good configuration -----------------------------------------------
mkdir -p "$tmp/good/conf.d"
cat > "$tmp/good/conf" <<EOT
# global
{ "global": { "plugin-dir": "$plugins", "server-string": "t" } }
EOT
cat > "$tmp/good/conf.d/a" <<EOT
{ "vhosts": [{ "name": "plain", "port": "$port", "interface": "127.0.0.1",
    "access-log": "$tmp/access.log",
    "mounts": [{ "mountpoint": "/app", "origin": "http://+$tmp/app.sock:/" }] },
  { "name": "tls", "port": "$port", "interface": "127.0.0.1",
    "host-ssl-cert": "$cert", "host-ssl-key": "$key",
    "mounts": [{ "mountpoint": "/app", "origin": "callback://lws-uds-proxy",
                 "pmo": [{ "backend": "http://127.0.0.1:9/" }] }] }] }
EOT
cat > "$tmp/good/conf.d/b" <<EOT
{ "vhosts": [{ "name": "u", "unix-socket": "1", "interface": "$lsock",
    "mounts": [{ "mountpoint": "/", "origin": "file://$tmp" }] }] }
EOT

n=$((n + 1))
ok=1
timeout 20 "$daemon" -n -t -c "$tmp/good" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] || { echo "    exit code $rc, wanted 0"; ok=0; }
grep -qF "$tmp/good: configuration ok" "$tmp/err" ||
	{ echo "    no 'configuration ok'"; ok=0; }
port_free || { echo "    port $port is listening after -t"; ok=0; }
[ -e "$lsock" ] && { echo "    -t created $lsock"; ok=0; }
say "good config: ok, exit 0, nothing listens" $ok

# -t never binds: it passes while something else holds the port
n=$((n + 1))
ok=1
$py -c '
import signal, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
print("ready", flush=True)
signal.pause()
' "$port" </dev/null >"$tmp/holder" 2>&1 &
holder=$!
for i in $(seq 200); do
	grep -q ready "$tmp/holder" 2>/dev/null && break
	sleep 0.05
done
timeout 20 "$daemon" -n -t -c "$tmp/good" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] || { echo "    exit code $rc with the port taken"; ok=0; }
kill $holder 2>/dev/null
wait $holder 2>/dev/null
holder=
say "good config: ok while the port is taken by another process" $ok

# --- a broken configuration: every problem, each with file and place ------
mkdir -p "$tmp/bad/conf.d" "$tmp/badplug"
cp "$tmp/good/conf" "$tmp/bad/conf"
printf '{ "global": { "plugin-dir": "%s" } }\n' "$tmp/badplug" \
	> "$tmp/bad/conf.d/00-plugins"
echo "not an ELF file" > "$tmp/badplug/libprotocol_broken.so"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out "$tmp/other.key" 2>/dev/null
cat > "$tmp/bad/conf.d/a" <<'EOT'
# syntax error on line 3, column 5
{ "vhosts": [
    ,
EOT
cat > "$tmp/bad/conf.d/b" <<EOT
{ "vhosts": [{ "name": "b", "port": "eighty",
    "access-log": "$tmp/no/such/dir/access.log",
    "ws-protocols": [{ "no-such-protocol": {} }] }] }
EOT
cat > "$tmp/bad/conf.d/c" <<EOT
{ "vhosts": [{ "name": "c", "port": "$port", "interface": "127.0.0.1",
    "host-ssl-cert": "$cert", "host-ssl-key": "$tmp/other.key",
    "mounts": [{ "mountpoint": "/app", "origin": "http://+:/in" }] }] }
EOT
cat > "$tmp/bad/conf.d/d" <<EOT
{ "vhosts": [{ "name": "d", "unix-socket": "1", "interface": "$lsock",
    "mounts": [{ "mountpoint": "/x", "origin": "gopher://x" }] }] }
EOT

n=$((n + 1))
ok=1
timeout 20 "$daemon" -n -t -c "$tmp/bad" >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ $rc -eq 0 ] || [ $rc -eq 124 ]; then
	echo "    exit code $rc, wanted a failure"
	ok=0
fi
for p in \
	"$tmp/bad/conf.d/a:3:5: JSON parse error" \
	"$tmp/bad/conf.d/b: vhosts[0].port: expected an integer" \
	"$tmp/bad/conf.d/b: vhosts[0].access-log: cannot open '$tmp/no/such/dir/access.log'" \
	"$tmp/bad/conf.d/b: vhost 'b': ws-protocols: protocol 'no-such-protocol' is not available" \
	"$tmp/bad/conf.d/c: vhost 'c' mount '/app': backend 'http://+:/in'" \
	"$tmp/bad/conf.d/c: vhost 'c': host-ssl-key '$tmp/other.key': does not match host-ssl-cert" \
	"$tmp/bad/conf.d/d: vhosts[0].mounts[0]: origin 'gopher://x': unsupported scheme" \
	"libprotocol_broken.so" \
	"$tmp/bad: configuration has problems"; do
	grep -qF -- "$p" "$tmp/err" || { echo "    stderr lacks '$p'"; ok=0; }
done
port_free || { echo "    port $port is listening after -t"; ok=0; }
[ -e "$lsock" ] && { echo "    -t created $lsock"; ok=0; }
say "broken config: every problem reported, exit $rc, nothing listens" $ok

echo "$((n - fails)) passed, $fails failed"
[ $fails -eq 0 ]
