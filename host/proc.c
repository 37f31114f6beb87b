/* SPDX-License-Identifier: MIT
 *
 * A daemon process's view of itself and its children (see proc.h): one
 * walk of /proc/self/fd for the descriptor counts, the listeners and
 * lws's eventfd, the reload's listener swap, status bytes and exit
 * wording.  Nothing here knows whether it runs in a lone serving process,
 * a worker manager or a worker.
 */
#define _GNU_SOURCE	/* pipe2, dup3 */
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "proc.h"

int
udsp_proc_fd_each(const char *who, int (*fn)(int fd, void *arg), void *arg)
{
	struct dirent *de;
	int n = 0, fd;
	DIR *d;

	d = opendir("/proc/self/fd");
	if (!d) {
		if (who)
			lwsl_err("%s: /proc/self/fd: %s\n", who,
				 strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		if (fd != dirfd(d))
			n += !fn(fd, arg);
	}
	closedir(d);

	return n;
}

struct listeners {
	int	(*fn)(int fd, void *arg);
	void	*arg;
};

static int
listener_one(int fd, void *arg)
{
	const struct listeners *l = arg;
	struct stat st;
	socklen_t len = sizeof(int);
	int on;

	if (fd <= 2 || fstat(fd, &st) || !S_ISSOCK(st.st_mode) ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) || !on)
		return 1;

	return l->fn(fd, l->arg);
}

int
udsp_proc_listeners_each(const char *who, int (*fn)(int fd, void *arg),
			 void *arg)
{
	struct listeners l = { fn, arg };

	return udsp_proc_fd_each(who, listener_one, &l);
}

static int
any_one(int fd, void *arg)
{
	return 0;
}

int
udsp_proc_count_fds(void)
{
	return udsp_proc_fd_each(NULL, any_one, NULL);
}

static int
socket_one(int fd, void *arg)
{
	struct stat st;

	return !(fd > 2 && !fstat(fd, &st) && S_ISSOCK(st.st_mode));
}

int
udsp_proc_count_sockets(void)
{
	return udsp_proc_fd_each(NULL, socket_one, NULL);
}

static int
eventfd_one(int fd, void *arg)
{
	char path[48], link[64];
	ssize_t r;

	if (fd <= 2)
		return 1;
	lws_snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = readlink(path, link, sizeof(link) - 1);
	if (r <= 0)
		return 1;
	link[r] = '\0';
	if (strcmp(link, "anon_inode:[eventfd]"))
		return 1;
	*(int *)arg = fd;

	return 0;
}

int
udsp_proc_find_eventfd(const char *who)
{
	int found = -1, count;

	count = udsp_proc_fd_each(who, eventfd_one, &found);
	if (count < 0)
		return -1;
	if (count != 1) {
		lwsl_err("%s: found %d eventfds, expected lws's one\n", who,
			 count);
		return -1;
	}

	return found;
}

static int
quiet_one(int fd, void *arg)
{
	struct udsp_quiet *q = arg;
	int p[2], ret = -1;

	if (q->n == LWS_ARRAY_SIZE(q->fd) || pipe2(p, O_CLOEXEC)) {
		lwsl_err("reload: cannot replace listener fd %d\n", fd);
		return -1;
	}
	if (dup3(p[0], fd, O_CLOEXEC) < 0) {
		lwsl_err("reload: dup3: %s\n", strerror(errno));
		close(p[1]);
	} else {
		q->fd[q->n++] = p[1];
		ret = 0;
	}
	close(p[0]);

	return ret;
}

/*
 * lws_context_deprecate() would close the listeners, but in 4.1.6 it
 * reads the listener wsi after lws_close_free_wsi() freed it
 * (docs/lws-notes.md N34), which crashes with lws's poll loop.  Swapping
 * the fd under lws leaves it none the wiser: it closes the pipe at exit
 * as it would have closed the socket.
 */
int
udsp_proc_close_listeners(struct udsp_quiet *q)
{
	return udsp_proc_listeners_each("reload", quiet_one, q);
}

void
udsp_proc_tell(int fd, char c)
{
	ssize_t r;

	if (fd < 0)
		return;
	do
		r = write(fd, &c, 1);
	while (r < 0 && errno == EINTR);
	/* a master that went away takes us down with PDEATHSIG anyway */
}

void
udsp_proc_describe(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		lws_snprintf(buf, len, "exited on signal %d%s",
			     WTERMSIG(status),
			     WCOREDUMP(status) ? " (core dumped)" : "");
	else if (WIFEXITED(status))
		lws_snprintf(buf, len, "exited with code %d",
			     WEXITSTATUS(status));
	else
		lws_snprintf(buf, len, "ended with status 0x%x", status);
}

int
udsp_proc_signalfd(const int *sigs, int n, int flags, sigset_t *old)
{
	sigset_t mask, before;
	int i, sfd;

	sigemptyset(&mask);
	for (i = 0; i < n; i++)
		sigaddset(&mask, sigs[i]);
	if (sigprocmask(SIG_BLOCK, &mask, &before)) {
		lwsl_err("sigprocmask: %s\n", strerror(errno));
		return -1;
	}
	if (old)
		*old = before;
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | flags);
	if (sfd < 0) {
		lwsl_err("signalfd: %s\n", strerror(errno));
		if (old)
			sigprocmask(SIG_SETMASK, &before, NULL);
		return -1;
	}

	return sfd;
}
