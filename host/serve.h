/* SPDX-License-Identifier: MIT
 *
 * Shared by the parts of one serving process: prepare.c (config, plugins,
 * start-up checks), vhosts.c (the vhosts and their listeners) and serve.c
 * (the lws context, the service loop, the drain).  Not used outside them.
 */
#ifndef UDSP_HOST_SERVE_H
#define UDSP_HOST_SERVE_H

#include <openssl/ssl.h>

#include "daemon.h"

#define MAX_DIRS	(UDSP_HC_MAX_PLUGIN_DIRS + UDSP_MAX_CLI_DIRS + 1)

/* one serving process */
struct udsp_srv {
	struct udsp_hconf	hc;
	struct lws_plugin	*plugins;	/* owned */
	const struct lws_protocols **pp;	/* owned array */
	const char		*dirs[MAX_DIRS + 1];
	int			ndirs;
	int			st_fd;	/* status pipe to the master, or -1 */
	lws_sorted_usec_list_t	sul_drain;
	lws_sorted_usec_list_t	sul_log;	/* log.c's held lines */
	lws_usec_t		drain_deadline;	/* 0: none */
	struct udsp_quiet	quiet;	/* see udsp_proc_close_listeners() */
	SSL_CTX			*client_ctx;	/* owned, shared by vhosts */
	unsigned int		deprecated:1;
	unsigned int		worker:1;	/* one of count-processes */
};

/* prepare.c: everything that can be checked without listening; returns
 * how many problems it logged.  unprepare() after the context is gone. */
int
udsp_srv_prepare(struct udsp_srv *s, const struct udsp_opts *o);
void
udsp_srv_unprepare(struct udsp_srv *s);

/* vhosts.c */
SSL_CTX *
udsp_srv_client_ctx(void);
int
udsp_srv_create_vhosts(struct udsp_srv *s, struct lws_context *cx,
		       uint64_t ctx_opts);
void
udsp_srv_keep_foreign_sockets(struct udsp_srv *s);

#endif
