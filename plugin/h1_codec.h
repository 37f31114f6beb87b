/* SPDX-License-Identifier: MIT
 *
 * HTTP/1.1 codec toward the backend.  Pure: no lws calls.
 *
 *  - udsp_h1_res_*: incremental response parser (status line, every header
 *    kept in order, body framing by Content-Length / chunked / close).
 *    Interim 1xx responses are consumed and hidden; 101 is an error
 *    unless upgrade_ok is set (the WebSocket relay's handshake): then it
 *    is a final head with no body.
 *  - udsp_chunk_dec_*: incremental de-chunker for h1 chunked *request*
 *    bodies, which lws 4.1.6 hands over raw and never completes, and for
 *    the parser's chunked response bodies (h1_chunk.c).
 *  - udsp_chunk_hdr(): chunk-size line for framing toward h1 clients.
 *
 * The caller owns every buffer but a field table grown past the inline one
 * (udsp_h1_res_free()); header names and values point into the caller's
 * hbuf and stay valid until the next udsp_h1_res_init().
 */
#ifndef UDSP_H1_CODEC_H
#define UDSP_H1_CODEC_H

#include <stdint.h>
#include <stddef.h>
#define UDSP_H1_MAX_FIELDS 128
/*
 * Fields kept inline in struct udsp_h1_res: heads with more grow a heap
 * table (doubling, up to UDSP_H1_MAX_FIELDS), freed by udsp_h1_res_free().
 * Typical heads have about ten fields; 128 inline was 2 KiB per relay in
 * flight (issue 14, docs/scaling.md "Peak RSS").
 */
#define UDSP_H1_INLINE_FIELDS 16

/* State of the chunked-framing decoder (functions further down). */
struct udsp_chunk_dec {
	int		state;		/* private */
	uint64_t	remain;		/* private */
	unsigned int	linelen;	/* private: bytes of size/ext/trailer line */
	unsigned int	done:1;		/* final chunk and trailers consumed */
	const char	*err;
};

struct udsp_h1_field {
	uint32_t	name_off, name_len;	/* into hbuf */
	uint32_t	val_off, val_len;	/* into hbuf */
};

/* Called for each run of decoded body bytes, in order.  Return 0, or
 * non-zero to fail the parse. */
typedef int (*udsp_h1_body_cb)(void *user, const char *data, size_t len);

/* Give the header block more room: return hbuf moved to (or grown in
 * place to) ncap bytes, contents kept, or NULL.  Offsets stay valid. */
typedef char *(*udsp_h1_grow_cb)(void *user, char *hbuf, size_t ncap);

struct udsp_h1_res {
	char			*hbuf;		/* borrowed: caller's storage */
	size_t			hcap, hlen;
	unsigned int		nf;
	unsigned int		fcap;		/* entries f points to */
	struct udsp_h1_field	*f;		/* f0, or the heap table */

	int			status;		/* final status, once head_done */
	int64_t			content_length;	/* -1: none given */
	const char		*err;		/* set when feed returns -1 */

	udsp_h1_body_cb		body_cb;
	void			*user;
	udsp_h1_grow_cb		grow;		/* NULL: hbuf stays hcap */
	size_t			hmax;		/* grow() up to this */

	unsigned int		head_req:1;	/* response to HEAD: no body */
	unsigned int		upgrade_ok:1;	/* 101 ends the message (set
						 * after udsp_h1_res_init()) */
	unsigned int		head_done:1;	/* final head parsed */
	unsigned int		msg_done:1;	/* whole message parsed */
	unsigned int		chunked:1;	/* backend used chunked */
	unsigned int		keep_alive:1;	/* valid once msg_done */
	unsigned int		close_delim:1;	/* body ends at EOF */

	/* private: parser state (h1_codec.c) */
	struct udsp_chunk_dec	cd;		/* chunked response bodies */
	uint64_t		remain;		/* content-length body left */
	uint64_t		cl_acc;		/* Content-Length being read */
	size_t			hroom;		/* head bytes still allowed */
	const char		*herr;		/* deferred overflow verdict */
	unsigned int		te_ntok;	/* Transfer-Encoding codings */
	uint16_t		status_acc;
	uint8_t			hs, hidx, major, minor;
	uint8_t			special, vs, nlen, toklen, tokws;
	char			nbuf[18];	/* lower-case name start */
	char			tok[12];	/* lower-case list element */
	unsigned int		saw_cl:1, saw_te:1, te_chunked:1;
	unsigned int		conn_close:1, conn_ka:1, stored:1;

	/*
	 * Last, and not cleared by udsp_h1_res_init(): only f[0..nf) is ever
	 * read, and zeroing the table per response showed in profiles.
	 */
	struct udsp_h1_field	f0[UDSP_H1_INLINE_FIELDS];
};

/* Error strings (comparable by pointer) */
extern const char udsp_h1_err_parse[];		/* malformed per parser */
extern const char udsp_h1_err_too_big[];	/* header block > hcap */
extern const char udsp_h1_err_too_many[];	/* > UDSP_H1_MAX_FIELDS */
extern const char udsp_h1_err_bad_value[];	/* CR/LF/NUL/ctl in value */
extern const char udsp_h1_err_framing[];	/* CL+TE, two CLs, bad CL, bad TE,
						 * bad chunk framing */
extern const char udsp_h1_err_upgrade[];	/* 101 / upgrade */
extern const char udsp_h1_err_truncated[];	/* EOF before message end */
extern const char udsp_h1_err_body_cb[];	/* body_cb returned non-zero */
extern const char udsp_h1_err_nomem[];		/* field table not grown */

/*
 * How the field table grows past f0 (realloc; tests swap it to fail).
 * Called with NULL for the first heap table.
 */
extern void *(*udsp_h1_realloc)(void *p, size_t n);

/*
 * Prepare r for one response.  hbuf/hcap bound the whole header block
 * (names + values).  head_req: the request was HEAD, so no body follows
 * whatever the headers say.  An r used before must have been through
 * udsp_h1_res_free() (its grown field table would leak otherwise).
 */
void
udsp_h1_res_init(struct udsp_h1_res *r, char *hbuf, size_t hcap,
		 int head_req, udsp_h1_body_cb cb, void *user);

/*
 * Free what the parser allocated (a grown field table; never hbuf) and
 * point r at its inline table again.  Safe on an r that was zeroed up to
 * f0 and never initialised, and twice.
 */
void
udsp_h1_res_free(struct udsp_h1_res *r);

/*
 * Let the header block start small (the hcap given to init) and grow through
 * grow() up to hmax bytes as a response needs it.
 */
void
udsp_h1_res_growable(struct udsp_h1_res *r, size_t hmax,
		     udsp_h1_grow_cb grow);

/*
 * Feed len bytes.  Returns bytes consumed (which is len unless the message
 * completed inside this buffer: then the count up to its end, and any rest
 * belongs to no request), or -1 with r->err set.  head_done / msg_done flip
 * during the call; body bytes reach body_cb before it returns.
 */
long
udsp_h1_res_feed(struct udsp_h1_res *r, const char *in, size_t len);

/*
 * The backend closed.  Returns 0 if the message is complete (a close-
 * delimited body ends here properly), -1 (r->err = truncated) if not.
 */
int
udsp_h1_res_eof(struct udsp_h1_res *r);

/* Accessors for field i < r->nf (pointers into hbuf, not NUL-terminated) */
static inline const char *
udsp_h1_name(const struct udsp_h1_res *r, unsigned int i, size_t *len)
{
	*len = r->f[i].name_len;
	return r->hbuf + r->f[i].name_off;
}

static inline const char *
udsp_h1_value(const struct udsp_h1_res *r, unsigned int i, size_t *len)
{
	*len = r->f[i].val_len;
	return r->hbuf + r->f[i].val_off;
}

/*
 * Find the first header named name (case-insensitive); returns its value
 * and length, or NULL.
 */
const char *
udsp_h1_find(const struct udsp_h1_res *r, const char *name, size_t *len);


void
udsp_chunk_dec_init(struct udsp_chunk_dec *d);

/*
 * Decode chunked framing.  Consumes from in[0..len), writes payload bytes to
 * out (out may equal in: decoding in place is safe), *outlen = bytes
 * written.  Returns bytes consumed: len, or fewer when the body ended
 * (d->done) inside in; -1 with d->err set on malformed framing (bad hex,
 * size overflow, missing CRLF, over-long line).  Trailers are discarded.
 */
long
udsp_chunk_dec_feed(struct udsp_chunk_dec *d, const uint8_t *in, size_t len,
		    uint8_t *out, size_t *outlen);

/*
 * The same, with each run of payload handed to emit(arg, p, n) instead of
 * copied (the parser's chunked response bodies).  An emit() that fails
 * fails the decoder with d->err == udsp_chunk_err_emit.
 */
long
udsp_chunk_dec_run(struct udsp_chunk_dec *d, const uint8_t *in, size_t len,
		   int (*emit)(void *arg, const uint8_t *p, size_t n),
		   void *arg);
extern const char udsp_chunk_err_emit[];

/* Write "<hex n>\r\n" into buf (>= 20 bytes); returns its length. */
size_t
udsp_chunk_hdr(char *buf, size_t n);

#endif
