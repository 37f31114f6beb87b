/* SPDX-License-Identifier: MIT
 *
 * WebSocket relay, toward the client: the client-bound queue (records
 * that lws_write() sends one frame each), closes, and the client's
 * messages re-framed toward the backend.
 */
#include "ws_relay.h"

void
udsp_wsr_wake_client(struct udsp_ws *ws)
{
	if (ws->cwsi)
		lws_callback_on_writable(ws->cwsi);
}

int
udsp_wsr_rec_put(struct udsp_ws *ws, int kind, int wp, const uint8_t *d,
		 size_t len)
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
	udsp_wsr_wake_client(ws);

	return 0;
}

/* Close the client with code (after what is queued for it). */
void
udsp_wsr_client_close_r(struct udsp_ws *ws, int code, const uint8_t *reason,
			size_t rlen)
{
	uint8_t body[125];
	size_t n;

	if (!ws->cwsi || ws->close_queued)
		return;
	n = udsp_ws_close_body(body, code, reason, rlen);
	if (udsp_wsr_rec_put(ws, K_CLOSE, code, body, n)) {
		/* no room even for that: drop what is queued */
		ws->toc.head = ws->toc.tail = UDSP_HEADROOM;
		udsp_wsr_rec_put(ws, K_CLOSE, code, body, n);
	}
	ws->close_queued = 1;
}

void
udsp_wsr_client_close(struct udsp_ws *ws, int code, const char *reason)
{
	udsp_wsr_client_close_r(ws, code, (const uint8_t *)reason,
				reason ? strlen(reason) : 0);
}

/*
 * On h2 one lws_write() is one DATA frame, never split by lws (neither by
 * the peer's max frame size nor by its window, docs/lws-notes.md N24), and
 * a ws frame's head rides in the same DATA frame: a data record is sent as
 * fragments of at most this much, each within the stream's allowance.
 */
#define WS_H2_HEAD_MAX	14
#define WS_H2_PIECE	(16384 - WS_H2_HEAD_MAX)

/* How much of a len-byte data record goes in this frame; 0: wait. */
static size_t
h2_piece(struct udsp_ws *ws, size_t len)
{
	lws_fileofs_t allow = lws_get_peer_write_allowance(ws->cwsi);
	size_t n = len > WS_H2_PIECE ? WS_H2_PIECE : len;

	if (allow >= 0 && (lws_fileofs_t)(n + WS_H2_HEAD_MAX) > allow) {
		/* lws calls again on the peer's WINDOW_UPDATE */
		if (allow <= WS_H2_HEAD_MAX)
			return 0;
		n = (size_t)allow - WS_H2_HEAD_MAX;
	}

	return n;
}

/*
 * lws_write() one frame per record.  On h1 several go per WRITEABLE while
 * the socket takes them; on h2 one, as lws wants for a stream, and a data
 * record longer than a frame leaves its rest as a continuation record.
 */
int
udsp_wsr_client_writeable(struct udsp_ws *ws)
{
	uint8_t *p, h[REC_HDR];
	uint32_t len;
	size_t cut;
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
		if (kind == K_CLOSE) {
			udsp_buf_consume(&ws->toc, REC_HDR + REC_GAP + len);
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
		cut = len;
		if (ws->h2 && (wp & 0xf) <= LWS_WRITE_CONTINUATION) {
			cut = h2_piece(ws, len);
			if (!cut && len)
				break;
		}
		if (lws_write(ws->cwsi, p, cut, (enum lws_write_protocol)
			      (cut < len ? wp | LWS_WRITE_NO_FIN : wp)) <
								(int)cut)
			return -1;
		if (cut < len) {
			/* the rest: a record where the sent bytes were */
			udsp_buf_consume(&ws->toc, cut);
			len -= (uint32_t)cut;
			wp = LWS_WRITE_CONTINUATION | (wp & LWS_WRITE_NO_FIN);
			memcpy(h, &len, 4);
			h[5] = (uint8_t)wp;
			h[6] = (uint8_t)(wp >> 8);
			memcpy(udsp_buf_data(&ws->toc), h, REC_HDR);
		} else
			udsp_buf_consume(&ws->toc, REC_HDR + REC_GAP + len);
		n++;
	}

	/* room again: let the backend talk */
	if (ws->bc && udsp_bconn_paused(ws->bc) &&
	    udsp_buf_len(&ws->toc) < ws->toc.want / 2)
		udsp_bconn_rx_flow(ws->bc, 1);

	return 0;
}

/* A piece of a client message: re-framed and masked toward the backend. */
/*
 * The queue toward the backend is full to its limit.  On h1 the client
 * was paused at the queue's size, so only a frame larger than the rest
 * gets here: fail.  An h2 stream cannot be paused and lws re-opens its
 * window as it reads (docs/lws-notes.md N18, N45), so a client sending
 * faster than the backend reads gets here: end the ws with a close it
 * can answer.  Failing the callback would reset the stream, and lws
 * ends the whole connection (GOAWAY STREAM_CLOSED) at the client's next
 * DATA on it.
 */
static int
overflow(struct udsp_ws *ws)
{
	if (!ws->h2)
		return -1;
	ws_info(ws, "client sends faster than the backend reads");
	udsp_wsr_client_close(ws, 1008, "faster than the backend reads");
	udsp_wsr_backend_close(ws, 1001, NULL, 0);

	return 0;
}

int
udsp_wsr_client_rx(struct udsp_ws *ws, struct lws *wsi, const uint8_t *in,
		   size_t len)
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
		udsp_wsr_backend_close(ws, 1009,
				       (const uint8_t *)"message too big", 15);
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
				 (unsigned char *)"message too big", 15);
		ws->close_queued = 1;
		return -1;
	}
	ws->cmsg_open = !fin;
	if (udsp_wsr_backend_frame(ws, op, fin, in, len))
		return overflow(ws);
	udsp_wsr_touch(ws);
	if (udsp_buf_len(&ws->tob) >= ws->tob.want && !ws->client_paused) {
		/* h1 only: lws 4.1.6 cannot pause an h2 stream */
		lws_rx_flow_control(wsi, 0);
		ws->client_paused = 1;
	}

	return 0;
}
