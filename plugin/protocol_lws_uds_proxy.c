/* SPDX-License-Identifier: MIT
 *
 * lws-uds-proxy: the lws protocol plugin export, the reason dispatcher and
 * per-vhost configuration (pvo).  The per-request work lives in relay.c,
 * backend connections in bconn.c.
 */
#include "private.h"
#include "headers.h"
#include "strlist.h"
#include "ws_relay.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Custom request headers forwarded on h1 unless "forward-headers" adds
 * more: lws 4.1.6 can fetch unknown headers by name but not list them. */
static const char * const default_fwd[] = {
	"x-request-id", "x-correlation-id", "x-requested-with",
	"x-csrf-token", "x-xsrf-token", "x-http-method-override",
	"x-api-key", "x-auth-token", "x-b3-traceid", "x-b3-spanid",
	"traceparent", "tracestate", "sec-fetch-site", "sec-fetch-mode",
	"sec-fetch-dest", "sec-fetch-user", "upgrade-insecure-requests",
	"priority", "dnt", "x-client-version",
};

/*
 * The per-vhost scratch (private.h) holds a response head of up to
 * max-header-kb, or the onward request target: the origin's inside path
 * and up to this many bytes of decoded path and query, each of which may
 * go out re-encoded as "%XX" (urlenc.h), hence three times as many.
 */
#define UDSP_TARGET_DECODED_MAX	8192

static int
pvo_uint(void *in, const char *name, unsigned int def, unsigned int *out)
{
	const char *v;
	char *e;
	unsigned long u;

	*out = def;
	if (lws_pvo_get_str(in, name, &v))
		return 0;
	u = strtoul(v, &e, 10);
	if (!*v || *e || u > INT_MAX) {
		lwsl_err("%s: option '%s': '%s' is not a number\n",
			 UDSP_PROTOCOL_NAME, name, v);
		return -1;
	}
	*out = (unsigned int)u;

	return 0;
}

static int
add_fwd(struct udsp_vhd *vhd, const char *name, size_t len)
{
	char **n, *s;
	int i;

	/* hop-by-hop or relay-written names never go onward as custom */
	if (!len || len > 64 || !udsp_hdr_req_forward(name, len, NULL, 0))
		return 0;
	for (i = 0; i < vhd->nfwd; i++)
		if (strlen(vhd->fwd[i]) == len + 1 &&
		    !strncasecmp(vhd->fwd[i], name, len))
			return 0;	/* already listed */
	n = realloc(vhd->fwd, sizeof(*n) * (size_t)(vhd->nfwd + 1));
	if (!n)
		return -1;
	vhd->fwd = n;
	s = malloc(len + 2);
	if (!s)
		return -1;
	vhd->fwd[vhd->nfwd++] = udsp_hdr_custom_name(s, len + 2, name, len);

	return 0;
}

static int
conf_init(struct udsp_vhd *vhd, void *in)
{
	struct udsp_backend *be;
	struct udsp_conf *c = &vhd->conf;
	unsigned int kb, hkb, v, mb, lkb;
	const char *s, *cur;
	size_t n;

	if (pvo_uint(in, "connect-timeout-ms", 5000, &c->connect_ms) ||
	    pvo_uint(in, "head-timeout-ms", 60000, &c->head_ms) ||
	    pvo_uint(in, "idle-timeout-ms", 60000, &c->idle_ms) ||
	    pvo_uint(in, "pool-idle-timeout-ms", 30000, &c->pool_idle_ms) ||
	    pvo_uint(in, "pool-max-idle", 32, &c->pool_max_idle) ||
	    pvo_uint(in, "max-buffer-kb", 64, &kb) ||
	    pvo_uint(in, "max-header-kb", 16, &hkb) ||
	    pvo_uint(in, "tls-verify", 0, &v) ||
	    pvo_uint(in, "max-body-kb", 0, &mb) ||
	    pvo_uint(in, "max-conns", 0, &c->max_conns) ||
	    /* nginx's lingering_time is 30 s */
	    pvo_uint(in, "linger-ms", 30000, &c->linger_ms) ||
	    pvo_uint(in, "linger-kb", 32768, &lkb) ||
	    pvo_uint(in, "hold-ms", 0, &c->hold_ms) ||
	    pvo_uint(in, "hold-max", 1024, &c->hold_max) ||
	    /* nginx's fail_timeout is 10 s */
	    pvo_uint(in, "down-ms", 10000, &c->down_ms))
		return -1;

	c->max_body = (uint64_t)mb * 1024;
	c->linger_max = (uint64_t)lkb * 1024;

	if (kb < 4)
		kb = 4;
	if (hkb < 1)
		hkb = 1;
	c->max_buffer = (size_t)kb * 1024;
	c->max_header = (size_t)hkb * 1024;
	c->tls_verify = !!v;
	/* vhd is zeroed: a missing option leaves NULL */
	lws_pvo_get_str(in, "tls-ca", &c->tls_ca);
	lws_pvo_get_str(in, "spill-dir", &c->spill_dir);
	lws_pvo_get_str(in, "trusted-proxies", &c->trusted);
	lws_pvo_get_str(in, "forward-headers", &c->fwd_headers);

	for (n = 0; n < LWS_ARRAY_SIZE(default_fwd); n++)
		if (add_fwd(vhd, default_fwd[n], strlen(default_fwd[n])))
			return -1;

	cur = c->fwd_headers;
	while ((s = udsp_list_next(&cur, &n)))
		if (add_fwd(vhd, s, n))
			return -1;

	vhd->scratch_len = LWS_PRE + c->max_header +
			   3 * UDSP_TARGET_DECODED_MAX + UDSP_INSIDE_MAX;
	vhd->scratch = malloc(vhd->scratch_len);
	if (!vhd->scratch)
		return -1;

	if (!lws_pvo_get_str(in, "access-log", &s) && *s &&
	    udsp_alog_open(vhd, s))
		return -1;

	if (udsp_ws_early_conf(vhd, in))
		return -1;

	if (!lws_pvo_get_str(in, "backend", &s)) {
		vhd->def = udsp_group_lookup(vhd, s);
		if (!vhd->def)
			return -1;
		for (be = vhd->backends; be; be = be->next)
			if (be->bad)
				return -1;
	}

	return 0;
}

struct udsp_backend *
udsp_backend_lookup(struct udsp_vhd *vhd, const char *spec)
{
	struct udsp_backend *be;
	const char *err;
	char desc[256];

	for (be = vhd->backends; be; be = be->next)
		if (!strcmp(be->spec, spec))
			return be;

	be = calloc(1, sizeof(*be));
	if (!be)
		return NULL;
	be->vhd = vhd;
	be->spec = strdup(spec);
	if (!be->spec) {
		free(be);
		return NULL;
	}

	err = udsp_origin_parse(&be->o, spec);
	if (err) {
		/* Kept (marked bad) so that the error is logged only once */
		lwsl_err("%s: vhost '%s': backend '%s': %s\n",
			 UDSP_PROTOCOL_NAME, lws_get_vhost_name(vhd->vh),
			 spec, err);
		be->bad = 1;
	} else {
		udsp_origin_format(&be->o, desc, sizeof(desc));
		lwsl_notice("%s: vhost '%s': backend %s\n", UDSP_PROTOCOL_NAME,
			    lws_get_vhost_name(vhd->vh), desc);
	}

	be->next = vhd->backends;
	vhd->backends = be;

	return be;
}

static void
vhd_destroy(struct udsp_vhd *vhd)
{
	struct udsp_backend *be, *next;
	int n;

	udsp_status_vhd_remove(vhd);
	udsp_pool_destroy(vhd);
	udsp_group_destroy(vhd);
	for (be = vhd->backends; be; be = next) {
		next = be->next;
		free(be->spec);
		free(be);
	}
	vhd->backends = NULL;
	for (n = 0; n < vhd->nfwd; n++)
		free(vhd->fwd[n]);
	free(vhd->fwd);
	vhd->fwd = NULL;
	free(vhd->mounts);
	vhd->mounts = NULL;
	vhd->nmounts = 0;
	udsp_reqhead_vhd_free(vhd);
	if (vhd->ssl_ctx)
		SSL_CTX_free(vhd->ssl_ctx);
	vhd->ssl_ctx = NULL;
	if (vhd->alog_fd >= 0)
		close(vhd->alog_fd);
	vhd->alog_fd = -1;
	free(vhd->scratch);
	vhd->scratch = NULL;
	udsp_cache_destroy(vhd);
}

/*
 * lws 4.1.6 checks every h2 DATA frame of a request that has a
 * content-length against all the bytes left in its read buffer, not
 * against the frame: once a read holds the rest of a body and anything
 * after it, it sends GOAWAY and every stream on the connection dies.  The
 * check runs only while the stream still holds its header table
 * (docs/lws-notes.md N50); the relay has taken all it needs from it by now
 * (the head is built, the access log line begun), so give the table back.
 */
static void
udsp_h2_body_unguard(struct lws *wsi)
{
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COLON_METHOD) > 0 &&
	    lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
		lws_http_headers_detach(wsi);
}

static int
callback_lws_uds_proxy(struct lws *wsi, enum lws_callback_reasons reason,
		       void *user, void *in, size_t len);

/*
 * As a vhost's default protocol (so that a ws upgrade without a
 * subprotocol binds here), the plugin is told of every new connection in
 * place of the host's protocols[0] (docs/lws-notes.md N49), which may want
 * to know: the daemon's puts its TLS write buffer under the connection's
 * SSL there.  lwsws's is lws's dummy, which ignores it.
 */
static int
pass_to_host(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	     void *in, size_t len)
{
	const struct lws_protocols *p0 = lws_vhost_name_to_protocol(
					lws_get_vhost(wsi), "http-only");

	if (p0 && p0->callback && p0->callback != callback_lws_uds_proxy)
		return p0->callback(wsi, reason, user, in, len);

	return 0;
}

static int
callback_lws_uds_proxy(struct lws *wsi, enum lws_callback_reasons reason,
		       void *user, void *in, size_t len)
{
	struct udsp_vhd *vhd = (struct udsp_vhd *)lws_protocol_vh_priv_get(
				lws_get_vhost(wsi), lws_get_protocol(wsi));
	struct udsp_pss *pss = (struct udsp_pss *)user;
	const struct lws_protocols *main_prot;
	struct udsp_relay *r;

	/*
	 * A protocol of another name with this callback is a WebSocket
	 * subprotocol the host registered for a mount's ws-subprotocols (lws
	 * binds an upgrade by the subprotocol's name): it shares the vhost's
	 * one configuration.  So does the daemon's protocols[0] when it hands
	 * on a keep-alive connection's HTTP_CONFIRM_UPGRADE (host/limits.c):
	 * it keeps no per-vhost data of its own.
	 */
	if (!vhd && lws_get_protocol(wsi) && lws_get_protocol(wsi)->name &&
	    strcmp(lws_get_protocol(wsi)->name, UDSP_PROTOCOL_NAME)) {
		if (reason == LWS_CALLBACK_PROTOCOL_INIT ||
		    reason == LWS_CALLBACK_PROTOCOL_DESTROY)
			return 0;
		main_prot = lws_vhost_name_to_protocol(lws_get_vhost(wsi),
						       UDSP_PROTOCOL_NAME);
		if (main_prot)
			vhd = (struct udsp_vhd *)lws_protocol_vh_priv_get(
					lws_get_vhost(wsi), main_prot);
	}

	/* int: UDSP_CALLBACK_DRAIN is no member of the enum */
	switch ((int)reason) {
	case LWS_CALLBACK_PROTOCOL_INIT:
		vhd = lws_protocol_vh_priv_zalloc(lws_get_vhost(wsi),
				lws_get_protocol(wsi), sizeof(*vhd));
		if (!vhd)
			return -1;
		vhd->cx = lws_get_context(wsi);
		vhd->alog_fd = -1;
		vhd->vh = lws_get_vhost(wsi);
		vhd->prot = lws_get_protocol(wsi);
		udsp_status_vhd_add(vhd);
		if (conf_init(vhd, in)) {
			lwsl_err("%s: vhost '%s': bad configuration\n",
				 UDSP_PROTOCOL_NAME, lws_get_vhost_name(vhd->vh));
			vhd_destroy(vhd);
			return -1;
		}
		return 0;

	case LWS_CALLBACK_PROTOCOL_DESTROY:
		if (vhd)
			vhd_destroy(vhd);
		return 0;

	case UDSP_CALLBACK_DRAIN:
		if (vhd)
			udsp_pool_drain(vhd);
		return 0;

	/* the host's, not ours (docs/lws-notes.md N49) */
	case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
		return pass_to_host(wsi, reason, user, in, len);

	/*
	 * With mount.protocol set (as lwsws does for callback:// mounts), lws
	 * rebinds the protocol between PMO and HTTP for non-POST requests and
	 * zeroes the pss (docs/lws-notes.md N7), so the pmo pointer also rides
	 * on the wsi's opaque user data until LWS_CALLBACK_HTTP takes it.
	 */
	case LWS_CALLBACK_HTTP_PMO:
		if (pss)
			pss->pmo = (const struct lws_protocol_vhost_options *)in;
		lws_set_opaque_user_data(wsi, in);
		return 0;

	case LWS_CALLBACK_HTTP:
		if (!vhd || !pss)
			return -1;
		if (!pss->pmo)
			pss->pmo = lws_get_opaque_user_data(wsi);
		lws_set_opaque_user_data(wsi, NULL);
		if (udsp_status_kind(pss->pmo))
			return udsp_status_start(vhd, wsi, pss);
		if (udsp_relay_start(vhd, wsi, pss, (const char *)in, len))
			return -1;
		udsp_h2_body_unguard(wsi);
		return 0;

	case LWS_CALLBACK_HTTP_BODY:
		if (!pss || !pss->r)
			return 0;
		return udsp_relay_client_body(pss->r, (const uint8_t *)in, len);

	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (!pss || !pss->r)
			return 0;
		return udsp_relay_client_body_done(pss->r);

	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (pss && pss->st)
			return udsp_status_writeable(wsi, pss);
		if (!pss || !pss->r)
			return 0;
		return udsp_relay_client_writeable(pss->r);

	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		/* lws frees the pss after these; the relay must go with it */
		if (pss)
			udsp_status_free(pss);
		if (pss && pss->r) {
			r = pss->r;
			pss->r = NULL;
			udsp_relay_client_gone(r);
		}
		return 0;

	/*
	 * h1 ws upgrade, before lws's 101: a backend known down gets the 503
	 * page instead (ws_early.c); positive: answered, lws completes the
	 * transaction (docs/lws-notes.md N47)
	 */
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return udsp_ws_early_confirm(vhd, wsi, (const char *)in);
	/* ...and over h2 (RFC 8441), before lws's ":status 200" */
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return udsp_ws_early_filter(vhd, wsi);

	/* WebSocket: lws has sent the 101; ws_relay.c joins it to the
	 * backend */
	case LWS_CALLBACK_ESTABLISHED:
	case LWS_CALLBACK_RECEIVE:
	case LWS_CALLBACK_RECEIVE_PONG:
	case LWS_CALLBACK_SERVER_WRITEABLE:
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
	case LWS_CALLBACK_CLOSED:
		return udsp_ws_callback(vhd, wsi, pss, reason, in, len);

	case LWS_CALLBACK_RAW_CONNECTED:
	case LWS_CALLBACK_RAW_RX:
	case LWS_CALLBACK_RAW_WRITEABLE:
	case LWS_CALLBACK_RAW_CLOSE:
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		return udsp_bconn_callback(wsi, reason, in, len);

	default:
		break;
	}

	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/*
 * lwsws's way to the names of a mount's ws-subprotocols (README, WebSocket
 * options): lws binds an upgrade that offers a subprotocol only to a vhost
 * protocol of that name (docs/lws-notes.md N47), and a lwsws vhost's
 * protocols are those its plugins export, each enabled by the vhost's
 * ws-protocols (N53).  So the plugin exports one more protocol per name in
 * this variable, each a copy of its own (the callback top shares the
 * vhost's configuration with it).  lws-uds-proxyd registers a mount's
 * names by itself and clears the variable before loading plugins.
 */
#define UDSP_ENV_SUBPROTOCOLS	"LWS_UDS_PROXY_WS_SUBPROTOCOLS"
/* bounds the table below; a name fits the ws relay's proto[64] */
#define UDSP_ENV_SUBPROTOCOLS_MAX	32
#define UDSP_SUBPROTOCOL_NAME_MAX	63

_Static_assert(UDSP_SUBPROTOCOL_NAME_MAX <
	       sizeof(((struct udsp_ws *)0)->proto), "ws proto[] too small");

static char env_names[UDSP_ENV_SUBPROTOCOLS_MAX]
		     [UDSP_SUBPROTOCOL_NAME_MAX + 1];

/* not const: env_subprotocols() fills it when the plugin is loaded */
static struct lws_protocols udsp_protocols[1 + UDSP_ENV_SUBPROTOCOLS_MAX] = {
	{
		.name			= UDSP_PROTOCOL_NAME,
		.callback		= callback_lws_uds_proxy,
		.per_session_data_size	= sizeof(struct udsp_pss),
		.rx_buffer_size		= 0,
		/*
		 * lws_issue_raw() sends at most this (else the host's
		 * pt_serv_buf_size, docs/lws-notes.md N6) per call and queues
		 * the rest for another POLLOUT: let a 16 KiB piece, with its
		 * chunk framing or the head in front, go in one send().
		 */
		.tx_packet_size		= 32768,
	},
};

/*
 * lws finds the plugin by this symbol name (from the file name).  Newer lws
 * leaves LWS_VISIBLE empty outside its own build, and 4.3 added a build
 * hash to the header, so say both explicitly (docs/lws-notes.md N30).  Not
 * const: count_protocols is the env_subprotocols() count (lws reads it only
 * after dlopen() has run the constructor, docs/lws-notes.md N53).
 */
__attribute__((visibility("default")))
lws_plugin_protocol_t lws_uds_proxy = {
	.hdr = {
		.name		= "lws uds proxy",
		._class		= "lws_protocol_plugin",
#if defined(LWS_BUILD_HASH)
		.lws_build_hash	= LWS_BUILD_HASH,
#endif
		.api_magic	= LWS_PLUGIN_API_MAGIC
	},

	.protocols = udsp_protocols,
	.count_protocols = 1,
	.extensions = NULL,
	.count_extensions = 0,
};

/* Why name (n bytes) cannot be exported, or NULL. */
static const char *
env_name_bad(const char *name, size_t n, int count)
{
	int k;

	if (n > UDSP_SUBPROTOCOL_NAME_MAX)
		return "longer than 63 bytes";
	if (!udsp_hdr_name_ok(name, n))
		return "not a token (RFC 6455 4.1: RFC 2616 token)";
	for (k = 0; k < count; k++)
		if (strlen(udsp_protocols[k].name) == n &&
		    !memcmp(udsp_protocols[k].name, name, n))
			return k ? "listed twice" : "the plugin's own protocol";
	if (count == 1 + UDSP_ENV_SUBPROTOCOLS_MAX)
		return "more than 32 names";

	return NULL;
}

/*
 * Runs inside the host's dlopen(), before it looks the export up: lws
 * reads count_protocols and protocols only after (docs/lws-notes.md N53).
 * A bad name is logged (its first bytes, '?' for any not printable) and
 * left out; empty items are skipped.
 */
__attribute__((constructor))
static void
env_subprotocols(void)
{
	const char *s = getenv(UDSP_ENV_SUBPROTOCOLS), *it, *why;
	size_t pos = 0, n, len, k;
	char shown[40];
	int count = 1, item = 0;

	if (!s)
		return;
	len = strlen(s);
	while (udsp_ws_list_next(s, len, &pos, &it, &n)) {
		item++;
		if (!n)
			continue;
		why = env_name_bad(it, n, count);
		if (why) {
			for (k = 0; k < n && k < sizeof(shown) - 1; k++)
				shown[k] = it[k] > ' ' && it[k] < 0x7f ?
					   it[k] : '?';
			shown[k] = '\0';
			lwsl_err("%s: %s: name %d '%s%s' ignored: %s\n",
				 UDSP_PROTOCOL_NAME, UDSP_ENV_SUBPROTOCOLS,
				 item, shown, n > k ? "..." : "", why);
			continue;
		}
		memcpy(env_names[count - 1], it, n);
		env_names[count - 1][n] = '\0';
		udsp_protocols[count] = udsp_protocols[0];
		udsp_protocols[count].name = env_names[count - 1];
		lwsl_notice("%s: exports subprotocol '%s' (%s)\n",
			    UDSP_PROTOCOL_NAME, env_names[count - 1],
			    UDSP_ENV_SUBPROTOCOLS);
		count++;
	}
	lws_uds_proxy.count_protocols = count;
}
