/* SPDX-License-Identifier: MIT
 *
 * The rest of a request body after an early answer.  Backends often answer
 * before they read a body (404, 401, 413); the proxy's own error pages do
 * too.  The client goes on sending it, so:
 *
 *  - from the moment nobody wants the body (relay_req.c moves the request
 *    half to DROP and drops what it had queued), what arrives is read and dropped here,
 *    which also keeps an h1 client's rx open so that lws lets the answer
 *    out (a paused h1 client gets no WRITEABLE, docs/lws-notes.md N28);
 *  - once the answer is out, the client is not closed at once: closing a
 *    socket with unread bytes makes the kernel reset the connection, and
 *    a reset can destroy the answer before the client reads it.  As
 *    nginx's lingering close does, the rest is read and dropped until the
 *    body ends (then h1 closes with a FIN; an h2 stream ends cleanly), the
 *    client goes quiet for UDSP_LINGER_IDLE_MS, linger-ms pass, or more
 *    than linger-kb were dropped.  lws 4.1.6 cannot send RST_STREAM
 *    (docs/lws-notes.md N26), the h2 way of telling a client to stop, so
 *    an h2 stream is lingered the same way, its window kept open so the
 *    client can finish; past a bound the stream is closed without a word
 *    and the connection stays usable.
 */
#include "relay.h"

/* nginx's lingering_timeout: a client quiet this long has stopped */
#define UDSP_LINGER_IDLE_MS 5000

/*
 * h2: a dropped body starts with a full UDSP_H2_WINDOW, and what comes is
 * given back exactly (udsp_h2_window() without the top-up from lws's
 * estimate, which can stay well above what the client really has left:
 * an upload whose body nobody reads any more stalled on an empty window).
 * Giving back what arrived keeps the client's window where it started.
 * docs/lws-notes.md N19
 */
void
udsp_linger_drop(struct udsp_relay *r)
{
	/* whatever lws believes is left, the client gets a full window */
	if (r->h2 && r->cwsi && !r->body_in_done)
		lws_h2_update_peer_txcredit(r->cwsi, LWS_H2_STREAM_SID,
					    UDSP_H2_WINDOW);
}

static lws_usec_t
linger_due(const struct udsp_relay *r)
{
	const struct udsp_conf *c = &r->vhd->conf;
	lws_usec_t all = r->linger.since +
			 (lws_usec_t)c->linger_ms * LWS_US_PER_MS,
		   idle = r->linger.last +
			  (lws_usec_t)UDSP_LINGER_IDLE_MS * LWS_US_PER_MS;

	return all < idle ? all : idle;
}

static void
linger_cb(lws_sorted_usec_list_t *sul)
{
	struct udsp_relay *r = lws_container_of(sul, struct udsp_relay,
						linger.sul);
	lws_usec_t now = lws_now_usecs(), due = linger_due(r);

	/* reads only move linger.last; catch up with it here */
	if (now < due) {
		lws_sul_schedule(r->vhd->cx, 0, &r->linger.sul, linger_cb,
				 due - now);
		return;
	}
	udsp_info(r, "lingering close: bound reached, %llu body bytes "
		  "dropped", (unsigned long long)r->linger.dropped);
	if (r->cwsi)
		/* CLOSED_HTTP follows and frees r */
		lws_set_timeout(r->cwsi, PENDING_TIMEOUT_HTTP_CONTENT,
				LWS_TO_KILL_ASYNC);
}

static void
close_cb(lws_sorted_usec_list_t *sul)
{
	struct udsp_relay *r = lws_container_of(sul, struct udsp_relay,
						linger.sul);

	if (r->cwsi)
		/* CLOSED_HTTP follows and frees r */
		lws_set_timeout(r->cwsi, PENDING_TIMEOUT_HTTP_CONTENT,
				LWS_TO_KILL_ASYNC);
}

/*
 * What a body callback returns to end the linger.  h1: -1, lws closes.
 * h2: never close the stream from inside a body callback.  That runs
 * inside lws_read_h2(), which then stops short and parks the rest of
 * the read on the connection's buflist; lws 4.1.6 and 4.3.5 drain it
 * with a "buffered" flag that rops_handle_POLLIN_h2() does not clear
 * when it goes round again for more TLS data, so the next read is
 * "used" from the emptied buflist: SIGSEGV (lws_buflist_use_segment,
 * ops-h2.c).  The stream closes from a timer instead, and ignores what
 * comes meanwhile.  docs/lws-notes.md N43
 */
static int
linger_end(struct udsp_relay *r)
{
	if (!r->h2)
		return -1;
	if (!r->linger.closing) {
		r->linger.closing = 1;
		lws_sul_schedule(r->vhd->cx, 0, &r->linger.sul, close_cb, 1);
	}

	return 0;
}

/* Follow the body's framing to its end without keeping any of it. */
static int
track_end(struct udsp_relay *r, const uint8_t *in, size_t len)
{
	struct udsp_vhd *vhd = r->vhd;
	size_t room = vhd->scratch_len, outlen, n;
	long used;

	switch (r->body) {
	case UDSP_BODY_CL:
		r->body_remain -= (int64_t)len;
		if (r->body_remain <= 0)
			r->body_in_done = 1;
		break;
	case UDSP_BODY_CHUNKED_H1:
		/* payload out never exceeds framing in: decode into scratch */
		while (len && !r->cdec.done) {
			n = len < room ? len : room;
			used = udsp_chunk_dec_feed(&r->cdec, in, n,
						   vhd->scratch, &outlen);
			if (used < 0)
				return -1;
			in += used;
			len -= (size_t)used;
		}
		if (r->cdec.done)
			r->body_in_done = 1;
		break;
	default:
		break;
	}

	return 0;
}

int
udsp_linger_body(struct udsp_relay *r, const uint8_t *in, size_t len)
{
	if (!len || r->body_in_done || r->linger.closing)
		return 0;

	r->body_in += len;
	r->linger.dropped += len;
	if (track_end(r, in, len)) {
		udsp_info(r, "bad chunked framing in a dropped body");
		/* nothing to sync on: close (h1 chunked always closes) */
		r->body_in_done = 1;
		return r->linger.on ? linger_end(r) : 0;
	}
	if (r->h2)
		udsp_h2_window(r, &r->linger.owed, len, 0);
	if (!r->linger.on)
		return 0;

	r->linger.last = lws_now_usecs();
	if (r->body_in_done) {
		/* CL: lws reports the end next (udsp_linger_body_done) */
		if (r->body == UDSP_BODY_CL)
			return 0;
		udsp_info(r, "lingering close: body ended, %llu bytes dropped",
			  (unsigned long long)r->linger.dropped);
		return linger_end(r);
	}
	if (r->linger.dropped > r->vhd->conf.linger_max) {
		udsp_info(r, "lingering close: over linger-kb");
		return linger_end(r);
	}

	return 0;
}

int
udsp_linger_body_done(struct udsp_relay *r)
{
	r->body_in_done = 1;
	if (!r->linger.on || r->linger.closing)
		return 0;	/* the answer is still going out */
	udsp_info(r, "lingering close: body ended, %llu bytes dropped",
		  (unsigned long long)r->linger.dropped);

	return linger_end(r);
}

/*
 * The answer is all out (and flushed) but the body is not all in.
 * Returns 0 while lingering, -1 to close now.
 */
int
udsp_linger_start(struct udsp_relay *r)
{
	const struct udsp_conf *c = &r->vhd->conf;

	if (!c->linger_ms || r->linger.dropped > c->linger_max || !r->cwsi)
		return -1;

	r->linger.on = 1;
	r->linger.since = r->linger.last = lws_now_usecs();
	udsp_relay_client_rx(r, 1);
	lws_sul_schedule(r->vhd->cx, 0, &r->linger.sul, linger_cb,
			 linger_due(r) - r->linger.since);
	udsp_info(r, "lingering close: %llu body bytes dropped so far",
		  (unsigned long long)r->linger.dropped);

	return 0;
}

void
udsp_linger_stop(struct udsp_relay *r)
{
	if (r->linger.on || r->linger.closing)
		lws_sul_cancel(&r->linger.sul);
	r->linger.on = 0;
	r->linger.closing = 0;
}
