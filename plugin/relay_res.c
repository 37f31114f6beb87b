/* SPDX-License-Identifier: MIT
 *
 * The relay's response half: backend -> client.  Parses the backend's
 * head (h1_codec.c), decides the framing towards the client, sends the
 * head and the body (chunked for h1 clients where the length is not
 * known), and finishes or cuts short the client's stream.  Its one state
 * is r->rs (private.h, docs/architecture.md).
 */
#include "relay.h"
#include "headers.h"

#include <stdlib.h>
#include <ctype.h>

/*
 * The response header block starts at 1 KiB (typical heads are a few
 * hundred bytes; a larger one doubles it) and grows up to max-header-kb:
 * like the buffers, for the peak RSS with many streams in flight.
 */
#define UDSP_HBUF_FIRST 1024

static size_t
hbuf_first(const struct udsp_vhd *vhd)
{
	return vhd->conf.max_header < UDSP_HBUF_FIRST ? vhd->conf.max_header :
							  UDSP_HBUF_FIRST;
}

static char *
hbuf_grow(void *user, char *hbuf, size_t ncap)
{
	struct udsp_relay *r = user;
	char *nb = realloc(hbuf, ncap);

	if (nb)
		r->hbuf = nb;

	return nb;
}

static int
res_body_cb(void *user, const char *data, size_t len)
{
	struct udsp_relay *r = (struct udsp_relay *)user;

	return udsp_buf_append(&r->o, (const uint8_t *)data, len);
}

int
udsp_res_init(struct udsp_relay *r)
{
	struct udsp_vhd *vhd = r->vhd;

	if (udsp_buf_init(vhd, &r->o, vhd->conf.max_buffer))
		return -1;
	r->hbuf = vhd->nhdrcache ? vhd->hdrcache[--vhd->nhdrcache] :
				   malloc(hbuf_first(vhd));
	if (!r->hbuf)
		return -1;
	udsp_h1_res_init(&r->res, r->hbuf, hbuf_first(vhd), r->head_req,
			 res_body_cb, r);
	udsp_h1_res_growable(&r->res, vhd->conf.max_header, hbuf_grow);

	return 0;
}

void
udsp_res_free(struct udsp_relay *r)
{
	struct udsp_vhd *vhd = r->vhd;

	if (r->hbuf && r->res.hcap == hbuf_first(vhd) &&
	    vhd->nhdrcache < (int)LWS_ARRAY_SIZE(vhd->hdrcache))
		vhd->hdrcache[vhd->nhdrcache++] = r->hbuf;
	else
		free(r->hbuf);
	udsp_h1_res_free(&r->res);
	udsp_buf_free(vhd, &r->o);
}

/* ---- from the backend ---- */

/* The backend's flow control: pause at 3/4 of the buffer, resume at 1/4 */
static void
o_consumed(struct udsp_relay *r)
{
	if (r->bc && udsp_bconn_paused(r->bc) &&
	    udsp_buf_len(&r->o) <= r->o.want / 4)
		udsp_bconn_rx_flow(r->bc, 1);
}

static int
res_head_ready(struct udsp_relay *r)
{
	int s = r->res.status;

	if (r->head_req || s == 204 || s == 304 ||
	    (s >= 100 && s < 200) || r->res.content_length == 0)
		r->no_body_out = 1;
	else if (r->res.content_length > 0)
		r->res_cl = r->res.content_length;
	else if (r->h2)
		r->want_final = 1;
	else if (r->http10)
		r->close_after = 1;
	else
		r->chunked_out = 1;

	udsp_res_set(r, UDSP_RES_BODY, "head");
	udsp_relay_arm(r, r->vhd->conf.idle_ms);

	return 0;
}

/*
 * The backend's message is complete, by its framing or by its close
 * (BODY -> LAST): no timer runs on a backend that has said all, and a
 * request body still going onward is unwanted now (an early answer).
 */
static void
res_last(struct udsp_relay *r, const char *why)
{
	udsp_res_set(r, UDSP_RES_LAST, why);
	udsp_relay_disarm(r);
	if (!udsp_req_sent(r))
		udsp_req_drop_body(r);
	if (r->cwsi)
		lws_callback_on_writable(r->cwsi);
}

/*
 * Bytes from the backend (plaintext).  Returns -1 if the backend
 * connection must close.
 */
int
udsp_relay_backend_rx(struct udsp_relay *r, const uint8_t *in, size_t len)
{
	int had_head = r->res.head_done;
	struct udsp_bconn *bc = r->bc;
	long n;

	if (udsp_relay_ended(r))
		return -1;
	if (!len)
		return 0;

	if (r->rs == UDSP_RES_WAIT)
		udsp_res_set(r, UDSP_RES_HEAD, "first byte");
	udsp_stats_bytes(r->be, len, 0);
	n = udsp_h1_res_feed(&r->res, (const char *)in, len);
	if (n < 0) {
		udsp_info(r, "backend response: %s",
			  r->res.err ? r->res.err : "?");
		udsp_group_bad_answer(r);
		udsp_relay_fail(r, UDSP_E_BAD_RESPONSE, r->res.err);
		return -1;
	}

	if (!had_head && r->res.head_done) {
		udsp_group_good_answer(r);
		udsp_stats_head_latency(r->be, lws_now_usecs() - r->t_start);
		res_head_ready(r);
		if (r->cwsi)
			lws_callback_on_writable(r->cwsi);
	} else if (r->res.head_done)
		udsp_relay_arm(r, r->vhd->conf.idle_ms);

	if (r->res.msg_done) {
		/*
		 * An early answer (404, 413...) with body still to send: the
		 * connection is in no known state, so it is not reused.
		 */
		int reuse = r->res.keep_alive && (size_t)n == len &&
			    udsp_req_sent(r) && !udsp_bconn_dead(bc);

		res_last(r, "message complete");
		/* the relay needs only its buffer from here on */
		udsp_bconn_release(bc, reuse);

		return 0;
	}

	if (r->res.head_done && r->cwsi)
		lws_callback_on_writable(r->cwsi);

	if (udsp_buf_len(&r->o) >= r->o.want / 2 + r->o.want / 4)
		udsp_bconn_rx_flow(bc, 0);

	return 0;
}

/*
 * The backend connection closed (or failed to connect).  bc is already
 * unbound from r.  connected: it had been established.
 */
void
udsp_relay_backend_closed(struct udsp_relay *r, int connected, int reused)
{
	/* a connect that failed later (TCP, TLS): another member, if any */
	if (!connected && udsp_group_connect_failed(r))
		return;
	if (udsp_relay_ended(r) || r->rs == UDSP_RES_LAST)
		return;

	if (udsp_res_started(r)) {
		if (!udsp_h1_res_eof(&r->res)) {
			/* close-delimited body: this is its proper end */
			if (!r->res.head_done) {
				udsp_relay_fail(r, UDSP_E_BAD_RESPONSE,
						"eof in head");
				return;
			}
			res_last(r, "eof");
			return;
		}
		if (r->res.head_done && !r->head_sent) {
			/*
			 * The head came but is not out yet: forward it and
			 * the body so far, then abort, exactly as when the
			 * close comes a little later (the order of events
			 * differs between event loops).
			 */
			udsp_res_set(r, UDSP_RES_CUT, "backend closed");
			if (r->cwsi)
				lws_callback_on_writable(r->cwsi);
			return;
		}
		udsp_relay_fail(r, UDSP_E_BAD_RESPONSE,
				"backend closed mid-response");
		return;
	}

	if (!connected) {
		udsp_relay_fail(r, UDSP_E_CONNECT, "connect failed");
		return;
	}

	/*
	 * A pooled connection the backend had already given up on: nothing
	 * of the response came back and no body byte left us, so sending
	 * the request again on a fresh connection cannot duplicate it.
	 */
	if (reused && !r->retried && !r->body_sent) {
		r->retried = 1;
		r->reqhead_sent = 0;
		udsp_info(r, "reused connection closed, retrying once");
		udsp_relay_reconnect(r, "reused connection closed");
		return;
	}

	udsp_relay_fail(r, UDSP_E_BAD_RESPONSE, "backend closed, no response");
}

#define UDSP_MERGE_MAX 8192	/* body bytes that may ride with the head */

/*
 * Copy the start of the buffered body (with chunk framing when we frame)
 * behind the finished h1 head at p, as if written by the body path below;
 * returns the new end.  The caller writes it all at once.
 */
static uint8_t *
merge_first_piece(struct udsp_relay *r, uint8_t *p, const uint8_t *lim)
{
	size_t n = udsp_buf_len(&r->o), hl = 0, tl = 0;
	char hdr[24];
	int last;

	if (n > UDSP_MERGE_MAX)
		n = UDSP_MERGE_MAX;
	last = r->rs == UDSP_RES_LAST && n == udsp_buf_len(&r->o);
	if (r->chunked_out) {
		hl = udsp_chunk_hdr(hdr, n);
		tl = last ? 7 : 2;
	}
	if ((size_t)(lim - p) < hl + n + tl)
		return p;	/* no room: the body path sends it */

	memcpy(p, hdr, hl);
	p += hl;
	memcpy(p, udsp_buf_data(&r->o), n);
	p += n;
	memcpy(p, UDSP_CHUNK_END, tl);
	p += tl;

	udsp_buf_consume(&r->o, n);
	r->bytes_out += n;
	if (last)
		r->final_sent = 1;
	o_consumed(r);

	return p;
}

/*
 * An h2 header block over UDSP_H2_FRAME_MAX (a backend head near
 * max-header-kb) goes as HEADERS plus CONTINUATION frames (RFC 9113
 * 6.10): lws 4.1.6 would send it as one oversized frame, which the client
 * answers by closing the whole connection.  The frames leave back to back
 * (lws queues what a socket does not take, in order), so nothing comes
 * between them.  Each frame's 9-byte header is written over the end of
 * the piece before it, which lws has already sent or copied.
 */
static int
h2_write_head(struct lws *wsi, uint8_t *start, size_t len, int wp)
{
	int type = wp;

	while (len > UDSP_H2_FRAME_MAX) {
		if (lws_write(wsi, start, UDSP_H2_FRAME_MAX,
			      (enum lws_write_protocol)(type |
							LWS_WRITE_NO_FIN)) < 0)
			return -1;
		start += UDSP_H2_FRAME_MAX;
		len -= UDSP_H2_FRAME_MAX;
		/* END_STREAM, if any, rode on the HEADERS frame */
		type = LWS_WRITE_HTTP_HEADERS_CONTINUATION;
	}

	return lws_write(wsi, start, len, (enum lws_write_protocol)type) < 0 ?
									-1 : 0;
}

/* The backend's header fields that go on (headers.c decides which) */
static int
add_fields(struct udsp_relay *r, uint8_t **p, uint8_t *end)
{
	const char *conn, *name, *val;
	size_t conn_len = 0, nl, vl, k;
	char lname[128];
	unsigned int i;

	conn = udsp_h1_find(&r->res, "connection", &conn_len);

	for (i = 0; i < r->res.nf; i++) {
		name = udsp_h1_name(&r->res, i, &nl);
		val = udsp_h1_value(&r->res, i, &vl);

		/*
		 * the codec only keeps valid names and values (fuzzed); the
		 * table drops hop-by-hop ones and Server, which lws writes
		 */
		if (nl + 2 > sizeof(lname) ||
		    !udsp_hdr_res_forward(name, nl, conn, conn_len))
			continue;

		memcpy(lname, name, nl);
		if (r->h2)
			/* RFC 9113 8.2: field names are lower-case on h2 */
			for (k = 0; k < nl; k++)
				lname[k] = (char)tolower((unsigned char)lname[k]);
		lname[nl] = ':';
		lname[nl + 1] = '\0';
		if (lws_add_http_header_by_name(r->cwsi, (unsigned char *)lname,
				(const unsigned char *)val, (int)vl, p, end))
			return -1;
	}

	return 0;
}

/* The body's framing towards the client; *wp gets END_STREAM if none */
static int
add_framing(struct udsp_relay *r, uint8_t **p, uint8_t *end, int *wp)
{
	struct lws *wsi = r->cwsi;
	const char *val;
	size_t vl;

	if (r->no_body_out) {
		/* HEAD and 304 describe the body they don't carry */
		if ((r->head_req || r->res.status == 304) &&
		    (val = udsp_h1_find(&r->res, "content-length", &vl)) &&
		    lws_add_http_header_by_name(wsi,
				(const unsigned char *)"content-length:",
				(const unsigned char *)val, (int)vl, p, end))
			return -1;
		if (r->res.content_length == 0 && !r->head_req &&
		    r->res.status != 204 && r->res.status != 304 &&
		    lws_add_http_header_by_name(wsi,
				(const unsigned char *)"content-length:",
				(const unsigned char *)"0", 1, p, end))
			return -1;
		if (r->h2)
			*wp |= LWS_WRITE_H2_STREAM_END;
	} else if (r->res_cl >= 0) {
		if (lws_add_http_header_content_length(wsi,
				(lws_filepos_t)r->res_cl, p, end))
			return -1;
	} else if (r->chunked_out) {
		if (lws_add_http_header_by_name(wsi,
				(const unsigned char *)"transfer-encoding:",
				(const unsigned char *)"chunked", 7, p, end))
			return -1;
	}

	/* an answer ahead of its body: the connection ends with it */
	if (!r->h2 && r->body != UDSP_BODY_NONE && !r->body_in_done)
		r->close_after = 1;
	if (!r->h2 && r->close_after &&
	    lws_add_http_header_by_name(wsi,
			(const unsigned char *)"connection:",
			(const unsigned char *)"close", 5, p, end))
		return -1;

	return 0;
}

static int
send_head(struct udsp_relay *r)
{
	struct lws *wsi = r->cwsi;
	size_t bufsz = LWS_PRE + r->vhd->conf.max_header + 2048;
	uint8_t *buf = r->vhd->scratch, *start, *p, *end;
	int wp = LWS_WRITE_HTTP_HEADERS;

	if (bufsz > r->vhd->scratch_len)
		bufsz = r->vhd->scratch_len;
	start = p = buf + LWS_PRE;
	end = buf + bufsz - 1;

	if (lws_add_http_header_status(wsi, (unsigned int)r->res.status,
				       &p, end) ||
	    add_fields(r, &p, end) || add_framing(r, &p, end, &wp) ||
	    lws_finalize_http_header(wsi, &p, end))
		goto bail;

	/*
	 * h1: the first piece of body leaves in the same send() as the head.
	 * A small response is then one syscall and one wake-up of the
	 * client instead of two of each (h2 needs a frame per lws_write, so
	 * there the piece follows in this same callback instead).
	 */
	if (!r->h2 && !r->no_body_out && udsp_buf_len(&r->o))
		p = merge_first_piece(r, p, buf + r->vhd->scratch_len);

	if (r->h2) {
		if (h2_write_head(wsi, start, (size_t)lws_ptr_diff(p, start),
				  wp))
			goto bail;
	} else if (lws_write(wsi, start, (size_t)lws_ptr_diff(p, start),
			     (enum lws_write_protocol)wp) < 0)
		goto bail;

	return 0;

bail:
	udsp_info(r, "response head did not fit or write");

	return -1;
}

/*
 * Returns what the lws callback must return.  Called right after the
 * write that ended the message (or from the WRITEABLE after it).
 */
int
udsp_relay_finish(struct udsp_relay *r)
{
	struct lws *wsi = r->cwsi;
	int body_left = !r->body_in_done && r->body != UDSP_BODY_NONE;

	/*
	 * lws 4.1.6 drops POLLOUT on the h2 connection when the stream that
	 * just left part of its last frame in the connection's queue
	 * closes, and that tail is then never sent.  Keep the stream until
	 * lws has flushed the queue and calls it back (docs/lws-notes.md N25).
	 */
	if (r->h2 && lws_partial_buffered(lws_get_network_wsi(wsi))) {
		r->finish_pending = 1;
		lws_callback_on_writable(wsi);
		return 0;
	}

	udsp_res_set(r, UDSP_RES_DONE, "complete");
	udsp_relay_disarm(r);

	if (body_left) {
		/*
		 * The answer is out before the body is all in: read the rest
		 * and drop it before closing (h1) or ending the stream (h2).
		 * lws's own way (LRS_DISCARD_BODY, from
		 * lws_http_transaction_completed()) has no bounds, and on h2
		 * leaves the stream window to lws's refill.
		 * docs/lws-notes.md N42, N19
		 */
		udsp_req_drop_body(r);
		return udsp_linger_start(r);
	}

	if (r->close_after && !r->h2)
		return -1;

	/* this may free r through HTTP_DROP_PROTOCOL: r is dead after */
	if (lws_http_transaction_completed(wsi))
		return -1;

	return 0;
}

/*
 * Head already out, body cut short: end the stream abnormally so the
 * client can't mistake a truncated body for a complete one.  h1: close
 * without the final chunk.  h2: lws 4.1.6 closes a stream wsi without
 * RST_STREAM and has no API to send one, so with a declared content-length
 * end the stream short (RFC 9113 8.1.1 makes that a malformed response,
 * which clients report), and without one close the connection.  Returns
 * what the client's WRITEABLE callback must return.  docs/lws-notes.md N26
 */
static int
abort_client(struct udsp_relay *r)
{
	struct lws *wsi = r->cwsi;

	if (r->rs != UDSP_RES_ABORTED)
		udsp_res_set(r, UDSP_RES_ABORTED, "truncated");
	if (r->h2 && r->res_cl > 0 && !r->final_sent) {
		uint8_t fin[LWS_PRE + 1];

		r->final_sent = 1;
		lws_write(wsi, fin + LWS_PRE, 0, LWS_WRITE_HTTP_FINAL);
	} else if (r->h2) {
		/*
		 * Keep the stream: closing it now would make lws re-arm the
		 * connection's keepalive timer over this kill.  The
		 * connection takes the stream with it (docs/lws-notes.md N21).
		 */
		lws_set_timeout(lws_get_network_wsi(wsi),
				PENDING_TIMEOUT_KILLED_BY_PARENT,
				LWS_TO_KILL_ASYNC);
		return 0;
	}

	return -1;
}

/*
 * One piece of the buffered body to the client (n bytes buffered).  The
 * piece that ends the body also ends the message: an h2 stream that has
 * sent END_STREAM gets no more WRITEABLEs, so finishing later would leave
 * the stream (and its slot in the connection's stream limit) behind.
 */
static int
write_piece(struct udsp_relay *r, size_t n)
{
	struct lws *wsi = r->cwsi;
	struct udsp_chunk_frame f;
	int last, m;

	if (n > UDSP_WRITE_MAX)
		n = UDSP_WRITE_MAX;
	if (r->h2) {
		lws_fileofs_t allow = lws_get_peer_write_allowance(wsi);

		if (allow == 0)
			return 0; /* lws calls again on WINDOW_UPDATE */
		if (allow > 0 && (lws_fileofs_t)n > allow)
			n = (size_t)allow;
	}
	last = r->rs == UDSP_RES_LAST && n == udsp_buf_len(&r->o);
	if (r->chunked_out) {
		udsp_chunk_frame(&f, udsp_buf_data(&r->o), n, last);
		m = lws_write(wsi, f.start, f.len,
			      last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
		udsp_chunk_unframe(&f);
	} else
		m = lws_write(wsi, udsp_buf_data(&r->o), n,
			      last && r->want_final ? LWS_WRITE_HTTP_FINAL :
						      LWS_WRITE_HTTP);
	if (m < 0)
		return -1;

	udsp_buf_consume(&r->o, n);
	r->bytes_out += n;
	if (last) {
		r->final_sent = 1;
		return udsp_relay_finish(r);
	}
	o_consumed(r);

	if (udsp_buf_len(&r->o) || r->rs == UDSP_RES_LAST ||
	    r->rs == UDSP_RES_CUT)
		lws_callback_on_writable(wsi);
	if (r->rs != UDSP_RES_LAST)
		udsp_relay_arm(r, r->vhd->conf.idle_ms);

	return 0;
}

/* The buffer is empty: end the message, or cut it short, or wait */
static int
write_end(struct udsp_relay *r)
{
	uint8_t fin[LWS_PRE + 5];

	if (r->rs == UDSP_RES_CUT)
		/* all that came is out; now show it was not all */
		return abort_client(r);

	if (r->rs != UDSP_RES_LAST || r->final_sent)
		return 0;

	r->final_sent = 1;
	if (r->chunked_out) {
		memcpy(fin + LWS_PRE, "0\r\n\r\n", 5);
		if (lws_write(r->cwsi, fin + LWS_PRE, 5,
			      LWS_WRITE_HTTP_FINAL) < 0)
			return -1;
	} else if (r->want_final &&
		   lws_write(r->cwsi, fin + LWS_PRE, 0,
			     LWS_WRITE_HTTP_FINAL) < 0)
		return -1;

	return udsp_relay_finish(r);
}

int
udsp_relay_client_writeable(struct udsp_relay *r)
{
	struct lws *wsi = r->cwsi;
	size_t n;

	if (r->finish_pending)
		return udsp_relay_finish(r);

	if (r->udsp_to_fix) {
		r->udsp_to_fix = 0;
		if (!udsp_relay_ended(r) && !r->body_in_done &&
		    !r->client_paused)
			udsp_to_push(r, lws_now_usecs());
	}

	switch (r->rs) {
	case UDSP_RES_FAILED:
		return udsp_errpage_send(r);
	case UDSP_RES_ABORTED:
		return abort_client(r);
	case UDSP_RES_DONE:
	case UDSP_RES_WAIT:
	case UDSP_RES_HEAD:
		return 0;	/* early h2 writeable while body arrives */
	default:
		break;
	}

	if (!r->head_sent) {
		if (send_head(r)) {
			udsp_res_set(r, UDSP_RES_ABORTED, "head");
			return -1;
		}
		r->head_sent = 1;
		r->status_sent = r->res.status;
		udsp_stats_response(r->be, r->res.status, 0);
		if (r->no_body_out || r->final_sent) {
			r->final_sent = 1;
			return udsp_relay_finish(r);
		}
		/* the (rest of the) body follows in this same callback */
	}

	n = udsp_buf_len(&r->o);
	if (n && lws_partial_buffered(r->h2 ? lws_get_network_wsi(wsi) : wsi)) {
		/* as for the backend: don't stack writes on lws's queue */
		lws_callback_on_writable(wsi);
		return 0;
	}
	if (n)
		return write_piece(r, n);

	return write_end(r);
}
