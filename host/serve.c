/* SPDX-License-Identifier: MIT
 *
 * One serving process: config, protocol plugins (Debian's lws has the plugin
 * API but not automatic plugin dirs), every start-up check (also `-t`), the
 * lws context and vhosts, and the drain after the master asks this process
 * to make way for a reloaded one.  With count-processes > 1 it hands its
 * bound context to workers.c, and each worker runs the service loop here.
 */
#include <sys/stat.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <libwebsockets.h>

#include "daemon.h"
#include "origin.h"

#if !defined(UDSP_DEFAULT_PLUGIN_DIR)
#define UDSP_DEFAULT_PLUGIN_DIR "/usr/local/lib/lws-uds-proxy/plugins"
#endif

#define MAX_DIRS	(UDSP_HC_MAX_PLUGIN_DIRS + UDSP_MAX_CLI_DIRS + 1)

struct srv {
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

static struct lws_context *context;
static volatile sig_atomic_t interrupted, deprecate_req;

/*
 * The largest frame payload every h2 peer takes (RFC 9113 4.2: the
 * initial SETTINGS_MAX_FRAME_SIZE).  lws 4.1.6 never splits a DATA frame
 * nor reads the peer's setting: each lws_write on an h2 stream is one
 * frame, so every writer must stay within this.
 */
#define UDSP_H2_FRAME_MAX 16384

/*
 * protocols[0] of every vhost: plain HTTP (mounts, files, redirects) for
 * connections that no plugin protocol claims, as with lwsws.  lws also
 * tells it of every accepted connection: the accept gate (limits.c)
 * counts them there.  It is also the protocol of every h2 stream that
 * serves a file:// mount, and lws sizes each file piece (one DATA frame
 * on h2) as pt_serv_buf_size capped by tx_packet_size: the cap keeps a
 * file's frames within UDSP_H2_FRAME_MAX while pt_serv_buf_size stays
 * large for reads.  It costs no send(): the h2 network connection (bound
 * here too) sends up to tx_packet_size + LWS_PRE + 4 per call, a whole
 * 16 KiB frame with its 9-byte header.
 */
static const struct lws_protocols proto_http = {
	"http-only", udsp_gate_callback, 0, 0, 0, NULL, UDSP_H2_FRAME_MAX
};

static void
on_signal(int sig)
{
	if (sig == SIGUSR1)
		deprecate_req = 1;
	else
		interrupted = 1;
	/* only writes to lws's event pipe: safe in a handler */
	if (context)
		lws_cancel_service(context);
}

static int
add_dir(struct srv *s, const char *d, int quiet)
{
	struct stat st;
	int n;

	for (n = 0; n < s->ndirs; n++)
		if (!strcmp(s->dirs[n], d))
			return 0;
	/* lws_plugins_init logs a scandir error per missing dir */
	if (stat(d, &st) || !S_ISDIR(st.st_mode)) {
		if (!quiet)
			lwsl_warn("plugin dir '%s': %s\n", d,
				  errno ? strerror(errno) : "not a directory");
		return 0;
	}
	if (s->ndirs == MAX_DIRS) {
		lwsl_err("too many plugin dirs\n");
		return -1;
	}
	s->dirs[s->ndirs++] = d;
	s->dirs[s->ndirs] = NULL;

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
	if (!pp) {
		lwsl_err("out of memory\n");
		return NULL;
	}

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

/*
 * The vhost's protocols: everyone's, plus one of each name its proxied
 * mounts list in ws-subprotocols, on the plugin's callback (lws binds a
 * ws upgrade that offers subprotocols to the vhost protocol of that name,
 * and names it in the 101).  One block, owned by v: pointers, then the
 * protocol structs.
 */
static const struct lws_protocols **
vhost_protocols(struct udsp_hc_vhost *v, const struct lws_protocols **pp)
{
	const struct lws_protocols *proxy = NULL, **out;
	struct lws_protocols *al;
	int n, k, count = 0, na = 0;

	if (!v->n_ws_subprotocols)
		return pp;
	for (n = 0; pp[n]; n++)
		if (!strcmp(pp[n]->name, UDSP_PROTOCOL_NAME))
			proxy = pp[n];
	count = n;
	if (!proxy)
		return pp;	/* prepare() has reported it missing */
	v->ws_pp = calloc(1, sizeof(*out) * (size_t)(count +
			  v->n_ws_subprotocols + 1) + sizeof(*al) *
			  (size_t)v->n_ws_subprotocols);
	if (!v->ws_pp)
		return NULL;
	out = v->ws_pp;
	al = (struct lws_protocols *)(out + count + v->n_ws_subprotocols + 1);
	memcpy(out, pp, sizeof(*out) * (size_t)count);
	for (k = 0; k < v->n_ws_subprotocols; k++) {
		for (n = 0; n < count; n++)
			if (!strcmp(out[n]->name, v->ws_subprotocols[k]))
				break;
		if (n < count) {
			lwsl_warn("%s: vhost '%s': subprotocol '%s' is the "
				  "name of a protocol; not proxied\n", v->file,
				  v->info.vhost_name, v->ws_subprotocols[k]);
			continue;
		}
		al[na] = *proxy;
		al[na].name = v->ws_subprotocols[k];
		out[count++] = &al[na++];
	}

	return out;
}

static int
have_protocol(const struct lws_protocols **pp, const char *name)
{
	for (; *pp; pp++)
		if (!strcmp((*pp)->name, name))
			return 1;

	return 0;
}

static int
pw_none(char *buf, int size, int rwflag, void *u)
{
	/* never prompt on a tty for a key passphrase */
	return 0;
}

static void
tls_problem(const struct udsp_hc_vhost *v, const char *key, const char *file,
	    const char *what)
{
	char e[256] = "";
	unsigned long err = ERR_get_error();

	if (err)
		ERR_error_string_n(err, e, sizeof(e));
	ERR_clear_error();
	lwsl_err("%s: vhost '%s': %s '%s': %s%s%s\n", v->file,
		 v->info.vhost_name, key, file, what, *e ? ": " : "", e);
}

/*
 * Load the vhost's certificate, key and CA the way lws will, so that a bad
 * file fails `-t` and a reload before any listener is touched.
 */
static int
check_tls(const struct udsp_hc_vhost *v)
{
	const struct lws_context_creation_info *i = &v->info;
	SSL_CTX *ctx;
	int bad = 0;

	if (!i->ssl_cert_filepath || !i->ssl_private_key_filepath ||
	    (i->options & LWS_SERVER_OPTION_IGNORE_MISSING_CERT) ||
	    /* the config reader has already reported these */
	    access(i->ssl_cert_filepath, R_OK) ||
	    access(i->ssl_private_key_filepath, R_OK))
		return 0;

	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		lwsl_err("OpenSSL: cannot create a TLS context\n");
		return 1;
	}
	SSL_CTX_set_default_passwd_cb(ctx, pw_none);

	if (SSL_CTX_use_certificate_chain_file(ctx,
					i->ssl_cert_filepath) != 1) {
		tls_problem(v, "host-ssl-cert", i->ssl_cert_filepath,
			    "not a usable PEM certificate");
		bad = 1;
	} else if (SSL_CTX_use_PrivateKey_file(ctx,
			i->ssl_private_key_filepath, SSL_FILETYPE_PEM) != 1) {
		tls_problem(v, "host-ssl-key", i->ssl_private_key_filepath,
			    "not a usable PEM private key (or encrypted)");
		bad = 1;
	} else if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_problem(v, "host-ssl-key", i->ssl_private_key_filepath,
			    "does not match host-ssl-cert");
		bad = 1;
	}
	if (i->ssl_ca_filepath &&
	    SSL_CTX_load_verify_locations(ctx, i->ssl_ca_filepath,
					  NULL) != 1) {
		tls_problem(v, "host-ssl-ca", i->ssl_ca_filepath,
			    "cannot load CA certificates");
		bad = 1;
	}
	SSL_CTX_free(ctx);

	return bad;
}

/*
 * Everything that can be checked without listening: the config files, the
 * plugins, the protocols each vhost needs, TLS files.  Every problem is
 * logged (one lwsl_err line each); returns how many there were.
 */
static int
prepare(struct srv *s, const struct udsp_opts *o)
{
	const struct udsp_hc_vhost *v;
	const struct udsp_hc_need *nd;
	int n, problems = 0, e0;

	s->st_fd = -1;
	s->dirs[0] = NULL;

	/* a failed config may still hold vhosts worth checking further */
	if (udsp_hconf_load(&s->hc, o->confdir))
		problems++;
	if (s->hc.oom)
		return problems;

	/* default dir (quietly: absent in build trees), config, command line */
	if (o->defdir && add_dir(s, UDSP_DEFAULT_PLUGIN_DIR, 1))
		return problems + 1;
	for (n = 0; n < s->hc.count_plugin_dirs; n++)
		if (add_dir(s, s->hc.plugin_dirs[n], 0))
			return problems + 1;
	for (n = 0; n < o->ncli; n++)
		if (add_dir(s, o->cli_dirs[n], 0))
			return problems + 1;

	/* lws logs a plugin that fails to load, but does not return it */
	e0 = udsp_log_errors;
	if (lws_plugins_init(&s->plugins, s->dirs, "lws_protocol_plugin",
			     NULL, NULL, NULL)) {
		lwsl_err("plugin loading failed\n");
		problems++;
	}
	problems += udsp_log_errors - e0;

	s->pp = collect_protocols(s->plugins);
	if (!s->pp)
		return problems + 1;

	for (v = s->hc.vhosts; v; v = v->next) {
		for (nd = v->needs; nd; nd = nd->next)
			if (!have_protocol(s->pp, nd->name)) {
				lwsl_err("%s: vhost '%s': %s: protocol '%s' "
					 "is not available (plugin missing "
					 "from the plugin dirs?)\n", v->file,
					 v->info.vhost_name, nd->why,
					 nd->name);
				problems++;
			}
		problems += check_tls(v);
	}

	return problems;
}

static void
unprepare(struct srv *s)
{
	struct udsp_hc_vhost *v;

	for (v = s->hc.vhosts; v; v = v->next) {
		free(v->ws_pp);
		v->ws_pp = NULL;
	}
	free(s->pp);
	s->pp = NULL;
	/* after the context: its vhosts used the plugins' protocols */
	lws_plugins_destroy(&s->plugins, NULL, NULL);
	udsp_hconf_destroy(&s->hc);
}

int
udsp_serve_check(const struct udsp_opts *o)
{
	struct srv s;
	int problems;

	memset(&s, 0, sizeof(s));
	problems = prepare(&s, o);
	unprepare(&s);

	/* the verdict, whatever the log level */
	if (problems) {
		fprintf(stderr, "lws-uds-proxyd: %s: configuration has "
			"problems (listed above)\n", o->confdir);
		return 1;
	}
	fprintf(stderr, "lws-uds-proxyd: %s: configuration ok\n",
		o->confdir);

	return 0;
}

/*
 * lws builds a TLS client context for every vhost (DO_SSL_GLOBAL_INIT),
 * loading the system CA store: ~60 ms that would sit between the old
 * process closing its listeners and this one binding them.  Build the same
 * thing once, before that, and hand it to the vhosts that have no client
 * TLS settings of their own.  (The plugin runs its own TLS to backends.)
 * docs/lws-notes.md N32
 */
static SSL_CTX *
shared_client_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		return NULL;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		ERR_clear_error();	/* as lws: verification then fails */

	return ctx;
}

static int
own_client_tls(const struct udsp_hc_vhost *v)
{
	const struct lws_context_creation_info *i = &v->info;

	return v->enable_client_ssl || i->client_ssl_cert_filepath ||
	       i->client_ssl_private_key_filepath ||
	       i->client_ssl_ca_filepath || i->client_ssl_cipher_list ||
	       i->client_tls_1_3_plus_cipher_list;
}

static int
create_vhosts(struct srv *s, uint64_t ctx_opts)
{
	struct lws_context_creation_info ci;
	struct udsp_hc_vhost *v;
	struct lws_vhost *vh;
	struct stat st;

	for (v = s->hc.vhosts; v; v = v->next) {
		v->info.pprotocols = vhost_protocols(v, s->pp);
		if (!v->info.pprotocols) {
			lwsl_err("out of memory\n");
			return -1;
		}
		v->info.options |= ctx_opts;
		if (s->hc.server_string)
			v->info.server_string = s->hc.server_string;
		v->info.timeout_secs = (unsigned int)s->hc.timeout_secs;
		if (s->client_ctx && !own_client_tls(v))
			v->info.provided_client_ssl_ctx = s->client_ctx;

		vh = lws_create_vhost(context, &v->info);
		if (!vh) {
			lwsl_err("%s: vhost '%s': lws could not create it "
				 "(port in use? see lws's message above)\n",
				 v->file, v->info.vhost_name);
			return -1;
		}
		v->vh = vh;

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

		if (v->info.options & LWS_SERVER_OPTION_UNIX_SOCK) {
			/* see keep_foreign_sockets() */
			if (v->info.iface[0] != '@' &&
			    !stat(v->info.iface, &st)) {
				v->sock_dev = st.st_dev;
				v->sock_ino = st.st_ino;
				v->sock_ctime = st.st_ctim;
			}
			lwsl_notice("vhost '%s': %sunix socket %s\n",
				    v->info.vhost_name,
				    v->info.ssl_cert_filepath ? "TLS, " : "",
				    v->info.iface);
		} else
			lwsl_notice("vhost '%s': %s%s:%d\n",
				    v->info.vhost_name,
				    v->info.ssl_cert_filepath ? "TLS, " : "",
				    v->info.iface ? v->info.iface : "*",
				    v->info.port);
	}

	return 0;
}

/*
 * lws unlinks a unix-socket vhost's path when the vhost is destroyed
 * (docs/lws-notes.md N33).  After a reload the path belongs to
 * the new process's listener, so a draining old process must not remove
 * it.  lws keeps our info.iface pointer (vh->iface = info->iface), which
 * points into our config arena: emptying it makes that unlink a no-op.
 *
 * The file is still ours if it is the same inode with the same ctime: the
 * new process unlinks our file before it binds, and ext4 often hands the
 * freed inode number straight to its new file (test-ops-workers caught the
 * old process removing the new listener's path that way).
 */
static void
keep_foreign_sockets(struct srv *s)
{
	struct udsp_hc_vhost *v;
	struct stat st;

	for (v = s->hc.vhosts; v; v = v->next) {
		if (!(v->info.options & LWS_SERVER_OPTION_UNIX_SOCK) ||
		    !v->info.iface || v->info.iface[0] == '@' ||
		    !v->sock_ino)
			continue;
		/*
		 * A worker never removes the path: its manager and the other
		 * workers may still listen on it.  The manager ends last.
		 */
		if (!s->worker && !stat(v->info.iface, &st) &&
		    st.st_dev == v->sock_dev && st.st_ino == v->sock_ino &&
		    st.st_ctim.tv_sec == v->sock_ctime.tv_sec &&
		    st.st_ctim.tv_nsec == v->sock_ctime.tv_nsec)
			continue;	/* still ours: lws may remove it */
		((char *)v->info.iface)[0] = '\0';
	}
}

/*
 * The old process ends once its last client and backend connection is
 * gone (or at reload-drain-secs): lws has no public count of them.
 */
static void
drain_check(lws_sorted_usec_list_t *sul)
{
	struct srv *s = lws_container_of(sul, struct srv, sul_drain);
	int n = udsp_proc_count_sockets();

	if (!n)
		lwsl_notice("reload: old process drained, exiting\n");
	else if (s->drain_deadline && lws_now_usecs() > s->drain_deadline)
		lwsl_warn("reload: reload-drain-secs passed with %d "
			  "connection(s) still open; closing them\n", n);
	else {
		lws_sul_schedule(context, 0, &s->sul_drain, drain_check,
				 LWS_US_PER_SEC / 4);
		return;
	}

	/*
	 * We are inside lws_service(), which polls next with no timeout when
	 * no timer is left: without a wake-up the loop would only see the
	 * flag at some unrelated event (27 s later in a test).
	 * docs/lws-notes.md N38
	 */
	interrupted = 1;
	lws_cancel_service(context);
}

/*
 * Idle pooled backend connections would hold a drained process for
 * pool-idle-timeout-ms: have the plugin close them and pool no more.
 */
static void
pools_drain(struct srv *s)
{
	struct udsp_hc_vhost *v;

	/* by pointer: vhosts may share a name (one per listener) */
	for (v = s->hc.vhosts; v; v = v->next)
		if (v->vh)
			lws_callback_vhost_protocols_vhost(v->vh,
					UDSP_CALLBACK_DRAIN, NULL, 0);
}

static void
deprecate(struct srv *s)
{
	int n;

	s->deprecated = 1;
	udsp_gate_stop();
	n = udsp_proc_close_listeners(&s->quiet);
	pools_drain(s);
	udsp_proc_tell(s->st_fd, UDSP_ST_DEPRECATED);
	lwsl_notice("reload: %d listener(s) closed, finishing %d open "
		    "connection(s)\n", n, udsp_proc_count_sockets());
	if (s->hc.reload_drain_secs)
		s->drain_deadline = lws_now_usecs() +
			(lws_usec_t)s->hc.reload_drain_secs * LWS_US_PER_SEC;
	lws_sul_schedule(context, 0, &s->sul_drain, drain_check, 1);
}

/* a repeated log line's window ended: say what it held back */
static void
log_due(lws_sorted_usec_list_t *sul)
{
	udsp_log_flush(0);
}

static void
log_timer(struct srv *s)
{
	int ms = udsp_log_flush(0);

	if (ms >= 0 && lws_dll2_is_detached(&s->sul_log.list))
		lws_sul_schedule(context, 0, &s->sul_log, log_due,
				 (lws_usec_t)(ms + 1) * LWS_US_PER_MS);
}

static int
wait_go(int go_fd)
{
	ssize_t r;
	char c = 0;

	do
		r = read(go_fd, &c, 1);
	while (r < 0 && errno == EINTR && !interrupted);
	close(go_fd);

	return r == 1 && c == UDSP_GO ? 0 : -1;
}

/*
 * count-processes > 1, once the vhosts are bound.  Returns UDSP_WORKER in
 * a worker, which then serves as a lone serving process would but reports
 * to its manager; in the manager, its exit code once every worker ended.
 */
static int
start_workers(struct srv *s, int st_fd)
{
	struct udsp_workers w;
	int n, to_manager = -1;

	memset(&w, 0, sizeof(w));
	w.cx = context;
	w.count = s->hc.count_processes;
	w.st_fd = st_fd;
	w.drain_secs = s->hc.reload_drain_secs;
	w.quiet = &s->quiet;
	w.interrupted = &interrupted;

	n = udsp_workers_run(&w, &to_manager);
	if (n == UDSP_WORKER) {
		s->worker = 1;
		s->st_fd = to_manager;
	}

	return n;
}

/*
 * st_fd / go_fd: pipes to and from the master, or -1 when running alone
 * (-s).  Returns the process exit code.
 */
int
udsp_serve_run(const struct udsp_opts *o, int st_fd, int go_fd)
{
	struct lws_context_creation_info info;
	struct sigaction sa;
	uint64_t opts;
	struct srv s;
	int n, ret = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: wait_go sees it */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL) ||
	    sigaction(SIGUSR1, &sa, NULL)) {
		lwsl_err("sigaction: %s\n", strerror(errno));
		return 1;
	}
	/* the master reloads; `killall -HUP` must not kill us */
	signal(SIGHUP, SIG_IGN);

	memset(&s, 0, sizeof(s));
	if (prepare(&s, o)) {
		lwsl_err("%s: not starting\n", o->confdir);
		goto bail;
	}
	s.st_fd = st_fd;

	/*
	 * TLS is always initialised: TLS vhosts need it, and the plugin runs
	 * OpenSSL itself toward https backends.  Vhosts come from the config
	 * only.  These bits are repeated in each vhost, as lwsws does.
	 */
	opts = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
	       LWS_SERVER_OPTION_EXPLICIT_VHOSTS;

	/* before lws sizes its tables by it (and applies rlimit-nofile) */
	udsp_nofile_raise(s.hc.max_connections);

	memset(&info, 0, sizeof(info));
	info.options = opts | LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.uid = s.hc.uid ? s.hc.uid : -1;
	info.gid = s.hc.gid ? s.hc.gid : -1;
	info.username = s.hc.username;
	info.groupname = s.hc.groupname;
	info.server_string = s.hc.server_string;
	info.timeout_secs = (unsigned int)s.hc.timeout_secs;
	info.rlimit_nofile = s.hc.rlimit_nofile;
	info.alpn = s.hc.alpn;
	info.reject_service_keywords = s.hc.reject_service_keywords;
	info.max_http_header_data = s.hc.max_http_header_data;
	/*
	 * What lws reads per recv() (a backend's response arrives through
	 * it) and sends per call on connections no plugin sizes (the h2
	 * network connection: a 16 KiB DATA frame in one send()).
	 * docs/lws-notes.md N6
	 */
	info.pt_serv_buf_size = 32768;
	info.count_threads = 1;

	/* no listener and no service yet: protocol init waits for both */
	context = lws_create_context(&info);
	if (!context) {
		lwsl_err("lws context creation failed\n");
		goto bail;
	}

	s.client_ctx = shared_client_ctx();
	if (udsp_tlsbuf_init(context))
		lwsl_warn("TLS write buffering unavailable: one send() per "
			  "TLS record\n");

	if (go_fd >= 0) {
		udsp_proc_tell(st_fd, UDSP_ST_PREPARED);
		if (wait_go(go_fd)) {
			ret = interrupted ? 0 : 1;
			goto bail_ctx;
		}
	}

	if (create_vhosts(&s, opts)) {
		lwsl_err("%s: not starting\n", o->confdir);
		goto bail_ctx;
	}
	if (s.hc.count_processes > 1) {
		n = start_workers(&s, st_fd);
		if (n != UDSP_WORKER) {
			ret = n;
			keep_foreign_sockets(&s);
			goto bail_ctx;
		}
	} else {
		udsp_proc_tell(st_fd, UDSP_ST_READY);
		lwsl_notice("lws-uds-proxyd: serving (%d vhost%s)\n",
			    s.hc.count_vhosts,
			    s.hc.count_vhosts == 1 ? "" : "s");
	}

	if (udsp_gate_start(context, s.hc.max_connections))
		lwsl_warn("accept gate not running: accepting is not paused "
			  "before descriptors run out\n");

	n = 0;
	while (n >= 0 && !interrupted) {
		if (deprecate_req && !s.deprecated)
			deprecate(&s);
		n = lws_service(context, 0);
		udsp_tlsbuf_flush();
		log_timer(&s);
	}
	udsp_gate_stop();

	if (!s.deprecated)
		lwsl_notice("lws-uds-proxyd: %s, exiting\n",
			    interrupted ? "signal" : "service loop ended");
	ret = interrupted ? 0 : 1;
	keep_foreign_sockets(&s);

bail_ctx:
	lws_sul_cancel(&s.sul_drain);
	lws_sul_cancel(&s.sul_log);
	udsp_tlsbuf_stop();
	udsp_log_flush(1);
	lws_context_destroy(context);
	context = NULL;
	udsp_tlsbuf_destroy();
	while (s.quiet.n)
		close(s.quiet.fd[--s.quiet.n]);
	if (s.client_ctx)
		SSL_CTX_free(s.client_ctx);
bail:
	unprepare(&s);

	return ret;
}
