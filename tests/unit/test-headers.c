/* SPDX-License-Identifier: MIT
 *
 * The header table checked against the RFCs it encodes (9110 7.6.1 hop-by-hop,
 * 9113 8.2.2 h2 connection-specific fields), then the predicates: Connection
 * lists, forwarding decisions, name/value hygiene, X-Forwarded-For and
 * trusted-address lists.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "headers.h"
#include "t.h"

#define S(x) x, sizeof(x) - 1

/* RFC 9110 7.6.1 (Connection and the fields it names as connection-level) */
static const char * const rfc9110_hop[] = {
	"connection", "proxy-connection", "keep-alive", "te",
	"transfer-encoding", "upgrade",
};

/* RFC 9113 8.2.2: must not appear in an h2 message (te: only "trailers") */
static const char * const rfc9113_bad[] = {
	"connection", "proxy-connection", "keep-alive", "transfer-encoding",
	"upgrade", "te",
};

/* also hop-by-hop by older RFCs and proxy practice */
static const char * const other_hop[] = {
	"trailer", "proxy-authenticate", "proxy-authorization",
};

static void
check_table(void)
{
	const struct udsp_hdr_rule *r, *q;
	const char *p;
	size_t i;

	for (r = udsp_hdr_rules; r->name; r++) {
		CHECK(r->name[0]);
		for (p = r->name; *p; p++)
			CHECK(!isupper((unsigned char)*p));
		CHECK(udsp_hdr_name_ok(r->name, strlen(r->name)));
		for (q = r + 1; q->name; q++)
			if (!strcmp(q->name, r->name)) {
				fprintf(stderr, "duplicate rule '%s'\n",
					r->name);
				CHECK(0);
			}
		/* a hop-by-hop field cannot also be forwarded */
		if (r->flags & UDSP_HF_HOP)
			CHECK(!(r->flags & (UDSP_HF_REQ | UDSP_HF_RES)));
		/* what lws writes itself is neither sent on nor a rule */
		if (r->flags & UDSP_HF_PROXY_OWNS)
			CHECK(!(r->flags & (UDSP_HF_REQ | UDSP_HF_RES |
					    UDSP_HF_HOP | UDSP_HF_SPECIAL)));
		/* everything h2 forbids is dropped by the generic loop */
		if (r->flags & UDSP_HF_H2_BAD) {
			CHECK(r->flags & (UDSP_HF_HOP | UDSP_HF_SPECIAL));
			CHECK(!udsp_hdr_res_forward(r->name, strlen(r->name),
						    NULL, 0));
			CHECK(!udsp_hdr_req_forward(r->name, strlen(r->name),
						    NULL, 0));
		}
	}

	for (i = 0; i < sizeof(rfc9110_hop) / sizeof(rfc9110_hop[0]); i++) {
		unsigned int f = udsp_hdr_flags(rfc9110_hop[i],
						 strlen(rfc9110_hop[i]));
		if (!(f & UDSP_HF_HOP))
			fprintf(stderr, "'%s' not HOP\n", rfc9110_hop[i]);
		CHECK(f & UDSP_HF_HOP);
	}
	for (i = 0; i < sizeof(other_hop) / sizeof(other_hop[0]); i++)
		CHECK(udsp_hdr_flags(other_hop[i], strlen(other_hop[i])) &
		      UDSP_HF_HOP);
	for (i = 0; i < sizeof(rfc9113_bad) / sizeof(rfc9113_bad[0]); i++) {
		unsigned int f = udsp_hdr_flags(rfc9113_bad[i],
						 strlen(rfc9113_bad[i]));
		if (!(f & UDSP_HF_H2_BAD))
			fprintf(stderr, "'%s' not H2_BAD\n", rfc9113_bad[i]);
		CHECK(f & UDSP_HF_H2_BAD);
		CHECK(!udsp_hdr_res_forward(rfc9113_bad[i],
					    strlen(rfc9113_bad[i]), NULL, 0));
	}
}

static const struct fcase {
	const char	*name;
	const char	*conn;		/* Connection value, or NULL */
	int		req, res;	/* expected forward decisions */
} fcases[] = {
	/* name                 Connection               req res */
	{ "content-type",       NULL,                     1, 1 },
	{ "Content-Type",       NULL,                     1, 1 },
	{ "x-custom",           NULL,                     1, 1 },
	{ "set-cookie",         NULL,                     1, 1 },
	{ "cookie",             NULL,                     1, 1 },
	{ "authorization",      NULL,                     1, 1 },
	{ "Forwarded",          NULL,                     1, 1 },
	{ "date",               NULL,                     1, 1 },
	{ "server",             NULL,                     0, 0 },
	{ "Server",             NULL,                     0, 0 },
	{ "Connection",         NULL,                     0, 0 },
	{ "KEEP-ALIVE",         NULL,                     0, 0 },
	{ "Transfer-Encoding",  NULL,                     0, 0 },
	{ "te",                 NULL,                     0, 0 },
	{ "trailer",            NULL,                     0, 0 },
	{ "upgrade",            NULL,                     0, 0 },
	{ "proxy-authorization", NULL,                    0, 0 },
	{ "proxy-authenticate", NULL,                     0, 0 },
	{ "proxy-connection",   NULL,                     0, 0 },
	{ "host",               NULL,                     0, 0 },
	{ "content-length",     NULL,                     0, 0 },
	{ "x-forwarded-for",    NULL,                     0, 0 },
	{ "X-Forwarded-Proto",  NULL,                     0, 0 },
	{ "x-forwarded-host",   NULL,                     0, 0 },
	{ "expect",             NULL,                     0, 0 },
	/* names listed in Connection become hop-by-hop */
	{ "x-custom",           "close, X-Custom",        0, 0 },
	{ "x-custom",           "x-custom",               0, 0 },
	{ "x-custom",           " \tX-CUSTOM\t ",         0, 0 },
	{ "x-custom",           "a,,x-custom,",           0, 0 },
	{ "x-custom",           "x-customer",             1, 1 },
	{ "x-custom",           "x-cust",                 1, 1 },
	{ "x-custom",           "close",                  1, 1 },
	{ "x-custom",           "",                       1, 1 },
	{ "cookie",             "keep-alive, Cookie",     0, 0 },
};

static const struct lcase {
	const char	*list, *tok;
	int		want;
} lcases[] = {
	{ "close",                  "close",       1 },
	{ "Close",                  "close",       1 },
	{ "keep-alive, Upgrade",    "upgrade",     1 },
	{ "keep-alive ,  upgrade ", "upgrade",     1 },
	{ "keep-alive,\tupgrade",   "upgrade",     1 },
	{ ",,,upgrade,,,",          "upgrade",     1 },
	{ "upgraded",               "upgrade",     0 },
	{ "up grade",               "upgrade",     0 },
	{ "x-upgrade",              "upgrade",     0 },
	{ "",                       "upgrade",     0 },
	{ ",",                      "upgrade",     0 },
	{ "a, b",                   "",            0 },
	{ "a, , b",                 "b",           1 },
};

static const struct vcase {
	const char	*v;
	size_t		len;
	int		want;
} vcases[] = {
	{ S("text/html; charset=utf-8"),   1 },
	{ S(""),                           1 },
	{ S("a\tb"),                       1 },
	{ S("caf\xc3\xa9 \x80\xff"),       1 },
	{ S("a\rb"),                       0 },
	{ S("a\nb"),                       0 },
	{ S("a\r\nX-Evil: 1"),             0 },
	{ S("a\0b"),                       0 },
	{ S("a\x01"),                      0 },
	{ S("a\x1f"),                      0 },
	{ S("a\x7f"),                      0 },
};

static const struct vcase ncases[] = {
	{ S("content-type"),               1 },
	{ S("X-Custom_1"),                 1 },
	{ S("!#$%&'*+-.^_`|~09azAZ"),      1 },
	{ S(""),                           0 },
	{ S("a b"),                        0 },
	{ S("a:b"),                        0 },
	{ S("a\r"),                        0 },
	{ S("a\0b"),                       0 },
	{ S("(x)"),                        0 },
	{ S("a/b"),                        0 },
	{ S("a\"b"),                       0 },
	{ S("caf\xc3\xa9"),                0 },
};

static const struct xcase {
	const char	*prior, *peer;
	int		trusted;
	const char	*want;
} xcases[] = {
	{ NULL,              "10.0.0.1", 1, "10.0.0.1" },
	{ "",                "10.0.0.1", 1, "10.0.0.1" },
	{ "  ",              "10.0.0.1", 1, "10.0.0.1" },
	{ "1.2.3.4",         "10.0.0.1", 1, "1.2.3.4, 10.0.0.1" },
	{ " 1.2.3.4, 5.6.7.8 ", "::1",   1, "1.2.3.4, 5.6.7.8, ::1" },
	{ "1.2.3.4",         "10.0.0.1", 0, "10.0.0.1" },
	{ "1.2.3.4\r\nX: y", "10.0.0.1", 1, "10.0.0.1" },
};

static const struct acase {
	const char	*list, *peer;
	int		want;
} acases[] = {
	{ "127.0.0.1",                     "127.0.0.1",        1 },
	{ "127.0.0.1",                     "127.0.0.2",        0 },
	{ "127.0.0.1, 10.0.0.0/8, ::1",    "10.200.3.4",       1 },
	{ "127.0.0.1, 10.0.0.0/8, ::1",    "11.0.0.1",         0 },
	{ "127.0.0.1, 10.0.0.0/8, ::1",    "::1",              1 },
	{ "127.0.0.1 10.0.0.0/8 ::1",      "::1",              1 },
	{ "127.0.0.1,10.0.0.0/8,::1",      "10.0.0.0",         1 },
	{ "\t127.0.0.1 ,, 10.1.0.0/16 ",   "10.1.255.255",     1 },
	{ "192.168.1.0/25",                "192.168.1.127",    1 },
	{ "192.168.1.0/25",                "192.168.1.128",    0 },
	{ "192.168.1.3/32",                "192.168.1.3",      1 },
	{ "0.0.0.0/0",                     "203.0.113.9",      1 },
	{ "0.0.0.0/0",                     "::1",              0 },
	{ "::/0",                          "::1",              1 },
	{ "::/0",                          "1.2.3.4",          0 },
	{ "2001:db8::/32",                 "2001:db8:ffff::1", 1 },
	{ "2001:db8::/32",                 "2001:db9::1",      0 },
	{ "2001:db8::/33",                 "2001:db8:8000::1", 0 },
	{ "2001:DB8::1",                   "2001:db8::1",      1 },
	/* v4-mapped peers (dual-stack listeners) match IPv4 entries */
	{ "127.0.0.1",                     "::ffff:127.0.0.1", 1 },
	{ "10.0.0.0/8",                    "::ffff:10.9.8.7",  1 },
	{ "10.0.0.0/8",                    "::FFFF:11.9.8.7",  0 },
	{ "::ffff:10.0.0.0/104",           "10.1.2.3",         1 },
	{ "::ffff:127.0.0.1",              "127.0.0.1",        1 },
	{ "::1",                           "[::1]",            1 },
	{ "fe80::1",                       "fe80::1%eth0",     1 },
	/* bad entries never match, and do not spoil the rest */
	{ "10.0.0.0/33",                   "10.0.0.1",         0 },
	{ "::/129",                        "::1",              0 },
	{ "10.0.0.0/",                     "10.0.0.1",         0 },
	{ "10.0.0.0/x",                    "10.0.0.1",         0 },
	{ "10.0.0.0/-8",                   "10.0.0.1",         0 },
	{ "10.0.0.0/8/8",                  "10.0.0.1",         0 },
	{ "10.0.0",                        "10.0.0.0",         0 },
	{ "localhost",                     "127.0.0.1",        0 },
	{ "bogus, 127.0.0.1",              "127.0.0.1",        1 },
	{ "10.0.0.0/33, 10.0.0.1",         "10.0.0.1",         1 },
	/* bad or missing peers */
	{ "127.0.0.1",                     "",                 0 },
	{ "127.0.0.1",                     "localhost",        0 },
	{ "127.0.0.1",                     "127.0.0.1 ",       0 },
	{ "",                              "127.0.0.1",        0 },
	{ NULL,                            "127.0.0.1",        0 },
	{ "127.0.0.1",                     NULL,               0 },
};

int
main(void)
{
	char buf[128];
	size_t i;
	int n;

	check_table();

	CHECK(udsp_hdr_flags(S("x-unknown")) == (UDSP_HF_REQ | UDSP_HF_RES));
	CHECK(udsp_hdr_flags(S("CONNECTION")) & UDSP_HF_HOP);
	/* prefix of a known name is not that name */
	CHECK(udsp_hdr_flags("connection", 4) == (UDSP_HF_REQ | UDSP_HF_RES));
	CHECK(udsp_hdr_flags(S("connections")) ==
	      (UDSP_HF_REQ | UDSP_HF_RES));

	for (i = 0; i < sizeof(fcases) / sizeof(fcases[0]); i++) {
		const struct fcase *c = &fcases[i];
		size_t cl = c->conn ? strlen(c->conn) : 0;
		int rq = udsp_hdr_req_forward(c->name, strlen(c->name),
					      c->conn, cl);
		int rs = udsp_hdr_res_forward(c->name, strlen(c->name),
					      c->conn, cl);

		if (rq != c->req || rs != c->res)
			fprintf(stderr, "fcase %d '%s': req %d res %d\n",
				(int)i, c->name, rq, rs);
		CHECK(rq == c->req);
		CHECK(rs == c->res);
	}

	for (i = 0; i < sizeof(lcases) / sizeof(lcases[0]); i++) {
		n = udsp_hdr_list_has(lcases[i].list, strlen(lcases[i].list),
				      lcases[i].tok, strlen(lcases[i].tok));
		if (n != lcases[i].want)
			fprintf(stderr, "lcase %d\n", (int)i);
		CHECK(n == lcases[i].want);
	}
	/* list_len bounds the scan: no read past it */
	CHECK(!udsp_hdr_list_has("close", 3, S("close")));
	CHECK(udsp_hdr_list_has("a,closeXYZ", 7, S("close")));
	CHECK(!udsp_hdr_list_has(NULL, 0, S("close")));

	for (i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++) {
		if (udsp_hdr_value_ok(vcases[i].v, vcases[i].len) !=
		    vcases[i].want)
			fprintf(stderr, "vcase %d\n", (int)i);
		CHECK(udsp_hdr_value_ok(vcases[i].v, vcases[i].len) ==
		      vcases[i].want);
	}

	for (i = 0; i < sizeof(ncases) / sizeof(ncases[0]); i++) {
		if (udsp_hdr_name_ok(ncases[i].v, ncases[i].len) !=
		    ncases[i].want)
			fprintf(stderr, "ncase %d\n", (int)i);
		CHECK(udsp_hdr_name_ok(ncases[i].v, ncases[i].len) ==
		      ncases[i].want);
	}

	/* the tchar table is RFC 9110 5.6.2's list, byte for byte */
	for (i = 0; i < 256; i++) {
		int want = (i >= 'a' && i <= 'z') || (i >= 'A' && i <= 'Z') ||
			   (i >= '0' && i <= '9') ||
			   (i && strchr("!#$%&'*+-.^_`|~", (int)i));

		if (!!udsp_hdr_tchar[i] != !!want)
			fprintf(stderr, "tchar 0x%02x\n", (unsigned int)i);
		CHECK(!!udsp_hdr_tchar[i] == !!want);
	}

	/* lws's custom-header lookup name: lower case, colon, NUL */
	CHECK_STR(udsp_hdr_custom_name(buf, sizeof(buf), S("X-Request-ID")),
		  "x-request-id:");
	CHECK_STR(udsp_hdr_custom_name(buf, 6, S("DNT!")), "dnt!:");
	CHECK(!udsp_hdr_custom_name(buf, 5, S("DNT!")));
	CHECK_STR(udsp_hdr_custom_name(buf, sizeof(buf), "a-bcd", 3),
		  "a-b:");

	for (i = 0; i < sizeof(xcases) / sizeof(xcases[0]); i++) {
		const struct xcase *c = &xcases[i];

		n = udsp_xff_build(buf, sizeof(buf), c->prior,
				   c->prior ? strlen(c->prior) : 0, c->peer,
				   c->trusted);
		CHECK(n == (int)strlen(c->want));
		CHECK_STR(buf, c->want);
	}
	/* exact fit, one short */
	CHECK(udsp_xff_build(buf, 14, S("1.2.3.4"), "5.6", 1) == 12);
	CHECK_STR(buf, "1.2.3.4, 5.6");
	CHECK(udsp_xff_build(buf, 13, S("1.2.3.4"), "5.6", 1) == 12);
	CHECK(udsp_xff_build(buf, 12, S("1.2.3.4"), "5.6", 1) == -1);
	CHECK(udsp_xff_build(buf, 4, NULL, 0, "5.6", 1) == 3);
	CHECK(udsp_xff_build(buf, 3, NULL, 0, "5.6", 1) == -1);
	CHECK(udsp_xff_build(buf, sizeof(buf), NULL, 0, NULL, 1) == -1);

	for (i = 0; i < sizeof(acases) / sizeof(acases[0]); i++) {
		n = udsp_addr_in_list(acases[i].list, acases[i].peer);
		if (n != acases[i].want)
			fprintf(stderr, "acase %d: '%s' in '%s': %d\n", (int)i,
				acases[i].peer ? acases[i].peer : "(null)",
				acases[i].list ? acases[i].list : "(null)", n);
		CHECK(n == acases[i].want);
	}

	return T_END();
}
