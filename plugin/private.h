/* SPDX-License-Identifier: MIT
 *
 * Private types of the lws-uds-proxy plugin: per-vhost state (vhd), backends
 * with their idle pools, backend connections (bconn) and the per-request
 * relay joining a client stream to a bconn.  Pure modules (origin, headers,
 * urlenc, h1_codec) have their own headers and know nothing of lws.
 */
#ifndef UDSP_PRIVATE_H
#define UDSP_PRIVATE_H

#if !defined (LWS_PLUGIN_STATIC)
#define LWS_DLL
#define LWS_INTERNAL
#include <libwebsockets.h>
#endif

#include <stdint.h>
#include <string.h>
#include <openssl/ssl.h>

#include "origin.h"
#include "h1_codec.h"
#include "stats.h"
#include "ws_codec.h"

/* 4.1.6 has no per-object log tags: prefix lines with our request id. */
#define udsp_dbg(r, fmt, ...) \
	lwsl_debug("%s: r%lu: " fmt "\n", __func__, (r)->id, ##__VA_ARGS__)
#define udsp_info(r, fmt, ...) \
	lwsl_info("%s: r%lu: " fmt "\n", __func__, (r)->id, ##__VA_ARGS__)

struct udsp_conf {
	unsigned int	connect_ms;	/* backend connect (and TLS handshake) */
	unsigned int	head_ms;	/* request sent -> response head */
	unsigned int	idle_ms;	/* no progress on an open relay */
	unsigned int	pool_idle_ms;	/* idle keep-alive backend conn */
	unsigned int	pool_max_idle;	/* per backend */
	size_t		max_buffer;	/* per direction, per request */
	size_t		max_header;	/* backend response header block */
	const char	*fwd_headers;	/* borrowed: pvo, vhost lifetime */
	const char	*trusted;	/* borrowed: pvo, vhost lifetime */
	const char	*tls_ca;	/* borrowed: pvo, vhost lifetime */
	const char	*spill_dir;	/* borrowed: pvo, vhost lifetime */
	uint64_t	max_body;	/* request body limit, 0: none */
	unsigned int	max_conns;	/* per backend, 0: no limit */
	unsigned int	linger_ms;	/* lingering close, in all; 0: none */
	uint64_t	linger_max;	/* body bytes dropped at most */
	unsigned int	hold_ms;	/* default of the pmo hold-ms */
	unsigned int	hold_max;	/* held requests per backend */
	unsigned int	down_ms;	/* group.c skips a failed member */
	int		tls_verify;
};

/* One distinct backend origin on a vhost; owns its idle connections. */
struct udsp_backend {
	struct udsp_backend	*next;		/* vhd->backends */
	char			*spec;		/* owned: the origin string */
	struct udsp_origin	o;
	lws_dll2_owner_t	idle;		/* of udsp_bconn.list, oldest
						 * first */
	struct udsp_vhd		*vhd;		/* borrowed: owner */
	lws_sorted_usec_list_t	sul_idle;	/* expires idle conns */
	lws_dll2_owner_t	waiting;	/* of udsp_relay.wait: for a
						 * connection (max-conns) */
	lws_dll2_owner_t	held;		/* of udsp_relay.wait: for the
						 * backend to come back (hold.c) */
	unsigned int		nconns;		/* open: busy + idle */
	lws_usec_t		down_until;	/* group.c skips it till then */
	unsigned int		down:1;		/* for transition logging */
	unsigned int		hold_said:1;	/* hold.c logged this outage */
	unsigned int		bad:1;		/* spec failed to parse */
	struct udsp_stats	st;		/* status.c */
};

struct udsp_vhd {
	struct lws_context		*cx;
	struct lws_vhost		*vh;
	const struct lws_protocols	*prot;
	struct udsp_conf		conf;
	struct udsp_backend		*backends;	/* owned list */
	struct udsp_group		*groups;	/* owned list (group.c) */
	struct udsp_group		*def;		/* pvo "backend" */
	SSL_CTX				*ssl_ctx;	/* owned, lazily */
	unsigned long			next_id;
	char				**fwd;		/* owned: lower "x:" */
	int				nfwd;
	struct udsp_mfwd		*mfwd;		/* owned (reqhead.c) */
	int				alog_fd;	/* owned; -1: none */
	int				draining;	/* keep no idle conns */
	/* lws-uds-proxyd's mount table (ws_early.c): borrowed pvos */
	const struct lws_protocol_vhost_options **mounts;	/* owned array */
	unsigned int			nmounts;
	/*
	 * Scratch for building a request target or a response head.  lws
	 * services a vhost from one thread and these are used within one
	 * callback, so one per vhost saves an allocation per request.
	 */
	uint8_t				*scratch;	/* owned */
	size_t				scratch_len;
	/*
	 * Recently freed queue buffers (all of the configured size) and
	 * header blocks, kept for the next requests: malloc/free of these
	 * was a visible share of the per-request cost.
	 */
	void				*bufcache[16];	/* owned */
	int				nbufcache;
	void				*hdrcache[16];	/* owned */
	int				nhdrcache;
};

struct udsp_relay;
struct udsp_ws;

/* A backend connection: a RAW client wsi, optionally with our own TLS. */
struct udsp_bconn {
	lws_dll2_t		list;	/* be->idle membership while pooled */
	struct lws		*wsi;	/* NULL once lws closed it */
	struct udsp_vhd		*vhd;	/* borrowed */
	struct udsp_backend	*be;	/* borrowed: vhd lifetime */
	struct udsp_relay	*r;	/* bound relay, or NULL */
	struct udsp_ws		*ws;	/* or the WebSocket relay owning it */
	SSL			*ssl;	/* owned (TLS backends) */
	BIO			*rbio;	/* owned by ssl */
	BIO			*wbio;	/* owned by ssl */
	lws_usec_t		idle_since;	/* when it went to the pool */
	/*
	 * After lws closed the wsi with response bytes still unread in the
	 * socket (it does so on a hang-up while rx is paused): our own copy
	 * of the socket, read as the relay makes room.  -1: none.
	 */
	int			tailfd;		/* owned */
	lws_sorted_usec_list_t	sul_tail;	/* reads the tail */
	unsigned int		connected:1;
	unsigned int		tls_up:1;
	unsigned int		reused:1;
	unsigned int		paused:1;	/* rx flow-controlled */
	unsigned int		dead:1;		/* must not be reused */
	unsigned int		busy:1;		/* reading its tail: the
						 * release frees it not */
	unsigned int		uncounted:1;	/* left be->nconns */
};

/*
 * The relay's two halves, each with one state (as HAProxy keeps a parser
 * state per direction).  The table of transitions is in
 * docs/architecture.md; udsp_req_set() and udsp_res_set() log each.
 *
 * Request half (relay_req.c): client -> backend.
 */
#define UDSP_REQ_STATES(X) \
	X(INIT)		/* udsp_relay_start() has not finished */ \
	X(CONNECTING)	/* waiting for a connection (connect, TLS, max-conns) */ \
	X(HELD)		/* hold.c: waiting for the backend to come back */ \
	X(HEAD)		/* connected: the request head goes next */ \
	X(BODY)		/* head out: the body goes as it comes */ \
	X(SENT)		/* all of the request is out */ \
	X(DROP)		/* nobody wants the rest of the body (linger.c) */

enum udsp_req_state {
#define X(s) UDSP_REQ_##s,
	UDSP_REQ_STATES(X)
#undef X
};

/*
 * Response half (relay_res.c): backend -> client.  DONE, FAILED and
 * ABORTED end the whole relay (udsp_relay_ended()).
 */
#define UDSP_RES_STATES(X) \
	X(WAIT)		/* nothing from the backend yet */ \
	X(HEAD)		/* the response head is arriving */ \
	X(BODY)		/* head complete: head and body go to the client */ \
	X(LAST)		/* the backend's message is complete; the rest of it
			 * is in r->o */ \
	X(CUT)		/* the backend closed mid-body: what came goes out,
			 * then the client is cut short */ \
	X(DONE)		/* the answer is out */ \
	X(FAILED)	/* the proxy answers with an error page (errpage.c) */ \
	X(ABORTED)	/* the answer is cut short (abort_client()) */

enum udsp_res_state {
#define X(s) UDSP_RES_##s,
	UDSP_RES_STATES(X)
#undef X
};

/*
 * Every answer the proxy makes itself, one row each: the status, the title
 * and text of its page (errpage.c) and the level udsp_relay_fail() logs it
 * at.  All log at INFO: each is one request's fate, often the client's or
 * a stopped backend's doing, so a flood of them must not flood the log;
 * the access log has the status.  Helpers that can fail return the enum.
 *
 *   XX(name, status, title, text, log level)
 */
#define UDSP_ERR_MAP(XX) \
	XX(CONNECT, 503, "Service Unavailable", \
	   "The application server is not running or is restarting. " \
	   "Please try again shortly.", LLL_INFO) \
	XX(BAD_RESPONSE, 502, "Bad Gateway", \
	   "The application server sent an invalid response.", LLL_INFO) \
	XX(TIMEOUT, 504, "Gateway Timeout", \
	   "The application server did not answer in time.", LLL_INFO) \
	XX(CONFIG, 500, "Internal Server Error", \
	   "The proxy could not handle this request.", LLL_INFO) \
	XX(BAD_REQUEST, 400, "Bad Request", \
	   "The request could not be understood.", LLL_INFO) \
	XX(TOO_LARGE, 413, "Content Too Large", \
	   "The request body is too large.", LLL_INFO) \
	XX(LENGTH_REQUIRED, 411, "Length Required", \
	   "A request body needs a Content-Length here.", LLL_INFO) \
	XX(VERSION, 505, "HTTP Version Not Supported", \
	   "Use HTTP/1.0, HTTP/1.1 or HTTP/2.", LLL_INFO) \
	XX(INTERNAL, 500, "Internal Server Error", \
	   "The proxy could not handle this request.", LLL_INFO)

enum udsp_err {
	UDSP_E_NONE,		/* success: 0, so `if (f())` means failed */
#define XX(name, status, title, text, level) UDSP_E_##name,
	UDSP_ERR_MAP(XX)
#undef XX
	UDSP_E_COUNT
};

struct udsp_err_info {
	int		status;
	const char	*title;
	const char	*text;
	int		level;		/* LLL_* */
};

enum udsp_body {
	UDSP_BODY_NONE,
	UDSP_BODY_CL,		/* client gave Content-Length */
	UDSP_BODY_CHUNKED_H1,	/* h1 client sent chunked: we de-chunk */
	UDSP_BODY_STREAM,	/* h2 without length: ends at END_STREAM */
};

/* A growable-within-limits byte queue with LWS_PRE headroom, so that data
 * can be handed to lws_write() in place. */
struct udsp_buf {
	uint8_t		*base;	/* owned: headroom + cap + tailroom */
	size_t		cap, head, tail;
	size_t		want;	/* nominal size: the flow-control marks */
	size_t		lim;	/* cap may grow to this, never past */
};

/* Headroom in front of buffered data: lws's LWS_PRE plus a chunk-size line */
#define UDSP_HEADROOM (LWS_PRE + 24)
/* ...and behind it: chunk CRLF plus the last-chunk marker */
#define UDSP_TAILROOM 8

/*
 * Request body overflow for h2 clients: lws 4.1.6 cannot pause an h2
 * stream or its connection (lws_rx_flow_control() returns early for h2,
 * and the stream window is replenished as DATA arrives), so what a slow
 * backend cannot take yet goes to an unlinked temporary file, as nginx
 * does with client_body_temp_path, and memory stays bounded.
 * docs/lws-notes.md N18
 */
struct udsp_spill {
	int		fd;	/* owned; -1 when unused */
	uint64_t	wr, rd;	/* file offsets */
};

/*
 * A request body nobody wants any more: the backend answered (or the
 * proxy did) before taking all of it.  The client still sends it; what
 * comes is read and dropped, and once the answer is out the client is
 * finished as nginx's lingering close does (linger.c).
 */
struct udsp_linger {
	lws_sorted_usec_list_t	sul;	/* the linger's bounds */
	lws_usec_t		since;	/* when the answer was out */
	lws_usec_t		last;	/* latest body bytes */
	uint64_t		dropped; /* body bytes dropped */
	size_t			owed;	/* h2 window not yet given back */
	unsigned int		on:1;	/* lingering: the answer is out */
	unsigned int		closing:1; /* h2: the stream closes soon */
};

struct udsp_relay {
	struct lws		*cwsi;	/* client stream; NULL once closed */
	struct udsp_vhd		*vhd;	/* borrowed */
	struct udsp_backend	*be;	/* borrowed: vhd lifetime */
	struct udsp_group	*grp;	/* borrowed: be is one of it */
	unsigned int		moves;	/* group.c: failovers so far */
	const struct lws_protocol_vhost_options *pmo; /* borrowed: mount */
	struct udsp_bconn	*bc;	/* bound backend conn, or NULL */
	lws_sorted_usec_list_t	sul;	/* head / idle timeouts */
	lws_dll2_t		wait;	/* be->waiting or be->held */
	lws_sorted_usec_list_t	sul_hold; /* hold.c: the next connect try */
	lws_usec_t		hold_until;	/* 0: not held yet */
	unsigned int		hold_step;	/* ms to the next try */
	lws_usec_t		deadline;	/* of the current timeout */
	lws_usec_t		sul_at;		/* when sul is scheduled */
	lws_usec_t		udsp_to_until;	/* lws's own timeout */
	unsigned long		id;
	lws_usec_t		t_start;	/* for the head latency */
	enum udsp_req_state	req;		/* request half */
	enum udsp_res_state	rs;		/* response half */
	enum udsp_err		err;
	char			peer[48];	/* client address, "" if none */

	/* request */
	char			*reqhead;	/* owned */
	size_t			reqhead_len, reqhead_sent;
	enum udsp_body		body;
	int64_t			body_remain;	/* UDSP_BODY_CL */
	uint64_t		body_sent;	/* bytes of body to backend */
	uint64_t		body_in;	/* bytes of body from client */
	size_t			h2_owed;	/* h2 window read, not given back */
	struct udsp_chunk_dec	cdec;
	struct udsp_buf		q;		/* client -> backend */
	struct udsp_spill	spill;		/* h2 overflow of q */
	struct udsp_linger	linger;		/* once req is DROP */
	int			method;		/* LWSHUMETH_*, or -1 */

	/* response (res itself is last: see relay_new()) */
	char			*hbuf;		/* owned: res header block */
	struct udsp_buf		o;		/* backend -> client */
	int64_t			res_cl;		/* -1 none */
	uint64_t		bytes_out;	/* body bytes to the client */
	int			status_sent;	/* for the access log */
	char			*alog_pre;	/* owned: access log line... */
	char			*alog_post;	/* owned: ...around status */

	/* What the client's request is: set at the start, then read only */
	unsigned int		h2:1;
	unsigned int		http10:1;
	unsigned int		head_req:1;

	/*
	 * The client's side of the body, which runs apart from what goes
	 * onward (req): the body can be all in while it is still queued,
	 * or still coming while it is dropped.
	 */
	unsigned int		body_in_done:1;	/* client body all in */
	unsigned int		client_paused:1; /* we stopped its rx */

	/* How the answer is framed to the client, decided from its head */
	unsigned int		chunked_out:1;	/* we frame for h1 client */
	unsigned int		no_body_out:1;	/* HEAD/204/304 */
	unsigned int		want_final:1;	/* need FINAL write on h2 */
	unsigned int		close_after:1;	/* h1: can't keep-alive */

	/*
	 * What the client has been sent, apart from rs: the head may go
	 * before or after the backend's message is complete (BODY, LAST).
	 */
	unsigned int		head_sent:1;
	unsigned int		final_sent:1;

	/* Done at most once per request */
	unsigned int		retried:1;	/* a fresh connection after a
						 * pooled one failed */
	unsigned int		immortal:1;	/* keep_client() */

	/* The timers (relay.c) */
	unsigned int		sul_armed:1;
	unsigned int		udsp_to_fix:1;	/* re-set lws's body timeout */

	/* lws 4.1.6 workarounds */
	unsigned int		finish_pending:1; /* h2: wait for the flush
						   * (docs/lws-notes.md N25) */

	struct udsp_h1_res	res;		/* last: its f0[] stays dirty */
};

struct udsp_status_ans;		/* status.c's */

struct udsp_pss {
	struct udsp_relay	*r;	/* owned */
	struct udsp_status_ans	*st;	/* owned: a status mount's answer */
	struct udsp_ws		*ws;	/* owned while the client is there */
	const struct lws_protocol_vhost_options *pmo;	/* borrowed: mount */
};

/*
 * The relay.  relay.c: lifecycle, buffers, timers, teardown; relay_req.c:
 * the request half; relay_res.c: the response half.  What only those
 * (and linger.c) share is in relay.h.
 */
int
udsp_relay_start(struct udsp_vhd *vhd, struct lws *wsi,
		 struct udsp_pss *pss, const char *in, size_t len);
void
udsp_relay_client_gone(struct udsp_relay *r);
void
udsp_relay_fail(struct udsp_relay *r, enum udsp_err e, const char *why);
/*
 * back to CONNECTING, with a fresh connect timer: the hold's next try, a
 * move to another member, the retry after a reused connection closed.
 * Returns 0, or -1 after failing r (udsp_bconn_get()).
 */
int
udsp_relay_reconnect(struct udsp_relay *r, const char *why);

/* Order-free tests of the two states */
static inline int
udsp_relay_ended(const struct udsp_relay *r)
{
	return r->rs == UDSP_RES_DONE || r->rs == UDSP_RES_FAILED ||
	       r->rs == UDSP_RES_ABORTED;
}
/* any response byte came (or the relay ended) */
static inline int
udsp_res_started(const struct udsp_relay *r)
{
	return r->rs != UDSP_RES_WAIT;
}
/* the backend's head is parsed and the answer has not ended */
static inline int
udsp_res_has_head(const struct udsp_relay *r)
{
	return r->rs == UDSP_RES_BODY || r->rs == UDSP_RES_LAST ||
	       r->rs == UDSP_RES_CUT;
}
/* the request is no longer going onward: all out, or dropped */
static inline int
udsp_req_sent(const struct udsp_relay *r)
{
	return r->req == UDSP_REQ_SENT;
}
static inline int
udsp_req_dropped(const struct udsp_relay *r)
{
	return r->req == UDSP_REQ_DROP;
}
void
udsp_req_set(struct udsp_relay *r, enum udsp_req_state to, const char *why);
void
udsp_res_set(struct udsp_relay *r, enum udsp_res_state to, const char *why);

/* relay_req.c: the request half */
int
udsp_relay_client_body(struct udsp_relay *r, const uint8_t *in, size_t len);
int
udsp_relay_client_body_done(struct udsp_relay *r);
void
udsp_relay_client_rx(struct udsp_relay *r, int on);

/* relay_res.c: the response half */
int
udsp_relay_client_writeable(struct udsp_relay *r);
int
udsp_relay_finish(struct udsp_relay *r);

/*
 * What bconn.c reports to the relay bound to a connection, as h2o's
 * http1client calls on_connect / on_head / on_body: the relay decides,
 * bconn.c only tells.
 */
/* open, and TLS (if any) up */
void
udsp_relay_backend_connected(struct udsp_relay *r);
/* can take bytes; -1: close the connection */
int
udsp_relay_backend_writeable(struct udsp_relay *r);
/* bytes came (plaintext); -1: close the connection */
int
udsp_relay_backend_rx(struct udsp_relay *r, const uint8_t *in, size_t len);
/* the connection is gone (bc is unbound); connected: it had been open */
void
udsp_relay_backend_closed(struct udsp_relay *r, int connected, int reused);
/*
 * the connect failed at once; local: this process is short of descriptors,
 * no fault of the backend's.  Returns 0 if r goes on (another member,
 * held), -1 after failing r.
 */
int
udsp_relay_connect_failed(struct udsp_relay *r, int err, int local,
			  const char *why);

/* bconn.c: one backend connection */
int
udsp_bconn_get(struct udsp_relay *r);
int
udsp_bconn_callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *in, size_t len);
void
udsp_bconn_release(struct udsp_bconn *bc, int reusable);
int
udsp_bconn_write(struct udsp_bconn *bc, const uint8_t *p, size_t len);
void
udsp_bconn_rx_flow(struct udsp_bconn *bc, int on);
/* What the relay may ask of its connection */
int
udsp_bconn_paused(const struct udsp_bconn *bc);	/* rx flow-controlled */
int
udsp_bconn_connected(const struct udsp_bconn *bc); /* socket up, maybe not TLS */
int
udsp_bconn_dead(const struct udsp_bconn *bc);	/* must not be reused */
int
udsp_bconn_partial(const struct udsp_bconn *bc); /* lws holds unsent bytes */
/* a WRITEABLE, once open (and TLS up) */
void
udsp_bconn_wake(struct udsp_bconn *bc);

/* pool.c: a backend's connections together, and its health */
void
udsp_pool_destroy(struct udsp_vhd *vhd);
void
udsp_pool_unqueue(struct udsp_relay *r);
void
udsp_pool_drain(struct udsp_vhd *vhd);
struct udsp_bconn *
udsp_pool_take(struct udsp_relay *r);
int
udsp_pool_wait(struct udsp_relay *r);
int
udsp_pool_put(struct udsp_bconn *bc);
/* a connection slot (or an idle connection) is free: the next waiter */
void
udsp_pool_kick(struct udsp_backend *be);
void
udsp_pool_health(struct udsp_backend *be, int ok, const char *why);
int
udsp_pool_local_err(int err);
void
udsp_pool_fds_short(const char *why);
void
udsp_pool_fds_ok(void);

/* hold.c: requests wait for a backend that is restarting */
int
udsp_hold_try(struct udsp_relay *r, int err);
void
udsp_hold_cancel(struct udsp_relay *r);
/* a non-blocking connect to a unix backend now: 0 or its errno */
int
udsp_unix_connect_errno(const struct udsp_backend *be);

/*
 * ws_early.c: a ws upgrade's backend before the 101 (lws-uds-proxyd hands
 * the plugin its mount table; docs/lws-notes.md N47)
 */
int
udsp_ws_early_conf(struct udsp_vhd *vhd,
		   const struct lws_protocol_vhost_options *pvo);
/* HTTP_CONFIRM_UPGRADE: 0 go on, 1 the 503 page is out, -1 hang up */
int
udsp_ws_early_confirm(struct udsp_vhd *vhd, struct lws *wsi, const char *up);
/* FILTER_PROTOCOL_CONNECTION, h2: 0 go on, 1 the page is out, refuse */
int
udsp_ws_early_filter(struct udsp_vhd *vhd, struct lws *wsi);

/* group.c: several backends behind one mount */
struct udsp_group;
struct udsp_group *
udsp_group_lookup(struct udsp_vhd *vhd, const char *spec);
void
udsp_group_destroy(struct udsp_vhd *vhd);
struct udsp_backend *
udsp_group_pick(struct udsp_group *g);
unsigned int
udsp_group_size(const struct udsp_group *g);	/* 0 for NULL */
struct udsp_backend *
udsp_group_member(const struct udsp_group *g, unsigned int i);
/* r's connect failed: 1 if r->be is now another member to connect to */
int
udsp_group_failover(struct udsp_relay *r);
/* ...failed later (udsp_relay_backend_closed()): 1 if r moved on or is
 * held */
int
udsp_group_connect_failed(struct udsp_relay *r);
/* relay.c's connect timer ran out: 1 if r moved on or is held */
int
udsp_group_connect_timeout(struct udsp_relay *r);
/* a WebSocket's connection, moving on from members that fail */
struct udsp_bconn *
udsp_group_ws_open(struct udsp_ws *ws, struct udsp_vhd *vhd,
		   struct udsp_group *g, struct udsp_backend **be,
		   unsigned int *moves, int failed, char *why, size_t whylen);
/* r's backend answered garbage / a good head */
void
udsp_group_bad_answer(struct udsp_relay *r);
void
udsp_group_good_answer(struct udsp_relay *r);
/* a held request's next try: the member it goes to */
void
udsp_group_rehold(struct udsp_relay *r);

struct udsp_bconn *
udsp_bconn_open_ws(struct udsp_ws *ws, struct udsp_vhd *vhd,
		   struct udsp_backend *be, char *why, size_t whylen);

/* ws_relay.c: WebSocket connections through a proxied mount */
int
udsp_ws_callback(struct udsp_vhd *vhd, struct lws *wsi,
		 struct udsp_pss *pss, enum lws_callback_reasons reason,
		 void *in, size_t len);
int
udsp_ws_backend_writeable(struct udsp_ws *ws);
int
udsp_ws_backend_rx(struct udsp_ws *ws, const uint8_t *in, size_t len);
void
udsp_ws_backend_closed(struct udsp_ws *ws, int connected);

/*
 * reqhead.c: request head from the client's headers.  UDSP_E_BAD_REQUEST
 * for what the client sent (unusable method, target or header value, two
 * Hosts), UDSP_E_INTERNAL for out of memory.
 */
enum udsp_err
udsp_reqhead_build(struct udsp_relay *r, const char *remainder);
void
udsp_client_addr(struct lws *wsi, char *buf, size_t len);
const char *
udsp_req_method(struct udsp_relay *r, char *buf, size_t len);
void
udsp_reqhead_alog(struct udsp_relay *r);
/* The onward GET + Upgrade head for a WebSocket (ws_relay.c); *out has
 * LWS_PRE headroom in front, free(*out - LWS_PRE). */
enum udsp_err
udsp_reqhead_build_ws(struct lws *wsi, struct udsp_vhd *vhd,
		      struct udsp_backend *be,
		      const struct lws_protocol_vhost_options *pmo,
		      const char *peer, const char *remainder,
		      const char *key, const char *proto, char **out,
		      size_t *outlen);
/* the mounts' forward-headers kept on the vhost */
void
udsp_reqhead_vhd_free(struct udsp_vhd *vhd);

/* accesslog.c */
int
udsp_alog_open(struct udsp_vhd *vhd, const char *path);
void
udsp_alog_begin(struct udsp_relay *r, const char *method, const char *target);
void
udsp_alog_end(struct udsp_relay *r, int status);

/* errpage.c */
int
udsp_errpage_send(struct udsp_relay *r);
/* the whole page for e now, before a ws 101 or h2 200; 0 or -1 */
int
udsp_errpage_now(struct lws *wsi, enum udsp_err e, int h2);
/* The UDSP_ERR_MAP row for e; UDSP_E_NONE and strays get INTERNAL's. */
const struct udsp_err_info *
udsp_err_info(enum udsp_err e);
int
udsp_err_status(enum udsp_err e);

/* buf helpers (relay.c) */
int
udsp_buf_init(struct udsp_vhd *vhd, struct udsp_buf *b, size_t cap);
void
udsp_buf_free(struct udsp_vhd *vhd, struct udsp_buf *b);
void
udsp_cache_destroy(struct udsp_vhd *vhd);
/* Room for len more bytes at the tail (compacting or growing); NULL if
 * that would pass the hard limit.  The caller advances b->tail. */
uint8_t *
udsp_buf_reserve(struct udsp_buf *b, size_t len);
int
udsp_buf_append(struct udsp_buf *b, const uint8_t *p, size_t len);
static inline size_t
udsp_buf_len(const struct udsp_buf *b)
{
	return b->tail - b->head;
}
static inline uint8_t *
udsp_buf_data(const struct udsp_buf *b)
{
	return b->base + b->head;
}
void
udsp_buf_consume(struct udsp_buf *b, size_t n);

/* status.c: the status mount, and the hooks where counted things happen */
void
udsp_status_vhd_add(struct udsp_vhd *vhd);
void
udsp_status_vhd_remove(struct udsp_vhd *vhd);
const char *
udsp_status_kind(const struct lws_protocol_vhost_options *pmo);
int
udsp_status_start(struct udsp_vhd *vhd, struct lws *wsi, struct udsp_pss *pss);
int
udsp_status_writeable(struct lws *wsi, struct udsp_pss *pss);
void
udsp_status_free(struct udsp_pss *pss);
void
udsp_stats_request(struct udsp_backend *be);
void
udsp_stats_response(struct udsp_backend *be, int status, int proxy_made);
void
udsp_stats_connect_fail(struct udsp_backend *be);
void
udsp_stats_bytes(struct udsp_backend *be, size_t from_be, size_t to_be);
void
udsp_stats_head_latency(struct udsp_backend *be, lws_usec_t usec);

/* conf (protocol_lws_uds_proxy.c) */
struct udsp_backend *
udsp_backend_lookup(struct udsp_vhd *vhd, const char *spec);

#endif
