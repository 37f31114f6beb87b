/* SPDX-License-Identifier: MIT
 *
 * The "global" object of the config: lwsws's keys and ours
 * (docs/operations.md), into struct udsp_hconf.
 */
#include <limits.h>

#include "conf-private.h"

/* ---------------------------------------------------------------- global */

enum {
	G_UID, G_GID, G_USERNAME, G_GROUPNAME, G_COUNT_THREADS, G_INIT_SSL,
	G_SERVER_STRING, G_PLUGIN_DIR, G_PINGPONG, G_TIMEOUT, G_REJECT,
	G_ALPN, G_IGNORED, G_RLIMIT_NOFILE, G_MAX_HDR, G_DRAIN, G_PROCESSES,
	G_MAX_CONNS,
};

static const struct udsp_hc_kdef keys_global[] = {
	{ "uid",			KT_INT,  G_UID, 0 },
	{ "gid",			KT_INT,  G_GID, 0 },
	{ "username",			KT_STR,  G_USERNAME, 0 },
	{ "groupname",			KT_STR,  G_GROUPNAME, 0 },
	{ "count-threads",		KT_INT,  G_COUNT_THREADS, 0 },
	{ "init-ssl",			KT_BOOL, G_INIT_SSL, 0 },
	{ "server-string",		KT_STR,  G_SERVER_STRING, 0 },
	{ "plugin-dir",			KT_ANY,  G_PLUGIN_DIR, 0 },
	{ "ws-pingpong-secs",		KT_INT,  G_PINGPONG, 0 },
	{ "timeout-secs",		KT_INT,  G_TIMEOUT, 0 },
	{ "reject-service-keywords",	KT_ANY,  G_REJECT, 0 },
	{ "default-alpn",		KT_STR,  G_ALPN, 0 },
	{ "ip-limit-ah",		KT_INT,  G_IGNORED, 0 },
	{ "ip-limit-wsi",		KT_INT,  G_IGNORED, 0 },
	{ "rlimit-nofile",		KT_INT,  G_RLIMIT_NOFILE, 0 },
	{ "max-http-header-data",	KT_INT,  G_MAX_HDR, 0 },
	/* ours (lwsws has no equivalent): see docs/operations.md */
	{ "reload-drain-secs",		KT_INT,  G_DRAIN, 0 },
	{ "count-processes",		KT_INT,  G_PROCESSES, 0 },
	{ "max-connections",		KT_INT,  G_MAX_CONNS, 0 },
};

static void
add_plugin_dir(struct udsp_hc_pc *pc, json_object *j)
{
	struct udsp_hconf *hc = pc->hc;
	const char *s;

	if (!json_object_is_type(j, json_type_string)) {
		perr(pc, "expected a string, got %s",
		     json_type_to_name(json_object_get_type(j)));
		return;
	}
	if (hc->count_plugin_dirs == UDSP_HC_MAX_PLUGIN_DIRS) {
		perr(pc, "more than %d plugin dirs", UDSP_HC_MAX_PLUGIN_DIRS);
		return;
	}
	s = udsp_hc_scalar_str(pc, j);
	if (s)
		hc->plugin_dirs[hc->count_plugin_dirs++] = s;
}

static void
on_global(struct udsp_hc_pc *pc, void *t, const struct udsp_hc_kdef *k,
	 struct udsp_hc_kval *v)
{
	struct udsp_hconf *hc = pc->hc;
	size_t n, old;

	switch (k->id) {
	case G_UID:
		if (udsp_hc_int_in(pc, v->i, 0, INT_MAX))
			hc->uid = (int)v->i;
		break;
	case G_GID:
		if (udsp_hc_int_in(pc, v->i, 0, INT_MAX))
			hc->gid = (int)v->i;
		break;
	case G_USERNAME:
		hc->username = v->s;
		break;
	case G_GROUPNAME:
		hc->groupname = v->s;
		break;
	case G_COUNT_THREADS:
		if (v->i != 1)
			pwarn(pc, "only 1 service thread is supported; "
				  "using 1 (see count-processes)");
		break;
	case G_INIT_SSL:
		/* TLS is always initialised: the plugin needs OpenSSL */
		break;
	case G_SERVER_STRING:
		hc->server_string = v->s;
		break;
	case G_PLUGIN_DIR:
		if (!json_object_is_type(v->j, json_type_array)) {
			add_plugin_dir(pc, v->j);
			break;
		}
		for (n = 0; n < json_object_array_length(v->j); n++) {
			old = udsp_hc_path_idx(pc, n);
			add_plugin_dir(pc, json_object_array_get_idx(v->j, n));
			udsp_hc_path_pop(pc, old);
		}
		break;
	case G_PINGPONG:
		/* deprecated in lwsws too: accepted, no effect */
		break;
	case G_TIMEOUT:
		if (udsp_hc_int_in(pc, v->i, 0, UDSP_HC_DAY_S))
			hc->timeout_secs = (int)v->i;
		break;
	case G_REJECT:
		udsp_hc_list_to_pvos(pc, v->j, &hc->reject_service_keywords,
				     0, "");
		break;
	case G_ALPN:
		hc->alpn = v->s;
		break;
	case G_IGNORED:
		pwarn(pc, "not supported by this lws build (ignored)");
		break;
	case G_RLIMIT_NOFILE:
		if (udsp_hc_int_in(pc, v->i, 0, INT_MAX))
			hc->rlimit_nofile = (int)v->i;
		break;
	case G_MAX_HDR:
		if (udsp_hc_int_in(pc, v->i, 256, 65535))
			hc->max_http_header_data = (unsigned short)v->i;
		break;
	case G_DRAIN:
		if (udsp_hc_int_in(pc, v->i, 0, INT_MAX))
			hc->reload_drain_secs = (int)v->i;
		break;
	case G_PROCESSES:
		if (udsp_hc_int_in(pc, v->i, 1, UDSP_HC_MAX_PROCESSES))
			hc->count_processes = (int)v->i;
		break;
	case G_MAX_CONNS:
		/* 0: derived from the descriptor limit at start (limits.c) */
		if (udsp_hc_int_in(pc, v->i, 0, UDSP_HC_MAX_CONNECTIONS))
			hc->max_connections = (int)v->i;
		break;
	}
}

void
udsp_hc_global(struct udsp_hc_pc *pc, json_object *o)
{
	udsp_hc_walk(pc, o, keys_global, LWS_ARRAY_SIZE(keys_global),
		     on_global, NULL);
}
