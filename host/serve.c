/* SPDX-License-Identifier: MIT
 *
 * One serving process: the lws context, the service loop, and the drain
 * after the master asks this process to make way for a reloaded one.  What
 * comes before listening is prepare.c, the vhosts vhosts.c.  With
 * count-processes > 1 it hands its bound context to workers.c, and each
 * worker runs the service loop here.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include <libwebsockets.h>

#include "serve.h"
#include "origin.h"	/* UDSP_CALLBACK_DRAIN */

static struct lws_context *context;
static volatile sig_atomic_t interrupted, deprecate_req;

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

/*
 * The old process ends once its last client and backend connection is
 * gone (or at reload-drain-secs): lws has no public count of them.
 */
static void
drain_check(lws_sorted_usec_list_t *sul)
{
	struct udsp_srv *s = lws_container_of(sul, struct udsp_srv, sul_drain);
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
pools_drain(struct udsp_srv *s)
{
	struct udsp_hc_vhost *v;

	/* by pointer: vhosts may share a name (one per listener) */
	for (v = s->hc.vhosts; v; v = v->next)
		if (v->vh)
			lws_callback_vhost_protocols_vhost(v->vh,
					UDSP_CALLBACK_DRAIN, NULL, 0);
}

static void
deprecate(struct udsp_srv *s)
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
log_timer(struct udsp_srv *s)
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
start_workers(struct udsp_srv *s, int st_fd)
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

/* SIGINT, SIGTERM: end; SIGUSR1: drain (the master reloads) */
static int
signals_take(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: wait_go sees it */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL) ||
	    sigaction(SIGUSR1, &sa, NULL)) {
		lwsl_err("sigaction: %s\n", strerror(errno));
		return -1;
	}
	/* the master reloads; `killall -HUP` must not kill us */
	signal(SIGHUP, SIG_IGN);

	return 0;
}

/*
 * The context, with no listener and no service yet (protocol init waits
 * for both): the config's "global" part and our own fixed settings.
 */
static struct lws_context *
context_create(const struct udsp_srv *s, uint64_t opts)
{
	struct lws_context_creation_info info;

	/* before lws sizes its tables by it (and applies rlimit-nofile) */
	udsp_nofile_raise(s->hc.max_connections);
	/* before lws allocates anything: its header tables' data */
	udsp_ahpool_init(s->hc.max_http_header_data);

	memset(&info, 0, sizeof(info));
	info.options = opts | LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.uid = s->hc.uid ? s->hc.uid : -1;
	info.gid = s->hc.gid ? s->hc.gid : -1;
	info.username = s->hc.username;
	info.groupname = s->hc.groupname;
	info.server_string = s->hc.server_string;
	info.timeout_secs = (unsigned int)s->hc.timeout_secs;
	info.rlimit_nofile = s->hc.rlimit_nofile;
	info.alpn = s->hc.alpn;
	info.reject_service_keywords = s->hc.reject_service_keywords;
	info.max_http_header_data = s->hc.max_http_header_data;
	/*
	 * What lws reads per recv() (a backend's response arrives through
	 * it) and sends per call on connections no plugin sizes (the h2
	 * network connection: a 16 KiB DATA frame in one send()).
	 * docs/lws-notes.md N6
	 */
	info.pt_serv_buf_size = 32768;
	info.count_threads = 1;

	return lws_create_context(&info);
}

/* until a signal, the drain's end or an lws failure; 0 or 1 to exit with */
static int
service(struct udsp_srv *s)
{
	int n = 0;

	if (udsp_gate_start(context, s->hc.max_connections))
		lwsl_warn("accept gate not running: accepting is not paused "
			  "before descriptors run out\n");

	while (n >= 0 && !interrupted) {
		if (deprecate_req && !s->deprecated)
			deprecate(s);
		n = lws_service(context, 0);
		udsp_tlsbuf_flush();
		log_timer(s);
	}
	udsp_gate_stop();

	if (!s->deprecated)
		lwsl_notice("lws-uds-proxyd: %s, exiting\n",
			    interrupted ? "signal" : "service loop ended");

	return interrupted ? 0 : 1;
}

/*
 * st_fd / go_fd: pipes to and from the master, or -1 when running alone
 * (-s).  Returns the process exit code.
 */
int
udsp_serve_run(const struct udsp_opts *o, int st_fd, int go_fd)
{
	uint64_t opts;
	struct udsp_srv s;
	int n, ret = 1;

	if (signals_take())
		return 1;

	memset(&s, 0, sizeof(s));
	if (udsp_srv_prepare(&s, o)) {
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

	context = context_create(&s, opts);
	if (!context) {
		lwsl_err("lws context creation failed\n");
		goto bail;
	}

	s.client_ctx = udsp_srv_client_ctx();
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

	if (udsp_srv_create_vhosts(&s, context, opts)) {
		lwsl_err("%s: not starting\n", o->confdir);
		goto bail_ctx;
	}
	if (s.hc.count_processes > 1) {
		n = start_workers(&s, st_fd);
		if (n != UDSP_WORKER) {
			ret = n;
			udsp_srv_keep_foreign_sockets(&s);
			goto bail_ctx;
		}
	} else {
		udsp_proc_tell(st_fd, UDSP_ST_READY);
		lwsl_notice("lws-uds-proxyd: serving (%d vhost%s)\n",
			    s.hc.count_vhosts,
			    s.hc.count_vhosts == 1 ? "" : "s");
	}

	ret = service(&s);
	udsp_srv_keep_foreign_sockets(&s);

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
	udsp_srv_unprepare(&s);

	return ret;
}
