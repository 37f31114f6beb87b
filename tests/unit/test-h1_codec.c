/* SPDX-License-Identifier: MIT
 *
 * Table tests for plugin/h1_codec.c and h1_chunk.c: the response parser
 * and the chunked decoder.  Every case runs whole, byte by byte and split
 * at every offset, each piece copied to just before a PROT_NONE page, and
 * must give the same verdict every time.
 */
#define _DEFAULT_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "h1_codec.h"
#include "t.h"

/* ---- guard page: each fed piece ends exactly at an unreadable page ---- */

static uint8_t *guard_base;
static size_t guard_room;

static void
guard_init(void)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	guard_room = 16 * pg;
	guard_base = mmap(NULL, guard_room + pg, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard_base == MAP_FAILED ||
	    mprotect(guard_base + guard_room, pg, PROT_NONE)) {
		perror("guard");
		exit(2);
	}
}

static uint8_t *
guarded(const void *p, size_t len)
{
	uint8_t *d;

	if (len > guard_room) {
		fprintf(stderr, "guarded: piece too big\n");
		exit(2);
	}
	d = guard_base + guard_room - len;
	memcpy(d, p, len);

	return d;
}

/* ---- response parser cases ---- */

#define ALL	(-1L)

struct rcase {
	const char	*name;
	const char	*in;
	size_t		len;		/* 0: strlen(in) */
	int		head_req;
	size_t		hcap;		/* 0: 4096 */
	int		eof;		/* call udsp_h1_res_eof() at the end */
	int		fail_body;	/* body_cb returns -1 */

	const char	*err;		/* expected error, NULL: none */
	int		status;
	long		consumed;	/* ALL: the whole input */
	int64_t		cl;
	int		done;		/* msg_done expected */
	int		chunked, close_delim, keep_alive;
	const char	*body;
	const char	*hdrs;		/* "name: value\n" each, NULL: skip */
};

struct rres {
	const char	*err;
	long		consumed;
	int		status, head_done, done, chunked, close_delim, ka;
	int64_t		cl;
	char		body[8192];
	size_t		blen;
	char		hdrs[8192];
};

static int fail_body;

static int
body_cb(void *user, const char *data, size_t len)
{
	struct rres *o = user;

	if (fail_body)
		return -1;
	if (o->blen + len >= sizeof(o->body))
		return -1;
	memcpy(o->body + o->blen, data, len);
	o->blen += len;

	return 0;
}

static void
dump_hdrs(const struct udsp_h1_res *r, struct rres *o)
{
	const char *n, *v;
	size_t nl, vl, l = 0;
	unsigned int i;
	int w;

	o->hdrs[0] = '\0';
	for (i = 0; i < r->nf; i++) {
		n = udsp_h1_name(r, i, &nl);
		v = udsp_h1_value(r, i, &vl);
		/* names and values must lie inside hbuf */
		CHECK(n >= r->hbuf && n + nl <= r->hbuf + r->hlen);
		CHECK(v >= r->hbuf && v + vl <= r->hbuf + r->hlen);
		w = snprintf(o->hdrs + l, sizeof(o->hdrs) - l, "%.*s: %.*s\n",
			     (int)nl, n, (int)vl, v);
		if (w < 0 || (size_t)w >= sizeof(o->hdrs) - l)
			break;
		l += (size_t)w;
	}
}

/*
 * Feed c->in in pieces of `step` bytes, or in two pieces split at `split`
 * when step is 0.
 */
static void
run_res(const struct rcase *c, size_t len, size_t step, size_t split,
	struct rres *o)
{
	static char hbuf[8192];
	struct udsp_h1_res r;
	size_t off = 0, piece;
	long n = 0;

	memset(o, 0, sizeof(*o));
	fail_body = c->fail_body;
	udsp_h1_res_init(&r, hbuf, c->hcap ? c->hcap : 4096, c->head_req,
			 body_cb, o);

	while (off < len) {
		if (step)
			piece = len - off < step ? len - off : step;
		else
			piece = off < split ? split - off : len - off;
		n = udsp_h1_res_feed(&r, (const char *)guarded(c->in + off,
							       piece), piece);
		if (n < 0)
			break;
		CHECK((size_t)n <= piece);
		off += (size_t)n;
		if ((size_t)n < piece) {
			CHECK(r.msg_done);
			break;
		}
	}
	if (n >= 0 && c->eof && udsp_h1_res_eof(&r))
		n = -1;
	if (n < 0)
		CHECK(r.err != NULL);

	o->err = n < 0 ? r.err : NULL;
	o->consumed = (long)off;
	o->status = r.status;
	o->head_done = r.head_done;
	o->done = r.msg_done;
	o->chunked = r.chunked;
	o->close_delim = r.close_delim;
	o->ka = r.keep_alive;
	o->cl = r.content_length;
	dump_hdrs(&r, o);
	/* a second look after the end must not change anything */
	if (r.msg_done)
		CHECK(udsp_h1_res_feed(&r, "x", 1) == 0);
	if (o->err)
		CHECK(udsp_h1_res_feed(&r, "x", 1) == -1);
	udsp_h1_res_free(&r);
}

static int
check_res(const struct rcase *c, size_t len, const struct rres *o,
	  const char *mode, size_t at)
{
	int bad = 0;

#define RBAD(cond) do { if (!(cond)) { bad = 1; fprintf(stderr, \
	"%s [%s %zu]: %s (err '%s')\n", c->name, mode, at, #cond, \
	o->err ? o->err : "none"); } } while (0)

	RBAD(o->err == c->err);
	if (!c->err) {
		RBAD(o->consumed == (c->consumed == ALL ? (long)len :
				     c->consumed));
		RBAD(o->done == c->done);
		if (c->status)
			RBAD(o->status == c->status);
		if (o->head_done) {
			RBAD(o->cl == c->cl);
			RBAD(o->chunked == c->chunked);
			RBAD(o->close_delim == c->close_delim);
		}
		if (o->done)
			RBAD(o->ka == c->keep_alive);
		RBAD(o->blen == strlen(c->body ? c->body : "") &&
		     !memcmp(o->body, c->body ? c->body : "", o->blen));
		if (c->hdrs)
			RBAD(!strcmp(o->hdrs, c->hdrs));
	}
	if (bad && c->hdrs && strcmp(o->hdrs, c->hdrs))
		fprintf(stderr, "  got headers:\n%s  want:\n%s", o->hdrs,
			c->hdrs);
#undef RBAD

	return bad;
}

static void
test_res_case(const struct rcase *c)
{
	size_t len = c->len ? c->len : strlen(c->in), k;
	struct rres o;
	int bad = 0;

	run_res(c, len, len ? len : 1, 0, &o);
	bad |= check_res(c, len, &o, "whole", len);
	run_res(c, len, 1, 0, &o);
	bad |= check_res(c, len, &o, "bytewise", 1);
	for (k = 1; k < len && !bad; k++) {
		run_res(c, len, 0, k, &o);
		bad |= check_res(c, len, &o, "split", k);
	}
	CHECK(!bad);
}

#define S200 "HTTP/1.1 200 OK\r\n"
#define CL5 "Content-Length: 5\r\n"
#define TEC "Transfer-Encoding: chunked\r\n"

/* input with embedded NULs: give its length explicitly */
#define BIN(s) s, sizeof(s) - 1

static const struct rcase rcases[] = {
	{ "content-length", S200 CL5 "Content-Type: text/plain\r\n\r\nhello",
	  .status = 200, .consumed = ALL, .cl = 5, .done = 1,
	  .keep_alive = 1, .body = "hello",
	  .hdrs = "Content-Length: 5\nContent-Type: text/plain\n" },
	{ "content-length zero", S200 "Content-Length: 0\r\n\r\n",
	  .status = 200, .consumed = ALL, .cl = 0, .done = 1,
	  .keep_alive = 1 },
	{ "content-length incomplete", S200 CL5 "\r\nhel",
	  .status = 200, .consumed = ALL, .cl = 5, .body = "hel" },
	{ "chunked ext trailers", S200 TEC "\r\n"
	  "5;foo=bar;q=\"x y\"\r\nhello\r\n6 ; ext\r\n world\r\n"
	  "A\r\n0123456789\r\n0\r\nX-Trailer: t\r\nX-T2: u\r\n\r\n",
	  .status = 200, .consumed = ALL, .cl = -1, .done = 1, .chunked = 1,
	  .keep_alive = 1, .body = "hello world0123456789",
	  .hdrs = "Transfer-Encoding: chunked\n" },
	{ "chunked leading zeros", S200 TEC "\r\n0003\r\nabc\r\n000\r\n\r\n",
	  .status = 200, .consumed = ALL, .cl = -1, .done = 1, .chunked = 1,
	  .keep_alive = 1, .body = "abc" },
	{ "chunked incomplete", S200 TEC "\r\n5\r\nhello\r\n",
	  .status = 200, .consumed = ALL, .cl = -1, .chunked = 1,
	  .body = "hello" },
	{ "chunked then pipelined garbage",
	  S200 TEC "\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n",
	  .status = 200, .consumed = sizeof(S200 TEC "\r\n2\r\nok\r\n0\r\n\r\n")
	  - 1, .cl = -1, .done = 1, .chunked = 1, .keep_alive = 1,
	  .body = "ok" },
	{ "chunked bad size", S200 TEC "\r\nzz\r\n",
	  .err = udsp_h1_err_framing },
	{ "chunked empty size", S200 TEC "\r\n\r\n",
	  .err = udsp_h1_err_framing },
	{ "chunked no CRLF after data", S200 TEC "\r\n2\r\nokXY0\r\n\r\n",
	  .err = udsp_h1_err_framing },
	{ "chunked bare LF", S200 TEC "\r\n2\nok\r\n0\r\n\r\n",
	  .err = udsp_h1_err_framing },
	{ "chunked size overflow", S200 TEC "\r\n10000000000000000\r\n",
	  .err = udsp_h1_err_framing },
	{ "chunked truncated at eof", S200 TEC "\r\n5\r\nhel", .eof = 1,
	  .err = udsp_h1_err_truncated },
	{ "close-delimited", S200 "Server: x\r\n\r\nabc", .eof = 1,
	  .status = 200, .consumed = ALL, .cl = -1, .done = 1,
	  .close_delim = 1, .keep_alive = 0, .body = "abc" },
	{ "close-delimited empty", S200 "\r\n", .eof = 1,
	  .status = 200, .consumed = ALL, .cl = -1, .done = 1,
	  .close_delim = 1 },
	{ "close-delimited keep-alive asked", S200
	  "Connection: keep-alive\r\n\r\nabc", .eof = 1,
	  .status = 200, .consumed = ALL, .cl = -1, .done = 1,
	  .close_delim = 1, .keep_alive = 0, .body = "abc" },
	{ "close-delimited before eof", S200 "\r\nabc",
	  .status = 200, .consumed = ALL, .cl = -1, .close_delim = 1,
	  .body = "abc" },
	{ "content-length truncated", S200 "Content-Length: 10\r\n\r\nabc",
	  .eof = 1, .err = udsp_h1_err_truncated },
	{ "head truncated", S200 "Content-", .eof = 1,
	  .err = udsp_h1_err_truncated },
	{ "nothing then eof", "", .eof = 1, .err = udsp_h1_err_truncated },
	{ "HEAD with length", S200 "Content-Length: 100\r\n\r\n",
	  .head_req = 1, .status = 200, .consumed = ALL, .cl = 100,
	  .done = 1, .keep_alive = 1 },
	{ "HEAD with chunked", S200 TEC "\r\n", .head_req = 1,
	  .status = 200, .consumed = ALL, .cl = -1, .done = 1,
	  .keep_alive = 1 },
	{ "HEAD then next response", S200 CL5 "\r\nHTTP/1.1 200 OK\r\n",
	  .head_req = 1, .status = 200,
	  .consumed = sizeof(S200 CL5 "\r\n") - 1, .cl = 5, .done = 1,
	  .keep_alive = 1 },
	{ "HEAD without length", S200 "\r\n", .head_req = 1,
	  .status = 200, .consumed = ALL, .cl = -1, .done = 1,
	  .keep_alive = 1 },
	{ "204", "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
	  .status = 204, .consumed = ALL, .cl = -1, .done = 1,
	  .keep_alive = 1, .hdrs = "X-A: 1\n" },
	{ "304 with length", "HTTP/1.1 304 Not Modified\r\n"
	  "Content-Length: 10\r\nETag: \"x\"\r\n\r\n",
	  .status = 304, .consumed = ALL, .cl = 10, .done = 1,
	  .keep_alive = 1 },
	{ "100 continue then 200", "HTTP/1.1 100 Continue\r\nX-Int: 1\r\n\r\n"
	  S200 "Content-Length: 2\r\n\r\nok",
	  .status = 200, .consumed = ALL, .cl = 2, .done = 1,
	  .keep_alive = 1, .body = "ok", .hdrs = "Content-Length: 2\n" },
	{ "102 and 103 then 200", "HTTP/1.1 102 Processing\r\n\r\n"
	  "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
	  S200 TEC "\r\n1\r\nx\r\n0\r\n\r\n",
	  .status = 200, .consumed = ALL, .cl = -1, .done = 1, .chunked = 1,
	  .keep_alive = 1, .body = "x",
	  .hdrs = "Transfer-Encoding: chunked\n" },
	{ "100 only", "HTTP/1.1 100 Continue\r\n\r\n",
	  .consumed = ALL, .done = 0, .hdrs = "" },
	{ "100 then eof", "HTTP/1.1 100 Continue\r\n\r\n", .eof = 1,
	  .err = udsp_h1_err_truncated },
	{ "101 rejected", "HTTP/1.1 101 Switching Protocols\r\n"
	  "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	  .err = udsp_h1_err_upgrade },
	{ "101 bare rejected", "HTTP/1.1 101 X\r\n\r\n",
	  .err = udsp_h1_err_upgrade },
	{ "200 with Upgrade is informational", S200 "Upgrade: h2c\r\n"
	  "Connection: Upgrade\r\n" CL5 "\r\nhello",
	  .status = 200, .consumed = ALL, .cl = 5, .done = 1,
	  .keep_alive = 1, .body = "hello" },
	{ "set-cookie order and unknown headers", S200
	  "Set-Cookie: a=1; Path=/\r\nX-Custom-Thing: yes\r\n"
	  "set-cookie: b=2\r\nSet-Cookie: c=3; HttpOnly\r\n"
	  "X-Empty:\r\nX-Ws:   padded value \t \r\n"
	  "X-Tab: a\tb\r\nX-Utf8: \xc3\xa9t\xc3\xa9\r\n" CL5 "\r\nhello",
	  .status = 200, .consumed = ALL, .cl = 5, .done = 1,
	  .keep_alive = 1, .body = "hello",
	  .hdrs = "Set-Cookie: a=1; Path=/\nX-Custom-Thing: yes\n"
		  "set-cookie: b=2\nSet-Cookie: c=3; HttpOnly\nX-Empty: \n"
		  "X-Ws: padded value\nX-Tab: a\tb\nX-Utf8: \xc3\xa9t\xc3\xa9\n"
		  "Content-Length: 5\n" },
	{ "CL and TE", S200 CL5 TEC "\r\n5\r\nhello\r\n0\r\n\r\n",
	  .err = udsp_h1_err_framing },
	{ "TE and CL", S200 TEC CL5 "\r\n5\r\nhello\r\n0\r\n\r\n",
	  .err = udsp_h1_err_framing },
	{ "two differing CL", S200 CL5 "Content-Length: 6\r\n\r\nhello!",
	  .err = udsp_h1_err_framing },
	{ "two equal CL", S200 CL5 CL5 "\r\nhello",
	  .err = udsp_h1_err_framing },
	{ "CL list", S200 "Content-Length: 5, 5\r\n\r\nhello",
	  .err = udsp_h1_err_framing },
	{ "CL not numeric", S200 "Content-Length: abc\r\n\r\n",
	  .err = udsp_h1_err_framing },
	{ "CL negative", S200 "Content-Length: -1\r\n\r\n",
	  .err = udsp_h1_err_framing },
	{ "CL empty", S200 "Content-Length:\r\n\r\n",
	  .err = udsp_h1_err_framing },
	{ "CL with OWS tab", S200 "Content-Length: 5\t \r\n\r\nhello",
	  .status = 200, .consumed = ALL, .cl = 5, .done = 1,
	  .keep_alive = 1, .body = "hello" },
	{ "CL huge", S200 "Content-Length: 99999999999999999999\r\n\r\n",
	  .err = udsp_h1_err_framing },
	{ "CL above int64", S200 "Content-Length: 9300000000000000000\r\n\r\n",
	  .err = udsp_h1_err_framing },
	{ "TE gzip", S200 "Transfer-Encoding: gzip\r\n\r\nxx",
	  .err = udsp_h1_err_framing },
	{ "TE gzip, chunked", S200 "Transfer-Encoding: gzip, chunked\r\n\r\n"
	  "0\r\n\r\n", .err = udsp_h1_err_framing },
	{ "TE chunked, gzip", S200 "Transfer-Encoding: chunked, gzip\r\n\r\n",
	  .err = udsp_h1_err_framing },
	{ "TE split fields", S200 "Transfer-Encoding: gzip\r\n" TEC "\r\n"
	  "0\r\n\r\n", .err = udsp_h1_err_framing },
	{ "TE chunked twice", S200 "Transfer-Encoding: chunked, chunked\r\n"
	  "\r\n0\r\n\r\n", .err = udsp_h1_err_framing },
	{ "TE CHUNKED case", S200 "transfer-encoding:  CHUNKED \r\n\r\n"
	  "0\r\n\r\n", .status = 200, .consumed = ALL, .cl = -1, .done = 1,
	  .chunked = 1, .keep_alive = 1 },
	{ "CR in value", S200 "X-A: a\rb\r\n\r\n",
	  .err = udsp_h1_err_bad_value },
	{ "NUL in value", BIN(S200 "X-A: a\0b\r\n\r\n"), .err = udsp_h1_err_bad_value },
	{ "ctl 0x01 in value", S200 "X-A: a\001b\r\n\r\n",
	  .err = udsp_h1_err_bad_value },
	{ "DEL in value", S200 "X-A: a\177b\r\n\r\n",
	  .err = udsp_h1_err_bad_value },
	{ "ESC in value", S200 "X-A: \033[31m\r\n\r\n",
	  .err = udsp_h1_err_bad_value },
	{ "obs-fold", S200 "X-A: a\r\n b\r\n" CL5 "\r\nhello",
	  .err = udsp_h1_err_bad_value },
	{ "obs-fold tab", S200 "X-A: a\r\n\tb\r\n\r\n",
	  .err = udsp_h1_err_bad_value },
	{ "obs-fold after status", S200 " X-A: a\r\n\r\n",
	  .err = udsp_h1_err_bad_value },
	{ "LF then junk line", S200 "X-A: a\nb\r\n\r\n",
	  .err = udsp_h1_err_parse },
	{ "space in name", S200 "Bad Name: x\r\n\r\n",
	  .err = udsp_h1_err_parse },
	{ "space before colon", S200 "X-A : x\r\n\r\n",
	  .err = udsp_h1_err_parse },
	{ "NUL in name", BIN(S200 "X-\0A: x\r\n\r\n"), .err = udsp_h1_err_parse },
	{ "CR without LF ends head", S200 "X-A: b\r\n\rX",
	  .err = udsp_h1_err_parse },
	{ "CR without LF in status line", "HTTP/1.1 200 OK\rX-A: b\r\n\r\n",
	  .err = udsp_h1_err_parse },
	{ "not HTTP", "HTXP/1.1 200 OK\r\n\r\n", .err = udsp_h1_err_parse },
	{ "lowercase http", "http/1.1 200 OK\r\n\r\n",
	  .err = udsp_h1_err_parse },
	{ "HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", .err = udsp_h1_err_parse },
	{ "status 099", "HTTP/1.1 099 X\r\n\r\n", .err = udsp_h1_err_parse },
	{ "status letters", "HTTP/1.1 2x0 OK\r\n\r\n",
	  .err = udsp_h1_err_parse },
	{ "request not response", "GET / HTTP/1.1\r\n\r\n",
	  .err = udsp_h1_err_parse },
	{ "leading CRLF skipped", "\r\n\r\n" S200 CL5 "\r\nhello",
	  .status = 200, .consumed = ALL, .cl = 5, .done = 1,
	  .keep_alive = 1, .body = "hello" },
	{ "bare LF lines", "HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 1\n\nx",
	  .status = 200, .consumed = ALL, .cl = 1, .done = 1,
	  .keep_alive = 1, .body = "x", .hdrs = "X-A: 1\nContent-Length: 1\n" },
	{ "no reason phrase", "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
	  .status = 404, .consumed = ALL, .cl = 0, .done = 1,
	  .keep_alive = 1 },
	{ "connection close", S200 "Connection: close\r\n" CL5 "\r\nhello",
	  .status = 200, .consumed = ALL, .cl = 5, .done = 1,
	  .keep_alive = 0, .body = "hello" },
	{ "connection list with close", S200 "Connection: foo, close\r\n"
	  CL5 "\r\nhello", .status = 200, .consumed = ALL, .cl = 5,
	  .done = 1, .keep_alive = 0, .body = "hello" },
	{ "http/1.0", "HTTP/1.0 200 OK\r\n" CL5 "\r\nhello",
	  .status = 200, .consumed = ALL, .cl = 5, .done = 1,
	  .keep_alive = 0, .body = "hello" },
	{ "http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive"
	  "\r\n" CL5 "\r\nhello", .status = 200, .consumed = ALL, .cl = 5,
	  .done = 1, .keep_alive = 1, .body = "hello" },
	{ "pipelined garbage", S200 "Content-Length: 2\r\n\r\nokGARBAGE",
	  .status = 200, .consumed = sizeof(S200 "Content-Length: 2\r\n\r\nok")
	  - 1, .cl = 2, .done = 1, .keep_alive = 1, .body = "ok" },
	{ "CL 0 then garbage", S200 "Content-Length: 0\r\n\r\nXYZ",
	  .status = 200, .consumed = sizeof(S200 "Content-Length: 0\r\n\r\n")
	  - 1, .cl = 0, .done = 1, .keep_alive = 1 },
	{ "header block just fits", S200 "Ab: cd\r\n\r\n", .hcap = 4,
	  .eof = 1, .status = 200, .consumed = ALL, .cl = -1, .done = 1,
	  .close_delim = 1, .hdrs = "Ab: cd\n" },
	{ "header block too big", S200 "Ab: cde\r\n\r\n", .hcap = 4,
	  .err = udsp_h1_err_too_big },
	{ "header name too big", S200 "Abcde: \r\n\r\n", .hcap = 4,
	  .err = udsp_h1_err_too_big },
	{ "too big, then a bad name byte", S200 "Abcdefgh\315: x\r\n\r\n",
	  .hcap = 4, .err = udsp_h1_err_parse },
	{ "too big, then CL with TE", S200 CL5 TEC "\r\n", .hcap = 4,
	  .err = udsp_h1_err_framing },
	{ "too big, then bad value", S200 "Abcdefgh: \001\r\n\r\n",
	  .hcap = 4, .err = udsp_h1_err_bad_value },
	{ "interim headers do not count", "HTTP/1.1 103 Early\r\n"
	  "Link: </x>\r\n\r\n" S200 "Ab: cd\r\n\r\n", .hcap = 8, .eof = 1,
	  .status = 200, .consumed = ALL, .cl = -1, .done = 1,
	  .close_delim = 1, .hdrs = "Ab: cd\n" },
	{ "body consumer fails", S200 CL5 "\r\nhello", .fail_body = 1,
	  .err = udsp_h1_err_body_cb },
	{ "chunk consumer fails", S200 TEC "\r\n1\r\nx\r\n0\r\n\r\n",
	  .fail_body = 1, .err = udsp_h1_err_body_cb },
};

/* n fields "X-k: k" after a 200 status line; returns the length */
static size_t
many_fields(char *in, size_t cap, int n, char *hdrs, size_t hcap)
{
	size_t l, hl = 0;
	int k;

	l = (size_t)snprintf(in, cap, S200);
	for (k = 0; k < n; k++) {
		l += (size_t)snprintf(in + l, cap - l, "X-%d: %d\r\n", k, k);
		if (hdrs)
			hl += (size_t)snprintf(hdrs + hl, hcap - hl,
					       "X-%d: %d\n", k, k);
	}
	l += (size_t)snprintf(in + l, cap - l, "\r\n");

	return l;
}

/* Cases built at run time: many fields, huge header from the parser */
static void
test_res_generated(void)
{
	/* around the inline table (16), its doublings and the limit */
	static const int counts[] = { 16, 17, 100, 128, 129 };
	static char in[16384], in2[8192], hdrs[8192];
	char name[32];
	struct rcase c;
	size_t l, j;
	int i;

	for (j = 0; j < sizeof(counts) / sizeof(counts[0]); j++) {
		i = counts[j];
		l = many_fields(in, sizeof(in), i, hdrs, sizeof(hdrs));
		memset(&c, 0, sizeof(c));
		snprintf(name, sizeof(name), "%d fields", i);
		c.name = name;
		c.in = in;
		c.len = l;
		c.hcap = 8192;
		if (i <= UDSP_H1_MAX_FIELDS) {
			c.status = 200;
			c.consumed = ALL;
			c.cl = -1;
			c.close_delim = 1;
			c.hdrs = hdrs;
		} else
			c.err = udsp_h1_err_too_many;
		/* byte-wise splitting of ~1.5k at every offset is slow but
		 * cheap enough */
		test_res_case(&c);
	}

	/* a value longer than the caller's buffer but short for the parser */
	l = (size_t)snprintf(in2, sizeof(in2), S200 "X-Big: ");
	memset(in2 + l, 'v', 5000);
	l += 5000;
	l += (size_t)snprintf(in2 + l, sizeof(in2) - l, "\r\n\r\n");
	memset(&c, 0, sizeof(c));
	c.name = "value bigger than hcap";
	c.in = in2;
	c.len = l;
	c.hcap = 4096;
	c.err = udsp_h1_err_too_big;
	test_res_case(&c);

	/*
	 * Bytes that are never stored (OWS) still count toward the head:
	 * an endless one is too big as soon as it passes the bound, not
	 * when (if ever) the head ends.
	 */
	l = (size_t)snprintf(in, sizeof(in), S200 "X-A:");
	memset(in + l, ' ', 9000);
	l += 9000;
	memset(&c, 0, sizeof(c));
	c.name = "endless OWS";
	c.in = in;
	c.len = l;
	c.hcap = 16;
	c.err = udsp_h1_err_too_big;
	test_res_case(&c);
}

static char *
grow_realloc(void *user, char *hbuf, size_t ncap)
{
	int *calls = user;

	(*calls)++;

	return realloc(hbuf, ncap);
}

/* A block that starts at 4 bytes grows as fields need it, up to hmax. */
static void
test_grow(void)
{
	static const char in[] = S200 "Content-Type: text/plain\r\n"
				 "X-Long: 0123456789abcdefghij\r\n" CL5
				 "\r\nhello";
	struct udsp_h1_res r;
	const char *v;
	int calls = 0;
	size_t l;

	udsp_h1_res_init(&r, malloc(4), 4, 0, NULL, &calls);
	udsp_h1_res_growable(&r, 4096, grow_realloc);
	CHECK(udsp_h1_res_feed(&r, in, sizeof(in) - 1) ==
	      (long)sizeof(in) - 1);
	CHECK(!r.err && r.msg_done && r.nf == 3 && calls >= 3);
	v = udsp_h1_find(&r, "x-long", &l);
	CHECK(v && l == 20 && !memcmp(v, "0123456789abcdefghij", 20));
	v = udsp_h1_find(&r, "content-type", &l);
	CHECK(v && l == 10 && !memcmp(v, "text/plain", 10));
	free(r.hbuf);

	/* names and values over hmax are too big, as over a fixed hcap */
	calls = 0;
	udsp_h1_res_init(&r, malloc(4), 4, 0, NULL, &calls);
	udsp_h1_res_growable(&r, 40, grow_realloc);
	CHECK(udsp_h1_res_feed(&r, in, sizeof(in) - 1) == -1);
	CHECK(r.err == udsp_h1_err_too_big && r.hcap <= 40);
	free(r.hbuf);
	udsp_h1_res_free(&r);
}

/* ---- the field table: inline, grown, freed ---- */

static int fields_allocs, fields_fail_at;

/* udsp_h1_realloc for the tests: counts, and fails the fields_fail_at'th */
static void *
fields_realloc(void *p, size_t n)
{
	if (++fields_allocs == fields_fail_at)
		return NULL;

	return realloc(p, n);
}

static int
fields_ok(const struct udsp_h1_res *r, int n)
{
	char want[16];
	const char *s;
	size_t l, wl;
	int k;

	if ((int)r->nf != n)
		return 0;
	for (k = 0; k < n; k++) {
		s = udsp_h1_name(r, (unsigned int)k, &l);
		wl = (size_t)snprintf(want, sizeof(want), "X-%d", k);
		if (l != wl || memcmp(s, want, l))
			return 0;
		s = udsp_h1_value(r, (unsigned int)k, &l);
		if (l != wl - 2 || memcmp(s, want + 2, l))
			return 0;
	}

	return 1;
}

static void
test_field_table(void)
{
	static const struct { int n, allocs, cap; } t[] = {
		/* up to 16: no allocation at all (the common path) */
		{ 0, 0, 16 }, { 1, 0, 16 }, { 16, 0, 16 },
		{ 17, 1, 32 }, { 33, 2, 64 }, { 100, 3, 128 },
		{ 128, 3, 128 }, { 129, 3, 128 },
	};
	static char in[16384];
	static char hbuf[8192];
	struct udsp_h1_res r;
	size_t l, i, off, step;
	char *hb;
	long n;
	int calls;

	udsp_h1_realloc = fields_realloc;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		l = many_fields(in, sizeof(in), t[i].n, NULL, 0);
		fields_allocs = 0;
		fields_fail_at = 0;
		udsp_h1_res_init(&r, hbuf, sizeof(hbuf), 0, NULL, NULL);
		n = udsp_h1_res_feed(&r, in, l);
		if (t[i].n <= UDSP_H1_MAX_FIELDS)
			CHECK(n == (long)l && r.head_done &&
			      fields_ok(&r, t[i].n));
		else
			CHECK(n == -1 && r.err == udsp_h1_err_too_many &&
			      r.nf == UDSP_H1_MAX_FIELDS);
		CHECK(fields_allocs == t[i].allocs &&
		      r.fcap == (unsigned int)t[i].cap);
		CHECK((r.f == r.f0) == !t[i].allocs);
		udsp_h1_res_free(&r);
		CHECK(r.f == r.f0 && r.fcap == UDSP_H1_INLINE_FIELDS);
		udsp_h1_res_free(&r);	/* twice is harmless */
	}

	/*
	 * Fields split across many feeds while the table and the block both
	 * grow: every piece size, each piece at the guard page.
	 */
	l = many_fields(in, sizeof(in), 100, NULL, 0);
	for (step = 1; step <= 64; step++) {
		fields_allocs = 0;
		calls = 0;
		hb = malloc(4);
		udsp_h1_res_init(&r, hb, 4, 0, NULL, &calls);
		udsp_h1_res_growable(&r, 8192, grow_realloc);
		for (off = 0, n = 0; off < l && n >= 0; off += (size_t)n)
			n = udsp_h1_res_feed(&r, (const char *)guarded(in + off,
				l - off < step ? l - off : step),
				l - off < step ? l - off : step);
		CHECK(n >= 0 && off == l && r.head_done &&
		      fields_ok(&r, 100) && fields_allocs == 3 && calls > 0);
		free(r.hbuf);
		udsp_h1_res_free(&r);
	}

	/* an interim head's grown table serves the final one: no realloc */
	l = (size_t)snprintf(in, sizeof(in), "HTTP/1.1 103 Early Hints\r\n");
	for (i = 0; i < 20; i++)
		l += (size_t)snprintf(in + l, sizeof(in) - l,
				      "Link: <%zu>\r\n", i);
	l += (size_t)snprintf(in + l, sizeof(in) - l, "\r\n");
	l += many_fields(in + l, sizeof(in) - l, 20, NULL, 0);
	fields_allocs = 0;
	udsp_h1_res_init(&r, hbuf, sizeof(hbuf), 0, NULL, NULL);
	CHECK(udsp_h1_res_feed(&r, in, l) == (long)l && r.status == 200 &&
	      fields_ok(&r, 20) && fields_allocs == 1);
	udsp_h1_res_free(&r);

	/*
	 * Out of memory while growing: the head fails as a bad one (502),
	 * once it has ended, like the other overflows; at any doubling.
	 */
	l = many_fields(in, sizeof(in), 100, NULL, 0);
	for (i = 1; i <= 3; i++) {
		fields_allocs = 0;
		fields_fail_at = (int)i;
		udsp_h1_res_init(&r, hbuf, sizeof(hbuf), 0, NULL, NULL);
		CHECK(udsp_h1_res_feed(&r, in, l - 2) == (long)l - 2 &&
		      !r.err);
		CHECK(udsp_h1_res_feed(&r, in + l - 2, 2) == -1 &&
		      r.err == udsp_h1_err_nomem);
		CHECK(r.nf == 16u << (i - 1) && fields_ok(&r, (int)r.nf));
		udsp_h1_res_free(&r);
	}
	/* a framing error before the end still wins, as with too_many */
	fields_allocs = 0;
	fields_fail_at = 1;
	udsp_h1_res_init(&r, hbuf, sizeof(hbuf), 0, NULL, NULL);
	CHECK(udsp_h1_res_feed(&r, in, l - 2) == (long)l - 2);
	CHECK(udsp_h1_res_feed(&r, "Content-Length: x\r\n\r\n", 21) == -1 &&
	      r.err == udsp_h1_err_framing);
	udsp_h1_res_free(&r);
	fields_fail_at = 0;
	udsp_h1_realloc = realloc;
}

static void
test_find(void)
{
	static const char in[] = S200 "Content-Type: a/b\r\nX-A: 1\r\n"
				 "x-a: 2\r\n\r\n";
	struct udsp_h1_res r;
	char hbuf[256];
	const char *v;
	size_t l;

	udsp_h1_res_init(&r, hbuf, sizeof(hbuf), 0, NULL, NULL);
	CHECK(udsp_h1_res_feed(&r, in, sizeof(in) - 1) ==
	      (long)sizeof(in) - 1);
	CHECK(r.head_done && r.nf == 3);
	v = udsp_h1_find(&r, "content-type", &l);
	CHECK(v && l == 3 && !memcmp(v, "a/b", 3));
	v = udsp_h1_find(&r, "X-a", &l);
	CHECK(v && l == 1 && *v == '1');
	CHECK(!udsp_h1_find(&r, "x-", &l));
	CHECK(!udsp_h1_find(&r, "content-length", &l));
	/* no body callback given: close-delimited body is dropped quietly */
	CHECK(udsp_h1_res_feed(&r, "abc", 3) == 3);
	CHECK(!udsp_h1_res_eof(&r) && r.msg_done && !r.keep_alive);
	CHECK(udsp_h1_res_eof(&r) == 0);

	/* re-init makes the struct reusable for the next response */
	udsp_h1_res_init(&r, hbuf, sizeof(hbuf), 1, NULL, NULL);
	CHECK(udsp_h1_res_feed(&r, S200 "\r\n", sizeof(S200 "\r\n") - 1) ==
	      (long)sizeof(S200 "\r\n") - 1);
	CHECK(r.msg_done && r.keep_alive && r.nf == 0);
}

/* ---- chunk decoder ---- */

struct ccase {
	const char	*name;
	const char	*in;
	size_t		len;
	int		fails;		/* expect -1 */
	long		consumed;
	int		done;
	const char	*out;
};

static const struct ccase ccases[] = {
	{ "simple", "5\r\nhello\r\n0\r\n\r\n", .consumed = ALL, .done = 1,
	  .out = "hello" },
	{ "several", "1\r\na\r\n2\r\nbc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
	  .consumed = ALL, .done = 1, .out = "abc0123456789abcdef" },
	{ "hex case", "a\r\n0123456789\r\nB\r\n0123456789X\r\n0\r\n\r\n",
	  .consumed = ALL, .done = 1,
	  .out = "01234567890123456789X" },
	{ "extensions", "3;a=b;c=\"d e\"\r\nabc\r\n3 ;x\r\ndef\r\n"
	  "0;last\r\n\r\n", .consumed = ALL, .done = 1, .out = "abcdef" },
	{ "BWS", "3 \t ;x\r\nabc\r\n0 \r\n\r\n", .consumed = ALL, .done = 1,
	  .out = "abc" },
	{ "trailers", "3\r\nabc\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n",
	  .consumed = ALL, .done = 1, .out = "abc" },
	{ "leading zeros", "0000000000000000000003\r\nabc\r\n00\r\n\r\n",
	  .consumed = ALL, .done = 1, .out = "abc" },
	{ "empty body", "0\r\n\r\n", .consumed = ALL, .done = 1, .out = "" },
	{ "stops at end", "1\r\nx\r\n0\r\n\r\nPOST / HTTP/1.1\r\n",
	  .consumed = sizeof("1\r\nx\r\n0\r\n\r\n") - 1, .done = 1,
	  .out = "x" },
	{ "binary data", BIN("3\r\n\0\r\n\r\n0\r\n\r\n"), .consumed = ALL,
	  .done = 1, .out = NULL },
	{ "incomplete size", "5", .consumed = ALL, .out = "" },
	{ "incomplete data", "5\r\nhel", .consumed = ALL, .out = "hel" },
	{ "incomplete trailers", "0\r\nX-A: 1\r\n", .consumed = ALL,
	  .out = "" },
	{ "max size", "ffffffffffffffff\r\nab", .consumed = ALL, .out = "ab" },
	{ "bad hex", "g\r\n", .fails = 1 },
	{ "empty size", "\r\n", .fails = 1 },
	{ "sign", "+5\r\nhello\r\n", .fails = 1 },
	{ "0x prefix", "0x5\r\nhello\r\n", .fails = 1 },
	{ "space first", " 5\r\nhello\r\n", .fails = 1 },
	{ "overflow", "10000000000000000\r\n", .fails = 1 },
	{ "bare LF size", "5\nhello\r\n", .fails = 1 },
	{ "CR without LF", "5\rhello\r\n", .fails = 1 },
	{ "no CRLF after data", "2\r\nokXY0\r\n\r\n", .fails = 1 },
	{ "LF only after data", "2\r\nok\n0\r\n\r\n", .fails = 1 },
	{ "junk after size", "5x\r\nhello\r\n", .fails = 1 },
	{ "ws inside size", "5 5\r\nhello\r\n", .fails = 1 },
	{ "LF in extension", "5;a\nb\r\nhello\r\n", .fails = 1 },
	{ "NUL in extension", BIN("5;a\0\r\nhello\r\n"), .fails = 1 },
	{ "bare LF trailer", "0\r\nX-A: 1\n\r\n", .fails = 1 },
	{ "bare LF end", "0\r\n\n", .fails = 1 },
	{ "ctl in trailer", "0\r\nX-A: \001\r\n\r\n", .fails = 1 },
	{ "CR junk end", "0\r\n\rX", .fails = 1 },
};

static int
run_chunk(const struct ccase *c, size_t len, size_t step, size_t split,
	  int inplace, uint8_t *acc, size_t *acclen, long *consumed,
	  int *done)
{
	static uint8_t outbuf[16384];
	struct udsp_chunk_dec d;
	size_t off = 0, piece, ol;
	uint8_t *p, *out;
	long n = 0;

	udsp_chunk_dec_init(&d);
	*acclen = 0;
	while (off < len) {
		if (step)
			piece = len - off < step ? len - off : step;
		else
			piece = off < split ? split - off : len - off;
		p = guarded(c->in + off, piece);
		out = inplace ? p : outbuf;
		ol = 12345;
		n = udsp_chunk_dec_feed(&d, p, piece, out, &ol);
		if (n < 0) {
			CHECK(d.err != NULL);
			break;
		}
		CHECK((size_t)n <= piece && ol <= (size_t)n);
		memcpy(acc + *acclen, out, ol);
		*acclen += ol;
		off += (size_t)n;
		if ((size_t)n < piece) {
			CHECK(d.done);
			break;
		}
	}
	*consumed = (long)off;
	*done = d.done;
	if (n >= 0 && d.done) {
		CHECK(udsp_chunk_dec_feed(&d, (const uint8_t *)"1", 1, outbuf,
					  &ol) == 0 && ol == 0);
	}

	return n < 0;
}

static int
check_chunk(const struct ccase *c, size_t len, size_t step, size_t split,
	    int inplace)
{
	static uint8_t acc[16384];
	const char *want = c->out ? c->out : "\0\r\n";	/* the binary case */
	size_t wlen = c->out ? strlen(c->out) : 3, al;
	int failed, done;
	long consumed;

	failed = run_chunk(c, len, step, split, inplace, acc, &al, &consumed,
			   &done);
	if (failed == c->fails &&
	    (c->fails || (consumed == (c->consumed == ALL ? (long)len :
				       c->consumed) &&
			  done == c->done && al == wlen &&
			  !memcmp(acc, want, wlen))))
		return 0;

	fprintf(stderr, "chunk %s [step %zu split %zu inplace %d]: failed %d "
		"consumed %ld done %d out %zu\n", c->name, step, split,
		inplace, failed, consumed, done, al);

	return 1;
}

static void
test_chunk_case(const struct ccase *c)
{
	size_t len = c->len ? c->len : strlen(c->in), k;
	int inplace, bad = 0;

	for (inplace = 0; inplace < 2; inplace++) {
		bad |= check_chunk(c, len, len, 0, inplace);
		bad |= check_chunk(c, len, 1, 0, inplace);
		for (k = 1; k < len && !bad; k++)
			bad |= check_chunk(c, len, 0, k, inplace);
	}
	CHECK(!bad);
}

static void
test_chunk_limits(void)
{
	static uint8_t in[40000], out[40000];
	struct udsp_chunk_dec d;
	size_t l, ol;

	/* a size line with extensions up to the limit, then one byte over */
	udsp_chunk_dec_init(&d);
	l = (size_t)snprintf((char *)in, sizeof(in), "1;");
	memset(in + l, 'e', 4094 - l);
	l = 4094;	/* with its CRLF, exactly CHUNK_LINE_MAX */
	memcpy(in + l, "\r\nx\r\n0\r\n\r\n", 10);
	CHECK(udsp_chunk_dec_feed(&d, in, l + 10, out, &ol) ==
	      (long)l + 10 && d.done && ol == 1 && out[0] == 'x');
	udsp_chunk_dec_init(&d);
	memset(in + 2, 'e', 4096);
	CHECK(udsp_chunk_dec_feed(&d, in, 4098, out, &ol) == -1 && d.err &&
	      strstr(d.err, "too long"));

	/* trailers: many short lines add up to too much */
	udsp_chunk_dec_init(&d);
	memcpy(in, "0\r\n", 3);
	for (l = 3; l + 10 < 20000; l += 10)
		memcpy(in + l, "X-Aa: 12\r\n", 10);
	CHECK(udsp_chunk_dec_feed(&d, in, l, out, &ol) == -1 && d.err &&
	      strstr(d.err, "too long"));

	/* in-place decoding across a large body */
	udsp_chunk_dec_init(&d);
	l = 0;
	for (ol = 0; ol < 100; ol++)
		l += (size_t)snprintf((char *)in + l, sizeof(in) - l,
				      "%zx\r\n%0*zu\r\n", ol + 1, (int)ol + 1,
				      ol);
	l += (size_t)snprintf((char *)in + l, sizeof(in) - l, "0\r\n\r\n");
	CHECK(udsp_chunk_dec_feed(&d, in, l, in, &ol) == (long)l && d.done);
	CHECK(ol == 5050 && !memcmp(in, "001002", 6));
}

static void
test_chunk_hdr(void)
{
	char b[20];

	CHECK(udsp_chunk_hdr(b, 0) == 3 && !memcmp(b, "0\r\n", 3));
	CHECK(udsp_chunk_hdr(b, 255) == 4 && !memcmp(b, "ff\r\n", 4));
	CHECK(udsp_chunk_hdr(b, 4096) == 6 && !memcmp(b, "1000\r\n", 6));
	CHECK(udsp_chunk_hdr(b, SIZE_MAX) == 18 &&
	      !memcmp(b, "ffffffffffffffff\r\n", 18));
}

/* The ws relay's handshake: 101 ends the message, frames stay unread. */
static void
test_upgrade_ok(void)
{
	static const char in[] = "HTTP/1.1 100 Continue\r\n\r\n"
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
		"\x81\x02hi";
	struct udsp_h1_res *r = calloc(1, sizeof(*r));
	char hbuf[512];
	const char *v;
	size_t vl;
	long n;

	udsp_h1_res_init(r, hbuf, sizeof(hbuf), 0, NULL, NULL);
	r->upgrade_ok = 1;
	n = udsp_h1_res_feed(r, in, sizeof(in) - 1);
	CHECK(n == (long)sizeof(in) - 1 - 4);
	CHECK(r->status == 101 && r->head_done && r->msg_done);
	v = udsp_h1_find(r, "sec-websocket-protocol", &vl);
	CHECK(v && vl == 4 && !memcmp(v, "chat", 4));
	/* a 200 is still a 200 with a body */
	udsp_h1_res_init(r, hbuf, sizeof(hbuf), 0, NULL, NULL);
	r->upgrade_ok = 1;
	n = udsp_h1_res_feed(r, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
				"\r\nok", 40);
	CHECK(n == 40 && r->status == 200 && r->msg_done);
	udsp_h1_res_free(r);
	free(r);
}

int
main(void)
{
	size_t i;

	guard_init();

	for (i = 0; i < sizeof(rcases) / sizeof(rcases[0]); i++)
		test_res_case(&rcases[i]);
	test_res_generated();
	test_find();
	test_grow();
	test_field_table();
	test_upgrade_ok();

	for (i = 0; i < sizeof(ccases) / sizeof(ccases[0]); i++)
		test_chunk_case(&ccases[i]);
	test_chunk_limits();
	test_chunk_hdr();

	return T_END();
}
