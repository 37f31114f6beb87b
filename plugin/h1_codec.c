/* SPDX-License-Identifier: MIT
 *
 * HTTP/1.1 codec toward the backend: a strict, resumable response head
 * parser (RFC 9112) and body framing by Content-Length / chunked / close;
 * the chunked decoder it uses is h1_chunk.c.  No lws calls; the only
 * allocation is the field table of a head with more fields than fit
 * inline (udsp_h1_res_free()): every other buffer belongs to the caller.
 *
 * The head parser is ours, not libhttp-parser's: per-request profiles had
 * that parser plus the byte scan we ran in front of it for strictness (it
 * is built non-strict on Debian) at about a sixth of the relay's
 * instructions.  One pass now does both, with the same verdicts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "h1_codec.h"
#include "headers.h"

const char udsp_h1_err_parse[] = "malformed HTTP/1 response";
const char udsp_h1_err_too_big[] = "response header block too large";
const char udsp_h1_err_too_many[] = "too many response header fields";
const char udsp_h1_err_bad_value[] = "forbidden character or obs-fold in "
				     "response header";
const char udsp_h1_err_framing[] = "ambiguous or invalid response framing";
const char udsp_h1_err_upgrade[] = "backend tried to switch protocols";
const char udsp_h1_err_truncated[] = "backend closed before response end";
const char udsp_h1_err_body_cb[] = "response body consumer failed";
const char udsp_h1_err_nomem[] = "out of memory for response header fields";

void *(*udsp_h1_realloc)(void *p, size_t n) = realloc;

/* Head parser states (r->hs) */
enum {
	HS_START,	/* before the status line: CR/LF skipped */
	HS_MAGIC,	/* matching "HTTP/" (case-sensitive, RFC 9112 2.3) */
	HS_MAJOR,
	HS_DOT,
	HS_MINOR,
	HS_VEREND,	/* the SP after the version */
	HS_STATUS0,	/* more SP, or the first status digit */
	HS_STATUS,
	HS_REASON,
	HS_FIRST_CR,
	HS_LINE0,	/* start of a field line, or the empty line */
	HS_NAME,
	HS_VWS,		/* OWS before the value: not part of it */
	HS_VALUE,
	HS_VALUE_CR,
	HS_END_CR,
};

/* Fields whose value decides the framing (r->special) */
enum { SP_NONE, SP_CL, SP_TE, SP_CONN };

/* Content-Length value states (r->vs) */
enum { CLV_START, CLV_DIGITS, CLV_WS };

static const char http_magic[] = "HTTP/";

/*
 * Raw head bytes allowed beyond the stored names and values (status line,
 * ": ", OWS, line ends): past that the head is too big at once, however
 * it is split, instead of being read to its end first.
 */
#define UDSP_H1_HEAD_SLACK	8192

/* 1: ends or spoils a field value (CTLs but HTAB, and DEL) */
static const uint8_t vstop[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1,		/* 0x00 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,		/* 0x10 */
	[0x7f] = 1,
};

static unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

static long
head_fail(struct udsp_h1_res *r, const char *err)
{
	r->err = err;
	/* a field begun by a byte that turned out not to be a name */
	if (r->stored && r->nf && !r->f[r->nf - 1].name_len)
		r->nf--;

	return -1;
}

/* the per-message part of the state: also after each interim 1xx head */
static void
head_reset(struct udsp_h1_res *r)
{
	r->nf = 0;
	r->hlen = 0;
	r->herr = NULL;
	r->hs = HS_START;
	r->hidx = 0;
	r->status_acc = 0;
	r->saw_cl = 0;
	r->saw_te = 0;
	r->te_ntok = 0;
	r->te_chunked = 0;
	r->conn_close = 0;
	r->conn_ka = 0;
	r->cl_acc = 0;
	r->hroom = (r->hmax > r->hcap ? r->hmax : r->hcap) +
		   UDSP_H1_HEAD_SLACK;
}

/*
 * Running out of room (bytes or fields) is only reported once the head has
 * ended, unless a malformed byte or framing error comes first: the verdict
 * must not depend on how the reads split the input.  Nothing more is
 * stored after the first overflow.
 */
static int
hbuf_room(struct udsp_h1_res *r, size_t len)
{
	size_t n;
	char *nb;

	if (r->herr)
		return 0;
	if (len <= r->hcap - r->hlen)
		return 1;
	if (r->grow && len <= r->hmax - r->hlen) {
		n = r->hcap * 2 < r->hmax ? r->hcap * 2 : r->hmax;
		if (n < r->hlen + len)
			n = r->hlen + len;
		nb = r->grow(r->user, r->hbuf, n);
		if (nb) {
			r->hbuf = nb;
			r->hcap = n;
			return 1;
		}
	}
	r->herr = udsp_h1_err_too_big;

	return 0;
}

static void
store(struct udsp_h1_res *r, const unsigned char *p, size_t n, int value)
{
	struct udsp_h1_field *f;

	if (!r->stored)
		return;
	if (!hbuf_room(r, n)) {
		/* no field with an empty name left behind */
		if (!value && !r->f[r->nf - 1].name_len)
			r->nf--;
		r->stored = 0;
		return;
	}
	f = &r->f[r->nf - 1];
	memcpy(r->hbuf + r->hlen, p, n);
	r->hlen += n;
	if (value)
		f->val_len += (uint32_t)n;
	else
		f->name_len += (uint32_t)n;
}

/*
 * The table is full: double it, up to UDSP_H1_MAX_FIELDS.  Returns 0, or
 * -1 with r->herr set (deferred like the other overflows, so the verdict
 * does not depend on how the input was split).
 */
static int
fields_grow(struct udsp_h1_res *r)
{
	unsigned int n = r->fcap * 2;
	struct udsp_h1_field *nf;

	if (r->fcap >= UDSP_H1_MAX_FIELDS) {
		r->herr = udsp_h1_err_too_many;
		return -1;
	}
	if (n > UDSP_H1_MAX_FIELDS)
		n = UDSP_H1_MAX_FIELDS;
	nf = udsp_h1_realloc(r->f == r->f0 ? NULL : r->f, n * sizeof(*nf));
	if (!nf) {
		r->herr = udsp_h1_err_nomem;
		return -1;
	}
	if (r->f == r->f0)
		memcpy(nf, r->f0, r->nf * sizeof(*nf));
	r->f = nf;
	r->fcap = n;

	return 0;
}

static void
field_begin(struct udsp_h1_res *r)
{
	struct udsp_h1_field *f;

	r->nlen = 0;
	r->stored = 0;
	if (r->herr)
		return;
	if (r->nf == r->fcap && fields_grow(r))
		return;
	f = &r->f[r->nf++];
	f->name_off = f->val_off = (uint32_t)r->hlen;
	f->name_len = f->val_len = 0;
	r->stored = 1;
}

/* the name has ended at its ':' */
static void
name_end(struct udsp_h1_res *r)
{
	r->special = SP_NONE;
	if (r->nlen == 14 && !memcmp(r->nbuf, "content-length", 14))
		r->special = SP_CL;
	else if (r->nlen == 17 && !memcmp(r->nbuf, "transfer-encoding", 17)) {
		r->special = SP_TE;
		r->saw_te = 1;
	} else if (r->nlen == 10 && !memcmp(r->nbuf, "connection", 10))
		r->special = SP_CONN;
	r->vs = CLV_START;
	r->toklen = 0;
	r->tokws = 0;
	if (r->stored)
		r->f[r->nf - 1].val_off = (uint32_t)r->hlen;
}

/* one element of a Transfer-Encoding or Connection list has ended */
static void
token_end(struct udsp_h1_res *r)
{
	if (!r->toklen)
		return;		/* empty list elements don't count */
	if (r->special == SP_TE) {
		r->te_ntok++;
		r->te_chunked = r->toklen == 7 && !memcmp(r->tok, "chunked", 7);
	} else if (r->toklen == 5 && !memcmp(r->tok, "close", 5))
		r->conn_close = 1;
	else if (r->toklen == 10 && !memcmp(r->tok, "keep-alive", 10))
		r->conn_ka = 1;
	r->toklen = 0;
	r->tokws = 0;
}

/* A value byte of a field that decides the framing; 0, or -1 on error */
static int
special_byte(struct udsp_h1_res *r, unsigned char c)
{
	int ws = c == ' ' || c == '\t';

	switch (r->special) {
	case SP_CL:
		switch (r->vs) {
		case CLV_START:
			/* the second Content-Length, even an equal one */
			if (r->saw_cl || c < '0' || c > '9')
				return -1;
			r->saw_cl = 1;
			r->vs = CLV_DIGITS;
			r->cl_acc = (uint64_t)(c - '0');
			return 0;
		case CLV_DIGITS:
			if (ws) {
				r->vs = CLV_WS;
				return 0;
			}
			if (c < '0' || c > '9' ||
			    r->cl_acc > (UINT64_MAX - 10) / 10)
				return -1;
			r->cl_acc = r->cl_acc * 10 + (uint64_t)(c - '0');
			return 0;
		default:
			return ws ? 0 : -1;
		}
	case SP_TE:
	case SP_CONN:
		if (c == ',') {
			token_end(r);
			return 0;
		}
		if (ws) {
			if (r->toklen)
				r->tokws++;	/* inside, or trailing */
			return 0;
		}
		/* spaces inside an element belong to it */
		for (; r->tokws; r->tokws--)
			if (r->toklen < sizeof(r->tok))
				r->tok[r->toklen++] = ' ';
		if (r->toklen < sizeof(r->tok))
			r->tok[r->toklen++] = (char)lower(c);
		else
			r->toklen = sizeof(r->tok);	/* matches nothing */
		return 0;
	default:
		return 0;
	}
}

/* the field line has ended: trailing OWS is not part of the value */
static int
field_end(struct udsp_h1_res *r)
{
	struct udsp_h1_field *f;

	if (r->special == SP_CL && r->vs == CLV_START)
		return -1;	/* an empty Content-Length */
	if (r->special == SP_TE || r->special == SP_CONN)
		token_end(r);
	r->special = SP_NONE;

	if (!r->stored)
		return 0;
	f = &r->f[r->nf - 1];
	while (f->val_len && (r->hbuf[f->val_off + f->val_len - 1] == ' ' ||
			      r->hbuf[f->val_off + f->val_len - 1] == '\t')) {
		f->val_len--;
		r->hlen--;
	}

	return 0;
}

static int
keep_alive(const struct udsp_h1_res *r)
{
	/* RFC 9112 9.3: 1.1 persists unless "close"; 1.0 only if asked */
	return r->minor ? !r->conn_close : r->conn_ka;
}

/*
 * The empty line has ended a head.  Returns 0 to go on (head_done, or an
 * interim head skipped), -1 with r->err set.  The order of the checks
 * keeps the verdicts the parser had when libhttp-parser did this.
 */
static int
head_end(struct udsp_h1_res *r)
{
	if (r->saw_te && r->saw_cl)
		return (int)head_fail(r, udsp_h1_err_framing);
	if (r->herr)
		return (int)head_fail(r, r->herr);
	if (r->major != 1 || r->status_acc < 100)
		return (int)head_fail(r, udsp_h1_err_parse);
	if (r->status_acc == 101) {
		if (!r->upgrade_ok)
			return (int)head_fail(r, udsp_h1_err_upgrade);
		/* the head is the whole message: what follows is the new
		 * protocol's, left unconsumed for the caller */
		r->status = 101;
		r->head_done = 1;
		r->msg_done = 1;
		return 0;
	}
	if (r->status_acc < 200) {
		/* interim (100, 102, 103...): hidden */
		head_reset(r);
		return 0;
	}
	/*
	 * We relay the body without its Transfer-Encoding (hop-by-hop), so
	 * any coding but chunked would reach the client undecoded and
	 * unannounced: accept exactly one coding, "chunked", across all
	 * Transfer-Encoding fields.
	 */
	if (r->saw_te && !(r->te_ntok == 1 && r->te_chunked))
		return (int)head_fail(r, udsp_h1_err_framing);
	r->content_length = -1;
	if (r->saw_cl) {
		if (r->cl_acc > (uint64_t)INT64_MAX)
			return (int)head_fail(r, udsp_h1_err_framing);
		r->content_length = (int64_t)r->cl_acc;
	}

	r->status = r->status_acc;
	r->head_done = 1;

	/* RFC 9112 6.3 (1): never a body, whatever the headers say */
	if (r->head_req || r->status == 204 || r->status == 304) {
		r->msg_done = 1;
		r->keep_alive = (unsigned int)keep_alive(r);
		return 0;
	}
	if (r->saw_te) {
		r->chunked = 1;
		r->keep_alive = (unsigned int)keep_alive(r);
		udsp_chunk_dec_init(&r->cd);
		return 0;
	}
	if (r->content_length >= 0) {
		r->remain = (uint64_t)r->content_length;
		if (!r->remain) {
			r->msg_done = 1;
			r->keep_alive = (unsigned int)keep_alive(r);
		}
		return 0;
	}
	r->close_delim = 1;

	return 0;
}

/*
 * Parse head bytes.  Returns how many were consumed: all of them, or up to
 * and including the LF that ended the (final) head; -1 with r->err set.
 */
static long
head_run(struct udsp_h1_res *r, const unsigned char *in, size_t avail)
{
	size_t i = 0, s, k, base = 0, len;
	unsigned char c;

	len = avail < r->hroom ? avail : r->hroom;
	while (i < len) {
		c = in[i];

		switch (r->hs) {
		case HS_START:
			if (c == '\r' || c == '\n') {
				i++;
				break;
			}
			r->hs = HS_MAGIC;
			r->hidx = 0;
			/* fallthrough */
		case HS_MAGIC:
			if (c != (unsigned char)http_magic[r->hidx])
				return head_fail(r, udsp_h1_err_parse);
			i++;
			if (++r->hidx == sizeof(http_magic) - 1)
				r->hs = HS_MAJOR;
			break;
		case HS_MAJOR:
		case HS_MINOR:
			if (c < '0' || c > '9')
				return head_fail(r, udsp_h1_err_parse);
			if (r->hs == HS_MAJOR)
				r->major = (uint8_t)(c - '0');
			else
				r->minor = (uint8_t)(c - '0');
			r->hs = r->hs == HS_MAJOR ? HS_DOT : HS_VEREND;
			i++;
			break;
		case HS_DOT:
			if (c != '.')
				return head_fail(r, udsp_h1_err_parse);
			r->hs = HS_MINOR;
			i++;
			break;
		case HS_VEREND:
			if (c != ' ')
				return head_fail(r, udsp_h1_err_parse);
			r->hs = HS_STATUS0;
			i++;
			break;
		case HS_STATUS0:
			i++;
			if (c == ' ')
				break;
			if (c < '0' || c > '9')
				return head_fail(r, udsp_h1_err_parse);
			r->status_acc = (uint16_t)(c - '0');
			r->hs = HS_STATUS;
			break;
		case HS_STATUS:
			i++;
			if (c >= '0' && c <= '9') {
				r->status_acc = (uint16_t)(r->status_acc * 10 +
							   (c - '0'));
				if (r->status_acc > 999)
					return head_fail(r, udsp_h1_err_parse);
			} else if (c == ' ')
				r->hs = HS_REASON;
			else if (c == '\r')
				r->hs = HS_FIRST_CR;
			else if (c == '\n')
				r->hs = HS_LINE0;
			else
				return head_fail(r, udsp_h1_err_parse);
			break;
		case HS_REASON:
			/* the reason phrase is never looked at */
			while (i < len && in[i] != '\r' && in[i] != '\n')
				i++;
			if (i == len)
				break;
			r->hs = in[i++] == '\r' ? HS_FIRST_CR : HS_LINE0;
			break;
		case HS_FIRST_CR:
		case HS_END_CR:
			if (c != '\n')
				return head_fail(r, udsp_h1_err_parse);
			i++;
			if (r->hs == HS_FIRST_CR) {
				r->hs = HS_LINE0;
				break;
			}
			goto ended;
		case HS_LINE0:
			if (c == '\r') {
				r->hs = HS_END_CR;
				i++;
				break;
			}
			if (c == '\n') {
				i++;
				goto ended;
			}
			if (c == ' ' || c == '\t')
				/* obs-fold (RFC 9112 5.2): we may reject it */
				return head_fail(r, udsp_h1_err_bad_value);
			field_begin(r);
			r->hs = HS_NAME;
			/* fallthrough */
		case HS_NAME:
			s = i;
			while (i < len && udsp_hdr_tchar[in[i]])
				i++;
			/* enough of the name to know the framing fields */
			if (!r->nlen && i < len) {
				/*
				 * the whole name is here: only the lengths of
				 * those fields need the lower-case copy (a
				 * byte loop over every name, issue 14)
				 */
				k = i - s;
				if (k == 10 || k == 14 || k == 17)
					for (k = s; k < i; k++)
						r->nbuf[r->nlen++] =
							(char)lower(in[k]);
				else
					r->nlen = (uint8_t)(k <= sizeof(r->nbuf) ?
						k : sizeof(r->nbuf) + 1);
			} else {
				for (k = s; k < i && r->nlen < sizeof(r->nbuf);
				     k++)
					r->nbuf[r->nlen++] = (char)lower(in[k]);
				if (k < i)	/* longer than any of those */
					r->nlen = (uint8_t)(sizeof(r->nbuf) + 1);
			}
			store(r, in + s, i - s, 0);
			if (i == len)
				break;
			/* "Name :", ": x" and no colon are malformed */
			if (in[i] != ':' || !r->nlen)
				return head_fail(r, udsp_h1_err_parse);
			name_end(r);
			r->hs = HS_VWS;
			i++;
			break;
		case HS_VWS:
			if (c == ' ' || c == '\t') {
				i++;
				break;
			}
			r->hs = HS_VALUE;
			/* fallthrough */
		case HS_VALUE:
			s = i;
			if (r->special)
				while (i < len && !vstop[in[i]]) {
					if (special_byte(r, in[i]))
						return head_fail(r,
							udsp_h1_err_framing);
					i++;
				}
			else
				while (i < len && !vstop[in[i]])
					i++;
			store(r, in + s, i - s, 1);
			if (i == len)
				break;
			c = in[i++];
			if (c == '\r')
				r->hs = HS_VALUE_CR;
			else if (c == '\n') {
				if (field_end(r))
					return head_fail(r,
							 udsp_h1_err_framing);
				r->hs = HS_LINE0;
			} else
				return head_fail(r, udsp_h1_err_bad_value);
			break;
		case HS_VALUE_CR:
			if (c != '\n')
				/* a bare CR inside a value */
				return head_fail(r, udsp_h1_err_bad_value);
			i++;
			if (field_end(r))
				return head_fail(r, udsp_h1_err_framing);
			r->hs = HS_LINE0;
			break;
		default:
			return head_fail(r, udsp_h1_err_parse);
		}
		continue;

ended:
		if (head_end(r))
			return -1;
		if (r->head_done)
			return (long)i;
		/* an interim head ended: the next one has its own room */
		base = i;
		len = avail - i < r->hroom ? avail : i + r->hroom;
	}

	if (len < avail)
		return head_fail(r, udsp_h1_err_too_big);
	r->hroom -= i - base;

	return (long)i;
}

void
udsp_h1_res_init(struct udsp_h1_res *r, char *hbuf, size_t hcap,
		 int head_req, udsp_h1_body_cb cb, void *user)
{
	memset(r, 0, offsetof(struct udsp_h1_res, f0));
	r->f = r->f0;
	r->fcap = UDSP_H1_INLINE_FIELDS;
	r->hbuf = hbuf;
	r->hcap = hbuf ? hcap : 0;
	r->content_length = -1;
	r->head_req = !!head_req;
	r->body_cb = cb;
	r->user = user;
	head_reset(r);
}

void
udsp_h1_res_free(struct udsp_h1_res *r)
{
	if (r->f != r->f0)
		free(r->f);
	r->f = r->f0;
	r->fcap = UDSP_H1_INLINE_FIELDS;
	r->nf = 0;
}

void
udsp_h1_res_growable(struct udsp_h1_res *r, size_t hmax,
		     udsp_h1_grow_cb grow)
{
	r->grow = grow;
	r->hmax = hmax > r->hcap ? hmax : r->hcap;
	/* the head bound follows the largest block, not the first one */
	r->hroom = r->hmax + UDSP_H1_HEAD_SLACK;
}

static int
emit_body(void *arg, const uint8_t *p, size_t n)
{
	struct udsp_h1_res *r = arg;

	return r->body_cb ? r->body_cb(r->user, (const char *)p, n) : 0;
}

long
udsp_h1_res_feed(struct udsp_h1_res *r, const char *in, size_t len)
{
	const uint8_t *u = (const uint8_t *)in;
	size_t pos = 0, n;
	long got;

	if (r->err)
		return -1;

	while (pos < len && !r->msg_done) {
		if (!r->head_done) {
			got = head_run(r, u + pos, len - pos);
			if (got < 0)
				return -1;
			pos += (size_t)got;
			continue;
		}

		if (r->chunked) {
			got = udsp_chunk_dec_run(&r->cd, u + pos, len - pos,
						 emit_body, r);
			if (got < 0) {
				r->err = r->cd.err == udsp_chunk_err_emit ?
					 udsp_h1_err_body_cb :
					 udsp_h1_err_framing;
				return -1;
			}
			pos += (size_t)got;
			if (r->cd.done)
				r->msg_done = 1;
			continue;
		}

		n = len - pos;
		if (!r->close_delim && n > r->remain)
			n = (size_t)r->remain;
		if (r->body_cb && r->body_cb(r->user, in + pos, n)) {
			r->err = udsp_h1_err_body_cb;
			return -1;
		}
		pos += n;
		if (!r->close_delim) {
			r->remain -= n;
			if (!r->remain) {
				r->msg_done = 1;
				r->keep_alive = (unsigned int)keep_alive(r);
			}
		}
	}

	return (long)pos;
}

int
udsp_h1_res_eof(struct udsp_h1_res *r)
{
	if (r->err)
		return -1;
	if (r->msg_done)
		return 0;
	if (r->close_delim) {
		r->msg_done = 1;
		r->keep_alive = 0;
		return 0;
	}
	r->err = udsp_h1_err_truncated;

	return -1;
}

const char *
udsp_h1_find(const struct udsp_h1_res *r, const char *name, size_t *len)
{
	size_t nl = strlen(name), l;
	const char *n;
	unsigned int i;

	for (i = 0; i < r->nf; i++) {
		n = udsp_h1_name(r, i, &l);
		if (l == nl && !strncasecmp(n, name, nl))
			return udsp_h1_value(r, i, len);
	}

	return NULL;
}

