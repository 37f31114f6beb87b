/* SPDX-License-Identifier: MIT
 *
 * A vhost's "mounts": each object -> struct lws_http_mount, with lwsws's
 * native proxy origins turned into callback mounts on the lws-uds-proxy
 * plugin and every backend validated here, before anything listens; then
 * the list sorted the way lws's mount matching needs.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf-private.h"
#include "strlist.h"
#include "origin.h"
#include "stats.h"
#include "ws_codec.h"

/* lws keeps a mountpoint's length in an unsigned char */
#define MOUNTPOINT_MAX		255
/* ws-max-message-kb's ceiling: 4 GiB */
#define WS_MAX_MESSAGE_KB	4194304
/* longest subprotocol name: the plugin's ws keeps it in a char[64] */
#define WS_SUBPROTOCOL_MAX	63

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
		if (udsp_hc_int_in(pc, v->i, 0, UDSP_HC_DAY_S))
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

/*
 * A new mount from what its keys said, its origin's scheme read: NULL
 * after an error.
 */
static struct lws_http_mount *
mount_new(struct udsp_hc_pc *pc, const struct mb *mb)
{
	struct lws_http_mount *m;
	size_t n;

	if (!mb->m.mountpoint || !mb->origin) {
		perr(pc, "missing required key '%s'",
		     mb->m.mountpoint ? "origin" : "mountpoint");
		return NULL;
	}
	if (mb->m.mountpoint[0] != '/' ||
	    strlen(mb->m.mountpoint) > MOUNTPOINT_MAX) {
		perr(pc, "mountpoint '%s': must start with '/' and be at "
			 "most %d characters", mb->m.mountpoint,
		     MOUNTPOINT_MAX);
		return NULL;
	}

	m = udsp_hc_zalloc(pc->hc, sizeof(*m));
	if (!m)
		return NULL;
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
		return NULL;
	}

	m->origin_protocol = origin_schemes[n].mpro;
	m->origin = mb->origin + strlen(origin_schemes[n].prefix);

	return m;
}

/*
 * callback://lws-uds-proxy: a status mount (*backend stays NULL), or a
 * proxied one whose backend is its pmo "backend" or else the vhost-wide
 * default.  0, or -1 after an error.
 */
static int
plugin_mount(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb,
	     struct lws_http_mount *m, const char **backend)
{
	const struct lws_protocol_vhost_options *pv;

	switch (status_mount(pc, m)) {
	case -1:
		return -1;
	case 1:
		/* no backend: it answers for the plugin */
		return udsp_hc_vhost_pvo(pc, vb, UDSP_PROTOCOL_NAME) ? 0 : -1;
	}
	pv = lws_pvo_search(m->cgienv, "backend");
	if (!pv) {
		/* else the vhost-wide default must exist */
		pv = lws_pvo_search(vb->vh->info.pvo, UDSP_PROTOCOL_NAME);
		pv = pv ? lws_pvo_search(pv->options, "backend") : NULL;
	}
	if (!pv) {
		perr(pc, "mount '%s' on %s needs a pmo \"backend\" or a "
			 "\"backend\" option of %s in ws-protocols",
		     m->mountpoint, UDSP_PROTOCOL_NAME, UDSP_PROTOCOL_NAME);
		return -1;
	}
	*backend = pv->value;

	return 0;
}

/*
 * lwsws's proxy origins (http://, https://) become callback mounts on the
 * plugin, the origin their pmo "backend".  0, or -1 after an error.
 */
static int
proxy_origin_mount(struct udsp_hc_pc *pc, const struct mb *mb,
		   struct lws_http_mount *m, const char **backend)
{
	struct lws_protocol_vhost_options *bpvo;

	if (lws_pvo_search(mb->pmo, "backend")) {
		perr(pc, "mount '%s': proxy origin and pmo \"backend\" both "
			 "given", m->mountpoint);
		return -1;
	}
	if (mb->cgienv) {
		perr(pc, "mount '%s': cgi-env on a proxy mount",
		     m->mountpoint);
		return -1;
	}
	if (lws_pvo_search(mb->pmo, "status") ||
	    lws_pvo_search(mb->pmo, "status-allow")) {
		perr(pc, "mount '%s': \"status\" needs origin "
			 "\"callback://%s\"", m->mountpoint,
		     UDSP_PROTOCOL_NAME);
		return -1;
	}
	*backend = mb->origin;
	bpvo = udsp_hc_pvo_new(pc, "backend", *backend);
	if (!bpvo)
		return -1;
	bpvo->next = mb->pmo;
	m->cgienv = bpvo;
	m->origin_protocol = LWSMPRO_CALLBACK;
	m->origin = UDSP_PROTOCOL_NAME;
	m->protocol = UDSP_PROTOCOL_NAME;

	return 0;
}

/*
 * What the origin's scheme asks of the mount.  *backend: the plugin's
 * backend list when the mount is proxied, else NULL.  0, or -1 after an
 * error.
 */
static int
mount_origin(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb,
	     const struct mb *mb, struct lws_http_mount *m,
	     const char **backend)
{
	*backend = NULL;

	switch (m->origin_protocol) {
	case LWSMPRO_CGI:
#if !defined(LWS_WITH_CGI)
		perr(pc, "origin '%s': this lws build has no CGI support",
		     mb->origin);
		return -1;
#else
		return 0;
#endif
	case LWSMPRO_CALLBACK:
		/* as lwsws: the origin names the protocol to bind */
		m->protocol = m->origin;
		if (!*m->origin) {
			perr(pc, "origin '%s': no protocol name", mb->origin);
			return -1;
		}
		if (!strcmp(m->origin, UDSP_PROTOCOL_NAME))
			return plugin_mount(pc, vb, m, backend);
		return 0;
	case LWSMPRO_HTTP:
	case LWSMPRO_HTTPS:
		return proxy_origin_mount(pc, mb, m, backend);
	default:
		return 0;
	}
}

/*
 * A proxied mount's backends: several origins, comma separated, each
 * checked as a single one; then the plugin's options that depend on them.
 * 0, or -1 after an error.
 */
static int
backends_check(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb,
	       const struct lws_http_mount *m, const char *backend)
{
	const char *cur = backend, *it, *e;
	struct udsp_origin o;
	char why[300];
	size_t len;
	int bad = 0, count = 0;

	while ((it = udsp_list_next(&cur, &len))) {
		count++;
		snprintf(why, sizeof(why), "%.*s", (int)len, it);
		e = len >= sizeof(why) ? "too long" :
					 udsp_origin_parse(&o, why);
		if (e) {
			pc->errors++;
			lwsl_err("%s: vhost '%s' mount '%s': backend '%s': "
				 "%s\n", pc->file, udsp_hc_vname(vb),
				 m->mountpoint, why, e);
			bad = 1;
		}
	}
	if (!count) {
		pc->errors++;
		lwsl_err("%s: vhost '%s' mount '%s': backend '%s': no "
			 "origin\n", pc->file, udsp_hc_vname(vb),
			 m->mountpoint, backend);
		return -1;
	}
	if (bad)
		return -1;
	/* the plugin's per-vhost init wants to see it enabled */
	if (!udsp_hc_vhost_pvo(pc, vb, UDSP_PROTOCOL_NAME))
		return -1;
	snprintf(why, sizeof(why), "mount '%s': pmo ", m->mountpoint);

	return udsp_hc_proxy_uint(pc, m->cgienv, "hold-ms", why) ? 0 : -1;
}

/* a numeric ws option of a mount on the plugin, if it is one */
static void
ws_number(struct udsp_hc_pc *pc, const struct lws_http_mount *m,
	  const struct lws_protocol_vhost_options *pvo)
{
	int kb = !strcmp(pvo->name, "ws-max-message-kb");
	const char *v = pvo->value;
	unsigned long u;
	char *e;

	if (!kb && strcmp(pvo->name, "ws-idle-timeout-ms"))
		return;
	u = strtoul(v, &e, 10);
	if (*v && !*e && *v != '-' && *v != '+' && u <= INT_MAX &&
	    (!kb || (u && u <= WS_MAX_MESSAGE_KB)))
		return;
	if (kb)
		perr(pc, "mount '%s': %s '%s': expected a size in KiB, 1 to "
			 "%d", m->mountpoint, pvo->name, v, WS_MAX_MESSAGE_KB);
	else
		perr(pc, "mount '%s': %s '%s': expected milliseconds (0: no "
			 "limit)", m->mountpoint, pvo->name, v);
}

/*
 * A mount's ws-subprotocols, each noted once for the vhost.  0, or -1 if
 * out of memory.
 */
static int
ws_subprotocols(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb,
		const struct lws_http_mount *m, const char *v)
{
	struct udsp_hc_vhost *vh = vb->vh;
	const char *cur = v, *b;
	const char **names;
	size_t len;
	char *tok;
	int k;

	if (!udsp_ws_token_list_ok(v, strlen(v))) {
		perr(pc, "mount '%s': ws-subprotocols '%s': expected a comma "
			 "list of names", m->mountpoint, v);
		return 0;
	}
	while ((b = udsp_list_next(&cur, &len))) {
		if (len > WS_SUBPROTOCOL_MAX) {
			perr(pc, "mount '%s': subprotocol '%.*s' is too long",
			     m->mountpoint, (int)len, b);
			continue;
		}
		for (k = 0; k < vh->n_ws_subprotocols; k++)
			if (strlen(vh->ws_subprotocols[k]) == len &&
			    !strncmp(vh->ws_subprotocols[k], b, len))
				break;
		if (k < vh->n_ws_subprotocols)
			continue;
		names = udsp_hc_zalloc(pc->hc, sizeof(*names) *
				       (size_t)(vh->n_ws_subprotocols + 1));
		tok = udsp_hc_zalloc(pc->hc, len + 1);
		if (!names || !tok)
			return -1;
		memcpy(tok, b, len);
		if (vh->n_ws_subprotocols)
			memcpy(names, vh->ws_subprotocols, sizeof(*names) *
			       (size_t)vh->n_ws_subprotocols);
		names[vh->n_ws_subprotocols++] = tok;
		vh->ws_subprotocols = names;
	}

	return 0;
}

/*
 * WebSocket options of a mount on the plugin: checked here (the plugin
 * reads them per connection), and the mount's subprotocols noted for the
 * vhost, which gets a protocol of each name (vhosts.c): lws binds an
 * upgrade that offers subprotocols by protocol name.  The mountpoint goes
 * along as pmo "mountpoint": lws tells a plugin a mount's options but not
 * its path, which a ws upgrade needs to map the URL.
 */
static void
mount_ws(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb,
	 struct lws_http_mount *m)
{
	const struct lws_protocol_vhost_options *pvo;
	struct lws_protocol_vhost_options *mp;

	vb->proxied = 1;
	for (pvo = m->cgienv; pvo; pvo = pvo->next) {
		ws_number(pc, m, pvo);
		if (!strcmp(pvo->name, "ws-subprotocols") &&
		    ws_subprotocols(pc, vb, m, pvo->value))
			return;
	}
	if (lws_pvo_search(m->cgienv, "mountpoint"))
		return;
	mp = udsp_hc_pvo_new(pc, "mountpoint", m->mountpoint);
	if (!mp)
		return;
	mp->next = m->cgienv;
	m->cgienv = mp;
}

static void
mount_finish(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb, struct mb *mb,
	     struct lws_http_mount ***tail)
{
	const struct lws_protocol_vhost_options *pvo;
	struct lws_http_mount *m;
	const char *backend;
	char why[300];

	m = mount_new(pc, mb);
	if (!m || mount_origin(pc, vb, mb, m, &backend))
		return;

	if (mb->protocol) {
		if (m->protocol && strcmp(m->protocol, mb->protocol)) {
			perr(pc, "mount '%s': \"protocol\" '%s' contradicts "
				 "origin '%s'", m->mountpoint, mb->protocol,
				 mb->origin);
			return;
		}
		m->protocol = mb->protocol;
	}

	if (backend && backends_check(pc, vb, m, backend))
		return;

	if (m->protocol) {
		snprintf(why, sizeof(why), "mount '%s'", m->mountpoint);
		udsp_hc_needs_add(pc, vb, m->protocol, why);
		if (!strcmp(m->protocol, UDSP_PROTOCOL_NAME))
			mount_ws(pc, vb, m);
	}

	for (pvo = m->cgienv; pvo; pvo = pvo->next)
		lwsl_info("%s: vhost '%s' mount '%s': pmo %s=%s\n", pc->file,
			  udsp_hc_vname(vb), m->mountpoint, pvo->name,
			  pvo->value);

	**tail = m;
	*tail = (struct lws_http_mount **)&m->mount_next;
}

/*
 * lws picks a request's mount in lws_find_mount() (docs/lws-notes.md N9;
 * the same up to 4.5): walking the list, a matching callback mount always
 * replaces the mount found so far, any other kind only when its mountpoint
 * is longer.  So an app on
 * "/" listed after "/error.css" (file://) would take /error.css too.  In
 * order of mountpoint length, shortest first, every replacement is by a
 * longer mountpoint, so the longest match wins whatever the config's order
 * and the origins' kinds.  Two matching mounts of one length are the same
 * mountpoint, which is refused: the winner would depend on the kinds.  The
 * sort is stable and lws reads the list nowhere else that order matters.
 */
static void
mounts_sort(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb)
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

/*
 * The vhost's mounts, for the plugin, as UDSP_PVO_MOUNT options of its
 * pvo (origin.h): a ws upgrade's mount is known before the 101 only this
 * way, so that a backend known to be down gets the 503 page instead of a
 * 101 and a close (docs/lws-notes.md N47).  Every mount is listed, so
 * that the plugin's longest match is lws's: a file mount under a proxied
 * one is not the proxied one's.
 */
static void
mounts_table(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb)
{
	const struct lws_protocol_vhost_options **tail;
	struct lws_protocol_vhost_options *mine, *e;
	const struct lws_http_mount *m;

	if (!vb->proxied)
		return;
	mine = udsp_hc_vhost_pvo(pc, vb, UDSP_PROTOCOL_NAME);
	if (!mine)
		return;
	for (tail = &mine->options; *tail;
	     tail = (const struct lws_protocol_vhost_options **)&(*tail)->next)
		if (!strcmp((*tail)->name, UDSP_PVO_MOUNT)) {
			perr(pc, "option '%s' of %s is the daemon's own",
			     UDSP_PVO_MOUNT, UDSP_PROTOCOL_NAME);
			return;
		}
	for (m = vb->vh->info.mounts; m; m = m->mount_next) {
		e = udsp_hc_pvo_new(pc, UDSP_PVO_MOUNT, m->mountpoint);
		if (!e)
			return;
		if (m->protocol && !strcmp(m->protocol, UDSP_PROTOCOL_NAME))
			e->options = m->cgienv;
		*tail = e;
		tail = (const struct lws_protocol_vhost_options **)&e->next;
	}
}

void
udsp_hc_mounts(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb)
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
	mounts_table(pc, vb);
}
