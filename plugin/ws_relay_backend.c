/* SPDX-License-Identifier: MIT
 *
 * WebSocket relay, toward the backend: our own client side of RFC 6455
 * over a bconn (frames made and parsed by ws_codec.c), the check of the
 * backend's 101, and its messages queued for the client.
 */
#include "ws_relay.h"

void
udsp_wsr_wake_backend(struct udsp_ws *ws)
{
	if (ws->bc)
		udsp_bconn_wake(ws->bc);
}

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

int
udsp_wsr_backend_frame(struct udsp_ws *ws, int op, int fin, const uint8_t *d,
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
	udsp_wsr_wake_backend(ws);

	return 0;
}

void
udsp_wsr_backend_close(struct udsp_ws *ws, int code, const uint8_t *reason,
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
	if (udsp_wsr_backend_frame(ws, UDSP_WS_OP_CLOSE, 1, body, n)) {
		ws->tob.head = ws->tob.tail = UDSP_HEADROOM;
		udsp_wsr_backend_frame(ws, UDSP_WS_OP_CLOSE, 1, body, n);
	}
	ws->state = WS_CLOSING;
	/* the backend's answer, bounded */
	udsp_wsr_arm(ws, ws->vhd->conf.connect_ms);
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
		udsp_wsr_arm(ws, ws->vhd->conf.head_ms);
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
		udsp_wsr_wake_backend(ws);

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

/* A control frame from the backend: -1 error, 1 a close, else 0. */
static int
on_control(struct udsp_ws *ws, const struct udsp_ws_ev *ev)
{
	if (ev->op == UDSP_WS_OP_CLOSE) {
		ws->bclose_rcvd = 1;
		/* lws cannot send a close without a code: "none" (1005)
		 * becomes a plain 1000 */
		udsp_wsr_client_close_r(ws, ev->close_code == 1005 ?
					1000 : ev->close_code,
					ev->reason, ev->reason_len);
		udsp_wsr_backend_close(ws, ev->close_code, ev->reason,
				       ev->reason_len);
		return 1;
	}
	/* pings and pongs reach the client, whose pongs come back:
	 * liveness is end to end */
	return udsp_wsr_rec_put(ws, K_DATA, ev->op == UDSP_WS_OP_PING ?
				LWS_WRITE_PING : LWS_WRITE_PONG,
				ev->data, ev->len) ? -1 : 0;
}

static int
on_frames(struct udsp_ws *ws, uint8_t *in, size_t len)
{
	struct udsp_ws_ev ev;
	size_t used;
	int wp, n;

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
			if (udsp_wsr_rec_put(ws, K_DATA, wp, ev.data, ev.len))
				return -1;
			break;
		case UDSP_WS_EV_CONTROL:
			n = on_control(ws, &ev);
			if (n)
				return n < 0 ? -1 : 0;
			break;
		case UDSP_WS_EV_ERROR:
			ws_info(ws, "backend: %s", ev.why);
			n = ev.close_code == 1009;
			udsp_wsr_client_close(ws, n ? 1009 : 1014, n ?
					      "message too big" :
					      "bad frame from backend");
			udsp_wsr_backend_close(ws, ev.close_code, NULL, 0);
			return 0;
		}
	}
	udsp_wsr_touch(ws);

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
			udsp_wsr_client_close(ws, 1014,
					      "bad answer from backend");
			udsp_wsr_backend_close(ws, 1002, NULL, 0);
			return 0;
		}
		if (!ws->res->head_done)
			return 0;
		why = check_101(ws);
		if (why) {
			ws_info(ws, "%s (status %d)", why, ws->res->status);
			udsp_wsr_client_close(ws, 1014, why);
			udsp_wsr_backend_close(ws, 1002, NULL, 0);
			return 0;
		}
		udsp_h1_res_free(ws->res);
		free(ws->res);
		ws->res = NULL;
		free(ws->hbuf);
		ws->hbuf = NULL;
		ws->state = WS_OPEN;
		udsp_wsr_arm(ws, ws->idle_ms);
		ws_info(ws, "open%s%s", ws->proto[0] ? ", subprotocol " : "",
			ws->proto);
		/* the client's early messages were held back until now */
		if (ws->client_paused && ws->cwsi) {
			lws_rx_flow_control(ws->cwsi, 1);
			ws->client_paused = 0;
		}
		udsp_wsr_wake_backend(ws);
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
	if (!connected && udsp_wsr_move_on(ws, 1))
		return;
	switch (ws->state) {
	case WS_CONNECTING:
	case WS_HANDSHAKE:
		ws_info(ws, "backend %s before its 101",
			connected ? "closed" : "unreachable");
		udsp_wsr_client_close(ws, 1014, connected ?
				      "backend closed" : "backend unreachable");
		break;
	case WS_OPEN:
		ws_info(ws, "backend closed without a close frame");
		udsp_wsr_client_close(ws, 1011, "backend went away");
		break;
	default:
		break;
	}
	ws->state = WS_DONE;
	if (!ws->cwsi)
		udsp_wsr_free(ws);
}
