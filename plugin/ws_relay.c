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
 *
 * Over h2 (RFC 8441) the same, with lws's ":status 200" for the 101; an
 * h2 stream cannot be paused, so a full queue toward the backend ends the
 * ws instead.  This file: setup and timers; ws_relay_client.c and
 * ws_relay_backend.c: each side.
 */
#include "ws_relay.h"

#include <stdlib.h>
#include <openssl/sha.h>
#include <openssl/evp.h>

/* ---- timers ---- */

/*
 * issue 15: the backend connection failed (1) or timed out (2) before
 * anything of the ws was sent (its head goes once it is up): another
 * member of the mount's backend list, if one is up (group.c).  1: that
 * connect is under way.
 */
int
udsp_wsr_move_on(struct udsp_ws *ws, int failed)
{
	char why[128];

	if (ws->state != WS_CONNECTING || !ws->cwsi || !ws->be)
		return 0;
	if (ws->bc) {
		ws->bc->ws = NULL;
		udsp_bconn_release(ws->bc, 0);
		ws->bc = NULL;
	}
	ws->bc = udsp_group_ws_open(ws, ws->vhd, ws->grp, &ws->be, &ws->moves,
				    failed, why, sizeof(why));
	if (!ws->bc)
		return 0;
	udsp_wsr_arm(ws, ws->vhd->conf.connect_ms);

	return 1;
}

static void
sul_cb(lws_sorted_usec_list_t *sul);

void
udsp_wsr_arm(struct udsp_ws *ws, unsigned int ms)
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
void
udsp_wsr_touch(struct udsp_ws *ws)
{
	if (ws->state == WS_OPEN && ws->idle_ms)
		ws->deadline = lws_now_usecs() +
			       (lws_usec_t)ws->idle_ms * LWS_US_PER_MS;
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
	if (udsp_wsr_move_on(ws, 2))
		return;
	switch (ws->state) {
	case WS_CONNECTING:
	case WS_HANDSHAKE:
		ws_info(ws, "backend timed out before its 101");
		udsp_wsr_client_close(ws, 1014, "backend timed out");
		udsp_wsr_backend_close(ws, 1001, NULL, 0);
		break;
	case WS_OPEN:
		ws_info(ws, "idle for %u ms", ws->idle_ms);
		udsp_wsr_client_close(ws, 1001, "idle timeout");
		udsp_wsr_backend_close(ws, 1001,
				       (const uint8_t *)"idle timeout", 12);
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
			udsp_wsr_free(ws);
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

void
udsp_wsr_free(struct udsp_ws *ws)
{
	lws_sul_cancel(&ws->sul);
	if (ws->bc) {
		ws->bc->ws = NULL;
		udsp_bconn_release(ws->bc, 0);
		ws->bc = NULL;
	}
	if (ws->reqhead)
		free(ws->reqhead - LWS_PRE);
	if (ws->res)
		udsp_h1_res_free(ws->res);
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

static struct udsp_ws *
ws_new(struct udsp_vhd *vhd, struct lws *wsi)
{
	struct udsp_ws *ws = calloc(1, sizeof(*ws));

	if (!ws)
		return NULL;
	ws->cwsi = wsi;
	ws->vhd = vhd;
	ws->id = ++vhd->next_id;
	ws->state = WS_CONNECTING;
	ws->h2 = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COLON_METHOD) > 0;

	return ws;
}

/* The mount's ws options; the backend, NULL if none can be had. */
static struct udsp_backend *
ws_options(struct udsp_ws *ws, const struct lws_protocol_vhost_options *pmo)
{
	struct udsp_group *g = ws->vhd->def;
	struct udsp_backend *be;
	unsigned long kb = 16384;
	const char *s;

	s = pmo_get(pmo, "backend");
	if (s)
		g = udsp_group_lookup(ws->vhd, s);
	be = udsp_group_pick(g);
	ws->grp = g;
	s = pmo_get(pmo, "ws-max-message-kb");
	if (s)
		kb = strtoul(s, NULL, 10);
	ws->max_msg = (uint64_t)kb * 1024;
	s = pmo_get(pmo, "ws-idle-timeout-ms");
	if (s)
		ws->idle_ms = (unsigned int)strtoul(s, NULL, 10);
	udsp_ws_parser_init(&ws->p, 0, ws->max_msg);

	return be;
}

/* 0 if the subprotocol lws named in its 101 (if any) is the mount's. */
static int
ws_subprotocol(struct udsp_ws *ws, struct lws *wsi,
	       const struct lws_protocol_vhost_options *pmo)
{
	const char *s, *bound = lws_get_protocol(wsi)->name;

	if (!lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) || !bound)
		return 0;
	lws_snprintf(ws->proto, sizeof(ws->proto), "%s", bound);
	s = pmo_get(pmo, "ws-subprotocols");
	if (s && udsp_ws_list_has(s, strlen(s), ws->proto, strlen(ws->proto)))
		return 0;
	ws_info(ws, "subprotocol %s not listed for this mount", ws->proto);

	return -1;
}

/* The onward upgrade head and the parser of its answer; a close code. */
static int
ws_head(struct udsp_ws *ws, struct lws *wsi,
	const struct lws_protocol_vhost_options *pmo, const char **why)
{
	struct udsp_vhd *vhd = ws->vhd;
	char key[32], peer[48];
	const char *rem = remainder_of(wsi, pmo);
	enum udsp_err e;

	udsp_client_addr(wsi, peer, sizeof(peer));
	make_key(ws, key, sizeof(key));
	e = rem ? udsp_reqhead_build_ws(wsi, vhd, ws->be, pmo, peer, rem, key,
					ws->proto[0] ? ws->proto : NULL,
					&ws->reqhead, &ws->reqhead_len) :
		  UDSP_E_BAD_REQUEST;
	*why = "out of memory";
	if (e == UDSP_E_INTERNAL)
		return 1011;
	if (e) {
		*why = "request cannot be forwarded";
		return 1008;
	}
	/* zeroed: udsp_wsr_free() frees its field table even if the init
	 * below is never reached */
	ws->res = calloc(1, sizeof(*ws->res));
	ws->hbuf = malloc(vhd->conf.max_header);
	if (!ws->res || !ws->hbuf)
		return 1011;
	udsp_h1_res_init(ws->res, ws->hbuf, vhd->conf.max_header, 0, NULL,
			 NULL);
	ws->res->upgrade_ok = 1;

	return 0;
}

static int
established(struct udsp_vhd *vhd, struct lws *wsi, struct udsp_pss *pss)
{
	const struct lws_protocol_vhost_options *pmo = pss->pmo;
	struct udsp_backend *be;
	struct udsp_ws *ws;
	const char *why;
	char ewhy[128];
	int code;

	ws = ws_new(vhd, wsi);
	if (!ws)
		return -1;
	pss->ws = ws;
	if (udsp_buf_init(vhd, &ws->tob, vhd->conf.max_buffer) ||
	    udsp_buf_init(vhd, &ws->toc, vhd->conf.max_buffer)) {
		udsp_wsr_client_close(ws, 1011, "out of memory");
		return 0;
	}
	/* a single frame of a few KiB must always fit, whatever the
	 * buffer: lim is 4 * want */

	/*
	 * lws arms nothing on an established ws, but the accept-time
	 * timeout may still be pending: a quiet ws stays, bounded by
	 * ws-idle-timeout-ms if the mount sets it.  An RFC 8441 stream is
	 * already immortal (lws marks it in rops_check_upgrades_h2): the h2
	 * connection under it stays past keepalive-timeout.
	 * lws_http_mark_sse() would mark it a second time and, worse, drop
	 * the header table the upgrade is built from (docs/lws-notes.md
	 * N44).
	 */
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);

	be = ws_options(ws, pmo);
	if (!pmo) {
		/*
		 * lws binds a ws upgrade by subprotocol or to the default
		 * protocol whatever its URL, and tells a mount's options
		 * (HTTP_PMO) only for a mount with some: without them this
		 * URL is not known to be under a proxied mount.
		 */
		ws_info(ws, "no mount options: not a proxied mount");
		udsp_wsr_client_close(ws, 1008, "not a proxied WebSocket URL");
		return 0;
	}
	if (!be || be->bad) {
		udsp_wsr_client_close(ws, 1011, "no backend configured");
		return 0;
	}
	ws->be = be;
	if (ws_subprotocol(ws, wsi, pmo)) {
		udsp_wsr_client_close(ws, 1014, "subprotocol not served here");
		return 0;
	}
	code = ws_head(ws, wsi, pmo, &why);
	if (code) {
		udsp_wsr_client_close(ws, code, why);
		return 0;
	}

	/* messages the client sends before the backend's 101 wait in lws */
	lws_rx_flow_control(wsi, 0);
	ws->client_paused = 1;

	/* a member that fails at once is passed over (group.c) */
	ws->bc = udsp_group_ws_open(ws, vhd, ws->grp, &ws->be, &ws->moves, 0,
				    ewhy, sizeof(ewhy));
	if (!ws->bc) {
		/* the 101 is out already (lws sent it): close "bad gateway" */
		ws_info(ws, "backend %s: %s", ws->be->spec, ewhy);
		ws->state = WS_DONE;
		udsp_wsr_client_close(ws, 1014, "backend unavailable");
		return 0;
	}
	udsp_wsr_arm(ws, vhd->conf.connect_ms);
	ws_info(ws, "to %s, %d-byte head", ws->be->spec, (int)ws->reqhead_len);

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
		return udsp_wsr_client_rx(ws, wsi, (const uint8_t *)in, len);

	case LWS_CALLBACK_RECEIVE_PONG:
		if (ws && ws->state == WS_OPEN)
			udsp_wsr_backend_frame(ws, UDSP_WS_OP_PONG, 1, b,
					       len > 125 ? 125 : len);
		return 0;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!ws)
			return 0;
		return udsp_wsr_client_writeable(ws);

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
			udsp_wsr_backend_close(ws, code,
					       len > 2 ? b + 2 : NULL,
					       len > 2 ? len - 2 : 0);
		else
			udsp_wsr_backend_close(ws, 1001, NULL, 0);
		return 0;

	case LWS_CALLBACK_CLOSED:
		if (!ws)
			return 0;
		pss->ws = NULL;
		ws->cwsi = NULL;
		/* gone without a close frame, or before the backend's 101:
		 * tell the backend (open) or drop it (not yet) */
		if (ws->state <= WS_OPEN)
			udsp_wsr_backend_close(ws, 1001, NULL, 0);
		/* else CLOSING: the backend's answer or the timer frees ws */
		if (ws->state == WS_DONE)
			udsp_wsr_free(ws);
		return 0;

	default:
		break;
	}

	return 0;
}
