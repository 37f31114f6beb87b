/* SPDX-License-Identifier: MIT
 *
 * The supervisor: the long-lived process (systemd's MainPID) that forks
 * serving processes, answers SIGHUP with a reload (a new process from the
 * current config; the old one closes its listeners only once the new one is
 * ready to bind, then drains) and SIGTERM/SIGINT with a stop.  It never
 * creates an lws context nor loads a plugin itself.
 */
#define _GNU_SOURCE	/* pipe2, close_range */
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "daemon.h"

#define MAX_KIDS	16

enum kstate {
	K_FREE,
	K_STARTING,	/* forked: reading config, loading plugins */
	K_PREPARED,	/* ready to bind; waiting for the old listeners */
	K_SERVING,
	K_DEPRECATING,	/* asked to close its listeners */
	K_DRAINING,	/* listeners closed, finishing its connections */
};

struct kid {
	pid_t		pid;
	int		st;	/* status pipe, read end, or -1 */
	int		go;	/* go pipe, write end, or -1 */
	enum kstate	state;
	unsigned int	went:1;	/* told to go */
};

static struct kid kids[MAX_KIDS];
static pid_t master_pid;

static struct kid *
kid_in(enum kstate s)
{
	int n;

	for (n = 0; n < MAX_KIDS; n++)
		if (kids[n].state == s)
			return &kids[n];

	return NULL;
}

static int
kid_count(void)
{
	int n, c = 0;

	for (n = 0; n < MAX_KIDS; n++)
		c += kids[n].state != K_FREE;

	return c;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* in the child: keep only stdio and our two pipe ends */
static void
close_inherited(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;

	if (lo > 3)
		close_range(3, (unsigned int)lo - 1, 0);
	if (hi > lo + 1)
		close_range((unsigned int)lo + 1, (unsigned int)hi - 1, 0);
	close_range((unsigned int)hi + 1, ~0u, 0);
}

static struct kid *
spawn(const struct udsp_opts *o)
{
	int st[2], go[2];
	struct kid *k;
	sigset_t all;
	pid_t pid;

	k = kid_in(K_FREE);
	if (!k) {
		lwsl_err("too many old processes still draining; not "
			 "starting another\n");
		return NULL;
	}
	if (pipe2(st, O_CLOEXEC)) {
		lwsl_err("pipe: %s\n", strerror(errno));
		return NULL;
	}
	if (pipe2(go, O_CLOEXEC)) {
		lwsl_err("pipe: %s\n", strerror(errno));
		close(st[0]);
		close(st[1]);
		return NULL;
	}

	pid = fork();
	if (pid < 0) {
		lwsl_err("fork: %s\n", strerror(errno));
		close(st[0]);
		close(st[1]);
		close(go[0]);
		close(go[1]);
		return NULL;
	}
	if (!pid) {
		/* a serving process must not outlive its master */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) || getppid() != master_pid)
			_exit(1);
		signal(SIGPIPE, SIG_DFL);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		close_inherited(st[1], go[0]);
		_exit(udsp_serve_run(o, st[1], go[0]));
	}

	close(st[1]);
	close(go[0]);
	k->pid = pid;
	k->st = st[0];
	k->go = go[1];
	k->state = K_STARTING;
	k->went = 0;

	return k;
}

static void
go(struct kid *k)
{
	char c = UDSP_GO;

	k->went = 1;
	if (write(k->go, &c, 1) != 1)
		lwsl_err("process %d: cannot tell it to start: %s\n",
			 (int)k->pid, strerror(errno));
	close_fd(&k->go);
}

static void
signal_all(int sig)
{
	int n;

	for (n = 0; n < MAX_KIDS; n++)
		if (kids[n].state != K_FREE)
			kill(kids[n].pid, sig);
}

static int
reload_busy(void)
{
	return kid_in(K_STARTING) || kid_in(K_PREPARED) ||
	       kid_in(K_DEPRECATING);
}

/* a status byte from a serving process */
static void
on_status(struct kid *k, char c)
{
	struct kid *old;

	switch (c) {
	case UDSP_ST_PREPARED:
		if (k->state != K_STARTING)
			break;
		k->state = K_PREPARED;
		old = kid_in(K_SERVING);
		if (!old) {
			go(k);
			break;
		}
		/* the new process binds once these listeners are closed */
		old->state = K_DEPRECATING;
		if (kill(old->pid, SIGUSR1))
			lwsl_err("reload: signalling process %d: %s\n",
				 (int)old->pid, strerror(errno));
		break;

	case UDSP_ST_DEPRECATED:
		if (k->state != K_DEPRECATING)
			break;
		k->state = K_DRAINING;
		old = kid_in(K_PREPARED);
		if (old && !old->went)
			go(old);
		break;

	case UDSP_ST_READY:
		if (k->state != K_PREPARED)
			break;
		k->state = K_SERVING;
		lwsl_notice("lws-uds-proxyd: serving process %d ready%s\n",
			    (int)k->pid, kid_in(K_DRAINING) ?
			    " (configuration reloaded)" : "");
		break;
	}
}

/*
 * Returns -1 to carry on, else the master's exit code: the service cannot
 * go on (no process listens any more).
 */
static int
reap(int stopping)
{
	struct kid *k, *nk;
	int n, status, ret = -1;
	char how[UDSP_PROC_DESCRIBE_LEN];
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (n = 0; n < MAX_KIDS; n++)
			if (kids[n].state != K_FREE && kids[n].pid == pid)
				break;
		if (n == MAX_KIDS)
			continue;
		k = &kids[n];
		udsp_proc_describe(status, how, sizeof(how));

		switch (k->state) {
		case K_STARTING:
		case K_PREPARED:
			if (stopping)
				break;
			if (!kid_in(K_SERVING) && !kid_in(K_DEPRECATING) &&
			    (!kid_in(K_DRAINING) || k->went)) {
				/* first start, or too late to back out */
				lwsl_err("lws-uds-proxyd: serving process "
					 "failed to start (%s)%s\n", how,
					 kid_in(K_DRAINING) ? " after the old "
					 "one had closed its listeners" : "");
				ret = WIFEXITED(status) &&
				      WEXITSTATUS(status) ?
						WEXITSTATUS(status) : 1;
				break;
			}
			if (kid_in(K_DEPRECATING)) {
				lwsl_err("reload: new process failed (%s) "
					 "while the old one was closing its "
					 "listeners\n", how);
				ret = 1;
				break;
			}
			lwsl_err("reload: failed (%s), the new configuration "
				 "is not in use (problems above); still "
				 "serving with the previous one\n", how);
			break;

		case K_SERVING:
			if (!stopping) {
				lwsl_err("lws-uds-proxyd: serving process %d "
					 "ended (%s)\n", (int)pid, how);
				ret = 1;
			}
			break;

		case K_DEPRECATING:
			/* it will not say 'D' now: its listeners are gone */
			lwsl_warn("reload: old process %d ended (%s) before "
				  "draining\n", (int)pid, how);
			nk = kid_in(K_PREPARED);
			k->state = K_DRAINING;
			if (nk && !nk->went && !stopping)
				go(nk);
			break;

		default:
			lwsl_notice("reload: old process %d finished (%s)\n",
				    (int)pid, how);
			break;
		}

		close_fd(&k->st);
		close_fd(&k->go);
		k->state = K_FREE;
		k->pid = 0;
	}

	return ret;
}

/*
 * SIGHUP, SIGTERM, SIGINT and SIGCHLD arrive on a signalfd, read in the
 * loop with the status pipes.  Returns its fd, or -1 (logged).
 */
static int
signals_fd(void)
{
	static const int sigs[] = { SIGHUP, SIGTERM, SIGINT, SIGCHLD };
	int sfd;

	sfd = udsp_proc_signalfd(sigs, LWS_ARRAY_SIZE(sigs), 0, NULL);
	if (sfd < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);

	return sfd;
}

/* pfd[0] the signalfd, then each child's status pipe (map[n]: its kid) */
static int
poll_set(struct pollfd *pfd, struct kid **map, int sfd)
{
	int n, np = 0;

	pfd[np].fd = sfd;
	pfd[np].events = POLLIN;
	map[np++] = NULL;
	for (n = 0; n < MAX_KIDS; n++)
		if (kids[n].state != K_FREE && kids[n].st >= 0) {
			pfd[np].fd = kids[n].st;
			pfd[np].events = POLLIN;
			map[np++] = &kids[n];
		}

	return np;
}

/* the status bytes that poll() found, each child's in turn */
static void
read_statuses(const struct pollfd *pfd, struct kid **map, int np)
{
	ssize_t r;
	int n;
	char c;

	for (n = 1; n < np; n++) {
		if (!pfd[n].revents)
			continue;
		r = read(map[n]->st, &c, 1);
		if (r == 1)
			on_status(map[n], c);
		else if (!r || (errno != EINTR && errno != EAGAIN))
			close_fd(&map[n]->st);
	}
}

/* one signal: -1 to carry on, else the master's exit code */
static int
on_signal(int sig, int *stopping, int *pending)
{
	switch (sig) {
	case SIGHUP:
		if (*stopping)
			break;
		lwsl_notice("reload: SIGHUP\n");
		if (reload_busy())
			lwsl_notice("reload: one is in progress; another "
				    "follows it\n");
		*pending = 1;
		break;
	case SIGTERM:
	case SIGINT:
		if (!*stopping)
			lwsl_notice("lws-uds-proxyd: stopping\n");
		*stopping = 1;
		signal_all(SIGTERM);
		break;
	case SIGCHLD:
		return reap(*stopping);
	}

	return -1;
}

int
udsp_master_run(const struct udsp_opts *o)
{
	struct pollfd pfd[MAX_KIDS + 1];
	struct kid *map[MAX_KIDS + 1];
	struct signalfd_siginfo si;
	int n, np, sfd, ret = -1, stopping = 0, pending = 0;

	master_pid = getpid();
	for (n = 0; n < MAX_KIDS; n++) {
		kids[n].st = -1;
		kids[n].go = -1;
	}

	sfd = signals_fd();
	if (sfd < 0)
		return 1;
	if (!spawn(o)) {
		close(sfd);
		return 1;
	}

	while (ret < 0) {
		if (pending && !stopping && !reload_busy()) {
			pending = 0;
			lwsl_notice("reload: starting a process with the "
				    "current configuration\n");
			spawn(o);
		}
		if (stopping && !kid_count()) {
			ret = 0;
			break;
		}

		np = poll_set(pfd, map, sfd);
		if (poll(pfd, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			lwsl_err("poll: %s\n", strerror(errno));
			ret = 1;
			break;
		}

		/* status first: a process's last words come before its end */
		read_statuses(pfd, map, np);

		if (!(pfd[0].revents & POLLIN))
			continue;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		ret = on_signal((int)si.ssi_signo, &stopping, &pending);
	}

	if (ret) {
		/* the service is gone: end every process with it */
		signal_all(SIGTERM);
		while (waitpid(-1, NULL, 0) > 0)
			;
	}
	close(sfd);

	return ret;
}
