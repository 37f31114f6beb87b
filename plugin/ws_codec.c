/* SPDX-License-Identifier: MIT
 *
 * WebSocket frame codec (RFC 6455 section 5) for the backend leg.  See
 * ws_codec.h.  No extensions are negotiated, so every RSV bit is an error.
 */
#include "ws_codec.h"

#include <string.h>

enum { S_HDR, S_PAYLOAD, S_CTL, S_ERR };

void
udsp_ws_parser_init(struct udsp_ws_parser *p, int want_masked,
		    uint64_t max_msg)
{
	memset(p, 0, sizeof(*p));
	p->want_masked = (uint8_t)!!want_masked;
	p->max_msg = max_msg;
	p->state = S_HDR;
}

static size_t
fail(struct udsp_ws_parser *p, struct udsp_ws_ev *ev, int code,
     const char *why)
{
	if (p->state != S_ERR) {
		p->state = S_ERR;
		p->err = code;
		p->why = why;
	}
	memset(ev, 0, sizeof(*ev));
	ev->type = UDSP_WS_EV_ERROR;
	ev->close_code = p->err;
	ev->why = p->why;

	return 0;
}

static size_t
hdr_need(const uint8_t *h)
{
	size_t n = 2;

	if ((h[1] & 0x7f) == 126)
		n += 2;
	else if ((h[1] & 0x7f) == 127)
		n += 8;
	if (h[1] & 0x80)
		n += 4;

	return n;
}

/* The header is complete: check it and set up the frame.  0 or -1. */
static int
hdr_done(struct udsp_ws_parser *p, struct udsp_ws_ev *ev)
{
	const uint8_t *h = p->hdr;
	uint64_t len = h[1] & 0x7f;
	size_t i, o = 2;

	if (len == 126) {
		len = (uint64_t)h[2] << 8 | h[3];
		o = 4;
	} else if (len == 127) {
		len = 0;
		for (i = 0; i < 8; i++)
			len = len << 8 | h[2 + i];
		o = 10;
		if (len >> 63)
			return (int)fail(p, ev, 1002, "frame length over 2^63") - 1;
	}
	p->fin = (uint8_t)(h[0] >> 7);
	p->op = h[0] & 0x0f;
	p->masked = (uint8_t)(h[1] >> 7);
	if (p->masked)
		memcpy(p->mask, h + o, 4);
	p->midx = 0;
	p->remain = len;

	if (h[0] & 0x70)
		return (int)fail(p, ev, 1002, "reserved bits set") - 1;
	if (p->masked != p->want_masked)
		return (int)fail(p, ev, 1002, p->masked ? "masked frame" :
						"unmasked frame") - 1;
	switch (p->op) {
	case UDSP_WS_OP_CLOSE:
	case UDSP_WS_OP_PING:
	case UDSP_WS_OP_PONG:
		if (!p->fin)
			return (int)fail(p, ev, 1002, "fragmented control "
					 "frame") - 1;
		if (len > 125)
			return (int)fail(p, ev, 1002, "control frame over 125 "
					 "bytes") - 1;
		p->ctl_len = 0;
		p->state = S_CTL;
		return 0;
	case UDSP_WS_OP_CONT:
		if (!p->msg_op)
			return (int)fail(p, ev, 1002, "continuation outside a "
					 "message") - 1;
		break;
	case UDSP_WS_OP_TEXT:
	case UDSP_WS_OP_BINARY:
		if (p->msg_op)
			return (int)fail(p, ev, 1002, "new message inside a "
					 "fragmented one") - 1;
		p->msg_op = p->op;
		p->msg_first = 1;
		p->msg_len = 0;
		break;
	default:
		return (int)fail(p, ev, 1002, "unknown opcode") - 1;
	}
	if (p->max_msg && (len > p->max_msg || p->msg_len > p->max_msg - len))
		return (int)fail(p, ev, 1009, "message too big") - 1;
	p->state = S_PAYLOAD;

	return 0;
}

static void
data_ev(struct udsp_ws_parser *p, struct udsp_ws_ev *ev, uint8_t *d,
	size_t n)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = UDSP_WS_EV_DATA;
	ev->op = p->msg_op;
	ev->first = p->msg_first;
	ev->last = p->fin && p->remain == n;
	ev->data = d;
	ev->len = n;
	p->msg_first = 0;
	p->msg_len += n;
	p->remain -= n;
	if (!p->remain) {
		p->state = S_HDR;
		if (p->fin)
			p->msg_op = 0;
	}
}

/* A control frame's payload is all in: check it and report it. */
static int
ctl_done(struct udsp_ws_parser *p, struct udsp_ws_ev *ev)
{
	if (p->masked)
		udsp_ws_mask(p->ctl, p->ctl_len, p->mask, 0);
	memset(ev, 0, sizeof(*ev));
	ev->type = UDSP_WS_EV_CONTROL;
	ev->op = p->op;
	ev->data = p->ctl;
	ev->len = p->ctl_len;
	if (p->op == UDSP_WS_OP_CLOSE) {
		ev->close_code = 1005;
		if (p->ctl_len == 1)
			return (int)fail(p, ev, 1002, "close frame of one "
					 "byte") - 1;
		if (p->ctl_len >= 2) {
			ev->close_code = p->ctl[0] << 8 | p->ctl[1];
			if (!udsp_ws_close_code_ok(ev->close_code))
				return (int)fail(p, ev, 1002, "invalid close "
						 "code") - 1;
			ev->reason = p->ctl + 2;
			ev->reason_len = (size_t)p->ctl_len - 2;
			if (!udsp_ws_utf8_ok(ev->reason, ev->reason_len))
				return (int)fail(p, ev, 1007, "close reason "
						 "is not UTF-8") - 1;
		}
	}
	p->state = S_HDR;

	return 0;
}

size_t
udsp_ws_parse(struct udsp_ws_parser *p, uint8_t *in, size_t len,
	      struct udsp_ws_ev *ev)
{
	size_t used = 0, n, need;

	memset(ev, 0, sizeof(*ev));
	if (p->state == S_ERR)
		return fail(p, ev, p->err, p->why);

	while (used < len) {
		switch (p->state) {
		case S_HDR:
			need = p->hlen < 2 ? 2 : hdr_need(p->hdr);
			n = need - p->hlen;
			if (n > len - used)
				n = len - used;
			memcpy(p->hdr + p->hlen, in + used, n);
			p->hlen = (uint8_t)(p->hlen + n);
			used += n;
			if (p->hlen < 2 || p->hlen < hdr_need(p->hdr))
				break;
			p->hlen = 0;
			if (hdr_done(p, ev))
				return used;
			if (p->state == S_CTL && !p->remain) {
				if (ctl_done(p, ev))
					return used;
				return used;
			}
			if (p->state == S_PAYLOAD && !p->remain) {
				/* an empty frame: only its edges matter */
				if (p->msg_first || p->fin) {
					data_ev(p, ev, in + used, 0);
					return used;
				}
				p->state = S_HDR;
			}
			break;

		case S_PAYLOAD:
			n = len - used;
			if (n > p->remain)
				n = (size_t)p->remain;
			if (p->masked) {
				udsp_ws_mask(in + used, n, p->mask, p->midx);
				p->midx = (uint8_t)((p->midx + n) & 3);
			}
			data_ev(p, ev, in + used, n);
			return used + n;

		case S_CTL:
			n = len - used;
			if (n > p->remain)
				n = (size_t)p->remain;
			memcpy(p->ctl + p->ctl_len, in + used, n);
			p->ctl_len = (uint8_t)(p->ctl_len + n);
			p->remain -= n;
			used += n;
			if (!p->remain) {
				ctl_done(p, ev);
				return used;
			}
			break;
		}
	}

	return used;
}

size_t
udsp_ws_frame_head(uint8_t *out, int op, int fin, uint64_t len,
		   const uint8_t *mask)
{
	size_t n = 2, i;

	out[0] = (uint8_t)((fin ? 0x80 : 0) | (op & 0x0f));
	if (len < 126)
		out[1] = (uint8_t)len;
	else if (len < 65536) {
		out[1] = 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		n = 4;
	} else {
		out[1] = 127;
		for (i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
		n = 10;
	}
	if (mask) {
		out[1] |= 0x80;
		memcpy(out + n, mask, 4);
		n += 4;
	}

	return n;
}

void
udsp_ws_mask(uint8_t *p, size_t len, const uint8_t *mask, size_t off)
{
	uint8_t m[8];
	uint64_t m8, v;
	size_t i = 0;

	/* byte-wise up to 8-aligned mask phase, then 8 at a time */
	for (i = 0; i < 8; i++)
		m[i] = mask[(off + i) & 3];
	memcpy(&m8, m, 8);
	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&v, p + i, 8);
		v ^= m8;
		memcpy(p + i, &v, 8);
	}
	for (; i < len; i++)
		p[i] ^= m[i & 7];
}

int
udsp_ws_close_code_ok(int code)
{
	if (code >= 3000 && code <= 4999)
		return 1;
	switch (code) {
	case 1000: case 1001: case 1002: case 1003:
	case 1007: case 1008: case 1009: case 1010:
	case 1011: case 1012: case 1013: case 1014:
		return 1;
	}

	return 0;
}

int
udsp_ws_utf8_ok(const uint8_t *p, size_t len)
{
	size_t i = 0, k, n;
	uint32_t c;

	while (i < len) {
		c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, c &= 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, c &= 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, c &= 0x07;
		else
			return 0;
		if (len - i <= n)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			c = c << 6 | (p[i + k] & 0x3f);
		}
		/* overlong forms, surrogates, past U+10FFFF */
		if ((n == 2 && c < 0x800) || (n == 3 && c < 0x10000) ||
		    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
			return 0;
		i += n + 1;
	}

	return 1;
}

size_t
udsp_ws_close_body(uint8_t *out, int code, const uint8_t *reason,
		   size_t rlen)
{
	if (!code || code == 1005)
		return 0;
	out[0] = (uint8_t)(code >> 8);
	out[1] = (uint8_t)code;
	if (rlen > 123) {
		rlen = 123;
		/* back off to a character boundary */
		while (rlen && (reason[rlen] & 0xc0) == 0x80)
			rlen--;
	}
	if (rlen)
		memcpy(out + 2, reason, rlen);

	return 2 + rlen;
}

static int
tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

int
udsp_ws_token_list_ok(const char *s, size_t len)
{
	size_t i = 0, ntok = 0, tl;

	for (;;) {
		while (i < len && (s[i] == ' ' || s[i] == '\t'))
			i++;
		tl = 0;
		while (i < len && tchar((unsigned char)s[i]))
			i++, tl++;
		if (!tl)
			return 0;
		ntok++;
		while (i < len && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i == len)
			return ntok > 0;
		if (s[i] != ',')
			return 0;
		i++;
	}
}

int
udsp_ws_list_next(const char *s, size_t len, size_t *pos, const char **item,
		  size_t *ilen)
{
	size_t i = *pos, e;

	if (i > len || (i == len && (!len || s[len - 1] != ',')))
		return 0;
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	for (e = i; e < len && s[e] != ','; e++)
		;
	*pos = e + 1;
	*item = s + i;
	while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t'))
		e--;
	*ilen = e - i;

	return 1;
}

int
udsp_ws_list_has(const char *list, size_t llen, const char *name,
		 size_t nlen)
{
	size_t i = 0, b;

	while (i < llen) {
		while (i < llen && (list[i] == ' ' || list[i] == '\t' ||
				    list[i] == ','))
			i++;
		b = i;
		while (i < llen && list[i] != ',' && list[i] != ' ' &&
		       list[i] != '\t')
			i++;
		if (i - b == nlen && nlen && !memcmp(list + b, name, nlen))
			return 1;
	}

	return 0;
}
