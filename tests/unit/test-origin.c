/* SPDX-License-Identifier: MIT
 *
 * udsp_origin_parse() / _format(): one line per accepted or refused origin,
 * plus the sun_path length boundary and a format -> parse round trip.
 */
#include <stdio.h>
#include <string.h>

#include "origin.h"
#include "t.h"

#define U UDSP_ORIGIN_UNIX
#define T UDSP_ORIGIN_TCP

static const struct ok_case {
	const char	*in;
	int		kind, tls;
	const char	*address;
	unsigned int	port;
	const char	*host, *inside, *canon;
} oks[] = {
	/* in                          kind tls address     port  host       inside   canonical */
	{ "+/run/app.sock:/inside",       U, 0, "+/run/app.sock", 0, "", "/inside", "http://+/run/app.sock:/inside" },
	{ "+/run/app.sock",               U, 0, "+/run/app.sock", 0, "", "/",       "http://+/run/app.sock" },
	{ "+/run/app.sock:/",             U, 0, "+/run/app.sock", 0, "", "/",       "http://+/run/app.sock" },
	{ "+/run/app.sock:/in/",          U, 0, "+/run/app.sock", 0, "", "/in",     "http://+/run/app.sock:/in" },
	{ "+/run/app.sock:/a/b//",        U, 0, "+/run/app.sock", 0, "", "/a/b",    "http://+/run/app.sock:/a/b" },
	{ "+/run/app.sock://",            U, 0, "+/run/app.sock", 0, "", "/",       "http://+/run/app.sock" },
	{ "+/run/app.sock:/a:b@c",        U, 0, "+/run/app.sock", 0, "", "/a:b@c",  "http://+/run/app.sock:/a:b@c" },
	{ "+/run/app.sock:/a..b/.c",      U, 0, "+/run/app.sock", 0, "", "/a..b/.c", "http://+/run/app.sock:/a..b/.c" },
	{ "http://+/run/app.sock:/x",     U, 0, "+/run/app.sock", 0, "", "/x",      "http://+/run/app.sock:/x" },
	{ "https://+/run/app.sock:/x",    U, 1, "+/run/app.sock", 0, "", "/x",      "https://+/run/app.sock:/x" },
	{ "HTTPS://+/run/app.sock",       U, 1, "+/run/app.sock", 0, "", "/",       "https://+/run/app.sock" },
	{ "HtTp://+/s",                   U, 0, "+/s",            0, "", "/",       "http://+/s" },
	{ "+/dir with space/s.sock",      U, 0, "+/dir with space/s.sock", 0, "", "/", "http://+/dir with space/s.sock" },
	{ "+/a:/b",                       U, 0, "+/a",            0, "", "/b",      "http://+/a:/b" },
	{ "+@name:/x",                    U, 0, "+@name",         0, "", "/x",      "http://+@name:/x" },
	{ "+@name",                       U, 0, "+@name",         0, "", "/",       "http://+@name" },
	{ "https://+@abs",                U, 1, "+@abs",          0, "", "/",       "https://+@abs" },
	{ "127.0.0.1:8080/inside",        T, 0, "127.0.0.1",   8080, "127.0.0.1", "/inside", "http://127.0.0.1:8080/inside" },
	{ "host:8080",                    T, 0, "host",        8080, "host",   "/",     "http://host:8080/" },
	{ "host/x",                       T, 0, "host",          80, "host",   "/x",    "http://host:80/x" },
	{ "https://host/x/",              T, 1, "host",         443, "host",   "/x",    "https://host:443/x" },
	{ "https://Back-End_1.example",   T, 1, "Back-End_1.example", 443, "Back-End_1.example", "/", "https://Back-End_1.example:443/" },
	{ "http://host:1",                T, 0, "host",           1, "host",   "/",     "http://host:1/" },
	{ "http://host:65535/",           T, 0, "host",       65535, "host",   "/",     "http://host:65535/" },
	{ "http://host:008080",           T, 0, "host",        8080, "host",   "/",     "http://host:8080/" },
	{ "[::1]:8080/x",                 T, 0, "::1",         8080, "::1",    "/x",    "http://[::1]:8080/x" },
	{ "https://[::1]",                T, 1, "::1",          443, "::1",    "/",     "https://[::1]:443/" },
	{ "[2001:db8::1]/a",              T, 0, "2001:db8::1",   80, "2001:db8::1", "/a", "http://[2001:db8::1]:80/a" },
	{ "[::ffff:1.2.3.4]:81",          T, 0, "::ffff:1.2.3.4", 81, "::ffff:1.2.3.4", "/", "http://[::ffff:1.2.3.4]:81/" },
};

static const struct bad_case {
	const char	*in;
	const char	*err;
} bads[] = {
	{ "",                             udsp_origin_err_empty },
	{ "http://",                      udsp_origin_err_empty },
	{ "ftp://host/x",                 udsp_origin_err_scheme },
	{ "ws://+/run/a.sock",            udsp_origin_err_scheme },
	{ "unix://+/run/a.sock",          udsp_origin_err_scheme },
	{ "httpx://host",                 udsp_origin_err_scheme },
	{ "+",                            udsp_origin_err_sock_empty },
	{ "+:/x",                         udsp_origin_err_sock_empty },
	{ "https://+",                    udsp_origin_err_sock_empty },
	{ "+@",                           udsp_origin_err_sock_empty },
	{ "+@:/x",                        udsp_origin_err_sock_empty },
	{ "+run/app.sock",                udsp_origin_err_sock_rel },
	{ "+./app.sock",                  udsp_origin_err_sock_rel },
	{ "+/run/app.sock:",              udsp_origin_err_inside },
	{ "+/run/app.sock:inside",        udsp_origin_err_inside },
	{ "+/run/app.sock:/a b",          udsp_origin_err_inside },
	{ "+/run/app.sock:/a\tb",         udsp_origin_err_inside },
	{ "+/run/app.sock:/a\x01",        udsp_origin_err_inside },
	{ "+/run/app.sock:/a\x7f",        udsp_origin_err_inside },
	{ "+/run/app.sock:/a?b",          udsp_origin_err_inside },
	{ "+/run/app.sock:/a#b",          udsp_origin_err_inside },
	{ "+/run/app.sock:/a%20b",        udsp_origin_err_inside },
	{ "+/run/app.sock:/.",            udsp_origin_err_inside },
	{ "+/run/app.sock:/..",           udsp_origin_err_inside },
	{ "+/run/app.sock:/a/../b",       udsp_origin_err_inside },
	{ "+/run/app.sock:/a/./b",        udsp_origin_err_inside },
	{ "+/run/app.sock:/a/..",         udsp_origin_err_inside },
	{ "+/run/app.sock:/a/../",        udsp_origin_err_inside },
	{ "+/run/app.sock:/a//b",         udsp_origin_err_inside },
	{ "+/a://b",                      udsp_origin_err_inside },
	{ "host:8080/a/../b",             udsp_origin_err_inside },
	{ ":8080/x",                      udsp_origin_err_host },
	{ "/x",                           udsp_origin_err_host },
	{ "http:///x",                    udsp_origin_err_host },
	{ "ho st:80",                     udsp_origin_err_host },
	{ "host?x",                       udsp_origin_err_host },
	{ "user@host:80",                 udsp_origin_err_host },
	{ "::1:8080",                     udsp_origin_err_host },
	{ "[::1",                         udsp_origin_err_host },
	{ "[]:80",                        udsp_origin_err_host },
	{ "[host]:80",                    udsp_origin_err_host },
	{ "[::1]x",                       udsp_origin_err_host },
	{ "[fe80::1%eth0]:80",            udsp_origin_err_host },
	{ "host:",                        udsp_origin_err_port },
	{ "host:/x",                      udsp_origin_err_port },
	{ "host:0",                       udsp_origin_err_port },
	{ "host:65536",                   udsp_origin_err_port },
	{ "host:99999999999999999999",    udsp_origin_err_port },
	{ "host:-1",                      udsp_origin_err_port },
	{ "host:80x",                     udsp_origin_err_port },
	{ "host:8 0",                     udsp_origin_err_port },
	{ "[::1]:",                       udsp_origin_err_port },
};

static void
check_ok(const struct ok_case *c, int line)
{
	struct udsp_origin o, o2;
	const char *e;
	char buf[2048];
	size_t n;

	e = udsp_origin_parse(&o, c->in);
	if (e) {
		fprintf(stderr, "case %d '%s': unexpected error '%s'\n", line,
			c->in, e);
		CHECK(!e);
		return;
	}
	CHECK((int)o.kind == c->kind);
	CHECK(o.tls == c->tls);
	CHECK_STR(o.address, c->address);
	CHECK(o.port == c->port);
	CHECK_STR(o.host, c->host);
	CHECK_STR(o.inside, c->inside);

	n = udsp_origin_format(&o, buf, sizeof(buf));
	CHECK(n == strlen(buf));
	CHECK_STR(buf, c->canon);

	/* canonical form parses back to the same origin */
	CHECK(!udsp_origin_parse(&o2, buf));
	CHECK(o2.kind == o.kind && o2.tls == o.tls && o2.port == o.port);
	CHECK_STR(o2.address, o.address);
	CHECK_STR(o2.host, o.host);
	CHECK_STR(o2.inside, o.inside);
}

/* "+" + (n bytes of path starting with lead) */
static void
mk_sock(char *buf, char lead, size_t n)
{
	buf[0] = '+';
	buf[1] = lead;
	memset(buf + 2, 'a', n - 1);
	buf[n + 1] = '\0';
}

static void
check_lengths(void)
{
	struct udsp_origin o;
	char buf[512], fmt[16];

	/* 107 bytes after '+' fit sun_path with its NUL; 108 do not */
	mk_sock(buf, '/', 107);
	CHECK(!udsp_origin_parse(&o, buf));
	CHECK(strlen(o.address) == 108);
	mk_sock(buf, '/', 108);
	CHECK(udsp_origin_parse(&o, buf) == udsp_origin_err_sock_long);
	mk_sock(buf, '/', 300);
	CHECK(udsp_origin_parse(&o, buf) == udsp_origin_err_sock_long);
	strcat(buf, ":/x");
	CHECK(udsp_origin_parse(&o, buf) == udsp_origin_err_sock_long);

	/*
	 * Abstract: lws 4.1.6 strncpy()s "@name" into sun_path and forces the
	 * last byte to NUL, so the same 107-byte limit holds for "@name".
	 */
	mk_sock(buf, '@', 107);
	CHECK(!udsp_origin_parse(&o, buf));
	CHECK(o.address[1] == '@' && strlen(o.address) == 108);
	mk_sock(buf, '@', 108);
	CHECK(udsp_origin_parse(&o, buf) == udsp_origin_err_sock_long);

	/* TCP host names must fit o->address */
	memset(buf, 'h', 109);
	buf[109] = '\0';
	CHECK(!udsp_origin_parse(&o, buf));
	CHECK(strlen(o.host) == 109 && !strcmp(o.host, o.address));
	memset(buf, 'h', 110);
	buf[110] = '\0';
	CHECK(udsp_origin_parse(&o, buf) == udsp_origin_err_host);

	/* inside path bound */
	strcpy(buf, "h:1/");
	memset(buf + 4, 'i', 300);
	buf[304] = '\0';
	CHECK(!udsp_origin_parse(&o, buf));
	CHECK(strlen(o.inside) == 301);

	/* format truncates, NUL-terminates and reports what it wrote */
	CHECK(!udsp_origin_parse(&o, "+/run/app.sock:/inside"));
	CHECK(udsp_origin_format(&o, fmt, sizeof(fmt)) == sizeof(fmt) - 1);
	CHECK_STR(fmt, "http://+/run/ap");
	CHECK(udsp_origin_format(&o, fmt, 1) == 0 && !fmt[0]);
}

int
main(void)
{
	struct udsp_origin o;
	size_t i;
	const char *e;

	for (i = 0; i < sizeof(oks) / sizeof(oks[0]); i++)
		check_ok(&oks[i], (int)i);

	for (i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		e = udsp_origin_parse(&o, bads[i].in);
		if (e != bads[i].err)
			fprintf(stderr, "bad case %d '%s': got '%s', want '%s'\n",
				(int)i, bads[i].in, e ? e : "(ok)",
				bads[i].err);
		CHECK(e == bads[i].err);
	}

	CHECK(udsp_origin_parse(&o, NULL) == udsp_origin_err_empty);
	check_lengths();

	return T_END();
}
