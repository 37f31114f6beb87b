/* SPDX-License-Identifier: MIT
 *
 * What reqhead.c shows its unit test besides what private.h declares for
 * the relay and the WebSocket relay: tests/unit/test-reqhead.c builds
 * heads from a fake request through these, which nothing else calls.
 */
#ifndef UDSP_REQHEAD_H
#define UDSP_REQHEAD_H

#include "private.h"

/*
 * What both heads are built from, apart from the relay and the WebSocket
 * so that the test needs neither: a relay's request, or a WebSocket
 * upgrade (ws_key set), which goes as a GET with our own Upgrade fields.
 */
struct udsp_reqctx {
	struct lws				*wsi;
	struct udsp_vhd				*vhd;
	struct udsp_backend			*be;
	const struct lws_protocol_vhost_options	*pmo;
	const char				*peer;
	const char				*method;
	enum udsp_body				body;
	int64_t					body_remain;
	int					h2;
	const char				*ws_key;	/* b64 */
	const char				*ws_proto;	/* or NULL */
};
enum udsp_err
udsp_reqhead_build_ctx(const struct udsp_reqctx *c, const char *remainder,
		       char **out, size_t *outlen);

/* method: lws_http_get_uri_and_method()'s index, for h1 */
const char *
udsp_method_name(struct lws *wsi, int h2, int method, char *buf, size_t len);

#endif
