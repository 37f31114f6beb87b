/* SPDX-License-Identifier: MIT
 *
 * lwsws-compatible configuration: CONFDIR/conf and every file in
 * CONFDIR/conf.d (JSON with '#' comments), read with json-c into lws
 * creation-info structs.  Owns every string and list it hands to lws; they
 * live until udsp_hconf_destroy(), which runs after lws_context_destroy().
 */
#ifndef UDSP_HOST_CONF_H
#define UDSP_HOST_CONF_H

#include <sys/types.h>
#include <time.h>

#include <libwebsockets.h>

#define UDSP_HC_MAX_PLUGIN_DIRS		16
#define UDSP_HC_DEF_HEADER_DATA		16384
#define UDSP_HC_DEF_H2_STREAMS		128
#define UDSP_HC_MAX_PROCESSES		64
#define UDSP_HC_MAX_CONNECTIONS		(1 << 20)

struct udsp_hc_chunk;

/* a protocol a vhost cannot work without: checked once the vhost exists */
struct udsp_hc_need {
	struct udsp_hc_need	*next;
	const char		*name;	/* arena */
	const char		*why;	/* arena: e.g. "mount '/app'" */
};

struct udsp_hc_vhost {
	struct udsp_hc_vhost	*next;
	const char		*file;	/* arena: defined there */
	/*
	 * Vhost part of the creation info.  The caller adds protocols and the
	 * context-wide options before lws_create_vhost().
	 */
	struct lws_context_creation_info info;
	struct udsp_hc_need	*needs;		/* arena */
	const char		*access_log;	/* arena, or NULL */
	/* a unix-socket listener's file, once bound (vhosts.c) */
	dev_t			sock_dev;
	ino_t			sock_ino;
	struct timespec		sock_ctime;
	/* WebSocket subprotocols the vhost's proxied mounts list (arena):
	 * each becomes a protocol of that name on the plugin's callback */
	const char		**ws_subprotocols;
	int			n_ws_subprotocols;
	void			*ws_pp;	/* vhosts.c: owned protocol list */
	struct lws_vhost	*vh;		/* once created (vhosts.c) */
	unsigned int		enable_client_ssl:1;
	unsigned int		reject_ws_without_protocol:1;
};

struct udsp_hconf {
	struct udsp_hc_chunk	*arena;		/* owned */

	/* "global" */
	int			uid;		/* 0: keep */
	int			gid;
	const char		*username;	/* arena, or NULL */
	const char		*groupname;
	const char		*server_string;
	const char		*alpn;
	int			timeout_secs;	/* 0: lws default */
	int			rlimit_nofile;
	int			count_threads;
	unsigned short		max_http_header_data;
	int			reload_drain_secs; /* 0: no limit */
	int			count_processes; /* workers; 1: none */
	int			max_connections; /* per process; 0: auto */
	const struct lws_protocol_vhost_options *reject_service_keywords;
	const char		*plugin_dirs[UDSP_HC_MAX_PLUGIN_DIRS + 1];
	int			count_plugin_dirs;

	struct udsp_hc_vhost	*vhosts;	/* arena, in file order */
	int			count_vhosts;
	int			oom;	/* an allocation failed */
};

/*
 * Read CONFDIR/conf (must exist) then every regular file in CONFDIR/conf.d
 * in name order.  Problems are logged naming the file and the key path.
 * Returns 0, or -1 if anything was wrong enough that nothing should start;
 * *hc must be passed to udsp_hconf_destroy() either way.
 */
int
udsp_hconf_load(struct udsp_hconf *hc, const char *confdir);

void
udsp_hconf_destroy(struct udsp_hconf *hc);

#endif
