#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# lws-uds-proxyd(8) describes every command-line option (main.c's getopt
# string) and every config key the daemon and the plugin accept (the key
# tables of host/conf*.c, the plugin's pvo names),
# each as a tag of its own, in ASCII hyphens; and groff formats it
# without a warning.
#
#   tests/package/test-manpage.sh SOURCE_DIR BUILT_MAN_PAGE
set -u

src=${1:?usage: $0 source-dir man-page}
page=${2:?usage: $0 source-dir man-page}
tmp=$(mktemp -d /tmp/udsp-man.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() {
	echo "FAIL $*"
	fails=$((fails + 1))
}

if ! command -v man >/dev/null; then
	echo "SKIP: no man (package man-db)"
	exit 77
fi

MANWIDTH=200 LC_ALL=C.UTF-8 man --warnings -E UTF-8 -l "$page" \
	>"$tmp/text" 2>"$tmp/warn"
[ -s "$tmp/warn" ] && fail "groff warnings: $(cat "$tmp/warn")"
[ -s "$tmp/text" ] || { fail "man rendered nothing"; exit 1; }

# every key table entry: { "name", ... } or VSTR("name", ...)
keys() {
	sed -n -E 's/^[[:space:]]*(\{ |VSTR\()"([a-z0-9_-]+)",.*/\2/p' "$@"
}
{
	keys "$src"/host/conf*.c
	# the plugin's options: pvo_uint(in, "name", ...),
	# lws_pvo_get_str(in, "name", ...)
	grep -ohE '(pvo_uint|lws_pvo_get_str)\(in, "[a-z0-9-]+"' "$src"/plugin/*.c |
		sed -E 's/.*"(.*)"/\1/'
	# pmo keys looked up by name: lws_pvo_search(list, "name")
	grep -ohE 'lws_pvo_search\([^,]+, *"[a-z0-9-]+"' "$src"/plugin/*.c \
		"$src"/host/*.c | sed -E 's/.*"(.*)"/\1/'
	# and a mount's, read per request: pmo_get(pmo, "name")
	grep -ohE 'pmo_get\(pmo, "[a-z0-9-]+"' "$src"/plugin/*.c |
		sed -E 's/.*"(.*)"/\1/'
} | sort -u >"$tmp/keys"
n=$(wc -l <"$tmp/keys")
[ "$n" -gt 80 ] || fail "only $n keys found in the sources: the extraction broke"

missing=
while read -r k; do
	grep -qE "^ +$k( |\$)" "$tmp/text" || missing="$missing $k"
done <"$tmp/keys"
[ -z "$missing" ] && echo "ok   all $n config keys have their own entry" ||
	fail "keys without an entry in the man page:$missing"

opts=$(sed -n 's/.*getopt(argc, argv, "\([^"]*\)").*/\1/p' "$src/host/main.c" |
	tr -d ':')
[ -n "$opts" ] || fail "no getopt string in host/main.c"
missing=
for o in $(echo "$opts" | grep -o .); do
	grep -qE "^ +-$o( |\$)" "$tmp/text" || missing="$missing -$o"
done
[ -z "$missing" ] && echo "ok   all options (-$opts) have their own entry" ||
	fail "options without an entry in the man page:$missing"

# a key broken by hyphenation, or a '-' that groff turned into U+2010,
# cannot be searched for or typed back
grep -q $'\xe2\x80\x90' "$tmp/text" &&
	fail "hyphens rendered as U+2010: $(grep -m3 $'\xe2\x80\x90' "$tmp/text")"

[ $fails -eq 0 ] && echo "all passed"
[ $fails -eq 0 ]
