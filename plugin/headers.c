/* SPDX-License-Identifier: MIT
 *
 * Header policy as data (udsp_hdr_rules[]) and the small predicates the relay
 * applies it with: Connection-listed names, value/name hygiene, the
 * X-Forwarded-For value and trusted-proxy address lists.  No lws calls.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "headers.h"
#include "strlist.h"

#define REQ	UDSP_HF_REQ
#define RES	UDSP_HF_RES
#define HOP	UDSP_HF_HOP
#define SPECIAL	UDSP_HF_SPECIAL
#define H2BAD	UDSP_HF_H2_BAD
#define OWNS	UDSP_HF_PROXY_OWNS

/* RFC 9110 5.6.2 tchar: 1; anything else in a field name: 0 */
const unsigned char udsp_hdr_tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
	['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
	['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
	['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
	['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
	['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
	['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
	['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
	['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1,
};

/*
 * Only exceptions are listed: a name that is absent is end-to-end and passes
 * both ways.  Direction bits on SPECIAL rows say where the relay's own value
 * ends up; the generic copy loops never copy a SPECIAL, HOP or OWNS row.
 */
const struct udsp_hdr_rule udsp_hdr_rules[] = {
	/*
	 * RFC 9110 7.6.1 hop-by-hop fields, plus the legacy ones every proxy
	 * drops (keep-alive, proxy-connection: RFC 9113 8.2.2 lists them) and
	 * the proxy-auth pair, which belongs to this hop (RFC 9110 11.7).
	 */
	{ "connection",		HOP | H2BAD },
	{ "keep-alive",		HOP | H2BAD },
	{ "proxy-connection",	HOP | H2BAD },
	/* h2 allows "te: trailers" on requests only; we never send it back */
	{ "te",			HOP | H2BAD },
	{ "trailer",		HOP },
	{ "transfer-encoding",	HOP | H2BAD },
	{ "upgrade",		HOP | H2BAD },
	{ "proxy-authenticate",	HOP },
	{ "proxy-authorization", HOP },
	/* RFC 7540 3.2.1: h2c upgrade settings, meaningless past this hop */
	{ "http2-settings",	HOP | H2BAD },

	/* the relay writes these itself */
	{ "host",		REQ | SPECIAL },  /* or from :authority */
	{ "content-length",	REQ | RES | SPECIAL }, /* framing */
	{ "x-forwarded-for",	REQ | SPECIAL },
	{ "x-forwarded-proto",	REQ | SPECIAL },
	{ "x-forwarded-host",	REQ | SPECIAL },
	/* answered by the relay, not sent on (docs/lws-notes.md N17) */
	{ "expect",		SPECIAL },

	/*
	 * End-to-end, listed so the choice is visible: Forwarded passes
	 * unchanged both ways (as nginx does) rather than being rewritten;
	 * Date passes both ways (clients may send it too, RFC 9110 6.6.1).
	 */
	{ "forwarded",		REQ | RES },
	{ "date",		REQ | RES },

	/*
	 * lws_add_http_header_status() writes the server-string as Server
	 * into every head (docs/lws-notes.md N27), so the backend's would be
	 * a second one.  A client's Server never went on either.
	 */
	{ "server",		OWNS },

	{ NULL, 0 }
};

/*
 * Per first letter, a bit for each length (under 32) some row of that
 * letter has: most names a response or request carries have no row, and
 * the bit says so without walking the table (a response head's fields
 * cost some 150 instructions each here, issue 14).
 */
static uint32_t rule_lens[26];
static int rule_lens_done;

static void
rule_lens_init(void)
{
	const struct udsp_hdr_rule *r;
	size_t l;

	for (r = udsp_hdr_rules; r->name; r++) {
		l = strlen(r->name);
		if (r->name[0] >= 'a' && r->name[0] <= 'z' && l < 32)
			rule_lens[r->name[0] - 'a'] |= 1u << l;
		else if (r->name[0] >= 'a' && r->name[0] <= 'z')
			rule_lens[r->name[0] - 'a'] = ~0u;	/* always walk */
	}
	rule_lens_done = 1;
}

unsigned int
udsp_hdr_flags(const char *name, size_t len)
{
	const struct udsp_hdr_rule *r;
	unsigned char c;

	if (!len)
		return UDSP_HF_REQ | UDSP_HF_RES;
	if (!rule_lens_done)
		rule_lens_init();
	c = (unsigned char)(name[0] | 0x20);
	if (c >= 'a' && c <= 'z' && len < 32 &&
	    !(rule_lens[c - 'a'] & (1u << len)))
		return UDSP_HF_REQ | UDSP_HF_RES;
	/* per-request hot path: the first letter rules out most rows */
	for (r = udsp_hdr_rules; r->name; r++)
		if (r->name[0] == (name[0] | 0x20) &&
		    strlen(r->name) == len && !strncasecmp(r->name, name, len))
			return r->flags;

	return UDSP_HF_REQ | UDSP_HF_RES;
}

static int
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

int
udsp_hdr_list_has(const char *list, size_t list_len, const char *token,
		  size_t len)
{
	size_t i = 0, s, e;

	if (!list || !token || !len || len > list_len)
		return 0;

	while (i < list_len) {
		while (i < list_len && (is_ows(list[i]) || list[i] == ','))
			i++;
		s = i;
		while (i < list_len && list[i] != ',')
			i++;
		e = i;
		while (e > s && is_ows(list[e - 1]))
			e--;
		if (e - s == len && !strncasecmp(list + s, token, len))
			return 1;
	}

	return 0;
}

static int
forward(unsigned int dir, const char *name, size_t len, const char *conn,
	size_t conn_len)
{
	unsigned int f = udsp_hdr_flags(name, len);

	if (!(f & dir) ||
	    (f & (UDSP_HF_HOP | UDSP_HF_SPECIAL | UDSP_HF_PROXY_OWNS)))
		return 0;

	/* RFC 9110 7.6.1: fields named in Connection are hop-by-hop too */
	return !udsp_hdr_list_has(conn, conn_len, name, len);
}

int
udsp_hdr_res_forward(const char *name, size_t len, const char *conn,
		     size_t conn_len)
{
	return forward(UDSP_HF_RES, name, len, conn, conn_len);
}

int
udsp_hdr_req_forward(const char *name, size_t len, const char *conn,
		     size_t conn_len)
{
	return forward(UDSP_HF_REQ, name, len, conn, conn_len);
}

int
udsp_hdr_value_ok(const char *v, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}

	return 1;
}

int
udsp_hdr_name_ok(const char *name, size_t len)
{
	size_t i;

	if (!name || !len)
		return 0;

	for (i = 0; i < len; i++)
		if (!udsp_hdr_tchar[(unsigned char)name[i]])
			return 0;

	return 1;
}

char *
udsp_hdr_custom_name(char *dst, size_t dstlen, const char *name, size_t len)
{
	size_t i;

	if (len + 2 > dstlen)
		return NULL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		dst[i] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
	}
	dst[len] = ':';
	dst[len + 1] = '\0';

	return dst;
}

int
udsp_xff_build(char *dst, size_t dstlen, const char *prior, size_t prior_len,
	       const char *peer, int trusted)
{
	size_t plen, n = 0;

	if (!dst || !peer)
		return -1;

	/* an all-blank or unsafe prior value is as good as none */
	while (prior && prior_len && is_ows(prior[0])) {
		prior++;
		prior_len--;
	}
	while (prior && prior_len && is_ows(prior[prior_len - 1]))
		prior_len--;
	if (!trusted || !prior || !prior_len ||
	    !udsp_hdr_value_ok(prior, prior_len))
		prior_len = 0;

	plen = strlen(peer);
	if (prior_len + plen > 0x7ffffff0 ||
	    (prior_len ? prior_len + 2 : 0) + plen + 1 > dstlen)
		return -1;

	if (prior_len) {
		memcpy(dst, prior, prior_len);
		memcpy(dst + prior_len, ", ", 2);
		n = prior_len + 2;
	}
	memcpy(dst + n, peer, plen);
	n += plen;
	dst[n] = '\0';

	return (int)n;
}

struct addr {
	int		v6;
	unsigned char	b[16];
};

static const unsigned char v4mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/*
 * Parse an address into a; a v4-mapped IPv6 address becomes the IPv4 one
 * (dual-stack listeners report IPv4 peers as "::ffff:a.b.c.d").  *bits is
 * adjusted the same way when non-NULL.  Returns 0 or -1.
 */
static int
addr_parse(struct addr *a, const char *s, int *bits)
{
	memset(a, 0, sizeof(*a));

	if (inet_pton(AF_INET, s, a->b) == 1)
		return 0;
	if (inet_pton(AF_INET6, s, a->b) != 1)
		return -1;

	a->v6 = 1;
	if (!memcmp(a->b, v4mapped, sizeof(v4mapped)) &&
	    (!bits || *bits >= 96)) {
		memmove(a->b, a->b + 12, 4);
		memset(a->b + 4, 0, 12);
		a->v6 = 0;
		if (bits)
			*bits -= 96;
	}

	return 0;
}

static int
prefix_match(const unsigned char *x, const unsigned char *y, int bits)
{
	int whole = bits / 8, rest = bits % 8;
	unsigned char mask;

	if (memcmp(x, y, (size_t)whole))
		return 0;
	if (!rest)
		return 1;
	mask = (unsigned char)(0xff << (8 - rest));

	return (x[whole] & mask) == (y[whole] & mask);
}

/* One list entry "addr" or "addr/bits" (len bytes) against peer p. */
static int
entry_match(const char *e, size_t len, const struct addr *p)
{
	char tmp[64];
	const char *slash;
	struct addr a;
	int bits = -1, max;
	size_t i;

	if (len >= sizeof(tmp))
		return 0;
	memcpy(tmp, e, len);
	tmp[len] = '\0';

	slash = strchr(tmp, '/');
	if (slash) {
		if (!slash[1] || strlen(slash + 1) > 3)
			return 0;
		bits = 0;
		for (i = 1; slash[i]; i++) {
			if (slash[i] < '0' || slash[i] > '9')
				return 0;
			bits = bits * 10 + (slash[i] - '0');
		}
		tmp[slash - tmp] = '\0';
	}

	/* range-check against the family as written, before any mapping */
	max = strchr(tmp, ':') ? 128 : 32;
	if (bits > max)
		return 0;
	if (bits < 0)
		bits = max;
	if (addr_parse(&a, tmp, &bits))
		return 0;
	if (a.v6 != p->v6)
		return 0;

	return prefix_match(a.b, p->b, bits);
}

int
udsp_addr_in_list(const char *list, const char *peer)
{
	const char *item;
	char tmp[64];
	struct addr p;
	size_t n;

	if (!list || !peer)
		return 0;

	/* drop any "[...]" and "%zone" decoration from the peer text */
	if (*peer == '[')
		peer++;
	n = strcspn(peer, "]%");
	if (!n || n >= sizeof(tmp))
		return 0;
	memcpy(tmp, peer, n);
	tmp[n] = '\0';
	if (addr_parse(&p, tmp, NULL))
		return 0;

	while ((item = udsp_list_next(&list, &n)))
		if (entry_match(item, n, &p))
			return 1;

	return 0;
}
