/* SPDX-License-Identifier: MIT
 *
 * Shared by main.c (command line), serve.c (one serving process: config,
 * plugins, lws context, vhosts, drain) and master.c (the supervisor that
 * forks serving processes and swaps them on SIGHUP).
 */
#ifndef UDSP_HOST_DAEMON_H
#define UDSP_HOST_DAEMON_H

#include "conf.h"

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
 * process (if any) has closed its listeners.
 */
#define UDSP_ST_PREPARED	'P'	/* config, plugins, context ok */
#define UDSP_ST_READY		'R'	/* vhosts created: listening */
#define UDSP_ST_DEPRECATED	'D'	/* listeners closed, draining */
#define UDSP_GO			'G'

/* lwsl_err lines emitted by this process so far (main.c's log emitter) */
extern int udsp_log_errors;

/* serve.c */
int
udsp_serve_check(const struct udsp_opts *o);
int
udsp_serve_run(const struct udsp_opts *o, int st_fd, int go_fd);

/* master.c */
int
udsp_master_run(const struct udsp_opts *o);

#endif
