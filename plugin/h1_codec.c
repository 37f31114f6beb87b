/* SPDX-License-Identifier: MIT
 *
 * HTTP/1.1 codec toward the backend: response head parsing on libhttp-parser
 * with our own strictness on top, and a strict resumable chunked decoder
 * used both for client request bodies and backend response bodies.
 * No lws calls, no allocation: every buffer belongs to the caller.
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>

#define UDSP_H1_CODEC_IMPL	/* we alone may see http_parser.h */
#include "h1_codec.h"

/* The rest of the plugin sizes struct udsp_h1_res without http_parser. */
typedef char udsp_h1_parser_fits[sizeof(http_parser) <=
				 sizeof(((struct udsp_h1_res *)0)->p_storage_) ?
				 1 : -1];

const char udsp_h1_err_parse[] = "malformed HTTP/1 response";
const char udsp_h1_err_too_big[] = "response header block too large";
const char udsp_h1_err_too_many[] = "too many response header fields";
const char udsp_h1_err_bad_value[] = "forbidden character or obs-fold in "
				     "response header";
const char udsp_h1_err_framing[] = "ambiguous or invalid response framing";
const char udsp_h1_err_upgrade[] = "backend tried to switch protocols";
const char udsp_h1_err_truncated[] = "backend closed before response end";
const char udsp_h1_err_body_cb[] = "response body consumer failed";

static const char err_chunk_size[] = "bad chunk size";
static const char err_chunk_ovf[] = "chunk size overflow";
static const char err_chunk_crlf[] = "missing CRLF in chunked framing";
static const char err_chunk_line[] = "chunk size or trailer line too long";
static const char err_chunk_ctl[] = "control character in chunk line";
static const char err_chunk_emit[] = "chunk payload consumer failed";

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

/*
 * Head pre-scan.  libhttp-parser in Debian is built with HTTP_PARSER_STRICT=0
 * and quietly accepts obs-fold, bare CR in values and CR not followed by LF
 * at line ends.  Rather than guess at its private state from callbacks, we
 * run this tiny line scanner over the head bytes first, and hand the parser
 * no more than the head: that also tells us exactly where a head ends, so
 * interim 1xx heads are restarted cleanly.
 */
enum {
	HS_START,	/* before the status line: CR/LF skipped like the parser */
	HS_MAGIC,	/* matching "HTTP/" (case-sensitive, RFC 9112 2.3) */
	HS_FIRST,	/* rest of the status line */
	HS_FIRST_CR,
	HS_LINE0,	/* start of a field line, or the empty line */
	HS_NAME,
	HS_VALUE,
	HS_VALUE_CR,
	HS_END_CR,
	HS_DONE,	/* head ended: the parser has been given all of it */
};

static const char http_magic[] = "HTTP/";

static int
is_bad_ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

/*
 * Scan up to len head bytes.  Returns how many may go to the parser: all of
 * them, or up to and including the LF that ends the head (hscan becomes
 * HS_DONE), or up to the offending byte with *err set.
 */
static size_t
head_scan(struct udsp_h1_res *r, const unsigned char *in, size_t len,
	  const char **err)
{
	size_t i;
	unsigned char c;

	for (i = 0; i < len; i++) {
		c = in[i];

		switch (r->hscan) {
		case HS_START:
			if (c == '\r' || c == '\n')
				break;
			r->hscan = HS_MAGIC;
			r->hidx = 0;
			/* fallthrough */
		case HS_MAGIC:
			if (c != (unsigned char)http_magic[r->hidx]) {
				*err = udsp_h1_err_parse;
				return i;
			}
			if (++r->hidx == sizeof(http_magic) - 1)
				r->hscan = HS_FIRST;
			break;
		case HS_FIRST:
			if (c == '\r')
				r->hscan = HS_FIRST_CR;
			else if (c == '\n')
				r->hscan = HS_LINE0;
			break;
		case HS_FIRST_CR:
			if (c != '\n') {
				*err = udsp_h1_err_parse;
				return i;
			}
			r->hscan = HS_LINE0;
			break;
		case HS_LINE0:
			if (c == '\r') {
				r->hscan = HS_END_CR;
				break;
			}
			if (c == '\n') {
				r->hscan = HS_DONE;
				return i + 1;
			}
			if (c == ' ' || c == '\t') {
				/* obs-fold (RFC 9112 5.2): we may reject it */
				*err = udsp_h1_err_bad_value;
				return i;
			}
			r->hscan = HS_NAME;
			/* fallthrough */
		case HS_NAME:
			/*
			 * Other name syntax is the parser's business, but
			 * the non-strict build lets SP into names, and RFC
			 * 9112 5.1 wants "Name :" rejected.
			 */
			if (c == ':')
				r->hscan = HS_VALUE;
			else if (c == ' ' || c == '\t') {
				*err = udsp_h1_err_parse;
				return i;
			} else if (c == '\n')
				r->hscan = HS_LINE0;
			break;
		case HS_VALUE:
			if (c == '\r')
				r->hscan = HS_VALUE_CR;
			else if (c == '\n')
				r->hscan = HS_LINE0;
			else if (is_bad_ctl(c)) {
				*err = udsp_h1_err_bad_value;
				return i;
			}
			break;
		case HS_VALUE_CR:
			if (c != '\n') {
				/* a bare CR inside a value */
				*err = udsp_h1_err_bad_value;
				return i;
			}
			r->hscan = HS_LINE0;
			break;
		case HS_END_CR:
			if (c != '\n') {
				*err = udsp_h1_err_parse;
				return i;
			}
			r->hscan = HS_DONE;
			return i + 1;
		default:
			return i;
		}
	}

	return len;
}

static struct udsp_h1_res *
res_of(http_parser *p)
{
	return (struct udsp_h1_res *)p->data;
}

/*
 * Running out of room (bytes or fields) is only reported once the head has
 * ended.  Failing in the callback would make the verdict depend on where
 * the reads happened to split the input: http_parser only calls us at the
 * end of a run or of a buffer, so a malformed byte after a long name would
 * be "too big" in one split and "malformed" in another.  Nothing more is
 * stored after the first overflow.
 */
static int
hbuf_room(struct udsp_h1_res *r, size_t len)
{
	if (r->herr)
		return 0;
	if (len > r->hcap - r->hlen) {
		r->herr = udsp_h1_err_too_big;
		return 0;
	}

	return 1;
}

/* Field values exclude trailing OWS (RFC 9110 5.5); the parser keeps it. */
static void
value_end(struct udsp_h1_res *r)
{
	struct udsp_h1_field *f;

	if (!r->nf || !r->in_value)
		return;
	f = &r->f[r->nf - 1];
	while (f->val_len && (r->hbuf[f->val_off + f->val_len - 1] == ' ' ||
			      r->hbuf[f->val_off + f->val_len - 1] == '\t')) {
		f->val_len--;
		r->hlen--;
	}
}

static int
on_message_begin(http_parser *p)
{
	struct udsp_h1_res *r = res_of(p);

	/* also the reset after each hidden interim response */
	r->nf = 0;
	r->hlen = 0;
	r->in_value = 0;
	r->herr = NULL;

	return 0;
}

/*
 * http_parser hands names and values over in fragments whenever a feed
 * boundary cuts them.  A name callback after a value starts a new field;
 * otherwise it continues the current name.  Name and value of the newest
 * field are always at the end of hbuf, so fragments simply append.
 */
static int
on_header_field(http_parser *p, const char *at, size_t len)
{
	struct udsp_h1_res *r = res_of(p);
	struct udsp_h1_field *f;

	if (r->herr)
		return 0;
	if (r->in_value || !r->nf) {
		value_end(r);
		if (r->nf == UDSP_H1_MAX_FIELDS) {
			r->herr = udsp_h1_err_too_many;
			return 0;
		}
		if (!hbuf_room(r, len))
			return 0;
		f = &r->f[r->nf++];
		f->name_off = (uint32_t)r->hlen;
		f->name_len = 0;
		f->val_off = (uint32_t)r->hlen;
		f->val_len = 0;
		r->in_value = 0;
	} else if (!hbuf_room(r, len))
		return 0;

	f = &r->f[r->nf - 1];
	memcpy(r->hbuf + r->hlen, at, len);
	r->hlen += len;
	f->name_len += (uint32_t)len;

	return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
	struct udsp_h1_res *r = res_of(p);
	struct udsp_h1_field *f;

	if (r->herr || !hbuf_room(r, len))
		return 0;
	if (!r->nf) {
		/* cannot happen: the parser always gives a name first */
		r->err = udsp_h1_err_parse;
		return -1;
	}
	f = &r->f[r->nf - 1];
	if (!r->in_value) {
		f->val_off = (uint32_t)r->hlen;
		f->val_len = 0;
		r->in_value = 1;
	}
	memcpy(r->hbuf + r->hlen, at, len);
	r->hlen += len;
	f->val_len += (uint32_t)len;

	return 0;
}

/*
 * The parser only knows whether "chunked" is the final coding.  We relay
 * the body without its Transfer-Encoding (hop-by-hop), so any other coding
 * would reach the client undecoded and unannounced: accept exactly one
 * coding, "chunked", across all Transfer-Encoding fields.
 */
static int
te_is_just_chunked(const struct udsp_h1_res *r)
{
	const char *v, *e, *t;
	unsigned int i, n = 0;
	size_t vl, nl;
	int chunked = 0;

	for (i = 0; i < r->nf; i++) {
		v = udsp_h1_name(r, i, &nl);
		if (nl != 17 || strncasecmp(v, "transfer-encoding", 17))
			continue;
		v = udsp_h1_value(r, i, &vl);
		e = v + vl;
		while (v < e) {
			while (v < e && (*v == ' ' || *v == '\t' || *v == ','))
				v++;
			if (v == e)
				break;
			t = v;
			while (v < e && *v != ',')
				v++;
			nl = (size_t)(v - t);
			while (nl && (t[nl - 1] == ' ' || t[nl - 1] == '\t'))
				nl--;
			n++;
			chunked = nl == 7 && !strncasecmp(t, "chunked", 7);
		}
	}

	return n == 1 && chunked;
}

static int
on_headers_complete(http_parser *p)
{
	struct udsp_h1_res *r = res_of(p);
	unsigned int st = p->status_code;

	value_end(r);
	r->in_value = 0;

	if (r->herr) {
		r->err = r->herr;
		return -1;
	}
	if (p->http_major != 1 || st < 100) {
		r->err = udsp_h1_err_parse;
		return -1;
	}
	if (st == 101 || p->upgrade) {
		r->err = udsp_h1_err_upgrade;
		return -1;
	}
	if (st < 200)
		/* interim (100, 102, 103...): hidden, no body; 1 = skip body */
		return 1;

	/* the parser itself rejects CL with TE and a second CL */
	if (p->uses_transfer_encoding && !te_is_just_chunked(r)) {
		r->err = udsp_h1_err_framing;
		return -1;
	}
	r->content_length = -1;
	if (p->flags & F_CONTENTLENGTH) {
		if (p->content_length > (uint64_t)INT64_MAX) {
			r->err = udsp_h1_err_framing;
			return -1;
		}
		r->content_length = (int64_t)p->content_length;
	}

	r->status = (int)st;
	r->head_done = 1;

	/* RFC 9112 6.3 (1): never a body, whatever the headers say */
	if (r->head_req || st == 204 || st == 304)
		return 1;

	if (p->flags & F_CHUNKED) {
		/*
		 * Take the body away from the parser: non-strict builds skip
		 * the CRLF checks after chunk data and accept anything as
		 * extensions.  Our decoder does not.
		 */
		r->chunked = 1;
		udsp_chunk_dec_init(&r->cd);
		return 1;
	}
	if (r->content_length < 0)
		r->close_delim = 1;

	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
	struct udsp_h1_res *r = res_of(p);

	if (r->body_cb && r->body_cb(r->user, at, len)) {
		r->err = udsp_h1_err_body_cb;
		return -1;
	}

	return 0;
}

static int
on_message_complete(http_parser *p)
{
	struct udsp_h1_res *r = res_of(p);

	if (!r->head_done)
		return 0;	/* interim 1xx: the parser awaits the next head */

	r->keep_alive = !r->close_delim && http_should_keep_alive(p);
	if (!r->chunked)
		r->msg_done = 1;
	/* Stop here: anything after this message is not for this request. */
	http_parser_pause(p, 1);

	return 0;
}

static const http_parser_settings res_settings = {
	.on_message_begin	= on_message_begin,
	.on_header_field	= on_header_field,
	.on_header_value	= on_header_value,
	.on_headers_complete	= on_headers_complete,
	.on_body		= on_body,
	.on_message_complete	= on_message_complete,
};

void
udsp_h1_res_init(struct udsp_h1_res *r, char *hbuf, size_t hcap,
		 int head_req, udsp_h1_body_cb cb, void *user)
{
	memset(r, 0, offsetof(struct udsp_h1_res, f));
	http_parser_init(&r->p, HTTP_RESPONSE);
	r->p.data = r;
	r->hbuf = hbuf;
	r->hcap = hbuf ? hcap : 0;
	r->content_length = -1;
	r->head_req = !!head_req;
	r->body_cb = cb;
	r->user = user;
	r->hscan = HS_START;
}

static const char *
map_errno(const struct udsp_h1_res *r)
{
	switch (HTTP_PARSER_ERRNO(&r->p)) {
	case HPE_CB_message_begin:
	case HPE_CB_header_field:
	case HPE_CB_header_value:
	case HPE_CB_headers_complete:
	case HPE_CB_body:
	case HPE_CB_message_complete:
		return r->err ? r->err : udsp_h1_err_parse;
	case HPE_HEADER_OVERFLOW:
		return udsp_h1_err_too_big;
	case HPE_INVALID_CONTENT_LENGTH:
	case HPE_UNEXPECTED_CONTENT_LENGTH:
	case HPE_INVALID_TRANSFER_ENCODING:
		return udsp_h1_err_framing;
	default:
		return udsp_h1_err_parse;
	}
}

static int
emit_body(void *arg, const uint8_t *p, size_t n)
{
	struct udsp_h1_res *r = arg;

	return r->body_cb ? r->body_cb(r->user, (const char *)p, n) : 0;
}

static long
chunk_run(struct udsp_chunk_dec *d, const uint8_t *in, size_t len,
	  int (*emit)(void *arg, const uint8_t *p, size_t n), void *arg);

/* Feed the parser; < 0 on error (r->err set), else bytes it consumed. */
static long
parse(struct udsp_h1_res *r, const char *in, size_t n)
{
	size_t got = http_parser_execute(&r->p, &res_settings, in, n);

	switch (HTTP_PARSER_ERRNO(&r->p)) {
	case HPE_OK:
		if (got == n)
			return (long)got;
		break;
	case HPE_PAUSED:
		return (long)got;
	default:
		break;
	}
	r->err = map_errno(r);

	return -1;
}

long
udsp_h1_res_feed(struct udsp_h1_res *r, const char *in, size_t len)
{
	const char *serr;
	size_t pos = 0, n;
	long got;

	if (r->err)
		return -1;

	while (pos < len && !r->msg_done) {
		if (r->chunked) {
			got = chunk_run(&r->cd, (const uint8_t *)in + pos,
					len - pos, emit_body, r);
			if (got < 0) {
				r->err = r->cd.err == err_chunk_emit ?
					 udsp_h1_err_body_cb :
					 udsp_h1_err_framing;
				return -1;
			}
			pos += (size_t)got;
			if (r->cd.done) {
				r->msg_done = 1;
				break;
			}
			continue;
		}

		n = len - pos;
		serr = NULL;
		if (r->hscan != HS_DONE)
			n = head_scan(r, (const unsigned char *)in + pos, n,
				      &serr);
		if (n) {
			/* the parser's own verdict on earlier bytes wins */
			got = parse(r, in + pos, n);
			if (got < 0)
				return -1;
			pos += (size_t)got;
		}
		if (serr) {
			r->err = serr;
			return -1;
		}
		if (r->hscan == HS_DONE && !r->head_done)
			/* an interim head ended: scan the next one */
			r->hscan = HS_START;
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
		/* The parser sees EOF as a zero-length feed. */
		http_parser_execute(&r->p, &res_settings, "", 0);
		if (r->msg_done)
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
static long
chunk_run(struct udsp_chunk_dec *d, const uint8_t *in, size_t len,
	  int (*emit)(void *arg, const uint8_t *p, size_t n), void *arg)
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
				return chunk_fail(d, err_chunk_emit);
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

	n = chunk_run(d, in, len, emit_copy, &o);
	*outlen = o.len;

	return n;
}

size_t
udsp_chunk_hdr(char *buf, size_t n)
{
	int l = snprintf(buf, 20, "%zx\r\n", n);

	return l < 0 ? 0 : (size_t)l;
}

_Static_assert(sizeof(http_parser) <= sizeof(((struct udsp_h1_res *)0)->p_storage_),
	       "h1_codec.h: grow p_storage_ to hold http_parser");
