/* SPDX-License-Identifier: MIT
 *
 * Shared by main.c (command line), one serving process (prepare.c:
 * config, plugins, checks; vhosts.c: vhosts; serve.c: lws context, loop,
 * drain), master.c (the supervisor that forks serving processes and swaps
 * them on SIGHUP) and workers.c (a serving process's workers, with
 * count-processes > 1).
 */
#ifndef UDSP_HOST_DAEMON_H
#define UDSP_HOST_DAEMON_H

#include <signal.h>

#include "conf.h"
#include "proc.h"

#define UDSP_MAX_CLI_DIRS	(UDSP_HC_MAX_PLUGIN_DIRS + 8)

struct udsp_opts {
	const char	*confdir;
	const char	*cli_dirs[UDSP_MAX_CLI_DIRS];
	int		ncli;
	int		logs;
	unsigned int	defdir:1;	/* also the compiled-in plugin dir */
};

/*
 * One byte each on a serving process's status pipe to the master.  The
 * master answers UDSP_ST_PREPARED with UDSP_GO on the go pipe once the old
 * process (if any) has closed its listeners.  A worker (workers.c) sends
 * its manager UDSP_ST_DEPRECATED on a pipe of its own.
 */
#define UDSP_ST_PREPARED	'P'	/* config, plugins, context ok */
#define UDSP_ST_READY		'R'	/* vhosts created: listening */
#define UDSP_ST_DEPRECATED	'D'	/* listeners closed, draining */
#define UDSP_GO			'G'

/* log.c: lws's log emitter */
/* lwsl_err lines emitted by this process so far */
extern int udsp_log_errors;
/* called instead of logging lws's "accept: errno N" (limits.c) */
extern void (*udsp_log_accept_failed)(int err);
/* the -d level; force_err: errors whatever it says (-t counts them) */
void
udsp_log_init(int level, int force_err);
/* print what repeated lines held back once their window ended (all: now);
 * returns ms until the next window ends, or -1 */
int
udsp_log_flush(int all);

/* ahpool.c: lws's header tables' data from reused blocks (before any
 * context) */
void
udsp_ahpool_init(size_t header_data);

/* count-processes > 1: what the serving process hands its worker manager */
struct udsp_workers {
	struct lws_context	*cx;	/* vhosts bound, never serviced */
	int			count;	/* count-processes */
	int			st_fd;	/* status pipe to the master, or -1 */
	int			drain_secs;	/* reload-drain-secs, 0: none */
	struct udsp_quiet	*quiet;	/* borrowed: the manager's */
	volatile sig_atomic_t	*interrupted;	/* borrowed: serve.c's flag */
};

/* udsp_workers_run() in a worker: serve */
#define UDSP_WORKER		(-1)

/* prepare.c (`-t`) and serve.c */
int
udsp_serve_check(const struct udsp_opts *o);
int
udsp_serve_run(const struct udsp_opts *o, int st_fd, int go_fd);

/* tlsbuf.c: accepted TLS connections write through a buffer of ours that
 * is sent after each service round */
int
udsp_tlsbuf_init(struct lws_context *cx);
void
udsp_tlsbuf_stop(void);
void
udsp_tlsbuf_destroy(void);
void
udsp_tlsbuf_attach(struct lws *wsi);
void
udsp_tlsbuf_flush(void);

/* limits.c */
void
udsp_nofile_raise(int max_conns);
int
udsp_gate_start(struct lws_context *cx, int max_connections);
void
udsp_gate_stop(void);
int
udsp_gate_callback(struct lws *wsi, enum lws_callback_reasons reason,
		   void *user, void *in, size_t len);

/* workers.c */
int
udsp_workers_run(const struct udsp_workers *w, int *to_manager);

/* master.c */
int
udsp_master_run(const struct udsp_opts *o);

#endif
