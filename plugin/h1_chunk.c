/* SPDX-License-Identifier: MIT
 *
 * The strict resumable chunked decoder (RFC 9112 7.1) of the HTTP/1.1
 * codec, used both for client request bodies and backend response bodies
 * (h1_codec.c), and the chunk-size line we frame with.  No lws calls, no
 * allocation: every buffer belongs to the caller.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdio.h>

#include "h1_codec.h"

static const char err_chunk_size[] = "bad chunk size";
static const char err_chunk_ovf[] = "chunk size overflow";
static const char err_chunk_crlf[] = "missing CRLF in chunked framing";
static const char err_chunk_line[] = "chunk size or trailer line too long";
static const char err_chunk_ctl[] = "control character in chunk line";
const char udsp_chunk_err_emit[] = "chunk payload consumer failed";

/*
 * Bounds on what the decoder will read without making progress: a size line
 * with extensions, one trailer line, and all trailers together.  Generous
 * for real peers, small enough that nobody can keep us spinning on one line.
 */
#define CHUNK_LINE_MAX		4096
#define CHUNK_TRAILERS_MAX	16384

enum {
	CS_SIZE0,	/* first hex digit of a size line */
	CS_SIZE,	/* more hex digits */
	CS_SIZE_WS,	/* BWS between size and ';' (RFC 9112 7.1.1) */
	CS_EXT,		/* chunk extensions: ignored up to CR */
	CS_SIZE_LF,
	CS_DATA,
	CS_DATA_CR,
	CS_DATA_LF,
	CS_TRL0,	/* start of a trailer line, or the final CRLF */
	CS_TRL,
	CS_TRL_LF,
	CS_END_LF,
};

static int
is_bad_ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

void
udsp_chunk_dec_init(struct udsp_chunk_dec *d)
{
	memset(d, 0, sizeof(*d));
	d->state = CS_SIZE0;
}

static int
hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;

	return -1;
}

static long
chunk_fail(struct udsp_chunk_dec *d, const char *err)
{
	d->err = err;

	return -1;
}

/*
 * The decoder proper: a resumable byte loop (RFC 9112 7.1) that hands each
 * run of payload to emit().  Bare LF is refused everywhere: the peer's
 * framing must be unambiguous, since we re-frame what we pass on.
 */
long
udsp_chunk_dec_run(struct udsp_chunk_dec *d, const uint8_t *in, size_t len,
		   int (*emit)(void *arg, const uint8_t *p, size_t n),
		   void *arg)
{
	size_t i = 0, n;
	uint8_t c;
	int v;

	if (d->err)
		return -1;

	while (i < len && !d->done) {
		if (d->state == CS_DATA) {
			n = len - i;
			if (n > d->remain)
				n = (size_t)d->remain;
			if (emit(arg, in + i, n))
				return chunk_fail(d, udsp_chunk_err_emit);
			i += n;
			d->remain -= n;
			if (!d->remain)
				d->state = CS_DATA_CR;
			continue;
		}

		c = in[i++];
		if (d->state != CS_DATA_CR && d->state != CS_DATA_LF &&
		    ++d->linelen > CHUNK_LINE_MAX)
			return chunk_fail(d, err_chunk_line);
		/* once the data is over, remain counts trailer bytes */
		if (d->state >= CS_TRL0 && ++d->remain > CHUNK_TRAILERS_MAX)
			return chunk_fail(d, err_chunk_line);

		switch (d->state) {
		case CS_SIZE0:
			v = hexval(c);
			if (v < 0)
				return chunk_fail(d, err_chunk_size);
			d->remain = (uint64_t)v;
			d->state = CS_SIZE;
			break;
		case CS_SIZE:
			v = hexval(c);
			if (v >= 0) {
				if (d->remain > (UINT64_MAX >> 4))
					return chunk_fail(d, err_chunk_ovf);
				d->remain = (d->remain << 4) | (uint64_t)v;
				break;
			}
			/* fallthrough */
		case CS_SIZE_WS:
			if (c == ' ' || c == '\t')
				d->state = CS_SIZE_WS;
			else if (c == ';')
				d->state = CS_EXT;
			else if (c == '\r')
				d->state = CS_SIZE_LF;
			else
				return chunk_fail(d, err_chunk_size);
			break;
		case CS_EXT:
			if (c == '\r')
				d->state = CS_SIZE_LF;
			else if (is_bad_ctl(c))
				return chunk_fail(d, err_chunk_ctl);
			break;
		case CS_SIZE_LF:
			if (c != '\n')
				return chunk_fail(d, err_chunk_crlf);
			d->linelen = 0;
			d->state = d->remain ? CS_DATA : CS_TRL0;
			break;
		case CS_DATA_CR:
			if (c != '\r')
				return chunk_fail(d, err_chunk_crlf);
			d->state = CS_DATA_LF;
			break;
		case CS_DATA_LF:
			if (c != '\n')
				return chunk_fail(d, err_chunk_crlf);
			d->linelen = 0;
			d->state = CS_SIZE0;
			break;
		case CS_TRL0:
			if (c == '\r') {
				d->state = CS_END_LF;
				break;
			}
			d->state = CS_TRL;
			/* fallthrough */
		case CS_TRL:
			if (c == '\r')
				d->state = CS_TRL_LF;
			else if (is_bad_ctl(c))
				return chunk_fail(d, err_chunk_ctl);
			break;
		case CS_TRL_LF:
			if (c != '\n')
				return chunk_fail(d, err_chunk_crlf);
			d->linelen = 0;
			d->state = CS_TRL0;
			break;
		case CS_END_LF:
			if (c != '\n')
				return chunk_fail(d, err_chunk_crlf);
			d->done = 1;
			break;
		default:
			return chunk_fail(d, err_chunk_size);
		}
	}

	return (long)i;
}

struct copy_out {
	uint8_t		*out;		/* borrowed: caller's buffer */
	size_t		len;
};

static int
emit_copy(void *arg, const uint8_t *p, size_t n)
{
	struct copy_out *o = arg;

	/* memmove: out may alias in, and always trails it */
	memmove(o->out + o->len, p, n);
	o->len += n;

	return 0;
}

long
udsp_chunk_dec_feed(struct udsp_chunk_dec *d, const uint8_t *in, size_t len,
		    uint8_t *out, size_t *outlen)
{
	struct copy_out o = { out, 0 };
	long n;

	n = udsp_chunk_dec_run(d, in, len, emit_copy, &o);
	*outlen = o.len;

	return n;
}

size_t
udsp_chunk_hdr(char *buf, size_t n)
{
	int l = snprintf(buf, 20, "%zx\r\n", n);

	return l < 0 ? 0 : (size_t)l;
}
