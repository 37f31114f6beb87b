/* SPDX-License-Identifier: MIT
 *
 * WebSocket relay internals shared by ws_relay.c (setup, timers, lws's
 * callbacks), ws_relay_client.c (toward the client) and ws_relay_backend.c
 * (toward the backend).  The design is described in ws_relay.c.
 */
#ifndef UDSP_WS_RELAY_H
#define UDSP_WS_RELAY_H

#include "private.h"

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
	struct udsp_group	*grp;	/* borrowed: be is one of it */
	unsigned int		moves;	/* group.c: members tried after be */
	struct udsp_bconn	*bc;	/* NULL once closed */
	lws_sorted_usec_list_t	sul;	/* connect, 101, close, idle */
	lws_usec_t		deadline;
	unsigned long		id;
	enum ws_state		state;

	char			*reqhead;	/* owned; LWS_PRE in front */
	size_t			reqhead_len, reqhead_sent;
	struct udsp_h1_res	*res;	/* owned during the handshake */
	char			*hbuf;	/* owned during the handshake */
	char			accept[32];	/* Sec-WebSocket-Accept due */
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

/* ws_relay.c */
void
udsp_wsr_arm(struct udsp_ws *ws, unsigned int ms);
int
udsp_wsr_move_on(struct udsp_ws *ws, int failed);
void
udsp_wsr_touch(struct udsp_ws *ws);
void
udsp_wsr_free(struct udsp_ws *ws);

/* ws_relay_client.c: toward the client */
void
udsp_wsr_wake_client(struct udsp_ws *ws);
int
udsp_wsr_rec_put(struct udsp_ws *ws, int kind, int wp, const uint8_t *d,
		 size_t len);
void
udsp_wsr_client_close_r(struct udsp_ws *ws, int code, const uint8_t *reason,
			size_t rlen);
void
udsp_wsr_client_close(struct udsp_ws *ws, int code, const char *reason);
int
udsp_wsr_client_writeable(struct udsp_ws *ws);
int
udsp_wsr_client_rx(struct udsp_ws *ws, struct lws *wsi, const uint8_t *in,
		   size_t len);

/* ws_relay_backend.c: toward the backend */
void
udsp_wsr_wake_backend(struct udsp_ws *ws);
int
udsp_wsr_backend_frame(struct udsp_ws *ws, int op, int fin, const uint8_t *d,
		       size_t len);
void
udsp_wsr_backend_close(struct udsp_ws *ws, int code, const uint8_t *reason,
		       size_t rlen);

#endif
