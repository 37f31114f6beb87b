/* SPDX-License-Identifier: MIT
 *
 * The per-request relay: joins one client stream (h1 connection or h2
 * stream) to one backend connection.  This file has its lifecycle (start,
 * failure, teardown), its bounded buffers and its timers; the request half
 * (client -> backend) is relay_req.c's, the response half (backend ->
 * client) relay_res.c's, each with its own state (private.h).  Backend
 * sockets and TLS are bconn.c's; header policy is headers.c's.
 */
#include "relay.h"

#include <stddef.h>
#include <stdlib.h>

static const char * const req_names[] __attribute__((unused)) = {
#define X(s) #s,
	UDSP_REQ_STATES(X)
#undef X
};

static const char * const res_names[] __attribute__((unused)) = {
#define X(s) #s,
	UDSP_RES_STATES(X)
#undef X
};

void
udsp_req_set(struct udsp_relay *r, enum udsp_req_state to, const char *why)
{
	udsp_dbg(r, "req %s -> %s (%s)", req_names[r->req], req_names[to],
		 why);
	r->req = to;
}

void
udsp_res_set(struct udsp_relay *r, enum udsp_res_state to, const char *why)
{
	udsp_dbg(r, "res %s -> %s (%s)", res_names[r->rs], res_names[to], why);
	r->rs = to;
}

/* ---- bounded byte queue with LWS_PRE headroom ---- */

/*
 * A buffer starts at UDSP_BUF_FIRST and grows toward its nominal size only
 * when a response (or upload) needs it: most are small, and the peak RSS
 * with hundreds of h2 streams in flight followed the allocated size.  A
 * kilobyte holds a small body; a large one arrives in reads of up to
 * pt_serv_buf_size, and the first of them sizes the buffer in one step
 * (16 KiB first cost 3 MiB of peak RSS in scripts/bench's h2 16x16 test
 * and 1.3 MiB with wrk's 64 h1 connections, for no fewer instructions per
 * request: docs/scaling.md "Peak RSS").
 */
#define UDSP_BUF_FIRST 1024

static size_t
buf_first(const struct udsp_vhd *vhd)
{
	return vhd->conf.max_buffer < UDSP_BUF_FIRST ? vhd->conf.max_buffer :
						       UDSP_BUF_FIRST;
}

int
udsp_buf_init(struct udsp_vhd *vhd, struct udsp_buf *b, size_t want)
{
	size_t first = want < buf_first(vhd) ? want : buf_first(vhd);

	if (first == buf_first(vhd) && vhd->nbufcache)
		b->base = vhd->bufcache[--vhd->nbufcache];
	else
		b->base = malloc(UDSP_HEADROOM + first + UDSP_TAILROOM);
	if (!b->base)
		return -1;
	b->cap = first;
	b->want = want;
	b->lim = 4 * want;
	b->head = b->tail = UDSP_HEADROOM;

	return 0;
}

void
udsp_buf_free(struct udsp_vhd *vhd, struct udsp_buf *b)
{
	/* the cache hands out first-size buffers only: one that grew goes */
	if (b->base && b->cap == buf_first(vhd) &&
	    vhd->nbufcache < (int)LWS_ARRAY_SIZE(vhd->bufcache))
		vhd->bufcache[vhd->nbufcache++] = b->base;
	else
		free(b->base);
	b->base = NULL;
	b->cap = 0;
}

void
udsp_cache_destroy(struct udsp_vhd *vhd)
{
	while (vhd->nbufcache)
		free(vhd->bufcache[--vhd->nbufcache]);
	while (vhd->nhdrcache)
		free(vhd->hdrcache[--vhd->nhdrcache]);
}

/*
 * Callers pause their producer at cap, but a producer can overshoot by one
 * read (lws hands over what it already read), so allow growth up to 4x cap
 * rather than drop bytes; past that something is wrong and the request
 * fails instead of eating memory.
 */
uint8_t *
udsp_buf_reserve(struct udsp_buf *b, size_t len)
{
	size_t used = b->tail - b->head, ncap;
	uint8_t *nb;

	if (b->tail + len > UDSP_HEADROOM + b->cap && b->head > UDSP_HEADROOM) {
		memmove(b->base + UDSP_HEADROOM, b->base + b->head, used);
		b->head = UDSP_HEADROOM;
		b->tail = UDSP_HEADROOM + used;
	}

	if (b->tail + len > UDSP_HEADROOM + b->cap) {
		if (used + len > b->lim)
			return NULL;
		/* double up to the nominal size, then only what is needed */
		ncap = b->cap * 2 > b->want ? b->want : b->cap * 2;
		if (ncap < used + len)
			ncap = used + len;
		nb = realloc(b->base, UDSP_HEADROOM + ncap + UDSP_TAILROOM);
		if (!nb)
			return NULL;
		b->base = nb;
		b->cap = ncap;
	}

	return b->base + b->tail;
}

int
udsp_buf_append(struct udsp_buf *b, const uint8_t *p, size_t len)
{
	uint8_t *d;

	if (!len)
		return 0;
	d = udsp_buf_reserve(b, len);
	if (!d)
		return -1;
	memcpy(d, p, len);
	b->tail += len;

	return 0;
}

void
udsp_buf_consume(struct udsp_buf *b, size_t n)
{
	b->head += n;
	if (b->head >= b->tail)
		b->head = b->tail = UDSP_HEADROOM;
}

/* ---- chunk framing in place ---- */

void
udsp_chunk_frame(struct udsp_chunk_frame *f, uint8_t *p, size_t n, int last)
{
	char hdr[24];
	size_t hl = udsp_chunk_hdr(hdr, n);

	f->start = p - hl;
	memcpy(f->start, hdr, hl);
	f->behind = p + n;
	f->blen = last ? 7 : 2;
	memcpy(f->save, f->behind, f->blen);
	memcpy(f->behind, UDSP_CHUNK_END, f->blen);
	f->len = hl + n + f->blen;
}

void
udsp_chunk_unframe(struct udsp_chunk_frame *f)
{
	memcpy(f->behind, f->save, f->blen);
}

/* ---- timeouts ---- */

static void
sul_cb(lws_sorted_usec_list_t *sul)
{
	struct udsp_relay *r = lws_container_of(sul, struct udsp_relay, sul);
	lws_usec_t now = lws_now_usecs();

	/* arm() only moves the deadline; catch up with it here */
	if (now < r->deadline) {
		lws_sul_schedule(r->vhd->cx, 0, &r->sul, sul_cb,
				 r->deadline - now);
		return;
	}
	r->sul_armed = 0;

	if (udsp_res_has_head(r)) {
		udsp_relay_fail(r, UDSP_E_TIMEOUT, "idle timeout");
		return;
	}
	switch (r->req) {
	case UDSP_REQ_CONNECTING:
		/*
		 * issue 15: in a backend list the member is down and the
		 * request moves on or is held (group.c)
		 */
		if (udsp_group_connect_timeout(r))
			break;
		udsp_relay_fail(r, UDSP_E_CONNECT, "connect timeout");
		break;
	case UDSP_REQ_HEAD:
	case UDSP_REQ_BODY:
	case UDSP_REQ_SENT:
		udsp_relay_fail(r, r->rs == UDSP_RES_HEAD ?
				UDSP_E_BAD_RESPONSE : UDSP_E_TIMEOUT,
				"no response head in time");
		break;
	default:
		break;
	}
}

void
udsp_relay_disarm(struct udsp_relay *r)
{
	lws_sul_cancel(&r->sul);
	r->sul_armed = 0;
}

/*
 * lws arms its own timeout-secs (docs/lws-notes.md N20) on an h1 client before
 * LWS_CALLBACK_HTTP and on every body read, and would kill a client still
 * waiting on a slower backend: keep it well behind ours.  It is set to
 * twice our longest timeout, so that a request normally sets it once,
 * not at each state change (each set is a sorted list insert in lws).
 */
void
udsp_to_push(struct udsp_relay *r, lws_usec_t now)
{
	const struct udsp_conf *c = &r->vhd->conf;
	unsigned int ms = c->connect_ms;
	int secs;

	if (c->head_ms > ms)
		ms = c->head_ms;
	if (c->idle_ms > ms)
		ms = c->idle_ms;
	secs = (int)(2 * (ms / 1000)) + 2;
	lws_set_timeout(r->cwsi, PENDING_TIMEOUT_HTTP_CONTENT, secs);
	r->udsp_to_until = now + (lws_usec_t)secs * LWS_US_PER_SEC;
}

/*
 * (Re)start the relay's timer: ms from now.  Called on every bit of
 * progress, so it must be cheap: it only moves r->deadline, and the
 * scheduler (a sorted list insert) is touched only when the deadline comes
 * sooner than what is scheduled; sul_cb() catches up with later ones.
 */
void
udsp_relay_arm(struct udsp_relay *r, unsigned int ms)
{
	lws_usec_t now = lws_now_usecs();

	r->deadline = now + (lws_usec_t)ms * LWS_US_PER_MS;
	if (!r->sul_armed || r->deadline < r->sul_at) {
		lws_sul_schedule(r->vhd->cx, 0, &r->sul, sul_cb,
				 r->deadline - now);
		r->sul_armed = 1;
		r->sul_at = r->deadline;
	}

	if (r->h2 || !r->cwsi || udsp_relay_ended(r))
		return;
	if (r->udsp_to_until < r->deadline + LWS_US_PER_SEC)
		udsp_to_push(r, now);
}

/*
 * Once an h2 request is wholly received (lws stops arming body timeouts on
 * the stream then), mark the stream "immortal": lws otherwise kills the
 * whole connection after keepalive-timeout without frames, even while this
 * stream waits on a slow backend.  The relay's own timers bound the wait.
 * This also releases the stream's header table.  docs/lws-notes.md N21
 */
void
udsp_relay_keep_client(struct udsp_relay *r)
{
	if (r->h2 && r->cwsi && !r->immortal) {
		r->immortal = 1;
		lws_http_mark_sse(r->cwsi);
	}
}

/* lws re-arms its body timeout after each body callback: see relay_req.c */
void
udsp_to_fix_later(struct udsp_relay *r)
{
	if (!r->udsp_to_fix && r->cwsi) {
		r->udsp_to_fix = 1;
		lws_callback_on_writable(r->cwsi);
	}
}

/* ---- lifecycle ---- */

static struct udsp_relay *
relay_new(struct udsp_vhd *vhd, struct lws *wsi, struct udsp_pss *pss,
	  struct udsp_group *g, struct udsp_backend *be)
{
	struct udsp_relay *r;
	char *uri;
	int ulen;

	/*
	 * Everything but the response's inline field table (only read up to
	 * res.nf) starts zeroed; udsp_h1_res_init() sets the rest of res,
	 * and res.f == NULL until then is what udsp_h1_res_free() expects.
	 */
	r = malloc(sizeof(*r));
	if (!r)
		return NULL;
	memset(r, 0, offsetof(struct udsp_relay, res.f0));
	r->cwsi = wsi;
	r->vhd = vhd;
	r->be = be;
	r->grp = g;
	udsp_stats_request(be);
	r->pmo = pss->pmo;
	r->id = ++vhd->next_id;
	r->res_cl = -1;
	r->spill.fd = -1;
	r->t_start = lws_now_usecs();
	pss->r = r;

	r->h2 = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COLON_METHOD) > 0;
	r->http10 = !r->h2 && udsp_req_is_http10(wsi);
	r->method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
	r->head_req = r->method == LWSHUMETH_HEAD;
	if (r->http10)
		r->close_after = 1;
	/* one lookup for X-Forwarded-For and the access log */
	udsp_client_addr(wsi, r->peer, sizeof(r->peer));
	udsp_reqhead_alog(r);

	return r;
}

int
udsp_relay_start(struct udsp_vhd *vhd, struct lws *wsi, struct udsp_pss *pss,
		 const char *in, size_t len)
{
	const struct lws_protocol_vhost_options *pmo;
	struct udsp_group *g = vhd->def;
	struct udsp_relay *r;
	const char *why = NULL;
	enum udsp_err e;

	for (pmo = pss->pmo; pmo; pmo = pmo->next)
		if (!strcmp(pmo->name, "backend")) {
			g = udsp_group_lookup(vhd, pmo->value);
			break;
		}

	r = relay_new(vhd, wsi, pss, g, udsp_group_pick(g));
	if (!r)
		return -1;

	/* the request's checks, in the order its answers take precedence */
	if ((e = udsp_req_check(r, &why)) ||
	    (e = udsp_res_init(r) ? UDSP_E_INTERNAL : UDSP_E_NONE)) {
		udsp_relay_fail(r, e, e == UDSP_E_INTERNAL && !why ? "OOM" :
								     why);
		return 0;
	}

	/* `in`: the mount remainder, NUL-terminated (docs/lws-notes.md N7) */
	if ((e = udsp_reqhead_build(r, in && len ? in : ""))) {
		udsp_relay_fail(r, e, e == UDSP_E_BAD_REQUEST ?
				"unusable target or header value" :
				"request head: OOM");
		return 0;
	}

	udsp_info(r, "%s %s %.*s", r->h2 ? "h2" : "h1", r->be->spec,
		  (int)(r->reqhead_len > 80 ? 80 : r->reqhead_len),
		  r->reqhead);

	if (r->body == UDSP_BODY_NONE)
		udsp_relay_keep_client(r);

	udsp_req_set(r, UDSP_REQ_CONNECTING, "start");
	udsp_relay_arm(r, vhd->conf.connect_ms);
	/* on failure this has already set up the error page */
	if (udsp_bconn_get(r))
		return 0;

	return udsp_req_invite_body(r);
}

/*
 * bconn.c: the connect failed at once (bc is gone).  Another member of the
 * mount's group if one is up (unless this process is short of
 * descriptors: no member would do better), else a hold, else 503.
 */
int
udsp_relay_connect_failed(struct udsp_relay *r, int err, int local,
			  const char *why)
{
	if (!local && udsp_group_failover(r))
		return udsp_relay_reconnect(r, "failover");
	if (udsp_hold_try(r, err))
		return 0;
	udsp_relay_fail(r, UDSP_E_CONNECT, why);

	return -1;
}

/*
 * Every way back to CONNECTING after the start: a held request's next try
 * (hold.c), the move to another member of a backend list (above and
 * group.c), the one retry after a reused pooled connection closed
 * unanswered (relay_res.c).  Each connect gets a connect timer of its
 * own, as at the start, so a member is not blamed for the time its
 * predecessor (or the hold's wait) used up.
 */
int
udsp_relay_reconnect(struct udsp_relay *r, const char *why)
{
	udsp_req_set(r, UDSP_REQ_CONNECTING, why);
	udsp_relay_arm(r, r->vhd->conf.connect_ms);

	return udsp_bconn_get(r);
}

/* ---- teardown and failure ---- */

static void
relay_free(struct udsp_relay *r)
{
	udsp_pool_unqueue(r);
	/* 499: the client went away before any response (as nginx) */
	udsp_alog_end(r, r->status_sent ? r->status_sent : 499);
	udsp_relay_disarm(r);
	udsp_linger_stop(r);
	udsp_req_free(r);
	udsp_res_free(r);
	free(r);
}

void
udsp_relay_client_gone(struct udsp_relay *r)
{
	struct udsp_bconn *bc = r->bc;

	r->cwsi = NULL;
	if (bc) {
		/* A half-sent request or half-read response poisons bc */
		udsp_bconn_release(bc, 0);
	}
	relay_free(r);
}

void
udsp_relay_fail(struct udsp_relay *r, enum udsp_err e, const char *why)
{
	if (udsp_relay_ended(r))
		return;

	_lws_log(udsp_err_info(e)->level, "%s: r%lu: %d: %s\n", __func__,
		 r->id, udsp_err_status(e), why ? why : "");
	udsp_relay_disarm(r);
	udsp_pool_unqueue(r);
	if (r->bc)
		udsp_bconn_release(r->bc, 0);
	/*
	 * A paused h1 client was seen never to get the WRITEABLE that
	 * carries the error page (lws 4.1.6): nothing more of the body goes
	 * anywhere, so let it go.  docs/lws-notes.md N28
	 */
	udsp_req_drop_body(r);
	udsp_relay_client_rx(r, 1);

	if (r->head_sent) {
		udsp_res_set(r, UDSP_RES_ABORTED, why);
	} else {
		r->err = e;
		udsp_res_set(r, UDSP_RES_FAILED, why);
	}
	if (r->cwsi)
		lws_callback_on_writable(r->cwsi);
}
