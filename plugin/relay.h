/* SPDX-License-Identifier: MIT
 *
 * What the relay's own files (relay.c, relay_req.c, relay_res.c) and
 * linger.c share and nobody else needs: the timers, the in-place chunk
 * framing, the h2 window, each half's entry points for the lifecycle,
 * and linger.c's for a body nobody wants.  The relay's states and struct
 * are in private.h.
 */
#ifndef UDSP_RELAY_H
#define UDSP_RELAY_H

#include "private.h"

/* relay.c: timers, shared by the halves */
void
udsp_relay_arm(struct udsp_relay *r, unsigned int ms);
void
udsp_relay_disarm(struct udsp_relay *r);
void
udsp_to_push(struct udsp_relay *r, lws_usec_t now);
void
udsp_to_fix_later(struct udsp_relay *r);
void
udsp_relay_keep_client(struct udsp_relay *r);

/*
 * In-place chunk framing of n bytes at p, inside an udsp_buf (so with
 * UDSP_HEADROOM before and UDSP_TAILROOM after): the size line is written
 * in front, CRLF (last: and the last-chunk marker) behind, over bytes
 * that are saved and put back by udsp_chunk_unframe() after the write.
 */
struct udsp_chunk_frame {
	uint8_t		*start;		/* what to write... */
	size_t		len;		/* ...and how much */
	uint8_t		*behind;
	size_t		blen;
	uint8_t		save[UDSP_TAILROOM];
};
#define UDSP_CHUNK_END "\r\n0\r\n\r\n"	/* CRLF, then the last chunk */
void
udsp_chunk_frame(struct udsp_chunk_frame *f, uint8_t *p, size_t n, int last);
void
udsp_chunk_unframe(struct udsp_chunk_frame *f);

/*
 * The h2 window of a client's request stream (relay_req.c): len more body
 * bytes were read; what came is given back in pieces of
 * UDSP_H2_GIVE_BACK (*owed keeps the rest).  top_up: also keep lws's own
 * estimate of the window at least half of UDSP_H2_WINDOW.
 * docs/lws-notes.md N19
 */
#define UDSP_H2_WINDOW 262144
/*
 * One DATA frame / one h1 write.  On h2 each lws_write is one frame, and
 * lws 4.1.6 neither splits frames nor reads the peer's
 * SETTINGS_MAX_FRAME_SIZE: stay within its initial value, which every
 * peer takes (RFC 9113 4.2).
 */
#define UDSP_H2_FRAME_MAX 16384
#define UDSP_WRITE_MAX UDSP_H2_FRAME_MAX
#define UDSP_H2_GIVE_BACK 65536
void
udsp_h2_window(struct udsp_relay *r, size_t *owed, size_t len, int top_up);

/* relay_req.c */
int
udsp_req_is_http10(struct lws *wsi);
/* What the client asked is one we can relay; else the answer, and why */
enum udsp_err
udsp_req_check(struct udsp_relay *r, const char **why);
int
udsp_req_invite_body(struct udsp_relay *r);
void
udsp_req_drop_body(struct udsp_relay *r);
void
udsp_req_free(struct udsp_relay *r);

/* relay_res.c */
int
udsp_res_init(struct udsp_relay *r);
void
udsp_res_free(struct udsp_relay *r);

/*
 * linger.c: the rest of a request body after an early answer.  Each
 * returns what the client's lws callback must return (-1: close the h1
 * connection or the h2 stream).
 */
void
udsp_linger_drop(struct udsp_relay *r);
int
udsp_linger_body(struct udsp_relay *r, const uint8_t *in, size_t len);
int
udsp_linger_body_done(struct udsp_relay *r);
int
udsp_linger_start(struct udsp_relay *r);
void
udsp_linger_stop(struct udsp_relay *r);

#endif
