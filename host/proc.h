/* SPDX-License-Identifier: MIT
 *
 * What a daemon process learns about itself and its children from the
 * kernel: its open descriptors (the one walk of /proc/self/fd), its
 * listening sockets, how a child ended, and the one-byte status pipes.
 * serve.c, workers.c, master.c and limits.c share it; it keeps no state.
 */
#ifndef UDSP_HOST_PROC_H
#define UDSP_HOST_PROC_H

#include <signal.h>
#include <stddef.h>

/* the write ends of the idle pipes put over closed listeners */
struct udsp_quiet {
	int		fd[64];	/* owned */
	int		n;
};

/*
 * fn(fd, arg) for every open descriptor of this process, stdio included,
 * but not the walk's own.  Returns for how many fn returned 0, or -1 if
 * they cannot be listed (logged as "who: /proc/self/fd: ..." if who is
 * not NULL).
 */
int
udsp_proc_fd_each(const char *who, int (*fn)(int fd, void *arg), void *arg);

/*
 * fn(fd, arg) for each listening socket of this process (past stdio), as
 * udsp_proc_fd_each() finds them.  Returns for how many fn returned 0, or
 * -1 if they cannot be listed (logged as there).
 */
int
udsp_proc_listeners_each(const char *who, int (*fn)(int fd, void *arg),
			 void *arg);

/* open descriptors, stdio included; -1 if unknown */
int
udsp_proc_count_fds(void);

/* open sockets past stdio (listeners, clients, backends); -1 if unknown */
int
udsp_proc_count_sockets(void);

/*
 * The process's one eventfd (lws's wake-up pipe).  Returns its fd, or -1
 * (logged, prefixed by who) if there is none or more than one.
 */
int
udsp_proc_find_eventfd(const char *who);

/*
 * Replace each listening socket's fd by the read end of a pipe that never
 * becomes readable, so the kernel socket closes while the fd lws polls
 * stays valid and quiet (serve.c's deprecate(), docs/lws-notes.md N34).
 * With workers, the socket closes only once every copy has been replaced.
 * The pipes' write ends go in *q, to be closed after
 * lws_context_destroy().  Returns how many listeners were closed, or -1.
 */
int
udsp_proc_close_listeners(struct udsp_quiet *q);

/* one status byte (daemon.h UDSP_ST_*) on a pipe; fd -1: nobody to tell */
void
udsp_proc_tell(int fd, char c);

/*
 * The signals of sigs[0..n-1] blocked and delivered on a new signalfd
 * (flags: SFD_NONBLOCK or 0; it is close-on-exec).  old, if not NULL,
 * gets the mask from before, which is put back on failure.  The fd, or
 * -1 (logged).
 */
int
udsp_proc_signalfd(const int *sigs, int n, int flags, sigset_t *old);

/* room for any udsp_proc_describe() text */
#define UDSP_PROC_DESCRIBE_LEN	48

/*
 * A waitpid() status in nginx's words, which people grep their logs for:
 * "exited with code 1", "exited on signal 11 (core dumped)".
 */
void
udsp_proc_describe(int status, char *buf, size_t len);

#endif
