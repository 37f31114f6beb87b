/* SPDX-License-Identifier: MIT
 *
 * A WebSocket upgrade's backend, before the 101.  lws answers a ws upgrade
 * with its 101 before the plugin learns the mount (HTTP_PMO comes after
 * it, docs/lws-notes.md N47), so a backend found down then can only close
 * the ws (1014).  On h1 lws asks first (HTTP_CONFIRM_UPGRADE, with the
 * header table), and lws-uds-proxyd hands the plugin its mount table
 * (UDSP_PVO_MOUNT, origin.h): with both, an upgrade whose mount's backend
 * is known down gets the 503 page an HTTP request gets, and no 101.
 *
 * "Known down" costs nothing a healthy backend would notice and never
 * refuses one that is up; a member of the mount's backend list is down if
 *
 *   - it is a unix socket whose file is missing (stat(): ENOENT);
 *   - it is a unix socket marked down (a connect to it failed within
 *     down-ms), and a connect to it now fails at once (ENOENT,
 *     ECONNREFUSED).  Only then: while a backend is believed up no probe
 *     is made, since one that works is an empty connection to the app
 *     (the one such probe after a backend came back, which marks it up,
 *     is the price of not answering it 503);
 *   - the list has several members and this one is marked down (group.c
 *     passes it over for HTTP the same way).
 *
 * and the mount's backend is down if every member is.  A unix backend
 * that stopped listening but left its file is not known down until a
 * connect to it failed (an HTTP request's or a ws's): that ws still gets
 * the 101 and the close 1014.  TCP and TLS backends are tried after the
 * 101 as before (a connect there does not fail at once).
 *
 * hold-ms: a ws cannot wait before its 101 (lws wants the answer from
 * this callback), and after it the ws is not held either, so a mount with
 * hold-ms answers a known-down backend's upgrade 503 at once, with its
 * Retry-After.
 *
 * h2 (RFC 8441): lws's hook before its ":status 200" is
 * FILTER_PROTOCOL_CONNECTION, where the plugin writes the same page
 * (":status 503", ending the stream) and refuses, which lws follows with
 * RST_STREAM NO_ERROR (udsp_ws_early_filter()).  Under lwsws there is no
 * mount table and nothing changes.
 */
#include "private.h"

#include <errno.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>

int
udsp_ws_early_conf(struct udsp_vhd *vhd,
		   const struct lws_protocol_vhost_options *pvo)
{
	const struct lws_protocol_vhost_options *p;
	unsigned int n = 0;

	for (p = pvo; p; p = p->next)
		if (!strcmp(p->name, UDSP_PVO_MOUNT))
			n++;
	if (!n)
		return 0;
	vhd->mounts = calloc(n, sizeof(*vhd->mounts));
	if (!vhd->mounts)
		return -1;
	for (p = pvo; p; p = p->next)
		if (!strcmp(p->name, UDSP_PVO_MOUNT))
			vhd->mounts[vhd->nmounts++] = p;

	return 0;
}

/*
 * The mount lws will bind uri to (lws_find_mount(), docs/lws-notes.md N9:
 * a prefix ending at '\0' or '/', or "/"; the daemon lists mounts
 * shortest first, so the longest wins).
 */
static const struct lws_protocol_vhost_options *
find_mount(struct udsp_vhd *vhd, const char *uri, size_t ulen)
{
	const struct lws_protocol_vhost_options *hit = NULL;
	size_t ml, best = 0;
	unsigned int n;

	for (n = 0; n < vhd->nmounts; n++) {
		ml = strlen(vhd->mounts[n]->value);
		if (ulen < ml || strncmp(uri, vhd->mounts[n]->value, ml) ||
		    (uri[ml] && uri[ml] != '/' && ml != 1))
			continue;
		if (!hit || ml > best) {
			hit = vhd->mounts[n];
			best = ml;
		}
	}

	return hit;
}

static int
member_down(struct udsp_backend *be, int many, lws_usec_t now)
{
	int marked = be->down && now < be->down_until, e;
	const char *path = be->o.address + 1;	/* past lws's '+' */
	struct stat st;

	if (be->bad)
		return many;	/* a single one: established()'s 1011 */
	if (be->o.kind != UDSP_ORIGIN_UNIX || be->o.address[0] != '+')
		return many && marked;
	if (path[0] != '@' && stat(path, &st) && errno == ENOENT)
		return 1;
	if (!marked)
		return 0;
	e = udsp_unix_connect_errno(be);
	if (!e)
		/* it is back: the upgrades behind this one need no probe */
		udsp_pool_health(be, 1, NULL);

	return e == ENOENT || e == ECONNREFUSED;
}

static int
group_down(struct udsp_vhd *vhd,
	   const struct lws_protocol_vhost_options *pmo)
{
	const struct lws_protocol_vhost_options *b;
	struct udsp_group *g = vhd->def;
	struct udsp_backend *be;
	lws_usec_t now = lws_now_usecs();
	unsigned int i, n;

	b = lws_pvo_search(pmo, "backend");
	if (b)
		g = udsp_group_lookup(vhd, b->value);
	n = udsp_group_size(g);
	if (!n)
		return 0;	/* the 101, and established()'s answer */
	for (i = 0; i < n; i++) {
		be = udsp_group_member(g, i);
		if (!member_down(be, n > 1, now))
			return 0;
	}

	return 1;
}

/*
 * The mount of wsi's upgrade, if its backend is known down; else NULL
 * (not the plugin's mount, a status one, or a backend that may be up).
 */
static const struct lws_protocol_vhost_options *
known_down(struct udsp_vhd *vhd, struct lws *wsi)
{
	const struct lws_protocol_vhost_options *m;
	char *uri;
	int ulen;

	if (!vhd || !vhd->nmounts)
		return NULL;
	/* the path, without the query (lws keeps that apart on h1) */
	if (lws_http_get_uri_and_method(wsi, &uri, &ulen) < 0 || ulen <= 0)
		return NULL;
	m = find_mount(vhd, uri, strcspn(uri, "?") < (size_t)ulen ?
				 strcspn(uri, "?") : (size_t)ulen);
	if (!m || !m->options || udsp_status_kind(m->options) ||
	    !group_down(vhd, m->options))
		return NULL;
	lwsl_info("%s: ws upgrade to %s: backend down, 503 before the %s\n",
		  __func__, m->value, lws_hdr_total_length(wsi,
			WSI_TOKEN_HTTP_COLON_METHOD) > 0 ? "200" : "101");

	return m;
}

int
udsp_ws_early_confirm(struct udsp_vhd *vhd, struct lws *wsi, const char *up)
{
	if (!up || strcasecmp(up, "websocket") || !known_down(vhd, wsi))
		return 0;

	return udsp_errpage_now(wsi, UDSP_E_CONNECT, 0) ? -1 : 1;
}

/*
 * RFC 8441: lws binds the ws protocol, then asks this before it sends its
 * ":status 200" (lws_process_ws_upgrade(), from the stream's deferred
 * http action, when nothing is pending on the connection).  A refusal
 * closes the stream with RST_STREAM NO_ERROR, which after a complete
 * response is how RFC 9113 8.1 lets a server end a request it answered
 * early: the page goes first, ending the stream.  On h1 HTTP_CONFIRM_
 * UPGRADE came first and said go on.
 */
int
udsp_ws_early_filter(struct udsp_vhd *vhd, struct lws *wsi)
{
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COLON_METHOD) <= 0 ||
	    !known_down(vhd, wsi))
		return 0;
	udsp_errpage_now(wsi, UDSP_E_CONNECT, 1);

	return 1;
}
