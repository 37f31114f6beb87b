/* SPDX-License-Identifier: MIT
 *
 * libFuzzer driver for plugin/h1_codec.c and h1_chunk.c.  The input is
 * parsed as a backend response and decoded as a chunked body, once whole
 * and once in pieces whose sizes come from the first bytes; both runs must
 * agree, every result must stay inside the caller's buffers, and every
 * field kept must be a valid name and value (the relay relies on it).  The
 * split run also starts with a small header block that grows (as the relay
 * does).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h1_codec.h"
#include "headers.h"

#define ASSERT(x) do { if (!(x)) abort(); } while (0)

struct res_out {
	const char	*err;
	long		consumed;
	int		eof_ret;
	unsigned int	head_done, msg_done, chunked, close_delim, ka, nf;
	int		status;
	int64_t		cl;
	uint64_t	blen, bhash;
	uint64_t	hhash;
};

static int
is_err(const char *e)
{
	return e == udsp_h1_err_parse || e == udsp_h1_err_too_big ||
	       e == udsp_h1_err_too_many || e == udsp_h1_err_bad_value ||
	       e == udsp_h1_err_framing || e == udsp_h1_err_upgrade ||
	       e == udsp_h1_err_truncated || e == udsp_h1_err_body_cb;
}

static uint64_t
hash(uint64_t h, const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len--)
		h = (h ^ *b++) * 0x100000001b3ull;

	return h;
}

static int
body_cb(void *user, const char *data, size_t len)
{
	struct res_out *o = user;

	ASSERT(len);
	o->blen += len;
	o->bhash = hash(o->bhash, data, len);

	return 0;
}

/* Piece sizes from a tiny xorshift seeded by the control bytes. */
static size_t
next_piece(uint32_t *s, size_t left)
{
	size_t n;

	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	n = (*s & 7) ? (*s >> 8) % 16 + 1 : (*s >> 8) % 512 + 1;

	return n < left ? n : left;
}

static char *
grow_cb(void *user, char *hbuf, size_t ncap)
{
	(void)user;

	return realloc(hbuf, ncap);
}

/*
 * seed == 0: one piece, a fixed block of hcap.  Otherwise pieces, and a
 * block that starts smaller and grows to hcap: the verdicts must agree.
 */
static void
run_res(const uint8_t *in, size_t len, int head_req, size_t hcap,
	uint32_t seed, struct res_out *o)
{
	static char fixed[8192];
	struct udsp_h1_res r;
	size_t off = 0, piece, i, nl, vl, first = hcap;
	const char *nm, *v;
	char *copy, *hbuf = fixed;
	long n = 0;

	memset(o, 0, sizeof(*o));
	if (seed) {
		first = seed % hcap + 1;
		hbuf = malloc(first);
		ASSERT(hbuf);
	}
	udsp_h1_res_init(&r, hbuf, first, head_req, body_cb, o);
	if (seed)
		udsp_h1_res_growable(&r, hcap, grow_cb);

	while (off < len) {
		piece = seed ? next_piece(&seed, len - off) : len - off;
		/* exact-size copy so ASan sees any read past the piece */
		copy = malloc(piece);
		ASSERT(copy);
		memcpy(copy, in + off, piece);
		n = udsp_h1_res_feed(&r, copy, piece);
		free(copy);
		if (n < 0)
			break;
		ASSERT((size_t)n <= piece);
		off += (size_t)n;
		if ((size_t)n < piece) {
			ASSERT(r.msg_done);
			break;
		}
	}
	o->eof_ret = n < 0 ? -1 : udsp_h1_res_eof(&r);
	if (o->eof_ret) {
		ASSERT(is_err(r.err));
		ASSERT(udsp_h1_res_feed(&r, "x", 1) == -1);
	} else {
		ASSERT(!r.err && r.msg_done);
	}

	ASSERT(r.nf <= UDSP_H1_MAX_FIELDS && r.hlen <= hcap);
	ASSERT(r.nf <= r.fcap && r.fcap <= UDSP_H1_MAX_FIELDS &&
	       (r.f == r.f0) == (r.fcap == UDSP_H1_INLINE_FIELDS));
	o->hhash = 0;
	for (i = 0; i < r.nf; i++) {
		nm = udsp_h1_name(&r, i, &nl);
		v = udsp_h1_value(&r, i, &vl);
		ASSERT(nl && nm >= r.hbuf && nm + nl <= r.hbuf + r.hlen);
		ASSERT(v >= r.hbuf && v + vl <= r.hbuf + r.hlen);
		ASSERT(!memchr(nm, ':', nl) && !memchr(v, '\r', vl) &&
		       !memchr(v, '\n', vl) && !memchr(v, '\0', vl));
		/* the relay forwards fields without checking them again */
		ASSERT(udsp_hdr_name_ok(nm, nl) && udsp_hdr_value_ok(v, vl));
		o->hhash = hash(hash(o->hhash, nm, nl), v, vl);
	}

	if (r.msg_done) {
		ASSERT(r.head_done);
		ASSERT(!(r.close_delim && r.keep_alive));
		ASSERT(!(r.close_delim && r.chunked));
		ASSERT(r.status >= 200 && r.status <= 999);
		if (r.content_length >= 0 && !r.chunked && !head_req &&
		    r.status != 204 && r.status != 304)
			ASSERT(o->blen == (uint64_t)r.content_length);
		if (head_req || r.status == 204 || r.status == 304)
			ASSERT(!o->blen);
	}

	o->err = r.err;
	o->consumed = (long)off;
	o->head_done = r.head_done;
	o->msg_done = r.msg_done;
	o->chunked = r.chunked;
	o->close_delim = r.close_delim;
	o->ka = r.keep_alive;
	o->nf = r.nf;
	o->status = r.status;
	o->cl = r.content_length;
	if (r.hbuf != fixed)
		free(r.hbuf);
	/* a grown field table is the parser's: LeakSanitizer checks this */
	udsp_h1_res_free(&r);
}

static long
run_chunk(const uint8_t *in, size_t len, uint32_t seed, int inplace,
	  uint8_t *acc, size_t *acclen, int *done)
{
	struct udsp_chunk_dec d;
	size_t off = 0, piece, ol;
	uint8_t *copy, *out;
	long n = 0;

	udsp_chunk_dec_init(&d);
	*acclen = 0;
	while (off < len) {
		piece = seed ? next_piece(&seed, len - off) : len - off;
		copy = malloc(piece);
		out = inplace ? copy : malloc(piece);
		ASSERT(copy && out);
		memcpy(copy, in + off, piece);
		n = udsp_chunk_dec_feed(&d, copy, piece, out, &ol);
		if (n >= 0) {
			ASSERT((size_t)n <= piece && ol <= (size_t)n);
			memcpy(acc + *acclen, out, ol);
			*acclen += ol;
		}
		if (!inplace)
			free(out);
		free(copy);
		if (n < 0) {
			ASSERT(d.err);
			break;
		}
		off += (size_t)n;
		if ((size_t)n < piece) {
			ASSERT(d.done);
			break;
		}
	}
	*done = d.done;

	return n < 0 ? -1 : (long)off;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t hcaps[] = { 4096, 16, 256, 8192 };
	struct res_out whole, split;
	uint8_t *acc1, *acc2;
	size_t l1, l2;
	int d1, d2;
	long c1, c2;
	uint32_t seed;
	uint8_t ctl;

	if (size < 3)
		return 0;
	ctl = data[0];
	seed = (uint32_t)data[1] << 8 | data[2] | 1u;
	data += 3;
	size -= 3;

	run_res(data, size, ctl & 1, hcaps[(ctl >> 1) & 3], 0, &whole);
	run_res(data, size, ctl & 1, hcaps[(ctl >> 1) & 3], seed, &split);
	ASSERT(whole.err == split.err && whole.eof_ret == split.eof_ret);
	if (!whole.err) {
		ASSERT(whole.consumed == split.consumed);
		ASSERT(whole.msg_done == split.msg_done &&
		       whole.head_done == split.head_done &&
		       whole.chunked == split.chunked &&
		       whole.close_delim == split.close_delim &&
		       whole.ka == split.ka && whole.status == split.status &&
		       whole.cl == split.cl && whole.nf == split.nf &&
		       whole.hhash == split.hhash);
		ASSERT(whole.blen == split.blen &&
		       whole.bhash == split.bhash);
	}

	acc1 = malloc(size + 1);
	acc2 = malloc(size + 1);
	ASSERT(acc1 && acc2);
	c1 = run_chunk(data, size, 0, 0, acc1, &l1, &d1);
	c2 = run_chunk(data, size, seed, !!(ctl & 8), acc2, &l2, &d2);
	ASSERT((c1 < 0) == (c2 < 0));
	if (c1 >= 0) {
		ASSERT(c1 == c2 && d1 == d2 && l1 == l2 &&
		       !memcmp(acc1, acc2, l1));
		ASSERT(l1 <= (size_t)c1);
	}
	free(acc1);
	free(acc2);

	return 0;
}
