#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The Debian package as an administrator meets it: scripts/package builds
# it (lintian clean), `apt-get install ./…deb` installs it with its
# dependencies, the installed configuration passes the unit's
# ExecStartPre (`lws-uds-proxyd -t`), the unit's ExecStart serves the
# default page and error.css and drops root, the commented-out app mount,
# once uncommented, answers 503 with that stylesheet, the unit passes
# `systemd-analyze verify`, and `apt-get purge` removes every file the
# package installed or made.
#
#   tests/package/test-deb.sh SOURCE_DIR BUILD_DIR
#
# It installs into /usr and /etc of this machine, so it needs root, runs
# one at a time (flock), and purges the package on every exit.
set -u

src=${1:?usage: $0 source-dir build-dir}
build=${2:?usage: $0 source-dir build-dir}
pkg=lws-uds-proxy
unitname=lws-uds-proxyd.service

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
	echo "SKIP: needs root and apt-get (it installs the package)"
	exit 77
fi

exec 9>/tmp/lws-uds-proxy-package-test.lock
if ! flock -w 600 9; then
	echo "FAIL: another package test holds the lock"
	exit 1
fi

tmp=$(mktemp -d /tmp/udsp-pkg.XXXXXX)
out=$build/package
fails=0
dpid=
export DEBIAN_FRONTEND=noninteractive
apt=(apt-get -y -qq -o DPkg::Lock::Timeout=600)

fail() {
	echo "FAIL $*"
	fails=$((fails + 1))
}
ok() { echo "ok   $*"; }

installed() {
	dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null |
		grep -qv '^not-installed$'
}

stop_daemon() {
	[ -n "$dpid" ] || return 0
	kill -TERM "$dpid" 2>/dev/null
	wait "$dpid"
	local rc=$?
	dpid=
	return $rc
}

cleanup() {
	stop_daemon
	if installed; then
		echo "cleanup: purging $pkg"
		"${apt[@]}" purge "$pkg" >/dev/null 2>&1 ||
			dpkg --purge "$pkg" >/dev/null 2>&1
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# paths named after the package, outside the package database: whatever
# the package leaves behind shows up here after the purge
snapshot() {
	find /etc /usr /var/lib -xdev -path /var/lib/dpkg -prune -o \
		-name "*lws-uds-prox*" -print 2>/dev/null | sort
}

if installed; then
	echo "note: $pkg was installed (an interrupted earlier run?): purging it"
	"${apt[@]}" purge "$pkg" >/dev/null || { fail "purge before the test"; exit 1; }
fi
snapshot >"$tmp/before"

# --- build -----------------------------------------------------------------
if ! "$src/scripts/package" "$out" >"$tmp/package.log" 2>&1; then
	sed 's/^/    | /' "$tmp/package.log"
	fail "scripts/package"
	exit 1
fi
sed -n '/^+ lintian/,$p' "$tmp/package.log"
deb=$(sed -n 's/^package: \(\/.*\.deb\)$/\1/p' "$tmp/package.log")
[ -f "$deb" ] || { fail "no .deb reported by scripts/package"; exit 1; }
ok "built $(basename "$deb"); lintian: no errors or warnings"

# --- install ---------------------------------------------------------------
if ! "${apt[@]}" install "$deb" >"$tmp/install.log" 2>&1; then
	sed 's/^/    | /' "$tmp/install.log"
	fail "apt-get install $deb"
	exit 1
fi
ok "apt-get install ./$(basename "$deb")"
dpkg -L "$pkg" >"$tmp/files"
echo "installed files:"
grep -v '^/\.$' "$tmp/files" | while read -r f; do
	[ -d "$f" ] || echo "    $f"
done

ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
plugdir=/usr/lib/$ma/lws-uds-proxy/plugins
bin=/usr/sbin/lws-uds-proxyd
www=/usr/share/lws-uds-proxy/www
conf=/etc/lws-uds-proxy
unit=$(grep "/systemd/system/$unitname\$" "$tmp/files" | head -1)

for f in "$bin" "$plugdir/libprotocol_lws_uds_proxy.so" "$conf/conf" \
	 "$conf/conf.d/localhost" "$www/index.html" "$www/error.css" \
	 /usr/share/man/man8/lws-uds-proxyd.8.gz \
	 /usr/share/doc/$pkg/README.md.gz /usr/share/doc/$pkg/changelog.gz \
	 /usr/share/doc/$pkg/copyright /usr/share/doc/$pkg/operations.md; do
	grep -qxF "$f" "$tmp/files" || fail "package lacks $f"
done
[ -n "$unit" ] || fail "package lacks the systemd unit $unitname"
[ "$("$bin" -h | sed -n 's/^Default plugin dir: //p')" = "$plugdir" ] ||
	fail "the daemon's default plugin dir is not $plugdir"
"$bin" -h | grep -qF "(default $conf)" ||
	fail "the daemon's default config dir is not $conf"
[ "$(man -w lws-uds-proxyd 2>/dev/null)" = /usr/share/man/man8/lws-uds-proxyd.8.gz ] ||
	fail "man -w lws-uds-proxyd: '$(man -w lws-uds-proxyd 2>&1)'"

cf=$(dpkg-query -W -f='${Conffiles}' "$pkg" | awk '{print $1}' | sort | tr '\n' ' ')
[ "$cf" = "$conf/conf $conf/conf.d/localhost " ] ||
	fail "conffiles are '$cf'"
deps=$(dpkg-query -W -f='${Depends}' "$pkg")
for d in libwebsockets17 libjson-c5 libssl3 adduser; do
	case ", $deps" in
	*", $d "* | *", $d,"* | *", $d") ;;
	*) fail "Depends lacks $d: $deps" ;;
	esac
done
pw=$(getent passwd lws-uds-proxy)
case $pw in
lws-uds-proxy:*:/nonexistent:/usr/sbin/nologin) ;;
*) fail "system user lws-uds-proxy: '$pw'" ;;
esac
[ -L /etc/systemd/system/multi-user.target.wants/$unitname ] ||
	fail "the unit is not enabled"
[ $fails -eq 0 ] && ok "layout: $bin, plugin in $plugdir (the daemon's default), conffiles, unit (enabled), user, man page, docs; Depends: $deps"

# --- the unit --------------------------------------------------------------
if [ -n "$unit" ]; then
	va=$(systemd-analyze verify "$unit" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] || printf '%s\n' "$va" | grep -q "$unitname\|$unit"; then
		fail "systemd-analyze verify $unit (exit $rc):"
		printf '%s\n' "$va" | sed 's/^/    | /'
	else
		ok "systemd-analyze verify $unit"
	fi
fi
pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$pre" = "$bin -t -c $conf" ] || fail "ExecStartPre is '$pre'"
[ "$start" = "$bin -c $conf" ] || fail "ExecStart is '$start'"
read -r -a precmd <<<"$pre"
read -r -a cmd <<<"$start"

port=$(sed -n 's/^ *"port": "\([0-9]*\)",*$/\1/p' "$conf/conf.d/localhost")
base=http://127.0.0.1:$port

# ExecStartPre: the installed configuration checks out
check_conf() {
	local o
	o=$("${precmd[@]}" 2>&1)
	local rc=$?
	if [ $rc -ne 0 ] || ! printf '%s\n' "$o" | grep -q "$conf: configuration ok"; then
		fail "$1: ExecStartPre (exit $rc)"
		printf '%s\n' "$o" | sed 's/^/    | /'
		return 1
	fi
	ok "$1: ExecStartPre '$pre' accepts it"
}

# ExecStart in the foreground, as systemd (Type=simple) runs it
start_daemon() {
	if curl -s -o /dev/null "$base/"; then
		fail "$1: something on this machine already answers on $base"
		return 1
	fi
	"${cmd[@]}" </dev/null >"$tmp/daemon-$1.log" 2>&1 &
	dpid=$!
	local i
	for i in $(seq 400); do
		curl -s -o /dev/null "$base/" && return 0
		kill -0 "$dpid" 2>/dev/null || break
		sleep 0.05
	done
	fail "$1: the daemon does not answer on $base"
	sed 's/^/    | /' "$tmp/daemon-$1.log"
	return 1
}

# GET PATH: status, content type and body into $tmp/body
get() {
	curl -sS -o "$tmp/body" -w '%{http_code} %{content_type}' "$base$1"
}

css_served() {
	local r
	r=$(get /error.css)
	if [ "${r%% *}" = 200 ] && cmp -s "$tmp/body" "$src/lwsws-conf/demo/www/error.css"; then
		ok "$1: /error.css is served, the same bytes as the source's ($r)"
	else
		fail "$1: /error.css: '$r', $(wc -c <"$tmp/body") bytes"
	fi
}

stop_checked() {
	local kids
	kids=$(pgrep -P "$dpid" | tr '\n' ' ')
	stop_daemon
	local rc=$?
	[ $rc -eq 0 ] || fail "$1: exit status $rc after SIGTERM"
	for k in $kids; do
		kill -0 "$k" 2>/dev/null && fail "$1: serving process $k outlived its supervisor"
	done
	[ $rc -eq 0 ] && ok "$1: SIGTERM stops it, exit status 0"
}

check_conf "shipped config"

if start_daemon shipped; then
	r=$(get /)
	if [ "${r%% *}" = 200 ] && cmp -s "$tmp/body" "$www/index.html"; then
		ok "shipped config: GET / is the default page ($r)"
	else
		fail "shipped config: GET / is '$r': $(head -c 300 "$tmp/body")"
	fi
	css_served "shipped config"
	users=
	for k in $(pgrep -P "$dpid"); do
		users="$users$(ps -o user= -p "$k" | tr -d ' ') "
	done
	if [ "$users" = "lws-uds-proxy " ]; then
		ok "shipped config: the serving process dropped root for lws-uds-proxy"
	else
		fail "shipped config: serving processes run as '$users', not lws-uds-proxy"
	fi
	stop_checked "shipped config"
fi

# a broken configuration is refused by ExecStartPre, naming the file
cp -p "$conf/conf.d/localhost" "$tmp/localhost.orig"
echo '{ "vhosts": [{ "name": "x", "port": "eighty" }] }' >"$conf/conf.d/broken"
o=$("${precmd[@]}" 2>&1)
rc=$?
rm -f "$conf/conf.d/broken"
if [ $rc -eq 1 ] && printf '%s\n' "$o" | grep -qF "E: $conf/conf.d/broken: vhosts[0].port"; then
	ok "a broken conf.d file: ExecStartPre exits 1 naming it"
else
	fail "a broken conf.d file: ExecStartPre exit $rc: $o"
fi

# the administrator uncomments the example app mount; no app runs: 503
sed -i -E '/^ *# \}, \{$/,/app\.sock/ s/^( *)# /\1/' "$conf/conf.d/localhost"
grep -q '^ *"origin": "http://+/run/lws-uds-proxy/app.sock:/"' "$conf/conf.d/localhost" ||
	fail "the commented-out app mount was not found to uncomment"
check_conf "app mount uncommented"
if start_daemon app; then
	r=$(get /app/)
	if [ "${r%% *}" = 503 ] &&
	   grep -qF '<link rel="stylesheet" href="/error.css">' "$tmp/body"; then
		ok "app mount, no app: GET /app/ is a 503 page that links /error.css ($r)"
	else
		fail "app mount, no app: GET /app/ is '$r': $(head -c 300 "$tmp/body")"
	fi
	css_served "app mount"
	stop_checked "app mount"
fi

# --- purge -----------------------------------------------------------------
if ! "${apt[@]}" purge "$pkg" >"$tmp/purge.log" 2>&1; then
	sed 's/^/    | /' "$tmp/purge.log"
	fail "apt-get purge $pkg"
fi
installed && fail "$pkg is still known to dpkg after the purge"
left=0
while read -r f; do
	[ "$f" = /. ] && continue
	[ -e "$f" ] || [ -L "$f" ] || continue
	# directories shared with other packages stay (/lib is /usr/lib's
	# symlink on a merged /usr)
	if [ -d "$f" ] && { dpkg -S "$f" || dpkg -S "$(readlink -f "$f")"; } \
			>/dev/null 2>&1; then
		continue
	fi
	fail "left behind after purge: $f"
	left=$((left + 1))
done <"$tmp/files"
snapshot >"$tmp/after"
extra=$(comm -13 "$tmp/before" "$tmp/after")
if [ -n "$extra" ]; then
	fail "left behind after purge, not in dpkg -L: $extra"
	left=$((left + 1))
fi
[ $left -eq 0 ] &&
	ok "apt-get purge: none of the $(grep -vc '^/\.$' "$tmp/files") paths of dpkg -L is left (shared dirs aside), nothing named *lws-uds-prox* in /etc, /usr, /var/lib"
getent passwd lws-uds-proxy >/dev/null &&
	echo "note: the system user lws-uds-proxy stays after the purge, as Debian does with system users (files it owned may remain)"

[ $fails -eq 0 ] && echo "all passed"
[ $fails -eq 0 ]
