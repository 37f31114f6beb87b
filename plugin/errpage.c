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
		if (lws_add_http_header_status(wsi, (unsigned int)status, &p,
					       end) ||
		    lws_add_http_header_by_name(wsi,
				(const unsigned char *)"content-type:",
				(const unsigned char *)"text/html; charset=utf-8",
				24, &p, end) ||
		    lws_add_http_header_by_name(wsi,
				(const unsigned char *)"cache-control:",
				(const unsigned char *)"no-store", 8, &p, end) ||
		    (status == 503 && lws_add_http_header_by_name(wsi,
				(const unsigned char *)"retry-after:",
				(const unsigned char *)"1", 1, &p, end)) ||
		    (!r->h2 && r->close_after && lws_add_http_header_by_name(
				wsi, (const unsigned char *)"connection:",
				(const unsigned char *)"close", 5, &p, end)) ||
		    lws_add_http_header_content_length(wsi, (lws_filepos_t)n,
						       &p, end) ||
		    lws_finalize_http_header(wsi, &p, end))
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
