/* SPDX-License-Identifier: MIT
 *
 * File descriptors: the limit a serving process runs with, and the gate
 * that stops accepting client connections before that limit is reached,
 * and after accept() failed anyway, without spinning.
 *
 * What lws 4.1.6 does by itself is not enough.  It counts the sockets in
 * its poll table and stops polling the listeners only when that count
 * reaches fd_limit_per_thread - 1 (core-net/pollfd.c), which by default
 * is the soft RLIMIT_NOFILE: the descriptors it does not count (stdio,
 * pipes, access logs, spill files, this gate's own) make accept() fail
 * with EMFILE first.  Then it logs "accept: errno 24" and returns with the
 * listener still readable, so the next poll() returns at once: one core
 * and the disk go to that loop.  Lowering fd_limit_per_thread is no cure
 * either: any value below the rlimit switches lws to its "slow fds" table,
 * a linear search of every slot on each event (plat/unix/unix-fds.c), and
 * lws turns POLLIN back on for every listener whenever any socket closes
 * (lws_accept_modulation), so it cannot hold a pause of ours.
 *
 * So the gate works below lws.  A paused listener's descriptor number is
 * pointed (dup3) at the read end of a pipe that never becomes readable,
 * as a reload does (proc.c); a copy of the listening socket kept since
 * start-up is put back to resume.  The socket itself stays open, so the
 * kernel queues new connections in its backlog meanwhile, as nginx's
 * paused listeners do.  This relies on lws polling with poll(), which
 * re-reads the descriptor each time (the only event loop this daemon uses).
 *
 * It pauses for three reasons:
 * - max-connections client connections are open: until one closes.  They
 *   are counted from protocols[0]'s callbacks, which lws sends for every
 *   connection on every vhost: FILTER_NETWORK_CONNECTION right after
 *   accept(), then WSI_CREATE for the new wsi, and WSI_DESTROY when any
 *   wsi goes (accepted ones are remembered by pointer).
 * - the descriptor just accepted is numbered within `margin` of the limit:
 *   the kernel hands out the lowest free number, so every number below it
 *   is in use; the margin is left for backend connections and spill files
 *   of the clients already in.  Back off for UDSP_BACKOFF_MS.
 * - accept() failed (EMFILE, ENFILE, ENOBUFS, ENOMEM), as lws's log line
 *   reports it (log.c): back off likewise, as nginx does.
 * A shortage is logged when it starts and when accepting works again,
 * not once per attempt.
 */
#define _GNU_SOURCE	/* dup3, pipe2 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "daemon.h"
#include "origin.h"

#define UDSP_BACKOFF_MS		500
/*
 * lws 4.1.6 sizes two tables by the rlimit and gives up above 10M
 * (context.c: "unreasonable ulimit -n"); 2^20 is Linux's default nr_open.
 */
#define UDSP_NOFILE_MAX		(1 << 20)
/* descriptors besides clients' and backends': listeners, logs, lws's own,
 * spill files, the pool's idle connections */
#define UDSP_NOFILE_SLACK	256

struct listener {
	int		fd;	/* the number lws polls */
	int		saved;	/* owned: the listening socket, meanwhile */
	unsigned int	paused:1;
};

struct gate {
	struct lws_context	*cx;
	struct listener		l[64];
	int			nl;
	int			quiet[2];	/* owned: never-readable pipe */
	int			nofile;		/* soft RLIMIT_NOFILE */
	int			margin;
	int			max;		/* max-connections */
	int			clients;	/* open accepted connections */
	/* accepted wsis (not dereferenced): open addressing, pow2 size */
	struct lws		**set;		/* owned */
	unsigned int		set_size;
	int			pending;	/* FILTER seen, WSI_CREATE due */
	int			full;		/* clients == max */
	int			backoff;	/* short: sul_backoff armed */
	lws_usec_t		short_since;	/* 0: not short */
	lws_usec_t		short_last;	/* latest sign of it */
	unsigned long		short_tries;
	lws_sorted_usec_list_t	sul_backoff;
	unsigned int		on:1;
};

static struct gate g = { .quiet = { -1, -1 } };
static rlim_t nofile_was, nofile_hard;

/*
 * Before the lws context: soft RLIMIT_NOFILE up to the hard limit, as
 * nginx's worker_rlimit_nofile and HAProxy do (capped, see
 * UDSP_NOFILE_MAX).  lws then applies the config's rlimit-nofile, if any.
 *
 * With max-connections set, only as far as that needs (two descriptors
 * per client, UDSP_NOFILE_SLACK for the rest, and the gate's margin of
 * limit/64): Debian's lws 4.1.6 is a _DEBUG build, and each wsi it frees
 * walks its whole descriptor table, sized by this limit
 * (sanity_assert_no_wsi_traces(), 6 instructions a slot: about 790k per
 * closed connection at 65536; docs/scaling.md).
 */
void
udsp_nofile_raise(int max_conns)
{
	struct rlimit rl;
	rlim_t want;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	nofile_was = rl.rlim_cur;
	nofile_hard = rl.rlim_max;
	rl.rlim_cur = rl.rlim_max;
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > UDSP_NOFILE_MAX)
		rl.rlim_cur = UDSP_NOFILE_MAX;
	if (max_conns > 0) {
		want = ((rlim_t)max_conns * 2 + UDSP_NOFILE_SLACK) * 64 / 63 + 1;
		if (want < nofile_was)
			want = nofile_was;
		if (want < rl.rlim_cur)
			rl.rlim_cur = want;
	}
	if (rl.rlim_cur != nofile_was && setrlimit(RLIMIT_NOFILE, &rl))
		lwsl_warn("cannot raise the file descriptor limit from %llu "
			  "to %llu: %s\n", (unsigned long long)nofile_was,
			  (unsigned long long)rl.rlim_cur, strerror(errno));
}

/* ------------------------------------------------------ accepted wsis */

static unsigned int
slot_of(const struct lws *w, unsigned int size)
{
	uintptr_t h = (uintptr_t)w;

	h ^= h >> 17;
	h *= (uintptr_t)0x9e3779b97f4a7c15ull;

	return (unsigned int)(h >> 20) & (size - 1);
}

static int
set_add(struct lws *w)
{
	struct lws **old = g.set;
	unsigned int n, i, osize = g.set_size;

	if ((unsigned int)(g.clients + 1) * 2 > g.set_size) {
		g.set_size = osize ? osize * 2 : 64;
		g.set = calloc(g.set_size, sizeof(*g.set));
		if (!g.set) {
			g.set = old;
			g.set_size = osize;
			return -1;
		}
		for (n = 0; n < osize; n++)
			if (old[n]) {
				i = slot_of(old[n], g.set_size);
				while (g.set[i])
					i = (i + 1) & (g.set_size - 1);
				g.set[i] = old[n];
			}
		free(old);
	}
	i = slot_of(w, g.set_size);
	while (g.set[i])
		i = (i + 1) & (g.set_size - 1);
	g.set[i] = w;

	return 0;
}

static int
set_del(struct lws *w)
{
	unsigned int i, j, k, mask = g.set_size - 1;

	if (!g.set_size)
		return 0;
	i = slot_of(w, g.set_size);
	while (g.set[i] != w) {
		if (!g.set[i])
			return 0;
		i = (i + 1) & mask;
	}
	/* linear probing: move later members of the run up into the gap */
	g.set[i] = NULL;
	for (j = (i + 1) & mask; g.set[j]; j = (j + 1) & mask) {
		k = slot_of(g.set[j], g.set_size);
		if ((j > i && (k <= i || k > j)) || (j < i && k <= i && k > j)) {
			g.set[i] = g.set[j];
			g.set[j] = NULL;
			i = j;
		}
	}

	return 1;
}

/* ------------------------------------------------------------ pausing */

static void
pause_all(void)
{
	int n;

	for (n = 0; n < g.nl; n++)
		if (!g.l[n].paused) {
			if (dup3(g.quiet[0], g.l[n].fd, O_CLOEXEC) < 0) {
				lwsl_err("accept gate: dup3: %s\n",
					 strerror(errno));
				continue;
			}
			g.l[n].paused = 1;
		}
}

static void
resume_maybe(void)
{
	int n;

	if (g.full || g.backoff)
		return;
	for (n = 0; n < g.nl; n++)
		if (g.l[n].paused) {
			if (dup3(g.l[n].saved, g.l[n].fd, O_CLOEXEC) < 0) {
				lwsl_err("accept gate: dup3: %s\n",
					 strerror(errno));
				continue;
			}
			g.l[n].paused = 0;
		}
}

static void
backoff_over(lws_sorted_usec_list_t *sul)
{
	g.backoff = 0;
	resume_maybe();
}

static void
short_of_fds(const char *why)
{
	g.short_tries++;
	g.short_last = lws_now_usecs();
	if (!g.short_since) {
		g.short_since = lws_now_usecs();
		g.short_tries = 1;
		lwsl_warn("not accepting new connections for now (%s; "
			  "descriptor limit %d, %d client connections open): "
			  "retrying every %d ms\n", why, g.nofile, g.clients,
			  UDSP_BACKOFF_MS);
	}
	if (g.backoff)
		return;
	g.backoff = 1;
	pause_all();
	lws_sul_schedule(g.cx, 0, &g.sul_backoff, backoff_over,
			 UDSP_BACKOFF_MS * LWS_US_PER_MS);
}

static void
short_over(void)
{
	/* at the edge, accepts alternate with shortages: one episode */
	if (!g.short_since ||
	    lws_now_usecs() - g.short_last < 2 * UDSP_BACKOFF_MS * LWS_US_PER_MS)
		return;
	lwsl_notice("file descriptors available again: accepting after "
		    "%.1f s (%lu retries)\n",
		    (double)(lws_now_usecs() - g.short_since) / LWS_US_PER_SEC,
		    g.short_tries);
	g.short_since = 0;
}

/* log.c: lws's "accept: errno N" line */
static void
accept_failed(int err)
{
	char why[80];

	if (!g.on)
		return;
	lws_snprintf(why, sizeof(why), "accept: %s", strerror(err));
	switch (err) {
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		short_of_fds(why);
		break;
	case ENOTSOCK:
		/*
		 * A listener paused while lws still had a poll() result for
		 * it from before: that accept() met the quiet pipe.
		 */
		if (g.full || g.backoff)
			break;
		/* fallthrough */
	default:
		/* one connection's trouble (ECONNABORTED...): it is gone */
		lwsl_warn("%s\n", why);
		break;
	}
}

/* ------------------------------------------------------- protocols[0] */

int
udsp_gate_callback(struct lws *wsi, enum lws_callback_reasons reason,
		   void *user, void *in, size_t len)
{
	const struct lws_protocols *pr;
	char why[48];
	int fd;

	if (reason == LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED)
		/* after lws made its SSL, before it reads a request */
		udsp_tlsbuf_attach(wsi);

	/*
	 * Not the gate's: lws binds a keep-alive connection's later requests
	 * to protocols[0] (lws_http_transaction_completed()), so a ws upgrade
	 * on one asks us before its 101, while a new connection's asks the
	 * plugin (the vhost's default protocol).  The plugin answers a
	 * backend known down with the 503 page either way (docs/lws-notes.md
	 * N47); it finds its vhost options by its own protocol's name.
	 */
	if (reason == LWS_CALLBACK_HTTP_CONFIRM_UPGRADE) {
		pr = lws_vhost_name_to_protocol(lws_get_vhost(wsi),
						UDSP_PROTOCOL_NAME);
		if (pr && pr->callback)
			return pr->callback(wsi, reason, user, in, len);
		return 0;
	}

	if (!g.on)
		goto dummy;

	switch (reason) {
	case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
		/* wsi: the listener; in: the accepted descriptor */
		fd = (int)(lws_intptr_t)in;
		if (g.clients >= g.max) {
			/* only if a pause was bypassed: the cap holds */
			g.pending = 0;
			return 1;
		}
		g.pending = 1;
		if (fd >= g.nofile - g.margin) {
			lws_snprintf(why, sizeof(why), "descriptor %d accepted",
				     fd);
			short_of_fds(why);
		} else
			short_over();
		return 0;

	case LWS_CALLBACK_WSI_CREATE:
		/* lws_adopt_descriptor_vhost() right after FILTER */
		if (!g.pending)
			break;
		g.pending = 0;
		if (set_add(wsi))
			break;	/* OOM: not counted */
		if (++g.clients >= g.max && !g.full) {
			g.full = 1;
			lwsl_notice("max-connections (%d) reached: not "
				    "accepting until a connection closes\n",
				    g.max);
			pause_all();
		}
		break;

	case LWS_CALLBACK_WSI_DESTROY:
		if (!set_del(wsi))
			break;
		g.clients--;
		if (g.full && g.clients < g.max) {
			g.full = 0;
			resume_maybe();
		}
		break;

	default:
		break;
	}

dummy:
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ------------------------------------------------------------- set-up */

static int
add_listener(int fd, void *arg)
{
	struct listener *l;

	if (g.nl == LWS_ARRAY_SIZE(g.l))
		return -1;
	l = &g.l[g.nl];
	l->fd = fd;
	l->paused = 0;
	l->saved = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (l->saved < 0) {
		lwsl_err("accept gate: listener fd %d: %s\n", fd,
			 strerror(errno));
		return -1;
	}
	g.nl++;

	return 0;
}

/*
 * In the process that services (a lone serving process, or each worker),
 * once its listeners are bound.  max_conns: the config's max-connections,
 * 0 for the default.  The descriptors open now (listeners, their copies,
 * pipes, logs, lws's own) are what clients cannot have.
 */
int
udsp_gate_start(struct lws_context *cx, int max_conns)
{
	struct rlimit rl;
	int base, room;

	memset(&g, 0, sizeof(g));
	g.quiet[0] = g.quiet[1] = -1;
	g.cx = cx;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -1;
	g.nofile = rl.rlim_cur > INT_MAX ? INT_MAX : (int)rl.rlim_cur;

	if (pipe2(g.quiet, O_CLOEXEC)) {
		lwsl_err("accept gate: pipe: %s\n", strerror(errno));
		return -1;
	}
	udsp_proc_listeners_each("accept gate", add_listener, NULL);

	base = udsp_proc_count_fds();
	g.margin = g.nofile / 64 > 16 ? g.nofile / 64 : 16;
	/* one descriptor for the client, one for its backend connection */
	room = (g.nofile - base - g.margin) / 2;
	if (room < 1)
		room = 1;
	g.max = max_conns ? max_conns : room;

	lwsl_notice("file descriptors: limit %d (soft limit was %llu, hard "
		    "%llu), %d in use; max-connections %d%s\n", g.nofile,
		    (unsigned long long)nofile_was,
		    (unsigned long long)nofile_hard, base, g.max,
		    max_conns ? "" : " (from the limit)");
	if (max_conns > room)
		lwsl_warn("max-connections %d is more than %d descriptors "
			  "carry with a backend connection each (%d); "
			  "accepting pauses when descriptors run short\n",
			  max_conns, g.nofile, room);

	udsp_log_accept_failed = accept_failed;
	g.on = 1;

	return 0;
}

/* before closing the listeners for a reload, and at exit */
void
udsp_gate_stop(void)
{
	int n;

	if (!g.on)
		return;
	udsp_log_accept_failed = NULL;
	lws_sul_cancel(&g.sul_backoff);
	g.full = g.backoff = 0;
	/* every listener its socket again: a reload closes them its way */
	resume_maybe();
	g.on = 0;
	for (n = 0; n < g.nl; n++)
		if (!g.l[n].paused)
			close(g.l[n].saved);
	/* a listener dup3 failed to restore keeps polling the pipe */
	for (n = 0; n < g.nl && !g.l[n].paused; n++)
		;
	if (n == g.nl) {
		close(g.quiet[0]);
		close(g.quiet[1]);
	}
	g.nl = 0;
	free(g.set);
	g.set = NULL;
	g.set_size = 0;
}
