/* SPDX-License-Identifier: MIT
 *
 * WebSocket through a proxied mount: a message relay.  lws terminates the
 * client's WebSocket itself (it sends the 101 before the plugin hears of
 * the request), so the plugin joins two WebSocket connections: lws's
 * server side toward the client, and its own client side toward the
 * backend (a bconn, with the frames made and parsed by ws_codec.c).
 * Messages keep their type and boundaries; frames are re-cut.
 *
 *   ESTABLISHED  -> backend connect, GET + Upgrade at the mapped path
 *   backend 101  -> checked (accept key, subprotocol), then OPEN
 *   OPEN         -> messages, pings, pongs both ways; each direction a
 *                   bounded queue that pauses its sender when full
 *   close        -> carried to the other side with its code and reason;
 *                   the backend's side of the handshake is bounded by a
 *                   timer once the client has gone
 */
#include "private.h"

#include <stdlib.h>
#include <openssl/sha.h>
#include <openssl/evp.h>

enum ws_state {
	WS_CONNECTING,	/* backend connect, head being sent */
	WS_HANDSHAKE,	/* head sent, waiting for the 101 */
	WS_OPEN,
	WS_CLOSING,	/* a close went to the backend: waiting for its */
	WS_DONE,	/* backend gone or given up */
};

struct udsp_ws {
	struct lws		*cwsi;	/* client; NULL once lws closed it */
	struct udsp_vhd		*vhd;	/* borrowed */
	struct udsp_backend	*be;	/* borrowed: vhd lifetime */
	struct udsp_bconn	*bc;	/* NULL once closed */
	lws_sorted_usec_list_t	sul;	/* connect, 101, close, idle */
	lws_usec_t		deadline;
	unsigned long		id;
	enum ws_state		state;

	char			*reqhead;	/* owned; LWS_PRE in front */
	size_t			reqhead_len, reqhead_sent;
	struct udsp_h1_res	*res;	/* owned during the handshake */
	char			*hbuf;	/* owned during the handshake */
	char			accept[32];	/* expected Sec-WebSocket-Accept */
	char			proto[64];	/* given to the client, or "" */

	struct udsp_ws_parser	p;	/* backend -> us */
	struct udsp_buf		tob;	/* masked frames to the backend */
	struct udsp_buf		toc;	/* records for the client */
	uint64_t		max_msg;
	uint64_t		cmsg;	/* client message size so far */
	unsigned int		idle_ms;
	uint64_t		rnd;	/* mask generator state */

	int			cclose;	/* close code queued for the client */

	unsigned int		h2:1;
	unsigned int		cmsg_open:1;	/* client message in progress */
	unsigned int		client_paused:1;
	unsigned int		close_queued:1;	/* a close record is in toc */
	unsigned int		bclose_sent:1;	/* close frame to backend */
	unsigned int		bclose_rcvd:1;
};

/* A client-bound record in toc: header, lws's headroom, payload. */
#define REC_HDR	8
#define REC_GAP	(LWS_PRE + 16)
enum { K_DATA, K_CLOSE };

#define ws_info(ws, fmt, ...) \
	lwsl_info("%s: ws%lu: " fmt "\n", __func__, (ws)->id, ##__VA_ARGS__)

static void
ws_free(struct udsp_ws *ws);

/* ---- timers ---- */

static void
sul_cb(lws_sorted_usec_list_t *sul);

static void
arm(struct udsp_ws *ws, unsigned int ms)
{
	lws_usec_t now = lws_now_usecs();

	if (!ms) {
		lws_sul_cancel(&ws->sul);
		ws->deadline = 0;
		return;
	}
	ws->deadline = now + (lws_usec_t)ms * LWS_US_PER_MS;
	lws_sul_schedule(ws->vhd->cx, 0, &ws->sul, sul_cb,
			 (lws_usec_t)ms * LWS_US_PER_MS);
}

/* An idle timer on an open ws is re-armed by traffic: cheaply, by moving
 * the deadline; sul_cb() reschedules when it fires early. */
static void
touch(struct udsp_ws *ws)
{
	if (ws->state == WS_OPEN && ws->idle_ms)
		ws->deadline = lws_now_usecs() +
			       (lws_usec_t)ws->idle_ms * LWS_US_PER_MS;
}

/* ---- toward the client ---- */

static void
wake_client(struct udsp_ws *ws)
{
	if (ws->cwsi)
		lws_callback_on_writable(ws->cwsi);
}

static void
wake_backend(struct udsp_ws *ws)
{
	if (ws->bc)
		udsp_bconn_wake(ws->bc);
}

static int
rec_put(struct udsp_ws *ws, int kind, int wp, const uint8_t *d, size_t len)
{
	uint8_t *p, h[REC_HDR];
	uint32_t l = (uint32_t)len;

	if (!ws->cwsi || ws->close_queued)
		return 0;	/* nobody to tell, or nothing after a close */
	p = udsp_buf_reserve(&ws->toc, REC_HDR + REC_GAP + len);
	if (!p)
		return -1;
	memcpy(h, &l, 4);
	h[4] = (uint8_t)kind;
	h[5] = (uint8_t)wp;
	h[6] = (uint8_t)(wp >> 8);
	h[7] = 0;
	memcpy(p, h, REC_HDR);
	if (len)
		memcpy(p + REC_HDR + REC_GAP, d, len);
	ws->toc.tail += REC_HDR + REC_GAP + len;
	wake_client(ws);

	return 0;
}

/* Close the client with code (after what is queued for it). */
static void
client_close_r(struct udsp_ws *ws, int code, const uint8_t *reason,
	       size_t rlen)
{
	uint8_t body[125];
	size_t n;

	if (!ws->cwsi || ws->close_queued)
		return;
	n = udsp_ws_close_body(body, code, reason, rlen);
	if (rec_put(ws, K_CLOSE, code, body, n)) {
		/* no room even for that: drop what is queued */
		ws->toc.head = ws->toc.tail = UDSP_HEADROOM;
		rec_put(ws, K_CLOSE, code, body, n);
	}
	ws->close_queued = 1;
}

static void
client_close(struct udsp_ws *ws, int code, const char *reason)
{
	client_close_r(ws, code, (const uint8_t *)reason,
		       reason ? strlen(reason) : 0);
}

/*
 * lws_write() one frame per record.  On h1 several go per WRITEABLE while
 * the socket takes them; on h2 one, as lws wants for a stream.
 */
static int
client_writeable(struct udsp_ws *ws)
{
	uint8_t *p, h[REC_HDR];
	uint32_t len;
	int wp, kind, n = 0;

	while (udsp_buf_len(&ws->toc) >= REC_HDR + REC_GAP) {
		if (n && (ws->h2 || lws_send_pipe_choked(ws->cwsi))) {
			lws_callback_on_writable(ws->cwsi);
			break;
		}
		p = udsp_buf_data(&ws->toc);
		memcpy(h, p, REC_HDR);
		memcpy(&len, h, 4);
		kind = h[4];
		wp = h[5] | h[6] << 8;
		p += REC_HDR + REC_GAP;
		udsp_buf_consume(&ws->toc, REC_HDR + REC_GAP + len);
		if (kind == K_CLOSE) {
			/*
			 * lws sends it and waits for the client's answer,
			 * which it must be let read: a client still paused
			 * (before the backend's 101, or by a full queue)
			 * would otherwise hold the close until lws's
			 * timeout-secs.
			 */
			if (ws->client_paused) {
				lws_rx_flow_control(ws->cwsi, 1);
				ws->client_paused = 0;
			}
			lws_close_reason(ws->cwsi,
					 (enum lws_close_status)wp,
					 len > 2 ? p + 2 : NULL,
					 len > 2 ? len - 2 : 0);
			return -1;
		}
		if (lws_write(ws->cwsi, p, len,
			      (enum lws_write_protocol)wp) < (int)len)
			return -1;
		n++;
	}

	/* room again: let the backend talk */
	if (ws->bc && udsp_bconn_paused(ws->bc) &&
	    udsp_buf_len(&ws->toc) < ws->toc.want / 2)
		udsp_bconn_rx_flow(ws->bc, 1);

	return 0;
}

/* ---- toward the backend ---- */

static void
mask_key(struct udsp_ws *ws, uint8_t *m)
{
	/*
	 * xorshift64*: masking protects intermediaries from a browser's
	 * chosen bytes; here we are the client and pick the payloads
	 * ourselves, so a cheap generator seeded from lws's random is enough.
	 */
	uint64_t x = ws->rnd;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	ws->rnd = x;
	x *= 0x2545f4914f6cdd1dull;
	memcpy(m, &x, 4);
}

static int
backend_frame(struct udsp_ws *ws, int op, int fin, const uint8_t *d,
	      size_t len)
{
	uint8_t m[4], *p;
	size_t hl;

	mask_key(ws, m);
	p = udsp_buf_reserve(&ws->tob, 14 + len);
	if (!p)
		return -1;
	hl = udsp_ws_frame_head(p, op, fin, len, m);
	if (len) {
		memcpy(p + hl, d, len);
		udsp_ws_mask(p + hl, len, m, 0);
	}
	ws->tob.tail += hl + len;
	wake_backend(ws);

	return 0;
}

static void
backend_close(struct udsp_ws *ws, int code, const uint8_t *reason,
	      size_t rlen)
{
	uint8_t body[125];
	size_t n;

	if (ws->bclose_sent || ws->state >= WS_DONE)
		return;
	ws->bclose_sent = 1;
	if (ws->state != WS_OPEN) {
		/* not open yet: nothing to close politely */
		ws->state = WS_DONE;
		if (ws->bc) {
			ws->bc->ws = NULL;
			udsp_bconn_release(ws->bc, 0);
			ws->bc = NULL;
		}
		return;
	}
	n = udsp_ws_close_body(body, code, reason, rlen);
	if (backend_frame(ws, UDSP_WS_OP_CLOSE, 1, body, n)) {
		ws->tob.head = ws->tob.tail = UDSP_HEADROOM;
		backend_frame(ws, UDSP_WS_OP_CLOSE, 1, body, n);
	}
	ws->state = WS_CLOSING;
	/* the backend's answer, bounded */
	arm(ws, ws->vhd->conf.connect_ms);
}

int
udsp_ws_backend_writeable(struct udsp_ws *ws)
{
	size_t n;

	if (ws->state == WS_HANDSHAKE)
		return 0;	/* nothing goes before the 101 */
	if (ws->state == WS_CONNECTING) {
		n = ws->reqhead_len - ws->reqhead_sent;
		if (udsp_bconn_write(ws->bc, (const uint8_t *)ws->reqhead +
				     ws->reqhead_sent, n))
			return -1;
		ws->reqhead_sent += n;
		ws->state = WS_HANDSHAKE;
		arm(ws, ws->vhd->conf.head_ms);
		return 0;
	}

	n = udsp_buf_len(&ws->tob);
	if (!n) {
		if (ws->state == WS_DONE)
			return -1;
		return 0;
	}
	/* one piece per WRITEABLE: lws holds what the socket did not take */
	if (n > 16384)
		n = 16384;
	if (udsp_bconn_write(ws->bc, udsp_buf_data(&ws->tob), n))
		return -1;
	udsp_buf_consume(&ws->tob, n);
	if (udsp_buf_len(&ws->tob))
		wake_backend(ws);

	if (ws->client_paused && ws->cwsi &&
	    udsp_buf_len(&ws->tob) < ws->tob.want / 2) {
		lws_rx_flow_control(ws->cwsi, 1);
		ws->client_paused = 0;
	}

	return 0;
}

/* The backend's 101 arrived (head parsed): is it the upgrade we asked? */
static const char *
check_101(struct udsp_ws *ws)
{
	const struct udsp_h1_res *r = ws->res;
	const char *v;
	size_t vl;

	if (r->status != 101)
		return "backend refused the upgrade";
	v = udsp_h1_find(r, "upgrade", &vl);
	if (!v || vl != 9 || strncasecmp(v, "websocket", 9))
		return "backend's 101 has no Upgrade: websocket";
	v = udsp_h1_find(r, "sec-websocket-accept", &vl);
	if (!v || vl != strlen(ws->accept) || memcmp(v, ws->accept, vl))
		return "backend's Sec-WebSocket-Accept is wrong";
	if (udsp_h1_find(r, "sec-websocket-extensions", &vl))
		return "backend chose an extension nobody offered";
	v = udsp_h1_find(r, "sec-websocket-protocol", &vl);
	if (ws->proto[0]) {
		if (!v || vl != strlen(ws->proto) || memcmp(v, ws->proto, vl))
			return "subprotocol mismatch";
	} else if (v)
		return "backend chose a subprotocol nobody offered";

	return NULL;
}

static int
on_frames(struct udsp_ws *ws, uint8_t *in, size_t len)
{
	struct udsp_ws_ev ev;
	size_t used;
	int wp;

	while (len && ws->state == WS_OPEN) {
		used = udsp_ws_parse(&ws->p, in, len, &ev);
		in += used;
		len -= used;
		switch (ev.type) {
		case UDSP_WS_EV_NONE:
			break;
		case UDSP_WS_EV_DATA:
			if (ev.first)
				wp = ev.op == UDSP_WS_OP_TEXT ?
				     LWS_WRITE_TEXT : LWS_WRITE_BINARY;
			else
				wp = LWS_WRITE_CONTINUATION;
			if (!ev.last)
				wp |= LWS_WRITE_NO_FIN;
			if (rec_put(ws, K_DATA, wp, ev.data, ev.len))
				return -1;
			break;
		case UDSP_WS_EV_CONTROL:
			if (ev.op == UDSP_WS_OP_CLOSE) {
				ws->bclose_rcvd = 1;
				/* lws cannot send a close without a code:
				 * "none" (1005) becomes a plain 1000 */
				client_close_r(ws, ev.close_code == 1005 ?
					       1000 : ev.close_code,
					       ev.reason, ev.reason_len);
				backend_close(ws, ev.close_code,
					      ev.reason, ev.reason_len);
				return 0;
			}
			/* pings and pongs reach the client, whose pongs
			 * come back: liveness is end to end */
			if (rec_put(ws, K_DATA, ev.op == UDSP_WS_OP_PING ?
				    LWS_WRITE_PING : LWS_WRITE_PONG,
				    ev.data, ev.len))
				return -1;
			break;
		case UDSP_WS_EV_ERROR:
			ws_info(ws, "backend: %s", ev.why);
			client_close(ws, ev.close_code == 1009 ? 1009 : 1014,
				     ev.close_code == 1009 ?
				     "message too big" : "bad frame from backend");
			backend_close(ws, ev.close_code, NULL, 0);
			return 0;
		}
	}
	touch(ws);

	/* the client is backed up: stop reading the backend */
	if (udsp_buf_len(&ws->toc) >= ws->toc.want && ws->bc)
		udsp_bconn_rx_flow(ws->bc, 0);

	return 0;
}

int
udsp_ws_backend_rx(struct udsp_ws *ws, const uint8_t *in, size_t len)
{
	const char *why;
	long n;

	if (ws->state == WS_HANDSHAKE) {
		n = udsp_h1_res_feed(ws->res, (const char *)in, len);
		if (n < 0) {
			ws_info(ws, "backend's answer: %s", ws->res->err);
			client_close(ws, 1014, "bad answer from backend");
			backend_close(ws, 1002, NULL, 0);
			return 0;
		}
		if (!ws->res->head_done)
			return 0;
		why = check_101(ws);
		if (why) {
			ws_info(ws, "%s (status %d)", why, ws->res->status);
			client_close(ws, 1014, why);
			backend_close(ws, 1002, NULL, 0);
			return 0;
		}
		free(ws->res);
		ws->res = NULL;
		free(ws->hbuf);
		ws->hbuf = NULL;
		ws->state = WS_OPEN;
		arm(ws, ws->idle_ms);
		ws_info(ws, "open%s%s", ws->proto[0] ? ", subprotocol " : "",
			ws->proto);
		/* the client's early messages were held back until now */
		if (ws->client_paused && ws->cwsi) {
			lws_rx_flow_control(ws->cwsi, 1);
			ws->client_paused = 0;
		}
		wake_backend(ws);
		in += n;
		len -= (size_t)n;
	}

	if (ws->state == WS_CLOSING) {
		/* frames after our close are dropped; only its answer counts */
		struct udsp_ws_ev ev;
		size_t used;

		while (len) {
			used = udsp_ws_parse(&ws->p, (uint8_t *)in, len, &ev);
			in += used;
			len -= used;
			if (ev.type == UDSP_WS_EV_ERROR ||
			    (ev.type == UDSP_WS_EV_CONTROL &&
			     ev.op == UDSP_WS_OP_CLOSE)) {
				/* done: the close of the connection frees
				 * ws (udsp_ws_backend_closed()) if the
				 * client is gone */
				ws->bclose_rcvd = 1;
				ws->state = WS_DONE;
				return -1;
			}
		}
		return 0;
	}

	if (ws->state != WS_OPEN)
		return 0;

	/* backend frames are unmasked: the parser does not write to in */
	return on_frames(ws, (uint8_t *)in, len);
}

void
udsp_ws_backend_closed(struct udsp_ws *ws, int connected)
{
	ws->bc = NULL;
	switch (ws->state) {
	case WS_CONNECTING:
	case WS_HANDSHAKE:
		ws_info(ws, "backend %s before its 101",
			connected ? "closed" : "unreachable");
		client_close(ws, 1014, connected ? "backend closed" :
					 "backend unreachable");
		break;
	case WS_OPEN:
		ws_info(ws, "backend closed without a close frame");
		client_close(ws, 1011, "backend went away");
		break;
	default:
		break;
	}
	ws->state = WS_DONE;
	if (!ws->cwsi)
		ws_free(ws);
}

static void
sul_cb(lws_sorted_usec_list_t *sul)
{
	struct udsp_ws *ws = lws_container_of(sul, struct udsp_ws, sul);
	lws_usec_t now = lws_now_usecs();

	if (!ws->deadline)
		return;
	if (ws->deadline > now) {
		lws_sul_schedule(ws->vhd->cx, 0, &ws->sul, sul_cb,
				 ws->deadline - now);
		return;
	}
	ws->deadline = 0;
	switch (ws->state) {
	case WS_CONNECTING:
	case WS_HANDSHAKE:
		ws_info(ws, "backend timed out before its 101");
		client_close(ws, 1014, "backend timed out");
		backend_close(ws, 1001, NULL, 0);
		break;
	case WS_OPEN:
		ws_info(ws, "idle for %u ms", ws->idle_ms);
		client_close(ws, 1001, "idle timeout");
		backend_close(ws, 1001, (const uint8_t *)"idle timeout", 12);
		break;
	case WS_CLOSING:
	case WS_DONE:
		/* the backend never answered our close: drop it */
		ws->state = WS_DONE;
		if (ws->bc) {
			ws->bc->ws = NULL;
			udsp_bconn_release(ws->bc, 0);
			ws->bc = NULL;
		}
		if (!ws->cwsi)
			ws_free(ws);
		break;
	}
}

/* ---- setup ---- */

static const char *
pmo_get(const struct lws_protocol_vhost_options *pmo, const char *name)
{
	for (; pmo; pmo = pmo->next)
		if (!strcmp(pmo->name, name))
			return pmo->value;

	return NULL;
}

static void
ws_free(struct udsp_ws *ws)
{
	lws_sul_cancel(&ws->sul);
	if (ws->bc) {
		ws->bc->ws = NULL;
		udsp_bconn_release(ws->bc, 0);
		ws->bc = NULL;
	}
	if (ws->reqhead)
		free(ws->reqhead - LWS_PRE);
	free(ws->res);
	free(ws->hbuf);
	udsp_buf_free(ws->vhd, &ws->tob);
	udsp_buf_free(ws->vhd, &ws->toc);
	free(ws);
}

/*
 * The key we send and the accept value its 101 must carry (RFC 6455
 * 4.2.2: base64 of SHA-1 of the key and the GUID).
 */
static void
make_key(struct udsp_ws *ws, char *key, size_t klen)
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	uint8_t r[16], md[SHA_DIGEST_LENGTH];
	char cat[64];
	int n;

	lws_get_random(ws->vhd->cx, r, sizeof(r));
	memcpy(&ws->rnd, r, 8);
	ws->rnd |= 1;
	EVP_EncodeBlock((unsigned char *)key, r, sizeof(r));
	key[klen - 1] = '\0';
	n = lws_snprintf(cat, sizeof(cat), "%s%s", key, guid);
	SHA1((const unsigned char *)cat, (size_t)n, md);
	EVP_EncodeBlock((unsigned char *)ws->accept, md, sizeof(md));
}

/* The path under the mount, as lws gives it for HTTP requests. */
static const char *
remainder_of(struct lws *wsi, const struct lws_protocol_vhost_options *pmo)
{
	const char *mp = pmo_get(pmo, "mountpoint");
	char *uri;
	int ulen;
	size_t ml;

	if (lws_http_get_uri_and_method(wsi, &uri, &ulen) < 0 || ulen <= 0)
		return NULL;
	if (!mp || !strcmp(mp, "/"))
		return uri;
	ml = strlen(mp);
	if (mp[ml - 1] == '/')
		ml--;
	if ((size_t)ulen < ml || strncmp(uri, mp, ml) ||
	    (uri[ml] && uri[ml] != '/'))
		return NULL;

	return uri + ml;
}

static int
established(struct udsp_vhd *vhd, struct lws *wsi, struct udsp_pss *pss)
{
	const struct lws_protocol_vhost_options *pmo = pss->pmo;
	const char *s, *rem, *bound = lws_get_protocol(wsi)->name;
	struct udsp_backend *be = udsp_group_pick(vhd->def);
	char key[32], peer[48], why[128];
	struct udsp_ws *ws;
	enum udsp_err e;
	unsigned long kb = 16384;

	ws = calloc(1, sizeof(*ws));
	if (!ws)
		return -1;
	ws->cwsi = wsi;
	ws->vhd = vhd;
	ws->id = ++vhd->next_id;
	ws->state = WS_CONNECTING;
	ws->h2 = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COLON_METHOD) > 0;
	pss->ws = ws;
	if (udsp_buf_init(vhd, &ws->tob, vhd->conf.max_buffer) ||
	    udsp_buf_init(vhd, &ws->toc, vhd->conf.max_buffer)) {
		client_close(ws, 1011, "out of memory");
		return 0;
	}
	/* a single frame of a few KiB must always fit, whatever the
	 * buffer: lim is 4 * want */

	/*
	 * lws arms nothing on an established ws, but the accept-time
	 * timeout may still be pending: a quiet ws stays, bounded by
	 * ws-idle-timeout-ms if the mount sets it.
	 */
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
	if (ws->h2)
		/* lws would otherwise end the whole h2 connection after
		 * keepalive-timeout without frames */
		lws_http_mark_sse(wsi);

	s = pmo_get(pmo, "backend");
	if (s)
		be = udsp_group_pick(udsp_group_lookup(vhd, s));
	s = pmo_get(pmo, "ws-max-message-kb");
	if (s)
		kb = strtoul(s, NULL, 10);
	ws->max_msg = (uint64_t)kb * 1024;
	s = pmo_get(pmo, "ws-idle-timeout-ms");
	if (s)
		ws->idle_ms = (unsigned int)strtoul(s, NULL, 10);
	udsp_ws_parser_init(&ws->p, 0, ws->max_msg);

	if (!pmo) {
		/*
		 * lws binds a ws upgrade by subprotocol or to the default
		 * protocol whatever its URL, and tells a mount's options
		 * (HTTP_PMO) only for a mount with some: without them this
		 * URL is not known to be under a proxied mount.
		 */
		ws_info(ws, "no mount options: not a proxied mount");
		client_close(ws, 1008, "not a proxied WebSocket URL");
		return 0;
	}
	if (!be || be->bad) {
		client_close(ws, 1011, "no backend configured");
		return 0;
	}
	ws->be = be;

	/* the subprotocol lws named in its 101, if the client offered any */
	if (lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) && bound) {
		lws_snprintf(ws->proto, sizeof(ws->proto), "%s", bound);
		s = pmo_get(pmo, "ws-subprotocols");
		if (!s || !udsp_ws_list_has(s, strlen(s), ws->proto,
					    strlen(ws->proto))) {
			ws_info(ws, "subprotocol %s not listed for this mount",
				ws->proto);
			client_close(ws, 1014, "subprotocol not served here");
			return 0;
		}
	}

	rem = remainder_of(wsi, pmo);
	udsp_client_addr(wsi, peer, sizeof(peer));
	make_key(ws, key, sizeof(key));
	e = rem ? udsp_reqhead_build_ws(wsi, vhd, be, pmo, peer, rem, key,
					ws->proto[0] ? ws->proto : NULL,
					&ws->reqhead, &ws->reqhead_len) :
		  UDSP_E_BAD_REQUEST;
	if (e == UDSP_E_INTERNAL) {
		client_close(ws, 1011, "out of memory");
		return 0;
	}
	if (e) {
		client_close(ws, 1008, "request cannot be forwarded");
		return 0;
	}

	ws->res = malloc(sizeof(*ws->res));
	ws->hbuf = malloc(vhd->conf.max_header);
	if (!ws->res || !ws->hbuf) {
		client_close(ws, 1011, "out of memory");
		return 0;
	}
	udsp_h1_res_init(ws->res, ws->hbuf, vhd->conf.max_header, 0, NULL,
			 NULL);
	ws->res->upgrade_ok = 1;

	/* messages the client sends before the backend's 101 wait in lws */
	lws_rx_flow_control(wsi, 0);
	ws->client_paused = 1;

	ws->bc = udsp_bconn_open_ws(ws, vhd, be, why, sizeof(why));
	if (!ws->bc) {
		/* the 101 is out already (lws sent it): close "bad gateway" */
		ws_info(ws, "backend %s: %s", be->spec, why);
		ws->state = WS_DONE;
		client_close(ws, 1014, "backend unavailable");
		return 0;
	}
	arm(ws, vhd->conf.connect_ms);
	ws_info(ws, "to %s, %d-byte head", be->spec, (int)ws->reqhead_len);

	return 0;
}

/* A piece of a client message: re-framed and masked toward the backend. */
static int
client_rx(struct udsp_ws *ws, struct lws *wsi, const uint8_t *in, size_t len)
{
	int op, fin = lws_is_final_fragment(wsi);

	if (ws->state >= WS_CLOSING)
		return 0;	/* going away: drop */
	if (!ws->cmsg_open) {
		op = lws_frame_is_binary(wsi) ? UDSP_WS_OP_BINARY :
						UDSP_WS_OP_TEXT;
		ws->cmsg = 0;
	} else
		op = UDSP_WS_OP_CONT;
	ws->cmsg += len;
	if (ws->max_msg && ws->cmsg > ws->max_msg) {
		ws_info(ws, "client message over %llu bytes",
			(unsigned long long)ws->max_msg);
		backend_close(ws, 1009, (const uint8_t *)"message too big", 15);
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
				 (unsigned char *)"message too big", 15);
		ws->close_queued = 1;
		return -1;
	}
	ws->cmsg_open = !fin;
	if (backend_frame(ws, op, fin, in, len))
		return -1;
	touch(ws);
	if (udsp_buf_len(&ws->tob) >= ws->tob.want && !ws->client_paused) {
		/* h1 only: lws 4.1.6 cannot pause an h2 stream */
		lws_rx_flow_control(wsi, 0);
		ws->client_paused = 1;
	}

	return 0;
}

int
udsp_ws_callback(struct udsp_vhd *vhd, struct lws *wsi, struct udsp_pss *pss,
		 enum lws_callback_reasons reason, void *in, size_t len)
{
	struct udsp_ws *ws = pss ? pss->ws : NULL;
	const uint8_t *b = (const uint8_t *)in;
	int code;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		if (!vhd || !pss)
			return -1;
		if (!pss->pmo)
			pss->pmo = lws_get_opaque_user_data(wsi);
		lws_set_opaque_user_data(wsi, NULL);
		return established(vhd, wsi, pss);

	case LWS_CALLBACK_RECEIVE:
		if (!ws)
			return -1;
		return client_rx(ws, wsi, (const uint8_t *)in, len);

	case LWS_CALLBACK_RECEIVE_PONG:
		if (ws && ws->state == WS_OPEN)
			backend_frame(ws, UDSP_WS_OP_PONG, 1, b,
				      len > 125 ? 125 : len);
		return 0;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!ws)
			return 0;
		return client_writeable(ws);

	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		/* lws answers the client's close itself; carry it on */
		if (!ws)
			return 0;
		code = len >= 2 ? b[0] << 8 | b[1] : 1005;
		if (code != 1005 && !udsp_ws_close_code_ok(code))
			code = 1002;
		ws_info(ws, "client closed with %d", code);
		ws->close_queued = 1;
		if (ws->state == WS_OPEN)
			backend_close(ws, code, len > 2 ? b + 2 : NULL,
				      len > 2 ? len - 2 : 0);
		else
			backend_close(ws, 1001, NULL, 0);
		return 0;

	case LWS_CALLBACK_CLOSED:
		if (!ws)
			return 0;
		pss->ws = NULL;
		ws->cwsi = NULL;
		/* gone without a close frame, or before the backend's 101:
		 * tell the backend (open) or drop it (not yet) */
		if (ws->state <= WS_OPEN)
			backend_close(ws, 1001, NULL, 0);
		/* else CLOSING: the backend's answer or the timer frees ws */
		if (ws->state == WS_DONE)
			ws_free(ws);
		return 0;

	default:
		break;
	}

	return 0;
}
