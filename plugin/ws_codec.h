/* SPDX-License-Identifier: MIT
 *
 * WebSocket (RFC 6455) frame codec for the proxy's backend leg, where the
 * proxy is the client: frames out are masked, frames in must not be.
 * Pure: no lws calls, no allocation.
 *
 *  - udsp_ws_parse(): resumable frame parser.  It hands out one event at a
 *    time: a run of message payload (unmasked in place), a whole control
 *    frame (ping, pong, close with its code and reason), or an error with
 *    the close code to answer it with.  Message boundaries and types are
 *    kept; frame boundaries are not (a relay re-frames what it forwards).
 *  - udsp_ws_frame_head(), udsp_ws_mask(): frames toward the backend.
 *  - udsp_ws_close_body(), udsp_ws_close_code_ok(), udsp_ws_utf8_ok().
 *  - udsp_ws_token_list_ok(), udsp_ws_list_has(), udsp_ws_list_next():
 *    Sec-WebSocket-Protocol lists (comma-separated tokens).
 */
#ifndef UDSP_WS_CODEC_H
#define UDSP_WS_CODEC_H

#include <stdint.h>
#include <stddef.h>

enum {
	UDSP_WS_OP_CONT		= 0,
	UDSP_WS_OP_TEXT		= 1,
	UDSP_WS_OP_BINARY	= 2,
	UDSP_WS_OP_CLOSE	= 8,
	UDSP_WS_OP_PING		= 9,
	UDSP_WS_OP_PONG		= 10,
};

enum udsp_ws_evtype {
	UDSP_WS_EV_NONE,	/* all input consumed, nothing to report */
	UDSP_WS_EV_DATA,	/* a run of message payload */
	UDSP_WS_EV_CONTROL,	/* a whole ping / pong / close frame */
	UDSP_WS_EV_ERROR,	/* the peer broke the protocol: close_code */
};

struct udsp_ws_ev {
	enum udsp_ws_evtype	type;
	int			op;	/* DATA: TEXT/BINARY of the message;
					 * CONTROL: PING/PONG/CLOSE */
	int			first;	/* DATA: first run of a message */
	int			last;	/* DATA: last run of a message */
	uint8_t			*data;	/* DATA: into the caller's input;
					 * CONTROL: the parser's copy */
	size_t			len;
	int			close_code;	/* CLOSE: its code, 1005 when it
						 * has none; ERROR: the code to
						 * close with */
	const uint8_t		*reason;	/* CLOSE: its reason (UTF-8) */
	size_t			reason_len;
	const char		*why;		/* ERROR: for the log */
};

struct udsp_ws_parser {
	uint64_t	max_msg;	/* message size limit; 0: none */
	uint64_t	msg_len;	/* payload of the open message so far */
	uint64_t	remain;		/* payload left in the current frame */
	uint8_t		hdr[14];
	uint8_t		hlen;		/* header bytes held */
	uint8_t		state;		/* private */
	uint8_t		op;		/* current frame's opcode */
	uint8_t		fin;
	uint8_t		masked;
	uint8_t		mask[4];
	uint8_t		midx;		/* mask offset of the next byte */
	uint8_t		msg_op;		/* TEXT/BINARY while a message is
					 * open, else 0 */
	uint8_t		msg_first;	/* nothing of the message handed out
					 * yet */
	uint8_t		want_masked;	/* 1: frames must be masked (a server
					 * parses), 0: must not (a client) */
	uint8_t		ctl_len;
	uint8_t		ctl[125];
	int		err;		/* sticky close code after an error */
	const char	*why;
};

/*
 * Start parsing frames sent by a server (want_masked 0) or by a client
 * (1); messages over max_msg bytes (0: no limit) are an error (1009).
 */
void
udsp_ws_parser_init(struct udsp_ws_parser *p, int want_masked,
		    uint64_t max_msg);

/*
 * Feed input.  Returns how many bytes of in were consumed; ev says what
 * they produced (UDSP_WS_EV_NONE: nothing yet, all consumed).  Call again
 * with the rest after an event.  Masked payload is unmasked in place, so
 * in must be writable.  After an error every call returns 0 and the same
 * error.  An empty data frame gives a DATA event of length 0, so empty
 * messages and the end of a message in an empty final frame are seen.
 */
size_t
udsp_ws_parse(struct udsp_ws_parser *p, uint8_t *in, size_t len,
	      struct udsp_ws_ev *ev);

/* A frame header into out (14 bytes); mask NULL for an unmasked frame.
 * Returns its length. */
size_t
udsp_ws_frame_head(uint8_t *out, int op, int fin, uint64_t len,
		   const uint8_t *mask);

/* XOR len bytes with mask, starting at mask offset off (0..3). */
void
udsp_ws_mask(uint8_t *p, size_t len, const uint8_t *mask, size_t off);

/*
 * A close frame's payload into out (125 bytes): code (none when 1005 or
 * 0) and as much of reason as fits, cut on a UTF-8 boundary.  Returns its
 * length.
 */
size_t
udsp_ws_close_body(uint8_t *out, int code, const uint8_t *reason,
		   size_t rlen);

/* May code appear in a close frame (RFC 6455 7.4)? */
int
udsp_ws_close_code_ok(int code);

int
udsp_ws_utf8_ok(const uint8_t *p, size_t len);

/* Is s a non-empty comma-separated list of RFC 9110 tokens (OWS
 * around commas)? */
int
udsp_ws_token_list_ok(const char *s, size_t len);

/*
 * The next item of the comma-separated list s[0..len) from *pos, OWS
 * trimmed, in *item and *ilen (0 for an empty item, as in ",,").  Returns
 * 0 once the list is done.
 */
int
udsp_ws_list_next(const char *s, size_t len, size_t *pos, const char **item,
		  size_t *ilen);

/* Does the comma-separated list hold name exactly (case-sensitive, as
 * subprotocol names are)? */
int
udsp_ws_list_has(const char *list, size_t llen, const char *name,
		 size_t nlen);

#endif
