/* SPDX-License-Identifier: MIT
 *
 * The short human-readable pages for statuses the proxy itself produces
 * (502/503/504 and request errors).  They link /error.css so a site can
 * style them (spec: "Behaviour if unix domain socket server unavailable").
 * Sent from the client's WRITEABLE: head, then body, one write each.
 */
#include "private.h"

static const char *
title(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default:  return "Internal Server Error";
	}
}

static const char *
explain(int status)
{
	switch (status) {
	case 400: return "The request could not be understood.";
	case 411: return "A request body needs a Content-Length here.";
	case 413: return "The request body is too large.";
	case 502: return "The application server sent an invalid response.";
	case 503: return "The application server is not running or is "
			 "restarting. Please try again shortly.";
	case 504: return "The application server did not answer in time.";
	case 505: return "Use HTTP/1.0, HTTP/1.1 or HTTP/2.";
	default:  return "The proxy could not handle this request.";
	}
}

static int
page(int status, char *buf, size_t len)
{
	return lws_snprintf(buf, len,
		"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
		"<title>%d %s</title>"
		"<link rel=\"stylesheet\" href=\"/error.css\"></head>\n"
		"<body><div class=\"error\"><h1>%d %s</h1>"
		"<p>%s</p></div></body></html>\n",
		status, title(status), status, title(status), explain(status));
}

int
udsp_errpage_send(struct udsp_relay *r)
{
	uint8_t buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
		*end = buf + sizeof(buf) - 1;
	struct lws *wsi = r->cwsi;
	int status = udsp_err_status(r->err), n;

	n = page(status, (char *)start, 800);

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
	n = page(status, (char *)start, sizeof(buf) - LWS_PRE - 1);
	if (lws_write(wsi, start, (size_t)n, LWS_WRITE_HTTP_FINAL) < 0)
		return -1;
	r->bytes_out += (uint64_t)n;

done:
	return udsp_relay_finish(r);
}
