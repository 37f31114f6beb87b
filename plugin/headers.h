/* SPDX-License-Identifier: MIT
 *
 * Header policy as data: which headers cross the proxy in each direction.
 * One table keyed by lower-case name (headers.c); pure, no lws calls.  The
 * plugin's request side maps lws tokens onto these names itself.
 */
#ifndef UDSP_HEADERS_H
#define UDSP_HEADERS_H

#include <stddef.h>

enum udsp_hdr_flags {
	UDSP_HF_REQ	= 1 << 0, /* forwarded client -> backend */
	UDSP_HF_RES	= 1 << 1, /* forwarded backend -> client */
	UDSP_HF_HOP	= 1 << 2, /* hop-by-hop (RFC 9110 7.6.1): never */
	UDSP_HF_SPECIAL	= 1 << 3, /* the relay writes it itself */
	UDSP_HF_H2_BAD	= 1 << 4, /* forbidden on h2 (RFC 9113 8.2.2) */
	/*
	 * lws writes its own value into every response head we make, so a
	 * copy from the other side would repeat it: never forwarded.
	 */
	UDSP_HF_PROXY_OWNS = 1 << 5,
};

struct udsp_hdr_rule {
	const char	*name;	/* lower-case, no colon */
	unsigned int	flags;
};

/* The table, for tests and the docs generator; terminated by name NULL. */
extern const struct udsp_hdr_rule udsp_hdr_rules[];

/*
 * Look name (any case, len bytes, no colon) up in the table.  Returns the
 * rule's flags, or for a name not in the table UDSP_HF_REQ | UDSP_HF_RES:
 * unknown headers are end-to-end and pass both ways.
 */
unsigned int
udsp_hdr_flags(const char *name, size_t len);

/*
 * Whether the response header `name` may be forwarded to the client: not
 * hop-by-hop, special or proxy-owned, and not named in the backend's Connection
 * header value `conn` (comma-separated tokens, any case; may be NULL).
 */
int
udsp_hdr_res_forward(const char *name, size_t len, const char *conn,
		     size_t conn_len);

/* Same for a request header name, against the client's Connection value. */
int
udsp_hdr_req_forward(const char *name, size_t len, const char *conn,
		     size_t conn_len);

/* 1 if token (len bytes) appears in the comma-separated list, any case. */
int
udsp_hdr_list_has(const char *list, size_t list_len, const char *token,
		  size_t len);

/*
 * 1 if a header value may be forwarded: no CR, LF or NUL, no other control
 * bytes except HTAB (RFC 9110 5.5).
 */
int
udsp_hdr_value_ok(const char *v, size_t len);

/* 1 if name is a valid RFC 9110 token (tchar+), so safe to emit. */
int
udsp_hdr_name_ok(const char *name, size_t len);

/* RFC 9110 5.6.2 tchar (the bytes of a field name): 1, else 0 */
extern const unsigned char udsp_hdr_tchar[256];

/*
 * A custom header name as lws_hdr_custom_length() and _copy() look it up:
 * name (len bytes) lower-cased, then ':' and a NUL, in dst.  Returns dst,
 * or NULL if dst has less than len + 2 bytes.
 */
char *
udsp_hdr_custom_name(char *dst, size_t dstlen, const char *name, size_t len);

/*
 * Compose the X-Forwarded-For value into dst: if `trusted` (the peer is a
 * configured trusted proxy) and prior (the client's X-Forwarded-For, may
 * be NULL) is non-empty, "prior, peer"; otherwise just "peer".  Returns the
 * length, or -1 if dst is too small.
 */
int
udsp_xff_build(char *dst, size_t dstlen, const char *prior, size_t prior_len,
	       const char *peer, int trusted);

/*
 * 1 if the address text `peer` is in the comma/space separated list of
 * addresses and CIDR prefixes `list` ("127.0.0.1, 10.0.0.0/8, ::1").
 */
int
udsp_addr_in_list(const char *list, const char *peer);

#endif
