/* SPDX-License-Identifier: MIT
 *
 * The short human-readable pages for statuses the proxy itself produces
 * (502/503/504 and request errors), words from UDSP_ERR_MAP (private.h).
 * They link /error.css so a site can style them (spec: "Behaviour if unix
 * domain socket server unavailable").
 * Sent from the client's WRITEABLE: head, then body, one write each.
 */
#include "private.h"

static const struct udsp_err_info errs[UDSP_E_COUNT] = {
#define XX(name, st, ti, tx, lv) [UDSP_E_##name] = { st, ti, tx, lv },
	UDSP_ERR_MAP(XX)
#undef XX
};

const struct udsp_err_info *
udsp_err_info(enum udsp_err e)
{
	if ((unsigned int)e >= UDSP_E_COUNT || !errs[e].status)
		e = UDSP_E_INTERNAL;

	return &errs[e];
}

int
udsp_err_status(enum udsp_err e)
{
	return udsp_err_info(e)->status;
}

static int
page(const struct udsp_err_info *ei, char *buf, size_t len)
{
	return lws_snprintf(buf, len,
		"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
		"<title>%d %s</title>"
		"<link rel=\"stylesheet\" href=\"/error.css\"></head>\n"
		"<body><div class=\"error\"><h1>%d %s</h1>"
		"<p>%s</p></div></body></html>\n",
		ei->status, ei->title, ei->status, ei->title, ei->text);
}

/*
 * The page's head into *p: what every answer of the proxy's own carries
 * (Retry-After on a 503), Connection: close when close.
 */
static int
head(struct lws *wsi, const struct udsp_err_info *ei, int h2, int close,
     size_t len, uint8_t **p, uint8_t *end)
{
	return lws_add_http_header_status(wsi, (unsigned int)ei->status, p,
					  end) ||
	       lws_add_http_header_by_name(wsi,
			(const unsigned char *)"content-type:",
			(const unsigned char *)"text/html; charset=utf-8",
			24, p, end) ||
	       lws_add_http_header_by_name(wsi,
			(const unsigned char *)"cache-control:",
			(const unsigned char *)"no-store", 8, p, end) ||
	       (ei->status == 503 && lws_add_http_header_by_name(wsi,
			(const unsigned char *)"retry-after:",
			(const unsigned char *)"1", 1, p, end)) ||
	       (!h2 && close && lws_add_http_header_by_name(wsi,
			(const unsigned char *)"connection:",
			(const unsigned char *)"close", 5, p, end)) ||
	       lws_add_http_header_content_length(wsi, (lws_filepos_t)len,
						  p, end) ||
	       lws_finalize_http_header(wsi, p, end);
}

int
udsp_errpage_send(struct udsp_relay *r)
{
	uint8_t buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
		*end = buf + sizeof(buf) - 1;
	struct lws *wsi = r->cwsi;
	const struct udsp_err_info *ei = udsp_err_info(r->err);
	int status = ei->status, n;

	n = page(ei, (char *)start, 800);

	if (!r->head_sent) {
		if (!r->h2 && r->body != UDSP_BODY_NONE && !r->body_in_done)
			r->close_after = 1;
		if (head(wsi, ei, r->h2, r->close_after, (size_t)n, &p, end))
			return -1;
		if (lws_write(wsi, start, (size_t)lws_ptr_diff(p, start),
			      LWS_WRITE_HTTP_HEADERS) < 0)
			return -1;
		r->head_sent = 1;
		r->status_sent = status;
		udsp_stats_response(r->be, status, 1);
		if (r->head_req) {
			/* HEAD: no body; on h2 end the stream with an empty
			 * DATA frame */
			if (r->h2 && lws_write(wsi, start, 0,
					       LWS_WRITE_HTTP_FINAL) < 0)
				return -1;
			goto done;
		}
		lws_callback_on_writable(wsi);
		return 0;
	}

	/* body: re-rendered, it is cheaper than keeping it */
	n = page(ei, (char *)start, sizeof(buf) - LWS_PRE - 1);
	if (lws_write(wsi, start, (size_t)n, LWS_WRITE_HTTP_FINAL) < 0)
		return -1;
	r->bytes_out += (uint64_t)n;

done:
	return udsp_relay_finish(r);
}

/*
 * The same page as the answer to a ws upgrade refused before lws's 101
 * (h1) or ":status 200" (h2), from ws_early.c.  On h1 lws completes the
 * transaction as soon as the callback returns (docs/lws-notes.md N47), so
 * head and body go in one write, which lws finishes sending itself if the
 * socket takes only part of it; the client asked for an upgrade, not a
 * keep-alive exchange: Connection: close.  On h2 a HEADERS and a DATA
 * frame ending the stream (lws queues what the connection cannot take).
 */
int
udsp_errpage_now(struct lws *wsi, enum udsp_err e, int h2)
{
	uint8_t buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start,
		*end = buf + sizeof(buf) - 1;
	const struct udsp_err_info *ei = udsp_err_info(e);
	char body[1024];
	int n;

	n = page(ei, body, sizeof(body));
	if (n <= 0 || (size_t)n >= sizeof(body) ||
	    head(wsi, ei, h2, 1, (size_t)n, &p, end) ||
	    lws_ptr_diff(end, p) < n)
		return -1;
	if (h2) {
		if (lws_write(wsi, start, (size_t)lws_ptr_diff(p, start),
			      LWS_WRITE_HTTP_HEADERS) < 0)
			return -1;
		memcpy(start, body, (size_t)n);
		return lws_write(wsi, start, (size_t)n,
				 LWS_WRITE_HTTP_FINAL) < 0 ? -1 : 0;
	}
	/*
	 * lws writes the status line's version from the request's, which it
	 * reads only for a request it serves as HTTP (lws_http_action()), not
	 * yet for an upgrade: "HTTP/1.0" on a new connection.  An upgrade is
	 * HTTP/1.1 (RFC 6455 4.1), and clients refuse a 1.0 answer to it.
	 */
	if (!memcmp(start, "HTTP/1.0 ", 9))
		start[7] = '1';
	memcpy(p, body, (size_t)n);
	p += n;

	return lws_write(wsi, start, (size_t)lws_ptr_diff(p, start),
			 LWS_WRITE_HTTP_HEADERS) < 0 ? -1 : 0;
}
