/* SPDX-License-Identifier: MIT
 *
 * The "vhosts" part of the config: each vhost's keys -> creation info and
 * the checks of the vhost as a whole.  Its "mounts" are read in
 * conf-mount.c, its "ws-protocols" and the plugin's pvos in conf-pvo.c,
 * once every other key of the vhost is known.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "conf-private.h"
#include "origin.h"

/*
 * lws 4.1.6 counts "immortal" streams per connection in a byte and aborts
 * past 255 (lws_mux_mark_immortal); the plugin marks each proxied h2
 * stream immortal once its request is in, so stay below that.
 * docs/lws-notes.md N22
 */
#define MAX_H2_STREAMS	250

/* ----------------------------------------------------------------- vhosts */

enum {
	V_NAME, V_PORT, V_INTERFACE, V_STR, V_FLAG, V_FLAG_SET_ONLY,
	V_IPV6ONLY, V_SSL_KEY, V_SSL_CERT, V_SSL_CA, V_ACCESS_LOG,
	V_MOUNTS, V_WS_PROTOCOLS, V_HEADERS, V_KEEPALIVE, V_CLIENT_SSL,
	V_SSL_OPT_SET, V_SSL_OPT_CLEAR, V_SSL_COPT_SET, V_SSL_COPT_CLEAR,
	V_NO_PROTO_WS, V_H2_STREAMS,
};

/*
 * Keys that only copy a string into a creation-info field carry the field's
 * offset; flag keys carry their lws option bits.
 */
#define VSTR(_name, _field) { _name, KT_STR, V_STR, 0, \
		offsetof(struct lws_context_creation_info, _field) }

static const struct udsp_hc_kdef keys_vhost[] = {
	{ "name",			KT_STR,  V_NAME, 0 },
	{ "port",			KT_INT,  V_PORT, 0 },
	{ "interface",			KT_STR,  V_INTERFACE, 0 },
	{ "unix-socket",		KT_BOOL, V_FLAG,
		LWS_SERVER_OPTION_UNIX_SOCK },
	VSTR("unix-socket-perms",		unix_socket_perms),
	{ "sts",			KT_BOOL, V_FLAG,
		LWS_SERVER_OPTION_STS },
	{ "host-ssl-key",		KT_STR,  V_SSL_KEY, 0 },
	{ "host-ssl-cert",		KT_STR,  V_SSL_CERT, 0 },
	{ "host-ssl-ca",		KT_STR,  V_SSL_CA, 0 },
	{ "access-log",			KT_STR,  V_ACCESS_LOG, 0 },
	{ "mounts",			KT_ARR,  V_MOUNTS, 0 },
	{ "ws-protocols",		KT_ANY,  V_WS_PROTOCOLS, 0 },
	{ "headers",			KT_ANY,  V_HEADERS, 0 },
	/* lwsws's parser spells it with '_', its README with '-' */
	{ "keepalive_timeout",		KT_INT,  V_KEEPALIVE, 0 },
	{ "keepalive-timeout",		KT_INT,  V_KEEPALIVE, 0 },
	{ "enable-client-ssl",		KT_BOOL, V_CLIENT_SSL, 0 },
	VSTR("ciphers",			ssl_cipher_list),
	VSTR("tls13-ciphers",		tls1_3_plus_cipher_list),
	VSTR("ecdh-curve",			ecdh_curve),
	{ "noipv6",			KT_BOOL, V_FLAG,
		LWS_SERVER_OPTION_DISABLE_IPV6 },
	{ "ipv6only",			KT_BOOL, V_IPV6ONLY, 0 },
	{ "ssl-option-set",		KT_INT,  V_SSL_OPT_SET, 0 },
	{ "ssl-option-clear",		KT_INT,  V_SSL_OPT_CLEAR, 0 },
	{ "ssl-client-option-set",	KT_INT,  V_SSL_COPT_SET, 0 },
	{ "ssl-client-option-clear",	KT_INT,  V_SSL_COPT_CLEAR, 0 },
	VSTR("client-ssl-key",		client_ssl_private_key_filepath),
	VSTR("client-ssl-cert",		client_ssl_cert_filepath),
	VSTR("client-ssl-ca",		client_ssl_ca_filepath),
	VSTR("client-ssl-ciphers",		client_ssl_cipher_list),
	VSTR("client-tls13-ciphers",	client_tls_1_3_plus_cipher_list),
	{ "client-cert-required",	KT_BOOL, V_FLAG_SET_ONLY,
		LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT },
	{ "ignore-missing-cert",	KT_BOOL, V_FLAG,
		LWS_SERVER_OPTION_IGNORE_MISSING_CERT },
	VSTR("error-document-404",		error_document_404),
	VSTR("alpn",			alpn),
	{ "strict-host-check",		KT_BOOL, V_FLAG,
		LWS_SERVER_OPTION_VHOST_UPG_STRICT_HOST_CHECK },
	VSTR("listen-accept-role",		listen_accept_role),
	VSTR("listen-accept-protocol",	listen_accept_protocol),
	{ "onlyraw",			KT_BOOL, V_FLAG,
		LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG },
	{ "apply-listen-accept",	KT_BOOL, V_FLAG,
		LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG },
	{ "fallback-listen-accept",	KT_BOOL, V_FLAG,
		LWS_SERVER_OPTION_FALLBACK_TO_APPLY_LISTEN_ACCEPT_CONFIG },
	{ "allow-non-tls",		KT_BOOL, V_FLAG,
		LWS_SERVER_OPTION_ALLOW_NON_SSL_ON_SSL_PORT },
	{ "redirect-http",		KT_BOOL, V_FLAG,
		LWS_SERVER_OPTION_REDIRECT_HTTP_TO_HTTPS },
	{ "allow-http-on-https",	KT_BOOL, V_FLAG,
		LWS_SERVER_OPTION_ALLOW_HTTP_ON_HTTPS_LISTENER },
	{ "disable-no-protocol-ws-upgrades", KT_BOOL, V_NO_PROTO_WS, 0 },
	{ "h2-half-closed-long-poll",	KT_BOOL, V_FLAG,
		LWS_SERVER_OPTION_VH_H2_HALF_CLOSED_LONG_POLL },
	{ "h2-max-concurrent-streams",	KT_INT,  V_H2_STREAMS, 0 },
};


static void
on_vhost(struct udsp_hc_pc *pc, void *t, const struct udsp_hc_kdef *k,
	 struct udsp_hc_kval *v)
{
	struct udsp_hc_vb *vb = t;
	struct lws_context_creation_info *i = &vb->vh->info;
	int fd;

	switch (k->id) {
	case V_NAME:
		i->vhost_name = v->s;
		break;
	case V_PORT:
		if (udsp_hc_int_in(pc, v->i, 0, 65535)) {
			i->port = (int)v->i;
			vb->has_port = 1;
		}
		break;
	case V_INTERFACE:
		i->iface = v->s;
		break;
	case V_STR:
		*(const char **)((char *)i + k->off) = v->s;
		break;
	case V_FLAG:
		if (v->b)
			i->options |= k->flag;
		else
			i->options &= ~k->flag;
		break;
	case V_FLAG_SET_ONLY:
		if (v->b)
			i->options |= k->flag;
		break;
	case V_IPV6ONLY:
		i->options |= LWS_SERVER_OPTION_IPV6_V6ONLY_MODIFY;
		if (v->b)
			i->options |= LWS_SERVER_OPTION_IPV6_V6ONLY_VALUE;
		else
			i->options &= ~LWS_SERVER_OPTION_IPV6_V6ONLY_VALUE;
		break;
	case V_SSL_KEY:
		vb->key = i->ssl_private_key_filepath = v->s;
		break;
	case V_SSL_CERT:
		vb->cert = i->ssl_cert_filepath = v->s;
		break;
	case V_SSL_CA:
		i->ssl_ca_filepath = v->s;
		break;
	case V_ACCESS_LOG:
		/*
		 * The plugin writes the log (Debian's lws lacks
		 * LWS_WITH_ACCESS_LOG); open it here only so that a path
		 * that cannot be written is a start-up error naming the key.
		 */
		fd = open(v->s, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
			  O_NOCTTY, 0640);
		if (fd < 0) {
			perr(pc, "cannot open '%s' for appending: %s", v->s,
			     strerror(errno));
			break;
		}
		close(fd);
		vb->vh->access_log = v->s;
		break;
	case V_MOUNTS:
		/* later: messages about mounts want the vhost's name */
		vb->mounts = v->j;
		memcpy(vb->mounts_path, pc->path, pc->plen + 1);
		break;
	case V_WS_PROTOCOLS:
		vb->ws_protocols = v->j;
		memcpy(vb->ws_path, pc->path, pc->plen + 1);
		break;
	case V_HEADERS:
		/* lws wants names with their ':' (docs/lws-notes.md N27) */
		udsp_hc_list_to_pvos(pc, v->j, &i->headers, 0, ":");
		break;
	case V_KEEPALIVE:
		if (udsp_hc_int_in(pc, v->i, 1, UDSP_HC_DAY_S))
			i->keepalive_timeout = (int)v->i;
		break;
	case V_CLIENT_SSL:
		vb->vh->enable_client_ssl = !!v->b;
		break;
	case V_SSL_OPT_SET:
		i->ssl_options_set |= (long)v->i;
		break;
	case V_SSL_OPT_CLEAR:
		i->ssl_options_clear |= (long)v->i;
		break;
	case V_SSL_COPT_SET:
		i->ssl_client_options_set |= (long)v->i;
		break;
	case V_SSL_COPT_CLEAR:
		i->ssl_client_options_clear |= (long)v->i;
		break;
	case V_NO_PROTO_WS:
		vb->vh->reject_ws_without_protocol = !!v->b;
		break;
	case V_H2_STREAMS:
		if (udsp_hc_int_in(pc, v->i, 1, MAX_H2_STREAMS))
			vb->h2_streams = v->i;
		break;
	}
}

const char *
udsp_hc_vname(struct udsp_hc_vb *vb)
{
	return vb->vh->info.vhost_name ? vb->vh->info.vhost_name : "?";
}

void
udsp_hc_needs_add(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb,
		  const char *name, const char *why)
{
	struct udsp_hc_need *n;

	for (n = vb->vh->needs; n; n = n->next)
		if (!strcmp(n->name, name))
			return;
	n = udsp_hc_zalloc(pc->hc, sizeof(*n));
	if (!n)
		return;
	n->name = name;
	n->why = udsp_hc_str(pc->hc, why);
	n->next = vb->vh->needs;
	vb->vh->needs = n;
}

/*
 * lws_h2_stock_settings as of lws 4.1.6 (docs/lws-notes.md N23); lws takes
 * slots 1-5 only, so ENABLE_CONNECT_PROTOCOL (RFC 8441) stays on (N45).
 *
 * Except the header table: lws sizes each h2 connection's HPACK decoding
 * table by it, one 16-byte entry per 8 octets, zeroed up front (N54): the
 * stock 65536 cost 128 KiB per connection (64 h2 connections: +8 MiB of
 * peak RSS).  4096 is RFC 9113's initial value, which lws then need not
 * even announce, and what nginx and HAProxy decode with.
 */
static const uint32_t h2_stock[7] = {
	1,		/* use these, not lws's */
	4096,		/* H2SET_HEADER_TABLE_SIZE */
	0,		/* H2SET_ENABLE_PUSH */
	24,		/* H2SET_MAX_CONCURRENT_STREAMS */
	0,		/* H2SET_INITIAL_WINDOW_SIZE: lws sends updates */
	16384,		/* H2SET_MAX_FRAME_SIZE */
	4096,		/* H2SET_MAX_HEADER_LIST_SIZE */
};

void
udsp_hc_vhost(struct udsp_hc_pc *pc, json_object *o, size_t idx)
{
	struct lws_context_creation_info *i;
	struct udsp_hc_vhost **pp;
	struct udsp_hc_vb vb;
	size_t old;

	memset(&vb, 0, sizeof(vb));
	vb.idx = idx;
	vb.h2_streams = UDSP_HC_DEF_H2_STREAMS;
	vb.vh = udsp_hc_zalloc(pc->hc, sizeof(*vb.vh));
	if (!vb.vh)
		return;
	vb.vh->file = pc->file;
	i = &vb.vh->info;
	/*
	 * lwsws's documented default (lws itself uses 5 s): an h2 client that
	 * pauses mid-upload longer than this loses its whole connection.
	 * docs/lws-notes.md N21
	 */
	i->keepalive_timeout = 60;

	udsp_hc_walk(pc, o, keys_vhost, LWS_ARRAY_SIZE(keys_vhost), on_vhost,
		     &vb);

	if (!i->vhost_name)
		perr(pc, "missing required key 'name'");
	if (!vb.has_port && !(i->options & LWS_SERVER_OPTION_UNIX_SOCK))
		perr(pc, "missing required key 'port'");
	if (i->options & LWS_SERVER_OPTION_UNIX_SOCK) {
		if (!i->iface)
			perr(pc, "unix-socket needs 'interface' (the path)");
		else if (strlen(i->iface) >= UDSP_SUN_PATH_MAX)
			perr(pc, "interface '%s': unix socket path too long "
				 "(max %d)", i->iface, UDSP_SUN_PATH_MAX - 1);
	}
	if (!!vb.cert != !!vb.key)
		perr(pc, "TLS needs both 'host-ssl-cert' and 'host-ssl-key'");
	if (vb.cert && access(vb.cert, R_OK))
		perr(pc, "host-ssl-cert '%s': %s", vb.cert, strerror(errno));
	if (vb.key && access(vb.key, R_OK))
		perr(pc, "host-ssl-key '%s': %s", vb.key, strerror(errno));

	memcpy(i->http2_settings, h2_stock, sizeof(h2_stock));
	i->http2_settings[H2SET_MAX_CONCURRENT_STREAMS] =
						(uint32_t)vb.h2_streams;

	if (vb.ws_protocols) {
		old = pc->plen;
		memcpy(pc->path, vb.ws_path, strlen(vb.ws_path) + 1);
		pc->plen = strlen(pc->path);
		udsp_hc_ws_protocols(pc, &vb);
		udsp_hc_path_pop(pc, old);
	}
	if (vb.mounts) {
		old = pc->plen;
		memcpy(pc->path, vb.mounts_path, strlen(vb.mounts_path) + 1);
		pc->plen = strlen(pc->path);
		udsp_hc_mounts(pc, &vb);
		udsp_hc_path_pop(pc, old);
	}
	if (i->listen_accept_protocol)
		udsp_hc_needs_add(pc, &vb, i->listen_accept_protocol,
		     "listen-accept-protocol");
	if (vb.vh->access_log)
		udsp_hc_access_log_pvo(pc, &vb);
	if (vb.proxied)
		udsp_hc_ws_default(pc, &vb);

	for (pp = &pc->hc->vhosts; *pp; pp = &(*pp)->next)
		;
	*pp = vb.vh;
	pc->hc->count_vhosts++;
}
