/* SPDX-License-Identifier: MIT
 *
 * The "vhosts" part of the config: vhost keys -> creation info, mounts ->
 * struct lws_http_mount, ws-protocols -> per-vhost pvos.  lwsws's native
 * proxy origins become callback mounts on the lws-uds-proxy plugin, and
 * every backend is validated here, before anything listens.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf-private.h"
#include "strlist.h"
#include "origin.h"
#include "stats.h"
#include "ws_codec.h"

/*
 * lws 4.1.6 counts "immortal" streams per connection in a byte and aborts
 * past 255 (lws_mux_mark_immortal); the plugin marks each proxied h2
 * stream immortal once its request is in, so stay below that.
 * docs/lws-notes.md N22
 */
#define MAX_H2_STREAMS	250

/* ----------------------------------------------------------------- mounts */

enum {
	M_MOUNTPOINT, M_ORIGIN, M_PROTOCOL, M_DEFAULT, M_AUTH_MASK,
	M_CGI_TIMEOUT, M_CGI_ENV, M_CACHE_MAX_AGE, M_CACHE_REUSE,
	M_CACHE_REVALIDATE, M_CACHE_INTERMEDIARIES, M_BASIC_AUTH,
	M_EXTRA_MIMETYPES, M_INTERPRET, M_PMO,
};

static const struct udsp_hc_kdef keys_mount[] = {
	{ "mountpoint",			KT_STR,  M_MOUNTPOINT, 0 },
	{ "origin",			KT_STR,  M_ORIGIN, 0 },
	{ "protocol",			KT_STR,  M_PROTOCOL, 0 },
	{ "default",			KT_STR,  M_DEFAULT, 0 },
	{ "auth-mask",			KT_INT,  M_AUTH_MASK, 0 },
	{ "cgi-timeout",		KT_INT,  M_CGI_TIMEOUT, 0 },
	{ "cgi-env",			KT_ANY,  M_CGI_ENV, 0 },
	{ "cache-max-age",		KT_INT,  M_CACHE_MAX_AGE, 0 },
	{ "cache-reuse",		KT_BOOL, M_CACHE_REUSE, 0 },
	{ "cache-revalidate",		KT_BOOL, M_CACHE_REVALIDATE, 0 },
	{ "cache-intermediaries",	KT_BOOL, M_CACHE_INTERMEDIARIES, 0 },
	{ "basic-auth",			KT_STR,  M_BASIC_AUTH, 0 },
	{ "extra-mimetypes",		KT_OBJ,  M_EXTRA_MIMETYPES, 0 },
	{ "interpret",			KT_OBJ,  M_INTERPRET, 0 },
	{ "pmo",			KT_ANY,  M_PMO, 0 },
};

/* a mount while its keys are read; becomes a struct lws_http_mount */
struct mb {
	struct lws_http_mount	m;	/* cache bits, strings: arena */
	const char		*origin; /* arena: as written (substituted) */
	const char		*protocol; /* arena: explicit "protocol" */
	const struct lws_protocol_vhost_options *pmo, *cgienv;
	const struct lws_protocol_vhost_options *extra_mimetypes, *interpret;
};

static void
on_mount(struct udsp_hc_pc *pc, void *t, const struct udsp_hc_kdef *k,
	 struct udsp_hc_kval *v)
{
	struct mb *mb = t;

	switch (k->id) {
	case M_MOUNTPOINT:
		mb->m.mountpoint = v->s;
		break;
	case M_ORIGIN:
		mb->origin = v->s;
		break;
	case M_PROTOCOL:
		mb->protocol = v->s;
		break;
	case M_DEFAULT:
		mb->m.def = v->s;
		break;
	case M_AUTH_MASK:
		mb->m.auth_mask = (unsigned int)v->i;
		break;
	case M_CGI_TIMEOUT:
		if (udsp_hc_int_in(pc, v->i, 0, 86400))
			mb->m.cgi_timeout = (int)v->i;
		break;
	case M_CGI_ENV:
		udsp_hc_list_to_pvos(pc, v->j, &mb->cgienv, 0, "");
		break;
	case M_CACHE_MAX_AGE:
		if (udsp_hc_int_in(pc, v->i, 0, INT_MAX))
			mb->m.cache_max_age = (int)v->i;
		break;
	case M_CACHE_REUSE:
		mb->m.cache_reusable = !!v->b;
		break;
	case M_CACHE_REVALIDATE:
		mb->m.cache_revalidate = !!v->b;
		break;
	case M_CACHE_INTERMEDIARIES:
		mb->m.cache_intermediaries = !!v->b;
		break;
	case M_BASIC_AUTH:
		mb->m.basic_auth_login_file = v->s;
		break;
	case M_EXTRA_MIMETYPES:
		udsp_hc_list_to_pvos(pc, v->j, &mb->extra_mimetypes, 0, "");
		break;
	case M_INTERPRET:
		udsp_hc_list_to_pvos(pc, v->j, &mb->interpret, 0, "");
		break;
	case M_PMO:
		udsp_hc_list_to_pvos(pc, v->j, &mb->pmo, 0, "");
		break;
	}
}

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

/* a vhost while its keys are read */
struct vb {
	struct udsp_hc_vhost	*vh;
	size_t			idx;	/* in this file's vhosts[] */
	json_object		*mounts;	/* borrowed: file's tree */
	size_t			mounts_plen;
	char			mounts_path[512];
	json_object		*ws_protocols;
	char			ws_path[512];
	const char		*cert, *key;
	long long		h2_streams;
	unsigned int		has_port:1;
	unsigned int		proxied:1;	/* a mount on the plugin */
};

static void
on_vhost(struct udsp_hc_pc *pc, void *t, const struct udsp_hc_kdef *k,
	 struct udsp_hc_kval *v)
{
	struct vb *vb = t;
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
		if (udsp_hc_int_in(pc, v->i, 1, 86400))
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

static const char *
vname(struct vb *vb)
{
	return vb->vh->info.vhost_name ? vb->vh->info.vhost_name : "?";
}

static void
need(struct udsp_hc_pc *pc, struct vb *vb, const char *name, const char *why)
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

/* the per-vhost pvo that enables a protocol, created if missing */
static struct lws_protocol_vhost_options *
vhost_pvo(struct udsp_hc_pc *pc, struct vb *vb, const char *name)
{
	const struct lws_protocol_vhost_options **pp = &vb->vh->info.pvo;
	struct lws_protocol_vhost_options *pvo;

	for (; *pp; pp = (const struct lws_protocol_vhost_options **)
							&(*pp)->next)
		if (!strcmp((*pp)->name, name))
			return (struct lws_protocol_vhost_options *)*pp;

	pvo = udsp_hc_pvo_new(pc, name, "");
	if (pvo)
		*pp = pvo;

	return pvo;
}

/*
 * A numeric option of the proxy in list (a pmo or its ws-protocols
 * options), if given; 0 after an error.  The plugin reads a mount's per
 * request and has no place to refuse a bad one, and a bad vhost option
 * only fails the plugin's init, with the vhost served regardless.
 */
static int
proxy_uint(struct udsp_hc_pc *pc, const struct lws_protocol_vhost_options *list,
	   const char *name, const char *where)
{
	const struct lws_protocol_vhost_options *pv;
	unsigned long u;
	char *e;

	pv = lws_pvo_search(list, name);
	if (!pv)
		return 1;
	errno = 0;
	u = strtoul(pv->value, &e, 10);
	if (!*pv->value || *e || errno || u > INT_MAX || pv->value[0] == '-') {
		perr(pc, "%s\"%s\": '%s' is not a number", where, name,
		     pv->value);
		return 0;
	}

	return 1;
}

static void
ws_protocols(struct udsp_hc_pc *pc, struct vb *vb)
{
	const struct lws_protocol_vhost_options **tail;
	struct lws_protocol_vhost_options *pvo;
	json_object *j = vb->ws_protocols, *e;
	size_t n, count = 1, old, old2;

	if (json_object_is_type(j, json_type_array))
		count = json_object_array_length(j);
	else if (!json_object_is_type(j, json_type_object)) {
		perr(pc, "expected an array of objects, got %s",
		     json_type_to_name(json_object_get_type(j)));
		return;
	}

	for (n = 0; n < count; n++) {
		e = j;
		old = pc->plen;
		if (json_object_is_type(j, json_type_array)) {
			e = json_object_array_get_idx(j, n);
			old = udsp_hc_path_idx(pc, n);
		}
		if (!json_object_is_type(e, json_type_object)) {
			perr(pc, "expected an object, got %s",
			     json_type_to_name(json_object_get_type(e)));
			udsp_hc_path_pop(pc, old);
			continue;
		}
		json_object_object_foreach(e, key, val) {
			old2 = udsp_hc_path_key(pc, key);
			if (!json_object_is_type(val, json_type_object)) {
				perr(pc, "protocol options: expected an "
					 "object, got %s", json_type_to_name(
					 json_object_get_type(val)));
				udsp_hc_path_pop(pc, old2);
				continue;
			}
			pvo = vhost_pvo(pc, vb, udsp_hc_str(pc->hc, key));
			if (pvo) {
				tail = &pvo->options;
				while (*tail)
					tail = (const struct
					     lws_protocol_vhost_options **)
							&(*tail)->next;
				udsp_hc_obj_to_pvos(pc, val, &tail, 1, "");
				need(pc, vb, pvo->name, "ws-protocols");
				if (!strcmp(pvo->name, UDSP_PROTOCOL_NAME)) {
					proxy_uint(pc, pvo->options,
						   "hold-ms", "option ");
					proxy_uint(pc, pvo->options,
						   "hold-max", "option ");
					proxy_uint(pc, pvo->options,
						   "down-ms", "option ");
				}
			}
			udsp_hc_path_pop(pc, old2);
		}
		udsp_hc_path_pop(pc, old);
	}
}

static const struct {
	const char	*prefix;
	unsigned char	mpro;
} origin_schemes[] = {
	{ "file://",		LWSMPRO_FILE },
	{ "cgi://",		LWSMPRO_CGI },
	{ ">http://",		LWSMPRO_REDIR_HTTP },
	{ ">https://",		LWSMPRO_REDIR_HTTPS },
	{ "callback://",	LWSMPRO_CALLBACK },
	/* lwsws's proxy forms: served by the plugin instead */
	{ "http://",		LWSMPRO_HTTP },
	{ "https://",		LWSMPRO_HTTPS },
};

/*
 * A status mount (pmo "status", README "Status and metrics"): 1 if it is
 * one and its options are right, 0 if it is not one, -1 after an error.
 */
static int
status_mount(struct udsp_hc_pc *pc, const struct lws_http_mount *m)
{
	const struct lws_protocol_vhost_options *st, *al;
	const char *bad;
	size_t blen;

	st = lws_pvo_search(m->cgienv, "status");
	al = lws_pvo_search(m->cgienv, "status-allow");
	if (!st && !al)
		return 0;
	if (!st) {
		perr(pc, "mount '%s': \"status-allow\" without \"status\"",
		     m->mountpoint);
		return -1;
	}
	if (strcmp(st->value, "json") && strcmp(st->value, "prometheus")) {
		perr(pc, "mount '%s': \"status\" '%s': use \"json\" or "
			 "\"prometheus\"", m->mountpoint, st->value);
		return -1;
	}
	if (lws_pvo_search(m->cgienv, "backend")) {
		perr(pc, "mount '%s': a status mount takes no \"backend\"",
		     m->mountpoint);
		return -1;
	}
	if (al && udsp_addr_list_check(al->value, &bad, &blen)) {
		perr(pc, "mount '%s': \"status-allow\": '%.*s' is not an "
			 "address or CIDR prefix", m->mountpoint, (int)blen,
		     bad);
		return -1;
	}

	return 1;
}

static void
mount_ws(struct udsp_hc_pc *pc, struct vb *vb, struct lws_http_mount *m);

static void
mount_finish(struct udsp_hc_pc *pc, struct vb *vb, struct mb *mb,
	     struct lws_http_mount ***tail)
{
	const struct lws_protocol_vhost_options *pvo;
	struct lws_protocol_vhost_options *bpvo;
	struct lws_http_mount *m;
	struct udsp_origin o;
	const char *backend, *e;
	char why[300];
	size_t n;

	if (!mb->m.mountpoint || !mb->origin) {
		perr(pc, "missing required key '%s'",
		     mb->m.mountpoint ? "origin" : "mountpoint");
		return;
	}
	if (mb->m.mountpoint[0] != '/' || strlen(mb->m.mountpoint) > 255) {
		perr(pc, "mountpoint '%s': must start with '/' and be at "
			 "most 255 characters", mb->m.mountpoint);
		return;
	}

	m = udsp_hc_zalloc(pc->hc, sizeof(*m));
	if (!m)
		return;
	*m = mb->m;
	m->mountpoint_len = (unsigned char)strlen(m->mountpoint);
	m->extra_mimetypes = mb->extra_mimetypes;
	m->interpret = mb->interpret;
	m->cgienv = mb->cgienv ? mb->cgienv : mb->pmo;
	if (mb->cgienv && mb->pmo)
		perr(pc, "both 'pmo' and 'cgi-env' given");

	for (n = 0; n < LWS_ARRAY_SIZE(origin_schemes); n++)
		if (!strncmp(mb->origin, origin_schemes[n].prefix,
			     strlen(origin_schemes[n].prefix)))
			break;
	if (n == LWS_ARRAY_SIZE(origin_schemes)) {
		perr(pc, "origin '%s': unsupported scheme (use file://, "
			 "callback://, http://, https://, >http://, "
			 ">https:// or cgi://)", mb->origin);
		return;
	}

	m->origin_protocol = origin_schemes[n].mpro;
	m->origin = mb->origin + strlen(origin_schemes[n].prefix);
	backend = NULL;

	switch (m->origin_protocol) {
	case LWSMPRO_CGI:
#if !defined(LWS_WITH_CGI)
		perr(pc, "origin '%s': this lws build has no CGI support",
		     mb->origin);
		return;
#else
		break;
#endif
	case LWSMPRO_CALLBACK:
		/* as lwsws: the origin names the protocol to bind */
		m->protocol = m->origin;
		if (!*m->origin) {
			perr(pc, "origin '%s': no protocol name", mb->origin);
			return;
		}
		if (!strcmp(m->origin, UDSP_PROTOCOL_NAME)) {
			const struct lws_protocol_vhost_options *pv;

			switch (status_mount(pc, m)) {
			case -1:
				return;
			case 1:
				/* no backend: it answers for the plugin */
				if (!vhost_pvo(pc, vb, UDSP_PROTOCOL_NAME))
					return;
				goto checked;
			}
			pv = lws_pvo_search(m->cgienv, "backend");
			if (!pv) {
				/* else the vhost-wide default must exist */
				pv = lws_pvo_search(vb->vh->info.pvo,
						    UDSP_PROTOCOL_NAME);
				pv = pv ? lws_pvo_search(pv->options,
							 "backend") : NULL;
			}
			if (!pv) {
				perr(pc, "mount '%s' on %s needs a pmo "
					 "\"backend\" or a \"backend\" "
					 "option of %s in ws-protocols",
					 m->mountpoint, UDSP_PROTOCOL_NAME,
					 UDSP_PROTOCOL_NAME);
				return;
			}
			backend = pv->value;
		}
		break;
	case LWSMPRO_HTTP:
	case LWSMPRO_HTTPS:
		if (lws_pvo_search(mb->pmo, "backend")) {
			perr(pc, "mount '%s': proxy origin and pmo "
				 "\"backend\" both given", m->mountpoint);
			return;
		}
		if (mb->cgienv) {
			perr(pc, "mount '%s': cgi-env on a proxy mount",
			     m->mountpoint);
			return;
		}
		if (lws_pvo_search(mb->pmo, "status") ||
		    lws_pvo_search(mb->pmo, "status-allow")) {
			perr(pc, "mount '%s': \"status\" needs origin "
				 "\"callback://%s\"", m->mountpoint,
				 UDSP_PROTOCOL_NAME);
			return;
		}
		backend = mb->origin;
		bpvo = udsp_hc_pvo_new(pc, "backend", backend);
		if (!bpvo)
			return;
		bpvo->next = mb->pmo;
		m->cgienv = bpvo;
		m->origin_protocol = LWSMPRO_CALLBACK;
		m->origin = UDSP_PROTOCOL_NAME;
		m->protocol = UDSP_PROTOCOL_NAME;
		break;
	default:
		break;
	}

checked:
	if (mb->protocol) {
		if (m->protocol && strcmp(m->protocol, mb->protocol)) {
			perr(pc, "mount '%s': \"protocol\" '%s' contradicts "
				 "origin '%s'", m->mountpoint, mb->protocol,
				 mb->origin);
			return;
		}
		m->protocol = mb->protocol;
	}

	if (backend) {
		/* several origins, comma separated: each as a single one */
		const char *cur = backend, *it;
		size_t len;
		int bad = 0, count = 0;

		while ((it = udsp_list_next(&cur, &len))) {
			count++;
			snprintf(why, sizeof(why), "%.*s", (int)len, it);
			e = len >= sizeof(why) ? "too long" :
						 udsp_origin_parse(&o, why);
			if (e) {
				pc->errors++;
				lwsl_err("%s: vhost '%s' mount '%s': backend "
					 "'%s': %s\n", pc->file, vname(vb),
					 m->mountpoint, why, e);
				bad = 1;
			}
		}
		if (!count) {
			pc->errors++;
			lwsl_err("%s: vhost '%s' mount '%s': backend '%s': "
				 "no origin\n", pc->file, vname(vb),
				 m->mountpoint, backend);
			return;
		}
		if (bad)
			return;
		/* the plugin's per-vhost init wants to see it enabled */
		if (!vhost_pvo(pc, vb, UDSP_PROTOCOL_NAME))
			return;
		snprintf(why, sizeof(why), "mount '%s': pmo ", m->mountpoint);
		if (!proxy_uint(pc, m->cgienv, "hold-ms", why))
			return;
	}

	if (m->protocol) {
		snprintf(why, sizeof(why), "mount '%s'", m->mountpoint);
		need(pc, vb, m->protocol, why);
		if (!strcmp(m->protocol, UDSP_PROTOCOL_NAME))
			mount_ws(pc, vb, m);
	}

	for (pvo = m->cgienv; pvo; pvo = pvo->next)
		lwsl_info("%s: vhost '%s' mount '%s': pmo %s=%s\n", pc->file,
			  vname(vb), m->mountpoint, pvo->name, pvo->value);

	**tail = m;
	*tail = (struct lws_http_mount **)&m->mount_next;
}

/*
 * WebSocket options of a mount on the plugin: checked here (the plugin
 * reads them per connection), and the mount's subprotocols noted for the
 * vhost, which gets a protocol of each name (serve.c): lws binds an
 * upgrade that offers subprotocols by protocol name.  The mountpoint goes
 * along as pmo "mountpoint": lws tells a plugin a mount's options but not
 * its path, which a ws upgrade needs to map the URL.
 */
static void
mount_ws(struct udsp_hc_pc *pc, struct vb *vb, struct lws_http_mount *m)
{
	const struct lws_protocol_vhost_options *pvo;
	struct lws_protocol_vhost_options *mp;
	const char *v, *e, *b;
	const char **names;
	char *tok;
	unsigned long u;
	int k;

	vb->proxied = 1;
	for (pvo = m->cgienv; pvo; pvo = pvo->next) {
		v = pvo->value;
		if (!strcmp(pvo->name, "ws-max-message-kb") ||
		    !strcmp(pvo->name, "ws-idle-timeout-ms")) {
			u = strtoul(v, (char **)&e, 10);
			if (!*v || *e || *v == '-' || *v == '+' ||
			    u > 0x7fffffff ||
			    (!strcmp(pvo->name, "ws-max-message-kb") &&
			     (!u || u > 4194304)))
				perr(pc, "mount '%s': %s '%s': expected %s",
				     m->mountpoint, pvo->name, v,
				     pvo->name[3] == 'm' ?
				     "a size in KiB, 1 to 4194304" :
				     "milliseconds (0: no limit)");
		} else if (!strcmp(pvo->name, "ws-subprotocols")) {
			if (!udsp_ws_token_list_ok(v, strlen(v))) {
				perr(pc, "mount '%s': ws-subprotocols '%s': "
					 "expected a comma list of names",
				     m->mountpoint, v);
				continue;
			}
			for (b = v; *b; b = e) {
				while (*b == ',' || *b == ' ' || *b == '\t')
					b++;
				for (e = b; *e && *e != ',' && *e != ' ' &&
					    *e != '\t'; e++)
					;
				if (e == b)
					break;
				if ((size_t)(e - b) > 63) {
					perr(pc, "mount '%s': subprotocol "
						 "'%.*s' is too long",
					     m->mountpoint, (int)(e - b), b);
					continue;
				}
				for (k = 0; k < vb->vh->n_ws_subprotocols; k++)
					if (strlen(vb->vh->ws_subprotocols[k]) ==
					    (size_t)(e - b) &&
					    !strncmp(vb->vh->ws_subprotocols[k],
						     b, (size_t)(e - b)))
						break;
				if (k < vb->vh->n_ws_subprotocols)
					continue;
				names = udsp_hc_zalloc(pc->hc, sizeof(*names) *
					(size_t)(vb->vh->n_ws_subprotocols + 1));
				tok = udsp_hc_zalloc(pc->hc,
						     (size_t)(e - b) + 1);
				if (!names || !tok)
					return;
				memcpy(tok, b, (size_t)(e - b));
				if (vb->vh->n_ws_subprotocols)
					memcpy(names, vb->vh->ws_subprotocols,
					       sizeof(*names) * (size_t)
					       vb->vh->n_ws_subprotocols);
				names[vb->vh->n_ws_subprotocols++] = tok;
				vb->vh->ws_subprotocols = names;
			}
		}
	}
	if (lws_pvo_search(m->cgienv, "mountpoint"))
		return;
	mp = udsp_hc_pvo_new(pc, "mountpoint", m->mountpoint);
	if (!mp)
		return;
	mp->next = m->cgienv;
	m->cgienv = mp;
}

/*
 * A ws upgrade without a subprotocol binds the vhost's default protocol
 * (lws_process_ws_upgrade()): on a vhost with proxied mounts that is the
 * plugin, unless the config names another default.  Plain HTTP is not
 * affected: lws re-binds protocols[0] for a request no mount takes.
 */
static void
ws_default(struct udsp_hc_pc *pc, struct vb *vb)
{
	const struct lws_protocol_vhost_options *pvo;
	struct lws_protocol_vhost_options *mine, *d;

	for (pvo = vb->vh->info.pvo; pvo; pvo = pvo->next)
		if (lws_pvo_search(pvo->options, "default"))
			return;
	mine = vhost_pvo(pc, vb, UDSP_PROTOCOL_NAME);
	d = udsp_hc_pvo_new(pc, "default", "1");
	if (!mine || !d)
		return;
	d->next = mine->options;
	mine->options = d;
}

/*
 * lws picks a request's mount in lws_find_mount() (lib/roles/http/server/
 * server.c:790-823 in 4.1.6; the same up to 4.5): walking the list, a
 * matching callback mount always replaces the mount found so far, any
 * other kind only when its mountpoint is longer (:803-814).  So an app on
 * "/" listed after "/error.css" (file://) would take /error.css too.  In
 * order of mountpoint length, shortest first, every replacement is by a
 * longer mountpoint, so the longest match wins whatever the config's order
 * and the origins' kinds.  Two matching mounts of one length are the same
 * mountpoint, which is refused: the winner would depend on the kinds.  The
 * sort is stable and lws reads the list nowhere else that order matters.
 */
static void
mounts_sort(struct udsp_hc_pc *pc, struct vb *vb)
{
	struct lws_http_mount *m, *next, *out = NULL, **pp;

	for (m = (struct lws_http_mount *)vb->vh->info.mounts; m; m = next) {
		next = (struct lws_http_mount *)m->mount_next;
		for (pp = &out; *pp && (*pp)->mountpoint_len <= m->mountpoint_len;
		     pp = (struct lws_http_mount **)&(*pp)->mount_next)
			if ((*pp)->mountpoint_len == m->mountpoint_len &&
			    !strcmp((*pp)->mountpoint, m->mountpoint))
				perr(pc, "mountpoint '%s' is given twice",
				     m->mountpoint);
		m->mount_next = *pp;
		*pp = m;
	}
	vb->vh->info.mounts = out;
}

static void
mounts(struct udsp_hc_pc *pc, struct vb *vb)
{
	struct lws_http_mount **tail =
			(struct lws_http_mount **)&vb->vh->info.mounts;
	json_object *e;
	struct mb mb;
	size_t n, old;

	for (n = 0; n < json_object_array_length(vb->mounts); n++) {
		e = json_object_array_get_idx(vb->mounts, n);
		old = udsp_hc_path_idx(pc, n);
		if (!json_object_is_type(e, json_type_object))
			perr(pc, "expected an object, got %s",
			     json_type_to_name(json_object_get_type(e)));
		else {
			memset(&mb, 0, sizeof(mb));
			udsp_hc_walk(pc, e, keys_mount,
				     LWS_ARRAY_SIZE(keys_mount),
			     on_mount, &mb);
			mount_finish(pc, vb, &mb, &tail);
		}
		udsp_hc_path_pop(pc, old);
	}
	mounts_sort(pc, vb);
}

/*
 * The vhost's access-log path reaches the plugin as the pvo "access-log" of
 * lws-uds-proxy, appended to any options ws-protocols gave it.
 */
static void
access_log_pvo(struct udsp_hc_pc *pc, struct vb *vb)
{
	const struct lws_protocol_vhost_options **tail;
	struct lws_protocol_vhost_options *pvo, *al;

	pvo = vhost_pvo(pc, vb, UDSP_PROTOCOL_NAME);
	if (!pvo)
		return;
	for (tail = &pvo->options; *tail;
	     tail = (const struct lws_protocol_vhost_options **)
							&(*tail)->next)
		if (!strcmp((*tail)->name, "access-log")) {
			perr(pc, "access-log is given both as a vhost key and "
				 "as an option of %s in ws-protocols",
				 UDSP_PROTOCOL_NAME);
			return;
		}
	al = udsp_hc_pvo_new(pc, "access-log", vb->vh->access_log);
	if (al)
		*tail = al;
}

/* lws_h2_stock_settings as of lws 4.1.6 (docs/lws-notes.md N23); lws takes
 * slots 1-5 only, so ENABLE_CONNECT_PROTOCOL (RFC 8441) stays on (N45) */
static const uint32_t h2_stock[7] = {
	1,		/* use these, not lws's */
	65536,		/* H2SET_HEADER_TABLE_SIZE */
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
	struct vb vb;
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
		ws_protocols(pc, &vb);
		udsp_hc_path_pop(pc, old);
	}
	if (vb.mounts) {
		old = pc->plen;
		memcpy(pc->path, vb.mounts_path, strlen(vb.mounts_path) + 1);
		pc->plen = strlen(pc->path);
		mounts(pc, &vb);
		udsp_hc_path_pop(pc, old);
	}
	if (i->listen_accept_protocol)
		need(pc, &vb, i->listen_accept_protocol,
		     "listen-accept-protocol");
	if (vb.vh->access_log)
		access_log_pvo(pc, &vb);
	if (vb.proxied)
		ws_default(pc, &vb);

	for (pp = &pc->hc->vhosts; *pp; pp = &(*pp)->next)
		;
	*pp = vb.vh;
	pc->hc->count_vhosts++;
}

