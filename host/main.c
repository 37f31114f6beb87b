/* SPDX-License-Identifier: MIT
 *
 * lws-uds-proxyd: an lwsws-compatible server.  Owns the command line, the
 * log set-up and the choice of mode: check the configuration (-t), serve
 * under the reloading supervisor (default), or serve alone (-s).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "daemon.h"

#if !defined(UDSP_DEFAULT_PLUGIN_DIR)
#define UDSP_DEFAULT_PLUGIN_DIR "/usr/local/lib/lws-uds-proxy/plugins"
#endif
#if !defined(UDSP_DEFAULT_CONFDIR)
#define UDSP_DEFAULT_CONFDIR "/etc/lwsws"
#endif

/* lwsws's default log set: errors, warnings, notices */
#define DEFAULT_LOGS	(LLL_ERR | LLL_WARN | LLL_NOTICE)

static void
usage(FILE *f, const char *argv0)
{
	fprintf(f,
		"Usage: %s [-c CONFDIR] [-d LOGLEVEL] [-p PLUGINDIR]... [-n] "
		"[-t] [-s] [-h]\n"
		"  -c CONFDIR   read CONFDIR/conf and CONFDIR/conf.d/* "
		"(default %s)\n"
		"  -d LOGLEVEL  lws log bitmask (default %d: err|warn|notice)"
		"\n"
		"  -p DIR       also load protocol plugins from DIR "
		"(repeatable)\n"
		"  -n           do not load plugins from the default dir\n"
		"  -t           check the configuration and plugins, start "
		"nothing\n"
		"  -s           one process, no supervisor (SIGHUP does not "
		"reload)\n"
		"  -h           this help\n"
		"Default plugin dir: %s\n",
		argv0, UDSP_DEFAULT_CONFDIR, DEFAULT_LOGS,
		UDSP_DEFAULT_PLUGIN_DIR);
}

int
main(int argc, char **argv)
{
	int n, check = 0, single = 0;
	struct udsp_opts o;
	char *end;

	memset(&o, 0, sizeof(o));
	o.confdir = UDSP_DEFAULT_CONFDIR;
	o.logs = DEFAULT_LOGS;
	o.defdir = 1;

	while ((n = getopt(argc, argv, "c:d:p:ntsh")) != -1) {
		switch (n) {
		case 'c':
			o.confdir = optarg;
			break;
		case 'd':
			o.logs = (int)strtol(optarg, &end, 0);
			if (!*optarg || *end) {
				fprintf(stderr, "-d: bad log level '%s'\n",
					optarg);
				return 1;
			}
			break;
		case 'p':
			if (o.ncli == UDSP_MAX_CLI_DIRS) {
				fprintf(stderr, "-p: too many dirs\n");
				return 1;
			}
			o.cli_dirs[o.ncli++] = optarg;
			break;
		case 'n':
			o.defdir = 0;
			break;
		case 't':
			check = 1;
			break;
		case 's':
			single = 1;
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 1;
		}
	}
	if (optind < argc) {
		usage(stderr, argv[0]);
		return 1;
	}

	/* -t counts lws's error lines: they must be emitted */
	udsp_log_init(o.logs, check);
	lwsl_notice("lws-uds-proxyd: config dir %s\n", o.confdir);

	if (check)
		return udsp_serve_check(&o);
	if (single)
		return udsp_serve_run(&o, -1, -1);

	return udsp_master_run(&o);
}
