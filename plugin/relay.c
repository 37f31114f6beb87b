/* SPDX-License-Identifier: MIT
 *
 * The per-request relay: joins one client stream (h1 connection or h2
 * stream) to one backend connection, moves the request onward and the
 * response back, each through a bounded buffer with flow control, and owns
 * the request's timeouts and its single exit to an error page or abort.
 * Backend sockets and TLS are bconn.c's; header policy is headers.c's.
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include "private.h"
#include "headers.h"

#include <stddef.h>
#include <stdlib.h>
#include <strings.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/*
 * One DATA frame / one h1 write.  On h2 each lws_write is one frame, and
 * lws 4.1.6 neither splits frames nor reads the peer's
 * SETTINGS_MAX_FRAME_SIZE: stay within its initial value, which every
 * peer takes (RFC 9113 4.2).
 */
#define UDSP_H2_FRAME_MAX 16384
#define UDSP_WRITE_MAX UDSP_H2_FRAME_MAX

static const char * const state_names[] __attribute__((unused)) = {
#define X(s) #s,
	UDSP_RSTATES(X)
#undef X
};

void
udsp_relay_set_state(struct udsp_relay *r, enum udsp_rstate to,
		     const char *why)
{
	udsp_dbg(r, "%s -> %s (%s)", state_names[r->state], state_names[to],
		 why);
	r->state = to;
}

/* ---- bounded byte queue with LWS_PRE headroom ---- */

/*
 * A buffer starts at UDSP_BUF_FIRST and grows toward its nominal size only
 * when a response (or upload) needs it: most are small, and the peak RSS
 * with hundreds of h2 streams in flight followed the allocated size.
 */
#define UDSP_BUF_FIRST 16384

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
	/* a buffer that grew past its first size is not kept */
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

	switch (r->state) {
	case UDSP_RS_CONNECTING:
		/*
		 * issue 15: in a backend list the member is down and the
		 * request moves on or is held (group.c)
		 */
		if (udsp_group_connect_timeout(r))
			break;
		udsp_relay_fail(r, UDSP_E_CONNECT, "connect timeout");
		break;
	case UDSP_RS_SEND:
	case UDSP_RS_AWAIT_HEAD:
		udsp_relay_fail(r, r->res_started ? UDSP_E_BAD_RESPONSE :
				UDSP_E_TIMEOUT, "no response head in time");
		break;
	case UDSP_RS_RES_BODY:
		udsp_relay_fail(r, UDSP_E_TIMEOUT, "idle timeout");
		break;
	default:
		break;
	}
}

static void
disarm(struct udsp_relay *r)
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
static void
lws_to_push(struct udsp_relay *r, lws_usec_t now)
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
	r->lws_to_until = now + (lws_usec_t)secs * LWS_US_PER_SEC;
}

/*
 * (Re)start the relay's timer: ms from now.  Called on every bit of
 * progress, so it must be cheap: it only moves r->deadline, and the
 * scheduler (a sorted list insert) is touched only when the deadline comes
 * sooner than what is scheduled; sul_cb() catches up with later ones.
 */
static void
arm(struct udsp_relay *r, unsigned int ms)
{
	lws_usec_t now = lws_now_usecs();

	r->deadline = now + (lws_usec_t)ms * LWS_US_PER_MS;
	if (!r->sul_armed || r->deadline < r->sul_at) {
		lws_sul_schedule(r->vhd->cx, 0, &r->sul, sul_cb,
				 r->deadline - now);
		r->sul_armed = 1;
		r->sul_at = r->deadline;
	}

	if (r->h2 || !r->cwsi || r->state >= UDSP_RS_DONE)
		return;
	if (r->lws_to_until < r->deadline + LWS_US_PER_SEC)
		lws_to_push(r, now);
}

/*
 * Once an h2 request is wholly received (lws stops arming body timeouts on
 * the stream then), mark the stream "immortal": lws otherwise kills the
 * whole connection after keepalive-timeout without frames, even while this
 * stream waits on a slow backend.  The relay's own timers bound the wait.
 * This also releases the stream's header table.  docs/lws-notes.md N21
 */
static void
keep_client(struct udsp_relay *r)
{
	if (r->h2 && r->cwsi && !r->immortal) {
		r->immortal = 1;
		lws_http_mark_sse(r->cwsi);
	}
}

/* ---- request side ---- */

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

/*
 * The response header block starts at 4 KiB (typical heads are a few
 * hundred bytes) and grows up to max-header-kb: like the buffers, for the
 * peak RSS with many streams in flight.
 */
static size_t
hbuf_first(const struct udsp_vhd *vhd)
{
	return vhd->conf.max_header < 4096 ? vhd->conf.max_header : 4096;
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

/* As lws decides it (docs/lws-notes.md N12): not "HTTP/1.1" on h1 is 1.0 */
static int
is_http10(struct lws *wsi)
{
	char v[16];

	return !(lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP) >= 8 &&
		 v[5] == '1' && v[7] == '1');
}

/*
 * RFC 9112 3: request-line = method SP request-target SP HTTP-version CRLF,
 * and nothing else.  lws 4.1.6 keeps all that follows the target's space
 * as the version token (lib/roles/http/parsers.c:1003-1033, then the
 * token's bytes up to CR/LF at :1035-1052), so "HTTP/1.1 junk", or
 * "b HTTP/1.1" after a target with a space in it, shows here.  A line that
 * ended early leaves no version at all: a bare CR, or an encoded CR or LF
 * in the target, which lws decodes (lws_parse_urldecode) before it looks
 * for the end of the line (:1035-1046, the same in 4.3.5), so the rest of
 * the line became a header ("GET /a%0aX-Injected:%20c HTTP/1.1" gives a
 * header "x-injected: %20c HTTP/1.1" and no version).  HTTP/0.9's
 * "GET /a" has none either.  Returns 0, or the error to answer with.
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

int
udsp_relay_start(struct udsp_vhd *vhd, struct lws *wsi, struct udsp_pss *pss,
		 const char *in, size_t len)
{
	const struct lws_protocol_vhost_options *pmo;
	struct udsp_group *g = vhd->def;
	struct udsp_backend *be;
	struct udsp_relay *r;
	enum udsp_err e;
	char *uri;
	int ulen;

	for (pmo = pss->pmo; pmo; pmo = pmo->next)
		if (!strcmp(pmo->name, "backend")) {
			g = udsp_group_lookup(vhd, pmo->value);
			break;
		}
	be = udsp_group_pick(g);

	/*
	 * Everything but the response's field table (2 KiB, only read up to
	 * res.nf) starts zeroed; udsp_h1_res_init() sets the rest of res.
	 */
	r = malloc(sizeof(*r));
	if (!r)
		return -1;
	memset(r, 0, offsetof(struct udsp_relay, res.f));
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
	r->http10 = !r->h2 && is_http10(wsi);
	r->method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
	r->head_req = r->method == LWSHUMETH_HEAD;
	if (r->http10)
		r->close_after = 1;
	/* one lookup for X-Forwarded-For and the access log */
	udsp_client_addr(wsi, r->peer, sizeof(r->peer));
	udsp_reqhead_alog(r);

	if (udsp_buf_init(vhd, &r->o, vhd->conf.max_buffer)) {
		udsp_relay_fail(r, UDSP_E_INTERNAL, "OOM");
		return 0;
	}

	if (!r->h2) {
		enum udsp_err ve = h1_version_check(wsi);

		if (ve != UDSP_E_NONE) {
			/* the rest of what lws parsed is suspect too */
			r->close_after = 1;
			udsp_relay_fail(r, ve, "bad request line");
			return 0;
		}
	}

	if (!be || be->bad) {
		udsp_relay_fail(r, UDSP_E_CONFIG, "no usable backend");
		return 0;
	}

	switch ((e = classify_body(r))) {
	case UDSP_E_NONE:
		if (vhd->conf.max_body && r->body == UDSP_BODY_CL &&
		    (uint64_t)r->body_remain > vhd->conf.max_body) {
			/* the body is never read: don't reuse the connection */
			r->close_after = 1;
			udsp_relay_fail(r, UDSP_E_TOO_LARGE,
					"request body over max-body-kb");
			return 0;
		}
		break;
	case UDSP_E_LENGTH_REQUIRED:
		udsp_relay_fail(r, e, "h2 request body without content-length");
		return 0;
	default:
		r->close_after = 1;
		udsp_relay_fail(r, e, "bad request framing");
		return 0;
	}

	if (r->body != UDSP_BODY_NONE &&
	    udsp_buf_init(vhd, &r->q, vhd->conf.max_buffer)) {
		udsp_relay_fail(r, UDSP_E_INTERNAL, "OOM");
		return 0;
	}

	r->hbuf = vhd->nhdrcache ? vhd->hdrcache[--vhd->nhdrcache] :
				   malloc(hbuf_first(vhd));
	if (!r->hbuf) {
		udsp_relay_fail(r, UDSP_E_INTERNAL, "OOM");
		return 0;
	}
	udsp_h1_res_init(&r->res, r->hbuf, hbuf_first(vhd), r->head_req,
			 res_body_cb, r);
	udsp_h1_res_growable(&r->res, vhd->conf.max_header, hbuf_grow);

	/* `in`: the mount remainder, NUL-terminated (docs/lws-notes.md N7) */
	if ((e = udsp_reqhead_build(r, in && len ? in : ""))) {
		udsp_relay_fail(r, e, e == UDSP_E_BAD_REQUEST ?
				"unusable target or header value" :
				"request head: OOM");
		return 0;
	}

	udsp_info(r, "%s %s %.*s", r->h2 ? "h2" : "h1", be->spec,
		  (int)(r->reqhead_len > 80 ? 80 : r->reqhead_len),
		  r->reqhead);

	if (r->body == UDSP_BODY_NONE)
		keep_client(r);

	udsp_relay_set_state(r, UDSP_RS_CONNECTING, "start");
	arm(r, vhd->conf.connect_ms);
	/* on failure this has already set up the error page */
	if (udsp_bconn_get(r))
		return 0;

	/*
	 * lws 4.1.6 ignores Expect: 100-continue, so a client such as curl
	 * would sit out its one-second wait before sending the body.  We
	 * stream the body onward as it comes, so invite it at once.
	 * docs/lws-notes.md N17
	 */
	if (!r->h2 && r->body != UDSP_BODY_NONE && !r->http10 &&
	    expects_continue(wsi)) {
		uint8_t c[LWS_PRE + 32];

		memcpy(c + LWS_PRE, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		if (lws_write(wsi, c + LWS_PRE, 25, LWS_WRITE_HTTP) < 0)
			return -1;
	}

	return 0;
}

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

/*
 * lws 4.1.6 replenishes an h2 stream's receive window only when its own
 * estimate falls to the size of the piece just read, which, with DATA
 * frames arriving split across reads, can leave the client with no window
 * and the upload stalled (seen about one run in ten).  Top it up
 * ourselves; the body goes to the queue or the spill file, so a generous
 * window costs no memory.  docs/lws-notes.md N19
 */
#define UDSP_H2_WINDOW 262144
/*
 * lws's estimate can also stay above what the client really has left: it
 * leaves out DATA read before the stream was handed to the plugin (the
 * LRS_DEFERRING_ACTION branch of its DATA handling, docs/lws-notes.md
 * N19), which a client may send where the initial window allows (lwsws's
 * 65535).  Seen: a 16 MiB upload under lwsws stalled on an empty window
 * while lws believed it open.  So what arrives is also given back as it
 * is read, in pieces of this size, as linger.c does: the client's window
 * never shrinks below where it started.
 */
#define UDSP_H2_GIVE_BACK 65536

static void
h2_keep_window_open(struct udsp_relay *r, size_t len)
{
	int est;

	if (!r->cwsi)
		return;
	r->h2_owed += len;
	if (r->h2_owed >= UDSP_H2_GIVE_BACK) {
		lws_h2_update_peer_txcredit(r->cwsi, LWS_H2_STREAM_SID,
					    (int)r->h2_owed);
		r->h2_owed = 0;
	}
	est = lws_h2_get_peer_txcredit_estimate(r->cwsi);
	if (est < UDSP_H2_WINDOW / 2)
		lws_h2_update_peer_txcredit(r->cwsi, LWS_H2_STREAM_SID,
					    UDSP_H2_WINDOW - est);
}

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
	if (r->bc && r->bc->wsi && r->bc->connected &&
	    (!r->bc->ssl || r->bc->tls_up))
		lws_callback_on_writable(r->bc->wsi);
}

/*
 * The backend is done with this request (or the proxy answers it itself)
 * before all of its body went onward: nothing more goes there.  Drop what
 * is queued, and from now on what the client sends (linger.c), which
 * also lets a paused h1 client go so that the answer can get out.
 */
static void
drop_body(struct udsp_relay *r)
{
	if (r->body == UDSP_BODY_NONE || r->body_unwanted)
		return;
	r->body_unwanted = 1;
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

/* lws re-arms its body timeout after each body callback: see below */
static void
lws_to_fix_later(struct udsp_relay *r)
{
	if (!r->lws_to_fix && r->cwsi) {
		r->lws_to_fix = 1;
		lws_callback_on_writable(r->cwsi);
	}
}

int
udsp_relay_client_body(struct udsp_relay *r, const uint8_t *in, size_t len)
{
	size_t outlen, body_len;
	long n;

	if (r->body_unwanted) {
		if (udsp_linger_body(r, in, len))
			return -1;
		if (r->state < UDSP_RS_DONE)
			lws_to_fix_later(r);
		return 0;
	}
	if (r->state >= UDSP_RS_DONE || !len)
		return 0;
	/*
	 * h2: DATA past the content-length makes the request malformed (RFC
	 * 9113 8.1.1).  lws's own check is gone once the stream's header
	 * table is given back (docs/lws-notes.md N19), so it is ours: the
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

	body_len = len;
	r->body_in += len;
	if (r->vhd->conf.max_body && r->body_in > r->vhd->conf.max_body) {
		/* chunked h1 (framing counted too: close enough) */
		r->close_after = 1;
		udsp_relay_fail(r, UDSP_E_TOO_LARGE,
				"request body over max-body-kb");
		return 0;
	}

	switch (r->body) {
	case UDSP_BODY_CHUNKED_H1:
		while (len && !r->cdec.done) {
			/* decoded output never exceeds its input */
			uint8_t *out = udsp_buf_reserve(&r->q, len);

			if (!out)
				goto oom;
			n = udsp_chunk_dec_feed(&r->cdec, in, len, out, &outlen);
			if (n < 0) {
				udsp_relay_fail(r, UDSP_E_BAD_REQUEST,
						"bad chunked request body");
				return 0;
			}
			r->q.tail += outlen;
			in += n;
			len -= (size_t)n;
		}
		if (r->cdec.done)
			r->body_in_done = 1;
		break;

	default:
		if (r->h2 && (spill_pending(r) ||
			      udsp_buf_len(&r->q) + len > r->q.want)) {
			if (spill_write(r, in, len)) {
				udsp_relay_fail(r, UDSP_E_INTERNAL,
						"cannot spill request body");
				return 0;
			}
		} else if (udsp_buf_append(&r->q, in, len))
			goto oom;
		if (r->body == UDSP_BODY_CL) {
			r->body_remain -= (int64_t)len;
			if (r->body_remain <= 0)
				r->body_in_done = 1;
		}
		break;
	}

	if (udsp_buf_len(&r->q) >= r->q.want / 2 + r->q.want / 4)
		udsp_relay_client_rx(r, 0);
	if (r->h2)
		h2_keep_window_open(r, body_len);
	wake_backend(r);

	/*
	 * lws re-arms its body timeout (timeout-secs, 5 s by default) after
	 * this callback returns; put ours back from the next WRITEABLE so a
	 * client may pause as long as idle-timeout-ms allows.
	 */
	lws_to_fix_later(r);

	return 0;

oom:
	udsp_relay_fail(r, UDSP_E_TOO_LARGE, "request buffer");
	return 0;
}

int
udsp_relay_client_body_done(struct udsp_relay *r)
{
	if (r->body_unwanted)
		return udsp_linger_body_done(r);
	if (r->body != UDSP_BODY_NONE)
		r->body_in_done = 1;
	keep_client(r);
	wake_backend(r);

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
	uint8_t *p;
	size_t n, hl;
	char hdr[24];
	int chunked = r->body == UDSP_BODY_CHUNKED_H1 ||
		      r->body == UDSP_BODY_STREAM;

	if (r->state >= UDSP_RS_DONE)
		return 0;

	/*
	 * lws queues whatever the socket did not take and still calls us
	 * back; writing more then would grow that queue without bound
	 * behind a slow backend.  Wait for it to drain (docs/lws-notes.md N6).
	 */
	if (lws_partial_buffered(bc->wsi)) {
		lws_callback_on_writable(bc->wsi);
		return 0;
	}

	if (r->reqhead_sent < r->reqhead_len) {
		if (udsp_bconn_write(bc, (const uint8_t *)r->reqhead +
				     r->reqhead_sent,
				     r->reqhead_len - r->reqhead_sent))
			return -1;
		r->reqhead_sent = r->reqhead_len;
		if (r->state == UDSP_RS_CONNECTING || r->state == UDSP_RS_SEND)
			udsp_relay_set_state(r, UDSP_RS_SEND, "head sent");
		/* the head timeout runs from the end of the request */
		arm(r, r->body == UDSP_BODY_NONE ? r->vhd->conf.head_ms :
						   r->vhd->conf.idle_ms);
		if (r->body == UDSP_BODY_NONE) {
			r->body_out_done = 1;
			if (r->state == UDSP_RS_SEND)
				udsp_relay_set_state(r, UDSP_RS_AWAIT_HEAD,
						     "no body");
			return 0;
		}
		if (udsp_buf_len(&r->q) || r->body_in_done)
			lws_callback_on_writable(bc->wsi);
		return 0;
	}

	if (r->body_out_done)
		return 0;

	if (!udsp_buf_len(&r->q) && spill_pending(r) && spill_refill(r)) {
		udsp_relay_fail(r, UDSP_E_INTERNAL, "spill read");
		return -1;
	}

	n = udsp_buf_len(&r->q);
	if (n) {
		if (n > UDSP_WRITE_MAX)
			n = UDSP_WRITE_MAX;
		p = udsp_buf_data(&r->q);
		if (chunked) {
			/* frame in place: headroom before, 2 spare after */
			uint8_t save[2];

			hl = udsp_chunk_hdr(hdr, n);
			memcpy(p - hl, hdr, hl);
			memcpy(save, p + n, 2);
			memcpy(p + n, "\r\n", 2);
			if (udsp_bconn_write(bc, p - hl, hl + n + 2))
				return -1;
			memcpy(p + n, save, 2);
		} else if (udsp_bconn_write(bc, p, n))
			return -1;

		udsp_buf_consume(&r->q, n);
		r->body_sent += n;
		if (r->client_paused && udsp_buf_len(&r->q) <= r->q.want / 4)
			udsp_relay_client_rx(r, 1);
		if (udsp_buf_len(&r->q) || spill_pending(r) || r->body_in_done)
			lws_callback_on_writable(bc->wsi);
		if (r->state == UDSP_RS_SEND)
			arm(r, r->vhd->conf.idle_ms);
		return 0;
	}

	if (!r->body_in_done)
		return 0;

	if (chunked && udsp_bconn_write(bc, (const uint8_t *)"0\r\n\r\n", 5))
		return -1;
	r->body_out_done = 1;
	if (r->state == UDSP_RS_SEND)
		udsp_relay_set_state(r, UDSP_RS_AWAIT_HEAD, "body sent");
	arm(r, r->vhd->conf.head_ms);

	return 0;
}

/* ---- response side ---- */

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

	udsp_relay_set_state(r, UDSP_RS_RES_BODY, "head");
	arm(r, r->vhd->conf.idle_ms);

	return 0;
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

	if (r->state >= UDSP_RS_DONE)
		return -1;
	if (!len)
		return 0;

	r->res_started = 1;
	udsp_stats_bytes(r->be, len, 0);
	n = udsp_h1_res_feed(&r->res, (const char *)in, len);
	if (n < 0) {
		lwsl_info("%s: r%lu: backend response: %s\n", __func__, r->id,
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
		arm(r, r->vhd->conf.idle_ms);

	if (r->res.msg_done) {
		int reuse = r->res.keep_alive && (size_t)n == len &&
			    r->body_out_done && !bc->dead;

		r->res_done = 1;
		disarm(r);
		/*
		 * An early answer (404, 413...) with body still to send: the
		 * connection is in no known state, so it is not reused.
		 */
		if (!r->body_out_done)
			drop_body(r);
		if (r->cwsi)
			lws_callback_on_writable(r->cwsi);
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
	if (r->state >= UDSP_RS_DONE || r->res_done)
		return;

	if (r->res_started) {
		if (!udsp_h1_res_eof(&r->res)) {
			/* close-delimited body: this is its proper end */
			if (!r->res.head_done) {
				udsp_relay_fail(r, UDSP_E_BAD_RESPONSE,
						"eof in head");
				return;
			}
			r->res_done = 1;
			disarm(r);
			if (!r->body_out_done)
				drop_body(r);
			if (r->cwsi)
				lws_callback_on_writable(r->cwsi);
			return;
		}
		if (r->res.head_done && !r->head_sent) {
			/*
			 * The head came but is not out yet: forward it and
			 * the body so far, then abort, exactly as when the
			 * close comes a little later (the order of events
			 * differs between event loops).
			 */
			r->truncated = 1;
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
		udsp_relay_set_state(r, UDSP_RS_CONNECTING, "retry");
		arm(r, r->vhd->conf.connect_ms);
		udsp_bconn_get(r);
		return;
	}

	udsp_relay_fail(r, UDSP_E_BAD_RESPONSE, "backend closed, no response");
}

/* A held request's next try (hold.c): as a fresh connect */
void
udsp_relay_reconnect(struct udsp_relay *r)
{
	udsp_relay_set_state(r, UDSP_RS_CONNECTING, "hold retry");
	arm(r, r->vhd->conf.connect_ms);
	udsp_bconn_get(r);
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
	last = r->res_done && n == udsp_buf_len(&r->o);
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
	memcpy(p, "\r\n0\r\n\r\n", tl);
	p += tl;

	udsp_buf_consume(&r->o, n);
	r->bytes_out += n;
	if (last)
		r->final_sent = 1;
	if (r->bc && r->bc->paused && udsp_buf_len(&r->o) <= r->o.want / 4)
		udsp_bconn_rx_flow(r->bc, 1);

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

static int
send_head(struct udsp_relay *r)
{
	struct lws *wsi = r->cwsi;
	uint8_t *start, *p, *end;
	size_t bufsz = LWS_PRE + r->vhd->conf.max_header + 2048;
	const char *conn, *name, *val;
	size_t conn_len = 0, nl, vl;
	char lname[128];
	unsigned int i;
	int wp = LWS_WRITE_HTTP_HEADERS, ret = -1;
	uint8_t *buf;

	buf = r->vhd->scratch;
	if (bufsz > r->vhd->scratch_len)
		bufsz = r->vhd->scratch_len;
	start = p = buf + LWS_PRE;
	end = buf + bufsz - 1;

	if (lws_add_http_header_status(wsi, (unsigned int)r->res.status,
				       &p, end))
		goto bail;

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
		if (r->h2) {
			size_t k;

			/* RFC 9113 8.2: field names are lower-case on h2 */
			for (k = 0; k < nl; k++)
				lname[k] = (char)tolower((unsigned char)lname[k]);
		}
		lname[nl] = ':';
		lname[nl + 1] = '\0';
		if (lws_add_http_header_by_name(wsi, (unsigned char *)lname,
				(const unsigned char *)val, (int)vl, &p, end))
			goto bail;
	}

	if (r->no_body_out) {
		/* HEAD and 304 describe the body they don't carry */
		if ((r->head_req || r->res.status == 304) &&
		    (val = udsp_h1_find(&r->res, "content-length", &vl)) &&
		    lws_add_http_header_by_name(wsi,
				(const unsigned char *)"content-length:",
				(const unsigned char *)val, (int)vl, &p, end))
			goto bail;
		if (r->res.content_length == 0 && !r->head_req &&
		    r->res.status != 204 && r->res.status != 304 &&
		    lws_add_http_header_by_name(wsi,
				(const unsigned char *)"content-length:",
				(const unsigned char *)"0", 1, &p, end))
			goto bail;
		if (r->h2)
			wp |= LWS_WRITE_H2_STREAM_END;
	} else if (r->res_cl >= 0) {
		if (lws_add_http_header_content_length(wsi,
				(lws_filepos_t)r->res_cl, &p, end))
			goto bail;
	} else if (r->chunked_out) {
		if (lws_add_http_header_by_name(wsi,
				(const unsigned char *)"transfer-encoding:",
				(const unsigned char *)"chunked", 7, &p, end))
			goto bail;
	}

	/* an answer ahead of its body: the connection ends with it */
	if (!r->h2 && r->body != UDSP_BODY_NONE && !r->body_in_done)
		r->close_after = 1;
	if (!r->h2 && r->close_after &&
	    lws_add_http_header_by_name(wsi,
			(const unsigned char *)"connection:",
			(const unsigned char *)"close", 5, &p, end))
		goto bail;

	if (lws_finalize_http_header(wsi, &p, end))
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

	ret = 0;
bail:
	if (ret)
		lwsl_info("%s: r%lu: response head did not fit or write\n",
			  __func__, r->id);

	return ret;
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

	udsp_relay_set_state(r, UDSP_RS_DONE, "complete");
	disarm(r);

	if (body_left) {
		/*
		 * The answer is out before the body is all in: read the rest
		 * and drop it before closing (h1) or ending the stream (h2).
		 * lws's own way (LRS_DISCARD_BODY, from
		 * lws_http_transaction_completed()) has no bounds, and on h2
		 * leaves the stream window to lws's refill.
		 * docs/lws-notes.md N42, N19
		 */
		drop_body(r);
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

	if (r->state != UDSP_RS_ABORTED)
		udsp_relay_set_state(r, UDSP_RS_ABORTED, "truncated");
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

int
udsp_relay_client_writeable(struct udsp_relay *r)
{
	struct lws *wsi = r->cwsi;
	enum lws_write_protocol wp = LWS_WRITE_HTTP;
	size_t n, hl;
	uint8_t *p;
	char hdr[24];
	int last;

	if (r->finish_pending)
		return udsp_relay_finish(r);

	if (r->lws_to_fix) {
		r->lws_to_fix = 0;
		if (r->state < UDSP_RS_DONE && !r->body_in_done &&
		    !r->client_paused)
			lws_to_push(r, lws_now_usecs());
	}

	switch (r->state) {
	case UDSP_RS_FAILED:
		return udsp_errpage_send(r);
	case UDSP_RS_ABORTED:
		return abort_client(r);
	case UDSP_RS_DONE:
		return 0;
	default:
		break;
	}


	if (!r->res.head_done)
		return 0;	/* early h2 writeable while body arrives */

	if (!r->head_sent) {
		if (send_head(r)) {
			udsp_relay_set_state(r, UDSP_RS_ABORTED, "head");
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
	if (n) {
		if (n > UDSP_WRITE_MAX)
			n = UDSP_WRITE_MAX;
		if (r->h2) {
			lws_fileofs_t allow = lws_get_peer_write_allowance(wsi);

			if (allow == 0)
				return 0; /* lws calls again on WINDOW_UPDATE */
			if (allow > 0 && (lws_fileofs_t)n > allow)
				n = (size_t)allow;
		}
		p = udsp_buf_data(&r->o);
		/*
		 * The piece that ends the body also ends the message: an h2
		 * stream that has sent END_STREAM gets no more WRITEABLEs, so
		 * finishing later would leave the stream (and its slot in
		 * the connection's stream limit) behind.
		 */
		last = r->res_done && n == udsp_buf_len(&r->o);
		if (r->chunked_out) {
			static const char fin[] = "\r\n0\r\n\r\n";
			size_t tl = last ? 7 : 2;
			uint8_t save[7];
			int m;

			hl = udsp_chunk_hdr(hdr, n);
			memcpy(p - hl, hdr, hl);
			memcpy(save, p + n, tl);
			memcpy(p + n, fin, tl);
			m = lws_write(wsi, p - hl, hl + n + tl,
				      last ? LWS_WRITE_HTTP_FINAL : wp);
			memcpy(p + n, save, tl);
			if (m < 0)
				return -1;
		} else if (lws_write(wsi, p, n, last && r->want_final ?
				     LWS_WRITE_HTTP_FINAL : wp) < 0)
			return -1;

		udsp_buf_consume(&r->o, n);
		r->bytes_out += n;
		if (last) {
			r->final_sent = 1;
			return udsp_relay_finish(r);
		}
		if (r->bc && r->bc->paused &&
		    udsp_buf_len(&r->o) <= r->o.want / 4)
			udsp_bconn_rx_flow(r->bc, 1);

		if (udsp_buf_len(&r->o) || r->res_done || r->truncated)
			lws_callback_on_writable(wsi);
		if (!r->res_done)
			arm(r, r->vhd->conf.idle_ms);
		return 0;
	}

	if (r->truncated)
		/* all that came is out; now show it was not all */
		return abort_client(r);

	if (!r->res_done || r->final_sent)
		return 0;

	r->final_sent = 1;
	if (r->chunked_out) {
		uint8_t fin[LWS_PRE + 5];

		memcpy(fin + LWS_PRE, "0\r\n\r\n", 5);
		if (lws_write(wsi, fin + LWS_PRE, 5, LWS_WRITE_HTTP_FINAL) < 0)
			return -1;
	} else if (r->want_final) {
		uint8_t fin[LWS_PRE + 1];

		if (lws_write(wsi, fin + LWS_PRE, 0, LWS_WRITE_HTTP_FINAL) < 0)
			return -1;
	}

	return udsp_relay_finish(r);
}

/* ---- teardown and failure ---- */

static void
relay_free(struct udsp_relay *r)
{
	udsp_bconn_unqueue(r);
	/* 499: the client went away before any response (as nginx) */
	udsp_alog_end(r, r->status_sent ? r->status_sent : 499);
	disarm(r);
	udsp_linger_stop(r);
	if (r->reqhead)
		free(r->reqhead - LWS_PRE);
	if (r->hbuf && r->res.hcap == hbuf_first(r->vhd) &&
	    r->vhd->nhdrcache < (int)LWS_ARRAY_SIZE(r->vhd->hdrcache))
		r->vhd->hdrcache[r->vhd->nhdrcache++] = r->hbuf;
	else
		free(r->hbuf);
	udsp_buf_free(r->vhd, &r->o);
	udsp_buf_free(r->vhd, &r->q);
	if (r->spill.fd >= 0)
		close(r->spill.fd);
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
	if (r->state >= UDSP_RS_DONE)
		return;

	_lws_log(udsp_err_info(e)->level, "%s: r%lu: %d: %s\n", __func__,
		 r->id, udsp_err_status(e), why ? why : "");
	disarm(r);
	udsp_bconn_unqueue(r);
	if (r->bc)
		udsp_bconn_release(r->bc, 0);
	/*
	 * A paused h1 client was seen never to get the WRITEABLE that
	 * carries the error page (lws 4.1.6): nothing more of the body goes
	 * anywhere, so let it go.  docs/lws-notes.md N28
	 */
	drop_body(r);
	udsp_relay_client_rx(r, 1);

	if (r->head_sent) {
		udsp_relay_set_state(r, UDSP_RS_ABORTED, why);
	} else {
		r->err = e;
		udsp_relay_set_state(r, UDSP_RS_FAILED, why);
	}
	if (r->cwsi)
		lws_callback_on_writable(r->cwsi);
}
