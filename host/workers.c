/* SPDX-License-Identifier: MIT
 *
 * count-processes > 1, the nginx way.  The serving process has created the
 * lws context and bound every listener; it forks that many workers, which
 * inherit the listening sockets and each run lws's service loop (serve.c)
 * with their own plugin state, backend pool and memory.  What stays behind,
 * the manager, never services: its lws state is still what it was at the
 * fork, with no connection and no plugin state, so a fresh fork of it can
 * replace a worker that dies.  It passes a reload's deprecation and a stop
 * on to its workers.  None of this runs with count-processes 1.
 */
#define _GNU_SOURCE	/* pipe2, dup3 */
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "daemon.h"

/* a worker that ends sooner than this after its fork died young */
#define YOUNG_MS	1000
/* the fork that replaces a young death waits this long, doubling */
#define BACKOFF_MIN_MS	100
#define BACKOFF_MAX_MS	5000
/* on a reload, how long workers get to close their listeners */
#define CLOSE_MS	5000
/* on a stop, and past reload-drain-secs, how long workers get to end */
#define END_MS		10000
/* the longest poll: a deadline a day away still fits an int of ms */
#define POLL_MAX_MS	60000

enum wstate {
	W_FREE,		/* no process: while serving, one is forked at due */
	W_SERVING,
	W_CLOSING,	/* asked (SIGUSR1) to close its listeners */
	W_DRAINING,	/* listeners closed, finishing its connections */
	W_ENDING,	/* asked (SIGTERM) to end */
};

struct worker {
	pid_t		pid;
	int		st;	/* status pipe from it, read end, or -1 */
	enum wstate	state;
	int64_t		born;	/* ms (monotonic): forked then */
	int64_t		due;	/* ms, W_FREE: fork again then */
	int		backoff;	/* ms */
};

enum mstate {
	M_SERVING,
	M_CLOSING,	/* reload: waiting for every worker's listeners */
	M_DRAINING,	/* reload: waiting for the workers to finish */
	M_STOPPING,
};

struct mgr {
	const struct udsp_workers *w;
	struct worker	wk[UDSP_HC_MAX_PROCESSES];
	sigset_t	old_mask;	/* the workers get it back */
	int		sfd;	/* signalfd: TERM, INT, USR1, CHLD */
	enum mstate	state;
	int64_t		deadline;	/* ms, or 0 */
	pid_t		pid;
};

/* in a worker: see rearm_deathsig() */
static lws_sorted_usec_list_t sul_rearm;
static volatile sig_atomic_t *worker_interrupted;
static pid_t manager_pid;

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);

	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
count_in(const struct mgr *m, unsigned int states)
{
	int n, c = 0;

	for (n = 0; n < m->w->count; n++)
		c += !!(states & (1u << m->wk[n].state));

	return c;
}

#define ALIVE	((1u << W_SERVING) | (1u << W_CLOSING) | \
		 (1u << W_DRAINING) | (1u << W_ENDING))

/*
 * Every worker polls every listener, and all of them wake for each new
 * connection (nginx's accept_mutex off): the first accept() gets it and
 * the others must get EAGAIN, which lws's accept loop takes as "nothing"
 * (roles/listen/ops-listen.c).  But lws 4.1.6 leaves a unix-socket listener
 * blocking: _lws_vhost_init_server() gives it the TCP options, TCP_NODELAY
 * fails, and lws_plat_set_socket_options() returns (ignored) before its
 * lws_plat_set_nonblocking().  A lone process only accepts when poll()
 * says so and never notices; a worker would block in accept() instead,
 * serving nothing else until the next connection came.  O_NONBLOCK belongs
 * to the open file, which the workers share: set it once, before the fork.
 * docs/lws-notes.md N35
 */
static int
nonblocking_one(int fd, void *arg)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || (!(fl & O_NONBLOCK) &&
		       fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
		lwsl_err("workers: listener fd %d: %s\n", fd, strerror(errno));
		*(int *)arg = 1;
		return -1;
	}

	return 0;
}

static int
nonblocking_listeners(void)
{
	int bad = 0;

	if (udsp_proc_listeners_each("workers", nonblocking_one, &bad) < 0)
		return -1;

	return bad ? -1 : 0;
}

/*
 * lws wakes its poll() through one eventfd (LWS_HAVE_EVENTFD:
 * pt->dummy_pipe_fds[0], lib/plat/unix/unix-pipe.c), written by
 * lws_cancel_service() and, in 4.1.6, for every connection it accepts
 * (adopt.c calls lws_cancel_service_pt()).  A fork shares that eventfd
 * between the manager and every worker.  Then each accept in one worker
 * also wakes the others, which costs little as the listener wakes them
 * all anyway; but whichever worker reads the eventfd first eats a wake-up
 * meant for another, such as serve.c's drain_check() ending its own
 * poll().  So each worker puts a fresh eventfd on the same fd number,
 * which lws goes on polling none the wiser.  lws does not tell us the
 * number, but it is the only eventfd the process has here.
 * docs/lws-notes.md N36
 */
static int
own_event_pipe(void)
{
	int found, efd;

	found = udsp_proc_find_eventfd("worker");
	if (found < 0)
		return -1;
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0 || dup3(efd, found, O_CLOEXEC) < 0) {
		lwsl_err("worker: new eventfd: %s\n", strerror(errno));
		if (efd >= 0)
			close(efd);
		return -1;
	}
	close(efd);

	return 0;
}

/*
 * A worker ends with its manager (PR_SET_PDEATHSIG), but the kernel clears
 * that setting when a process changes its credentials, and lws drops
 * privileges ("username", "uid") at protocol init, in the worker's first
 * lws_service().  This runs just after that, to arm it again.
 * docs/lws-notes.md N37
 */
static void
rearm_deathsig(lws_sorted_usec_list_t *sul)
{
	if (!prctl(PR_SET_PDEATHSIG, SIGTERM) && getppid() == manager_pid)
		return;
	lwsl_err("worker: manager process %d is gone; exiting\n",
		 (int)manager_pid);
	*worker_interrupted = 1;
}

/* the new worker's side of the fork */
static void
become_worker(struct mgr *m)
{
	int n;

	if (prctl(PR_SET_PDEATHSIG, SIGTERM) || getppid() != m->pid)
		_exit(1);

	/* only the manager talks to the master and watches the workers */
	close(m->sfd);
	if (m->w->st_fd >= 0)
		close(m->w->st_fd);
	for (n = 0; n < m->w->count; n++)
		if (m->wk[n].st >= 0)
			close(m->wk[n].st);

	if (own_event_pipe())
		_exit(1);

	manager_pid = m->pid;
	worker_interrupted = m->w->interrupted;
	lws_sul_schedule(m->w->cx, 0, &sul_rearm, rearm_deathsig,
			 LWS_US_PER_MS);

	/* serve.c's handlers take SIGTERM, SIGINT and SIGUSR1 again */
	sigprocmask(SIG_SETMASK, &m->old_mask, NULL);
}

static int
next_backoff(int ms)
{
	if (!ms)
		return BACKOFF_MIN_MS;

	return ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms * 2;
}

/* which worker this is, for the plugin's status answer (README) */
static void
worker_env(struct mgr *m, struct worker *k)
{
	char v[32];

	snprintf(v, sizeof(v), "%d/%d", (int)(k - m->wk), m->w->count);
	setenv("LWS_UDS_PROXY_WORKER", v, 1);
}

/*
 * Fork a worker into free slot k.  Returns 1 in the new worker, with *wr
 * its end of the status pipe; 0 in the manager, which retries later if the
 * fork failed.
 */
static int
start_worker(struct mgr *m, struct worker *k, int *wr)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC)) {
		lwsl_err("lws-uds-proxyd: worker pipe: %s\n", strerror(errno));
		goto later;
	}
	pid = fork();
	if (pid < 0) {
		lwsl_err("lws-uds-proxyd: fork: %s\n", strerror(errno));
		close(p[0]);
		close(p[1]);
		goto later;
	}
	if (!pid) {
		close(p[0]);
		become_worker(m);
		worker_env(m, k);
		*wr = p[1];
		return 1;
	}

	close(p[1]);
	k->pid = pid;
	k->st = p[0];
	k->state = W_SERVING;
	k->born = now_ms();
	lwsl_notice("lws-uds-proxyd: started worker process %d\n", (int)pid);

	return 0;

later:
	k->backoff = next_backoff(k->backoff);
	k->due = now_ms() + k->backoff;

	return 0;
}

static void
reap(struct mgr *m)
{
	int64_t now = now_ms();
	struct worker *k;
	int n, status;
	char how[UDSP_PROC_DESCRIBE_LEN];
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (n = 0; n < m->w->count; n++)
			if (m->wk[n].state != W_FREE && m->wk[n].pid == pid)
				break;
		if (n == m->w->count)
			continue;
		k = &m->wk[n];
		udsp_proc_describe(status, how, sizeof(how));

		if (k->state == W_SERVING && m->state == M_SERVING) {
			/*
			 * Replace it.  One that dies young (a crash at
			 * start-up, or on every request) is replaced ever
			 * more slowly instead of in a fork loop.
			 */
			k->backoff = now - k->born < YOUNG_MS ?
					next_backoff(k->backoff) : 0;
			k->due = now + k->backoff;
			if (k->backoff)
				lwsl_err("lws-uds-proxyd: worker process %d "
					 "%s; replacing it in %d ms\n",
					 (int)pid, how, k->backoff);
			else
				lwsl_err("lws-uds-proxyd: worker process %d "
					 "%s; replacing it\n", (int)pid, how);
		} else if (WIFEXITED(status) && !WEXITSTATUS(status))
			lwsl_notice("lws-uds-proxyd: worker process %d "
				    "exited\n", (int)pid);
		else
			lwsl_warn("lws-uds-proxyd: worker process %d %s\n",
				  (int)pid, how);

		if (k->st >= 0)
			close(k->st);
		k->st = -1;
		k->pid = 0;
		k->state = W_FREE;
	}
}

/* SIGUSR1 from the master: a reloaded process wants our addresses */
static void
deprecate(struct mgr *m)
{
	int n, c = 0, closed;

	/* the kernel sockets close once the workers have closed theirs too */
	closed = udsp_proc_close_listeners(m->w->quiet);
	for (n = 0; n < m->w->count; n++) {
		if (m->wk[n].state != W_SERVING)
			continue;
		if (kill(m->wk[n].pid, SIGUSR1))
			lwsl_err("reload: signalling worker process %d: %s\n",
				 (int)m->wk[n].pid, strerror(errno));
		m->wk[n].state = W_CLOSING;
		c++;
	}
	m->state = M_CLOSING;
	m->deadline = now_ms() + CLOSE_MS;
	lwsl_notice("reload: %d listener(s) closed in the manager, asking %d "
		    "worker process(es) to close theirs\n", closed, c);
}

static void
stop(struct mgr *m)
{
	int n, c = 0;

	for (n = 0; n < m->w->count; n++) {
		if (m->wk[n].state == W_FREE)
			continue;
		kill(m->wk[n].pid, SIGTERM);
		m->wk[n].state = W_ENDING;
		c++;
	}
	m->state = M_STOPPING;
	m->deadline = now_ms() + END_MS;
	lwsl_notice("lws-uds-proxyd: stopping %d worker process(es)\n", c);
}

/* a deadline passed: these workers are stuck, and they go */
static void
kill_stuck(struct mgr *m, unsigned int states, const char *why)
{
	int n;

	for (n = 0; n < m->w->count; n++)
		if (states & (1u << m->wk[n].state)) {
			lwsl_err("lws-uds-proxyd: worker process %d %s; "
				 "killing it\n", (int)m->wk[n].pid, why);
			kill(m->wk[n].pid, SIGKILL);
		}
	m->deadline = 0;
}

/*
 * What the workers' states call for now: forks (which return 1 in the new
 * worker, with *wr set), the master told of a finished deprecation, stuck
 * workers killed.  Returns 1 in a new worker, -1 when the manager is done,
 * else 0 with *timeout the ms until the next thing is due (-1: none).
 */
static int
progress(struct mgr *m, int *wr, int *timeout)
{
	int64_t now = now_ms(), next = -1;
	int n;

	switch (m->state) {
	case M_SERVING:
		for (n = 0; n < m->w->count; n++) {
			if (m->wk[n].state != W_FREE)
				continue;
			if (m->wk[n].due <= now) {
				if (start_worker(m, &m->wk[n], wr))
					return 1;
				if (m->wk[n].state == W_SERVING)
					continue;
			}
			if (next < 0 || m->wk[n].due < next)
				next = m->wk[n].due;
		}
		break;

	case M_CLOSING:
		if (count_in(m, (1u << W_SERVING) | (1u << W_CLOSING))) {
			if (m->deadline && now >= m->deadline)
				kill_stuck(m, 1u << W_CLOSING, "did not close "
					   "its listeners in time");
			break;
		}
		/* every listener copy is closed: the new process may bind */
		udsp_proc_tell(m->w->st_fd, UDSP_ST_DEPRECATED);
		m->state = M_DRAINING;
		m->deadline = m->w->drain_secs ? now + END_MS +
				(int64_t)m->w->drain_secs * 1000 : 0;
		lwsl_notice("reload: the workers closed their listeners and "
			    "are finishing their connections\n");
		/* fallthrough */
	case M_DRAINING:
	case M_STOPPING:
		if (!count_in(m, ALIVE))
			return -1;
		if (m->deadline && now >= m->deadline)
			kill_stuck(m, ALIVE, m->state == M_STOPPING ?
				   "did not end after SIGTERM" :
				   "outlived reload-drain-secs");
		break;
	}

	if (m->deadline && (next < 0 || m->deadline < next))
		next = m->deadline;
	*timeout = next < 0 ? -1 : next <= now ? 0 :
		   next - now > POLL_MAX_MS ? POLL_MAX_MS : (int)(next - now);

	return 0;
}

static void
on_status(struct mgr *m, struct worker *k)
{
	ssize_t r;
	char c;

	r = read(k->st, &c, 1);
	if (r == 1) {
		if (c == UDSP_ST_DEPRECATED && k->state == W_CLOSING)
			k->state = W_DRAINING;
		return;
	}
	if (!r || (errno != EINTR && errno != EAGAIN)) {
		/* it is ending: SIGCHLD says how */
		close(k->st);
		k->st = -1;
	}
}

/* every signal queued; a stop outranks a reload */
static void
on_signals(struct mgr *m)
{
	struct signalfd_siginfo si;
	int term = 0, usr1 = 0, chld = 0;

	while (read(m->sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			term = 1;
		else if (si.ssi_signo == SIGUSR1)
			usr1 = 1;
		else if (si.ssi_signo == SIGCHLD)
			chld = 1;
	}

	if (term && m->state != M_STOPPING)
		stop(m);
	else if (usr1 && m->state == M_SERVING)
		deprecate(m);
	if (chld)
		reap(m);
}

/*
 * TERM, INT, USR1 and CHLD arrive on m->sfd, read in the loop with the
 * status pipes; the mask before is kept for the workers.  0, or -1
 * (logged).
 */
static int
signals_fd(struct mgr *m)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGUSR1, SIGCHLD };

	m->sfd = udsp_proc_signalfd(sigs, LWS_ARRAY_SIZE(sigs), SFD_NONBLOCK,
				    &m->old_mask);

	return m->sfd < 0 ? -1 : 0;
}

/* pfd[0] the signalfd, then each worker's status pipe (map[n]: its own) */
static int
poll_set(struct mgr *m, struct pollfd *pfd, struct worker **map)
{
	int n, np = 0;

	pfd[np].fd = m->sfd;
	pfd[np].events = POLLIN;
	map[np++] = NULL;
	for (n = 0; n < m->w->count; n++)
		if (m->wk[n].st >= 0) {
			pfd[np].fd = m->wk[n].st;
			pfd[np].events = POLLIN;
			map[np++] = &m->wk[n];
		}

	return np;
}

int
udsp_workers_run(const struct udsp_workers *w, int *to_manager)
{
	struct pollfd pfd[1 + UDSP_HC_MAX_PROCESSES];
	struct worker *map[1 + UDSP_HC_MAX_PROCESSES];
	int n, np, timeout, r, ret = 0;
	struct mgr m;

	memset(&m, 0, sizeof(m));
	m.w = w;
	m.pid = getpid();
	for (n = 0; n < w->count; n++)
		m.wk[n].st = -1;

	if (signals_fd(&m))
		return 1;
	/*
	 * Before the first fork: a stop may have come before the signals
	 * were blocked, and see nonblocking_listeners().
	 */
	if (*w->interrupted || nonblocking_listeners()) {
		ret = *w->interrupted ? 0 : 1;
		goto out;
	}

	for (n = 0; n < w->count; n++)
		if (start_worker(&m, &m.wk[n], to_manager))
			return UDSP_WORKER;

	/* the listeners were bound before the fork */
	udsp_proc_tell(w->st_fd, UDSP_ST_READY);
	lwsl_notice("lws-uds-proxyd: serving with %d worker processes\n",
		    w->count);

	for (;;) {
		r = progress(&m, to_manager, &timeout);
		if (r > 0)
			return UDSP_WORKER;
		if (r < 0)
			break;

		np = poll_set(&m, pfd, map);
		if (poll(pfd, (nfds_t)np, timeout) < 0) {
			if (errno == EINTR)
				continue;
			/* blind now: end the workers rather than spin */
			lwsl_err("poll: %s\n", strerror(errno));
			for (n = 0; n < w->count; n++)
				if (m.wk[n].state != W_FREE)
					kill(m.wk[n].pid, SIGKILL);
			while (waitpid(-1, NULL, 0) > 0)
				;
			ret = 1;
			break;
		}
		/* status first: a worker's last words come before its end */
		for (n = 1; n < np; n++)
			if (pfd[n].revents)
				on_status(&m, map[n]);
		if (pfd[0].revents & POLLIN)
			on_signals(&m);
	}

	if (m.state == M_STOPPING)
		lwsl_notice("lws-uds-proxyd: workers stopped, exiting\n");
	else if (m.state == M_DRAINING)
		lwsl_notice("reload: old workers drained, exiting\n");
out:
	close(m.sfd);
	sigprocmask(SIG_SETMASK, &m.old_mask, NULL);

	return ret;
}
