/* SPDX-License-Identifier: MIT
 *
 * The relay's request half: client -> backend.  Checks what the client
 * asked, takes in its body (de-chunking h1, spilling h2 to a file when the
 * backend is slow, keeping the h2 window open), sends head and body
 * onward, and hands the rest of a body nobody wants to linger.c.  Its one
 * state is r->req (private.h, docs/architecture.md).
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include "relay.h"

#include <stdlib.h>
#include <strings.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/* ---- what the client asked ---- */

static int
parse_cl(const char *s, int64_t *out)
{
	int64_t v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	*out = v;

	return 0;
}

/*
 * Set r->body from the client's framing headers.  UDSP_E_BAD_REQUEST for
 * framing we refuse, UDSP_E_LENGTH_REQUIRED for an h2 body we could not end.
 */
static enum udsp_err
classify_body(struct udsp_relay *r)
{
	struct lws *wsi = r->cwsi;
	char v[64];
	int64_t cl = -1;
	int has_cl, has_te;

	has_cl = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
	has_te = !r->h2 &&
		 lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;

	if (has_cl) {
		/* a repeat joined with ',' is refused: docs/lws-notes.md N14 */
		if (lws_hdr_copy(wsi, v, sizeof(v),
				 WSI_TOKEN_HTTP_CONTENT_LENGTH) < 0 ||
		    parse_cl(v, &cl))
			return UDSP_E_BAD_REQUEST;
	}

	if (has_te) {
		/*
		 * RFC 9112 6.1: CL with TE is a smuggling vector, and chunked
		 * must be the only (final) coding we accept from a client.
		 */
		if (has_cl ||
		    lws_hdr_copy(wsi, v, sizeof(v),
				 WSI_TOKEN_HTTP_TRANSFER_ENCODING) < 0 ||
		    strcasecmp(v, "chunked"))
			return UDSP_E_BAD_REQUEST;
		r->body = UDSP_BODY_CHUNKED_H1;
		/* lws believes a 100MB body follows; it can't resync */
		r->close_after = 1;
		udsp_chunk_dec_init(&r->cdec);
		return UDSP_E_NONE;
	}

	if (has_cl) {
		r->body = cl ? UDSP_BODY_CL : UDSP_BODY_NONE;
		r->body_remain = cl;
		return UDSP_E_NONE;
	}

	switch (r->method) {
	case LWSHUMETH_POST:
	case LWSHUMETH_PUT:
	case LWSHUMETH_PATCH:
		if (r->h2)
			/*
			 * lws 4.1.6 never reports the end (END_STREAM) of an
			 * h2 body that came without content-length, so such
			 * a body could not be completed onward.
			 * docs/lws-notes.md N16
			 */
			return UDSP_E_LENGTH_REQUIRED;
		/*
		 * h1 without CL or TE has no body (RFC 9112 6.3), but lws
		 * 4.1.6 assumes a 100MB one for these methods, so the
		 * connection cannot be reused (docs/lws-notes.md N15).
		 */
		r->close_after = 1;
		break;
	default:
		break;
	}
	r->body = UDSP_BODY_NONE;

	return UDSP_E_NONE;
}

/* As lws decides it (docs/lws-notes.md N12): not "HTTP/1.1" on h1 is 1.0 */
int
udsp_req_is_http10(struct lws *wsi)
{
	char v[16];

	return !(lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP) >= 8 &&
		 v[5] == '1' && v[7] == '1');
}

/*
 * RFC 9112 3: request-line = method SP request-target SP HTTP-version CRLF,
 * and nothing else.  lws keeps all that follows the target's space as the
 * version token, and ends the line early at an encoded CR or LF in the
 * target, leaving no version at all (docs/lws-notes.md N51): a damaged
 * request line shows here, where nothing else of the request is to be
 * trusted either.  Returns 0, or the error to answer with.
 */
static enum udsp_err
h1_version_check(struct lws *wsi)
{
	char v[16];
	int n = lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP);

	if (n != 8 || strncmp(v, "HTTP/", 5) || v[6] != '.' ||
	    v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
		return UDSP_E_BAD_REQUEST;
	/* RFC 9110 6.2: a later 1.x is answered as the highest we know */
	if (v[5] != '1')
		return UDSP_E_VERSION;

	return UDSP_E_NONE;
}

static int
expects_continue(struct lws *wsi)
{
	char v[32];

	return lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP_EXPECT) > 0 &&
	       !strcasecmp(v, "100-continue");
}

/*
 * The request's checks, in the order their answers take precedence, and
 * its queue.  close_after where the rest of what the client sent can no
 * longer be trusted or read.
 */
enum udsp_err
udsp_req_check(struct udsp_relay *r, const char **why)
{
	struct udsp_vhd *vhd = r->vhd;
	enum udsp_err e;

	if (!r->h2 && (e = h1_version_check(r->cwsi)) != UDSP_E_NONE) {
		/* the rest of what lws parsed is suspect too */
		r->close_after = 1;
		*why = "bad request line";
		return e;
	}

	if (!r->be || r->be->bad) {
		*why = "no usable backend";
		return UDSP_E_CONFIG;
	}

	switch ((e = classify_body(r))) {
	case UDSP_E_NONE:
		if (vhd->conf.max_body && r->body == UDSP_BODY_CL &&
		    (uint64_t)r->body_remain > vhd->conf.max_body) {
			/* the body is never read: don't reuse the connection */
			r->close_after = 1;
			*why = "request body over max-body-kb";
			return UDSP_E_TOO_LARGE;
		}
		break;
	case UDSP_E_LENGTH_REQUIRED:
		*why = "h2 request body without content-length";
		return e;
	default:
		r->close_after = 1;
		*why = "bad request framing";
		return e;
	}

	if (r->body != UDSP_BODY_NONE &&
	    udsp_buf_init(vhd, &r->q, vhd->conf.max_buffer)) {
		*why = "OOM";
		return UDSP_E_INTERNAL;
	}

	return UDSP_E_NONE;
}

/*
 * lws 4.1.6 ignores Expect: 100-continue, so a client such as curl would
 * sit out its one-second wait before sending the body.  We stream the
 * body onward as it comes, so invite it at once.  docs/lws-notes.md N17
 */
int
udsp_req_invite_body(struct udsp_relay *r)
{
	uint8_t c[LWS_PRE + 32];

	if (r->h2 || r->body == UDSP_BODY_NONE || r->http10 ||
	    !expects_continue(r->cwsi))
		return 0;
	memcpy(c + LWS_PRE, "HTTP/1.1 100 Continue\r\n\r\n", 25);

	return lws_write(r->cwsi, c + LWS_PRE, 25, LWS_WRITE_HTTP) < 0 ? -1 : 0;
}

void
udsp_req_free(struct udsp_relay *r)
{
	if (r->reqhead)
		free(r->reqhead - LWS_PRE);
	udsp_buf_free(r->vhd, &r->q);
	if (r->spill.fd >= 0)
		close(r->spill.fd);
}

/* ---- the h2 overflow file ---- */

static int
spill_open(struct udsp_relay *r)
{
	const char *dir = r->vhd->conf.spill_dir;
	char path[256];
	int fd;

	if (!dir)
		dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		/* filesystems without O_TMPFILE: create, then unlink */
		lws_snprintf(path, sizeof(path), "%s/udsp-body-XXXXXX", dir);
		fd = mkstemp(path);
		if (fd >= 0)
			unlink(path);
	}
	if (fd < 0) {
		lwsl_err("%s: cannot create a temporary file in %s: %s\n",
			 UDSP_PROTOCOL_NAME, dir, strerror(errno));
		return -1;
	}
	r->spill.fd = fd;
	r->spill.wr = r->spill.rd = 0;

	return 0;
}

static int
spill_write(struct udsp_relay *r, const uint8_t *in, size_t len)
{
	ssize_t n;

	if (r->spill.fd < 0 && spill_open(r))
		return -1;
	while (len) {
		n = pwrite(r->spill.fd, in, len, (off_t)r->spill.wr);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		in += n;
		len -= (size_t)n;
		r->spill.wr += (uint64_t)n;
	}

	return 0;
}

static int
spill_pending(const struct udsp_relay *r)
{
	return r->spill.fd >= 0 && r->spill.rd < r->spill.wr;
}

/* Move spilled body back into the (empty) queue, oldest first. */
static int
spill_refill(struct udsp_relay *r)
{
	uint64_t avail = r->spill.wr - r->spill.rd;
	size_t want = r->q.want < avail ? r->q.want : (size_t)avail;
	uint8_t *d = udsp_buf_reserve(&r->q, want);
	ssize_t n;

	if (!d)
		return -1;
	do
		n = pread(r->spill.fd, d, want, (off_t)r->spill.rd);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	r->q.tail += (size_t)n;
	r->spill.rd += (uint64_t)n;
	if (r->spill.rd == r->spill.wr) {
		/* caught up: reuse the file from the start */
		r->spill.rd = r->spill.wr = 0;
		if (ftruncate(r->spill.fd, 0))
			return -1;
	}

	return 0;
}

/* ---- the h2 window ---- */

/*
 * Two things go wrong with lws 4.1.6's own upkeep of an h2 stream's
 * receive window (docs/lws-notes.md N19):
 *
 *  - it replenishes the window only when its estimate falls to the size
 *    of the piece just read, which, with DATA frames arriving split
 *    across reads, can leave the client with no window and the upload
 *    stalled (seen about one run in ten): top_up keeps the estimate at
 *    least half of UDSP_H2_WINDOW.  The body goes to the queue or the
 *    spill file (or is dropped), so a generous window costs no memory.
 *  - its estimate can stay above what the client really has left: it
 *    leaves out DATA read before the stream was handed to the plugin
 *    (the LRS_DEFERRING_ACTION branch of its DATA handling), which a
 *    client may send where the initial window allows (lwsws's 65535).
 *    Seen: a 16 MiB upload under lwsws stalled on an empty window while
 *    lws believed it open, and so did a dropped body (linger.c).  So what
 *    arrives is also given back exactly as it is read, in pieces of
 *    UDSP_H2_GIVE_BACK: the client's window never shrinks below where it
 *    started.
 */
void
udsp_h2_window(struct udsp_relay *r, size_t *owed, size_t len, int top_up)
{
	int est;

	if (!r->cwsi)
		return;
	*owed += len;
	if (*owed >= UDSP_H2_GIVE_BACK) {
		lws_h2_update_peer_txcredit(r->cwsi, LWS_H2_STREAM_SID,
					    (int)*owed);
		*owed = 0;
	}
	if (!top_up)
		return;
	est = lws_h2_get_peer_txcredit_estimate(r->cwsi);
	if (est < UDSP_H2_WINDOW / 2)
		lws_h2_update_peer_txcredit(r->cwsi, LWS_H2_STREAM_SID,
					    UDSP_H2_WINDOW - est);
}

/* ---- body intake ---- */

void
udsp_relay_client_rx(struct udsp_relay *r, int on)
{
	struct lws *w;

	if (!r->cwsi || r->client_paused == !on)
		return;
	if (r->h2)
		/* ignored for h2 (docs/lws-notes.md N18): see udsp_spill */
		return;
	w = r->cwsi;
	lws_rx_flow_control(w, on);
	r->client_paused = !on;
	if (!on)
		/*
		 * lws's body timeout (timeout-secs) would kill a client we
		 * paused ourselves; the relay's idle timer guards instead.
		 */
		lws_set_timeout(w, NO_PENDING_TIMEOUT, 0);
}

static void
wake_backend(struct udsp_relay *r)
{
	if (r->bc)
		udsp_bconn_wake(r->bc);
}

/*
 * The backend is done with this request (or the proxy answers it itself)
 * before all of its body went onward: nothing more goes there.  Drop what
 * is queued, and from now on what the client sends (linger.c), which
 * also lets a paused h1 client go so that the answer can get out.
 */
void
udsp_req_drop_body(struct udsp_relay *r)
{
	if (r->body == UDSP_BODY_NONE || udsp_req_dropped(r))
		return;
	udsp_req_set(r, UDSP_REQ_DROP, "body unwanted");
	udsp_buf_consume(&r->q, udsp_buf_len(&r->q));
	if (r->spill.fd >= 0) {
		close(r->spill.fd);
		r->spill.fd = -1;
	}
	if (!r->body_in_done)
		udsp_dbg(r, "answered before the body was all in");
	udsp_relay_client_rx(r, 1);
	udsp_linger_drop(r);
}

/* Queue len body bytes (de-chunked, or spilled on h2); 0, or the error */
static enum udsp_err
intake(struct udsp_relay *r, const uint8_t *in, size_t len)
{
	size_t outlen;
	long n;

	if (r->body == UDSP_BODY_CHUNKED_H1) {
		while (len && !r->cdec.done) {
			/* decoded output never exceeds its input */
			uint8_t *out = udsp_buf_reserve(&r->q, len);

			if (!out)
				return UDSP_E_TOO_LARGE;
			n = udsp_chunk_dec_feed(&r->cdec, in, len, out, &outlen);
			if (n < 0)
				return UDSP_E_BAD_REQUEST;
			r->q.tail += outlen;
			in += n;
			len -= (size_t)n;
		}
		if (r->cdec.done)
			r->body_in_done = 1;
		return UDSP_E_NONE;
	}

	if (r->h2 && (spill_pending(r) ||
		      udsp_buf_len(&r->q) + len > r->q.want)) {
		if (spill_write(r, in, len))
			return UDSP_E_INTERNAL;
	} else if (udsp_buf_append(&r->q, in, len))
		return UDSP_E_TOO_LARGE;
	if (r->body == UDSP_BODY_CL) {
		r->body_remain -= (int64_t)len;
		if (r->body_remain <= 0)
			r->body_in_done = 1;
	}

	return UDSP_E_NONE;
}

int
udsp_relay_client_body(struct udsp_relay *r, const uint8_t *in, size_t len)
{
	enum udsp_err e;

	if (udsp_req_dropped(r)) {
		if (udsp_linger_body(r, in, len))
			return -1;
		if (!udsp_relay_ended(r))
			udsp_to_fix_later(r);
		return 0;
	}
	if (udsp_relay_ended(r) || !len)
		return 0;
	/*
	 * h2: DATA past the content-length makes the request malformed (RFC
	 * 9113 8.1.1).  lws's own check is gone once the stream's header
	 * table is given back (docs/lws-notes.md N50), so it is ours: the
	 * excess must never reach the backend, where it would read as the
	 * start of another request on the connection.
	 */
	if (r->h2 && r->body == UDSP_BODY_CL &&
	    (r->body_in_done || (int64_t)len > r->body_remain)) {
		udsp_relay_fail(r, UDSP_E_BAD_REQUEST,
				"h2 request body longer than its content-length");
		return 0;
	}
	if (r->body == UDSP_BODY_NONE || r->body_in_done)
		return 0;

	r->body_in += len;
	if (r->vhd->conf.max_body && r->body_in > r->vhd->conf.max_body) {
		/* chunked h1 (framing counted too: close enough) */
		r->close_after = 1;
		udsp_relay_fail(r, UDSP_E_TOO_LARGE,
				"request body over max-body-kb");
		return 0;
	}

	switch ((e = intake(r, in, len))) {
	case UDSP_E_NONE:
		break;
	case UDSP_E_BAD_REQUEST:
		udsp_relay_fail(r, e, "bad chunked request body");
		return 0;
	case UDSP_E_INTERNAL:
		udsp_relay_fail(r, e, "cannot spill request body");
		return 0;
	default:
		udsp_relay_fail(r, e, "request buffer");
		return 0;
	}

	if (udsp_buf_len(&r->q) >= r->q.want / 2 + r->q.want / 4)
		udsp_relay_client_rx(r, 0);
	if (r->h2)
		udsp_h2_window(r, &r->h2_owed, len, 1);
	wake_backend(r);

	/*
	 * lws re-arms its body timeout (timeout-secs, 5 s by default) after
	 * this callback returns; put ours back from the next WRITEABLE so a
	 * client may pause as long as idle-timeout-ms allows.
	 */
	udsp_to_fix_later(r);

	return 0;
}

int
udsp_relay_client_body_done(struct udsp_relay *r)
{
	if (udsp_req_dropped(r))
		return udsp_linger_body_done(r);
	if (r->body != UDSP_BODY_NONE)
		r->body_in_done = 1;
	udsp_relay_keep_client(r);
	wake_backend(r);

	return 0;
}

/* ---- onward ---- */

/* bconn.c: the connection is open (and TLS up): the head goes next */
void
udsp_relay_backend_connected(struct udsp_relay *r)
{
	if (r->req == UDSP_REQ_CONNECTING)
		udsp_req_set(r, UDSP_REQ_HEAD, "connected");
}

/* The request head went: the body follows, or the request is all out */
static void
head_sent(struct udsp_relay *r, struct udsp_bconn *bc)
{
	r->reqhead_sent = r->reqhead_len;
	/* the head timeout runs from the end of the request */
	udsp_relay_arm(r, r->body == UDSP_BODY_NONE ? r->vhd->conf.head_ms :
						      r->vhd->conf.idle_ms);
	if (r->body == UDSP_BODY_NONE) {
		udsp_req_set(r, UDSP_REQ_SENT, "no body");
		return;
	}
	udsp_req_set(r, UDSP_REQ_BODY, "head sent");
	if (udsp_buf_len(&r->q) || r->body_in_done)
		udsp_bconn_wake(bc);
}

/* One piece of the queued body onward; -1: close the connection */
static int
send_piece(struct udsp_relay *r, struct udsp_bconn *bc, size_t n)
{
	struct udsp_chunk_frame f;
	int m;

	if (n > UDSP_WRITE_MAX)
		n = UDSP_WRITE_MAX;
	if (r->body == UDSP_BODY_CHUNKED_H1 || r->body == UDSP_BODY_STREAM) {
		udsp_chunk_frame(&f, udsp_buf_data(&r->q), n, 0);
		m = udsp_bconn_write(bc, f.start, f.len);
		udsp_chunk_unframe(&f);
		if (m)
			return -1;
	} else if (udsp_bconn_write(bc, udsp_buf_data(&r->q), n))
		return -1;

	udsp_buf_consume(&r->q, n);
	r->body_sent += n;
	if (r->client_paused && udsp_buf_len(&r->q) <= r->q.want / 4)
		udsp_relay_client_rx(r, 1);
	if (udsp_buf_len(&r->q) || spill_pending(r) || r->body_in_done)
		udsp_bconn_wake(bc);
	/* progress; once the response head is in, its own timer runs */
	if (!udsp_res_has_head(r))
		udsp_relay_arm(r, r->vhd->conf.idle_ms);

	return 0;
}

/*
 * Called by bconn.c when the backend connection can take bytes (and TLS,
 * if any, is up).  Sends the request head, then body pieces, one write per
 * call.  Returns -1 to close the backend connection.
 */
int
udsp_relay_backend_writeable(struct udsp_relay *r)
{
	struct udsp_bconn *bc = r->bc;

	if (udsp_relay_ended(r))
		return 0;

	/*
	 * lws queues whatever the socket did not take and still calls us
	 * back; writing more then would grow that queue without bound
	 * behind a slow backend.  Wait for it to drain (docs/lws-notes.md N6).
	 */
	if (udsp_bconn_partial(bc)) {
		udsp_bconn_wake(bc);
		return 0;
	}

	if (r->reqhead_sent < r->reqhead_len) {
		if (udsp_bconn_write(bc, (const uint8_t *)r->reqhead +
				     r->reqhead_sent,
				     r->reqhead_len - r->reqhead_sent))
			return -1;
		head_sent(r, bc);
		return 0;
	}

	if (r->req != UDSP_REQ_BODY)
		return 0;

	if (!udsp_buf_len(&r->q) && spill_pending(r) && spill_refill(r)) {
		udsp_relay_fail(r, UDSP_E_INTERNAL, "spill read");
		return -1;
	}

	if (udsp_buf_len(&r->q))
		return send_piece(r, bc, udsp_buf_len(&r->q));

	if (!r->body_in_done)
		return 0;

	if ((r->body == UDSP_BODY_CHUNKED_H1 || r->body == UDSP_BODY_STREAM) &&
	    udsp_bconn_write(bc, (const uint8_t *)"0\r\n\r\n", 5))
		return -1;
	udsp_req_set(r, UDSP_REQ_SENT, "body sent");
	udsp_relay_arm(r, r->vhd->conf.head_ms);

	return 0;
}
