/* SPDX-License-Identifier: MIT
 *
 * lws-uds-proxyd: an lwsws-compatible server.  Owns the command line,
 * protocol plugin loading (Debian's lws has the plugin API but not automatic
 * plugin dirs), context and vhost creation from the config, the start-up
 * protocol checks, and signal-driven shutdown.
 */
#include <sys/stat.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "conf.h"

#if !defined(UDSP_DEFAULT_PLUGIN_DIR)
#define UDSP_DEFAULT_PLUGIN_DIR "/usr/local/lib/lws-uds-proxy/plugins"
#endif
#if !defined(UDSP_DEFAULT_CONFDIR)
#define UDSP_DEFAULT_CONFDIR "/etc/lwsws"
#endif

#define MAX_DIRS	(UDSP_HC_MAX_PLUGIN_DIRS + 8)

/* lwsws's default log set: errors, warnings, notices */
#define DEFAULT_LOGS	(LLL_ERR | LLL_WARN | LLL_NOTICE)

static struct lws_context *context;
static volatile sig_atomic_t interrupted;

/*
 * protocols[0] of every vhost: plain HTTP (mounts, files, redirects) for
 * connections that no plugin protocol claims, as with lwsws.
 */
static const struct lws_protocols proto_http = {
	"http-only", lws_callback_http_dummy, 0, 0, 0, NULL, 0
};

static void
usage(FILE *f, const char *argv0)
{
	fprintf(f,
		"Usage: %s [-c CONFDIR] [-d LOGLEVEL] [-p PLUGINDIR]... [-n] "
		"[-h]\n"
		"  -c CONFDIR   read CONFDIR/conf and CONFDIR/conf.d/* "
		"(default %s)\n"
		"  -d LOGLEVEL  lws log bitmask (default %d: err|warn|notice)"
		"\n"
		"  -p DIR       also load protocol plugins from DIR "
		"(repeatable)\n"
		"  -n           do not load plugins from the default dir %s\n"
		"  -h           this help\n",
		argv0, UDSP_DEFAULT_CONFDIR, DEFAULT_LOGS,
		UDSP_DEFAULT_PLUGIN_DIR);
}

static void
on_signal(int sig)
{
	interrupted = 1;
	/* only writes to lws's event pipe: safe in a handler */
	if (context)
		lws_cancel_service(context);
}

static int
add_dir(const char **dirs, int *count, const char *d, int quiet)
{
	struct stat st;
	int n;

	for (n = 0; n < *count; n++)
		if (!strcmp(dirs[n], d))
			return 0;
	/* lws_plugins_init logs a scandir error per missing dir */
	if (stat(d, &st) || !S_ISDIR(st.st_mode)) {
		if (!quiet)
			lwsl_warn("plugin dir '%s': %s\n", d,
				  errno ? strerror(errno) : "not a directory");
		return 0;
	}
	if (*count == MAX_DIRS) {
		lwsl_err("too many plugin dirs\n");
		return -1;
	}
	dirs[(*count)++] = d;
	dirs[*count] = NULL;

	return 0;
}

/*
 * protocols[] for every vhost: http first, then each plugin's protocols.
 * Returns a NULL-terminated malloc'd array, or NULL.
 */
static const struct lws_protocols **
collect_protocols(struct lws_plugin *plugins)
{
	const struct lws_protocols **pp;
	const lws_plugin_protocol_t *plpr;
	struct lws_plugin *p;
	int n, m, count = 1;

	for (p = plugins; p; p = p->list)
		count += ((const lws_plugin_protocol_t *)p->hdr)->
							count_protocols;

	pp = calloc((size_t)count + 1, sizeof(*pp));
	if (!pp)
		return NULL;

	count = 0;
	pp[count++] = &proto_http;
	for (p = plugins; p; p = p->list) {
		plpr = (const lws_plugin_protocol_t *)p->hdr;
		for (n = 0; n < plpr->count_protocols; n++) {
			for (m = 0; m < count; m++)
				if (!strcmp(pp[m]->name,
					    plpr->protocols[n].name))
					break;
			if (m < count) {
				lwsl_warn("plugin '%s': protocol '%s' already "
					  "loaded; ignoring this one\n",
					  plpr->hdr.name,
					  plpr->protocols[n].name);
				continue;
			}
			lwsl_notice("plugin '%s': protocol '%s'\n",
				    plpr->hdr.name, plpr->protocols[n].name);
			pp[count++] = &plpr->protocols[n];
		}
	}

	return pp;
}

static int
create_vhosts(struct udsp_hconf *hc, const struct lws_protocols **pp,
	      uint64_t ctx_opts)
{
	struct lws_context_creation_info ci;
	struct udsp_hc_vhost *v;
	struct udsp_hc_need *nd;
	struct lws_vhost *vh;
	int bad = 0;

	for (v = hc->vhosts; v; v = v->next) {
		v->info.pprotocols = pp;
		v->info.options |= ctx_opts;
		if (hc->server_string)
			v->info.server_string = hc->server_string;
		v->info.timeout_secs = (unsigned int)hc->timeout_secs;

		vh = lws_create_vhost(context, &v->info);
		if (!vh) {
			lwsl_err("%s: vhost '%s': lws could not create it "
				 "(port in use? bad TLS files?)\n", v->file,
				 v->info.vhost_name);
			return -1;
		}

		for (nd = v->needs; nd; nd = nd->next)
			if (!lws_vhost_name_to_protocol(vh, nd->name)) {
				lwsl_err("%s: vhost '%s': %s: protocol '%s' "
					 "is not available (plugin missing "
					 "from the plugin dirs?)\n", v->file,
					 v->info.vhost_name, nd->why,
					 nd->name);
				bad = 1;
			}

		if (v->enable_client_ssl) {
			/* as lwsws: only the client-side TLS fields */
			memset(&ci, 0, sizeof(ci));
			ci.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
			ci.client_ssl_cert_filepath =
					v->info.client_ssl_cert_filepath;
			ci.client_ssl_private_key_filepath =
					v->info.client_ssl_private_key_filepath;
			ci.client_ssl_ca_filepath =
					v->info.client_ssl_ca_filepath;
			ci.client_ssl_cipher_list =
					v->info.client_ssl_cipher_list;
			if (lws_init_vhost_client_ssl(&ci, vh)) {
				lwsl_err("%s: vhost '%s': client TLS init "
					 "failed\n", v->file,
					 v->info.vhost_name);
				return -1;
			}
		}

		if (v->info.options & LWS_SERVER_OPTION_UNIX_SOCK)
			lwsl_notice("vhost '%s': %sunix socket %s\n",
				    v->info.vhost_name,
				    v->info.ssl_cert_filepath ? "TLS, " : "",
				    v->info.iface);
		else
			lwsl_notice("vhost '%s': %s%s:%d\n",
				    v->info.vhost_name,
				    v->info.ssl_cert_filepath ? "TLS, " : "",
				    v->info.iface ? v->info.iface : "*",
				    v->info.port);
	}

	return bad ? -1 : 0;
}

int
main(int argc, char **argv)
{
	const char *confdir = UDSP_DEFAULT_CONFDIR, *cli_dirs[MAX_DIRS];
	const char *dirs[MAX_DIRS + 1] = { NULL };
	int n, ndirs = 0, ncli = 0, logs = DEFAULT_LOGS, defdir = 1, ret = 1;
	const struct lws_protocols **pp = NULL;
	struct lws_context_creation_info info;
	struct lws_plugin *plugins = NULL;
	struct sigaction sa;
	struct udsp_hconf hc;
	uint64_t opts;
	char *end;

	while ((n = getopt(argc, argv, "c:d:p:nh")) != -1) {
		switch (n) {
		case 'c':
			confdir = optarg;
			break;
		case 'd':
			logs = (int)strtol(optarg, &end, 0);
			if (!*optarg || *end) {
				fprintf(stderr, "-d: bad log level '%s'\n",
					optarg);
				return 1;
			}
			break;
		case 'p':
			if (ncli == MAX_DIRS) {
				fprintf(stderr, "-p: too many dirs\n");
				return 1;
			}
			cli_dirs[ncli++] = optarg;
			break;
		case 'n':
			defdir = 0;
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

	lws_set_log_level(logs, NULL);
	lwsl_notice("lws-uds-proxyd: config dir %s\n", confdir);

	if (udsp_hconf_load(&hc, confdir)) {
		lwsl_err("%s: not starting\n", confdir);
		goto bail_conf;
	}

	/* default dir (quietly: absent in build trees), config, command line */
	if (defdir && add_dir(dirs, &ndirs, UDSP_DEFAULT_PLUGIN_DIR, 1))
		goto bail_conf;
	for (n = 0; n < hc.count_plugin_dirs; n++)
		if (add_dir(dirs, &ndirs, hc.plugin_dirs[n], 0))
			goto bail_conf;
	for (n = 0; n < ncli; n++)
		if (add_dir(dirs, &ndirs, cli_dirs[n], 0))
			goto bail_conf;

	if (lws_plugins_init(&plugins, dirs, "lws_protocol_plugin", NULL,
			     NULL, NULL)) {
		lwsl_err("plugin loading failed\n");
		goto bail_conf;
	}
	pp = collect_protocols(plugins);
	if (!pp)
		goto bail_plugins;

	/*
	 * TLS is always initialised: TLS vhosts need it, and the plugin runs
	 * OpenSSL itself toward https backends.  Vhosts come from the config
	 * only.  These bits are repeated in each vhost, as lwsws does.
	 */
	opts = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
	       LWS_SERVER_OPTION_EXPLICIT_VHOSTS;

	memset(&info, 0, sizeof(info));
	info.options = opts | LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.uid = hc.uid ? hc.uid : -1;
	info.gid = hc.gid ? hc.gid : -1;
	info.username = hc.username;
	info.groupname = hc.groupname;
	info.server_string = hc.server_string;
	info.timeout_secs = (unsigned int)hc.timeout_secs;
	info.rlimit_nofile = hc.rlimit_nofile;
	info.alpn = hc.alpn;
	info.reject_service_keywords = hc.reject_service_keywords;
	info.max_http_header_data = hc.max_http_header_data;
	info.pt_serv_buf_size = 8192;
	info.count_threads = 1;

	context = lws_create_context(&info);
	if (!context) {
		lwsl_err("lws context creation failed\n");
		goto bail_pp;
	}

	if (create_vhosts(&hc, pp, opts)) {
		lwsl_err("%s: not starting\n", confdir);
		goto bail_ctx;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL)) {
		lwsl_err("sigaction: %s\n", strerror(errno));
		goto bail_ctx;
	}

	lwsl_notice("lws-uds-proxyd: serving (%d vhost%s)\n", hc.count_vhosts,
		    hc.count_vhosts == 1 ? "" : "s");

	n = 0;
	while (n >= 0 && !interrupted)
		n = lws_service(context, 0);

	lwsl_notice("lws-uds-proxyd: %s, exiting\n",
		    interrupted ? "signal" : "service loop ended");
	ret = interrupted ? 0 : 1;

bail_ctx:
	lws_context_destroy(context);
	context = NULL;
bail_pp:
	free(pp);
bail_plugins:
	/* after the context: its vhosts used the plugins' protocols */
	lws_plugins_destroy(&plugins, NULL, NULL);
bail_conf:
	udsp_hconf_destroy(&hc);

	return ret;
}
