/* SPDX-License-Identifier: MIT
 *
 * The daemon's lws log emitter: the -d level filter, the error count for
 * start-up checks, the rate limit on repeated lines, and the one place
 * where lws 4.1.6 says that accept() failed.
 *
 * Repeated lines: an error that recurs per request or per poll (a backend
 * that is down, a failing accept) must not fill the disk.  An err, warn
 * or notice line that was already printed in the last UDSP_LOG_WINDOW_S
 * seconds is counted instead of printed; when its window is over, one
 * "[repeated N times in the last Ts]" line says what was held back.  The
 * last few distinct lines are remembered, so two alternating lines are
 * both limited.  Info and debug lines (-d) pass untouched: whoever asks
 * for them wants every one.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

#include "daemon.h"

#define UDSP_LOG_WINDOW_S	10
#define SLOTS			8
#define LIMITED			(LLL_ERR | LLL_WARN | LLL_NOTICE)

struct slot {
	char		line[256];	/* as lws formatted it, '\n' included */
	int		level;
	unsigned long	held;		/* identical lines not printed */
	int64_t		since;		/* ms: printed then */
	int64_t		used;		/* ms: last seen (LRU) */
};

static struct slot slots[SLOTS];
static int user_level;
int udsp_log_errors;
void (*udsp_log_accept_failed)(int err);

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);

	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
out(int level, const char *line)
{
	if (level & LLL_ERR)
		udsp_log_errors++;
	if (level & user_level)
		lwsl_emit_stderr(level, line);
}

static void
summary(struct slot *s, int64_t now)
{
	char buf[sizeof(s->line) + 96];

	if (!s->held)
		return;
	snprintf(buf, sizeof(buf), "[repeated %lu time%s in the last %llds] %s",
		 s->held, s->held == 1 ? "" : "s",
		 (long long)((now - s->since + 999) / 1000), s->line);
	s->held = 0;
	s->since = now;
	out(s->level, buf);
}

/* print what windows that ended held back; returns ms to the next end */
int
udsp_log_flush(int all)
{
	int64_t now, next = -1, end;
	int n;

	/* called after every service round: usually nothing is held */
	for (n = 0; n < SLOTS && !slots[n].held; n++)
		;
	if (n == SLOTS)
		return -1;
	now = now_ms();
	for (n = 0; n < SLOTS; n++) {
		if (!slots[n].held)
			continue;
		end = slots[n].since + UDSP_LOG_WINDOW_S * 1000;
		if (all || end <= now)
			summary(&slots[n], now);
		else if (next < 0 || end - now < next)
			next = end - now;
	}

	return (int)next;
}

/*
 * lws 4.1.6 reports a failed accept() on a listener only here, as
 * lwsl_err("accept: errno %d\n") (roles/listen/ops-listen.c), then returns
 * with the listener still readable and POLLIN still set on it.
 */
static int
accept_errno(const char *line)
{
	int e;

	if (sscanf(line, "accept: errno %d", &e) != 1)
		return 0;

	return e;
}

static void
emit(int level, const char *line)
{
	struct slot *s, *lru = &slots[0];
	int64_t now;
	int n, e;

	if ((level & LLL_ERR) && udsp_log_accept_failed &&
	    (e = accept_errno(line))) {
		/* the accept gate says it, once per back-off (limits.c) */
		udsp_log_accept_failed(e);
		return;
	}

	if (!(level & LIMITED)) {
		out(level, line);
		return;
	}

	now = now_ms();
	for (n = 0; n < SLOTS; n++) {
		s = &slots[n];
		if (s->level == level && !strcmp(s->line, line))
			break;
		if (s->used < lru->used)
			lru = s;
	}
	if (n < SLOTS) {
		s->used = now;
		if (now - s->since < UDSP_LOG_WINDOW_S * 1000 || s->held) {
			/* in its window; or just after it, when the summary
			 * carries this one too */
			s->held++;
			udsp_log_flush(0);
			return;
		}
	} else {
		s = lru;
		summary(s, now);	/* forget it, but not what it held */
		lws_strncpy(s->line, line, sizeof(s->line));
		s->level = level;
		s->used = now;
	}
	s->since = now;
	udsp_log_flush(0);
	out(level, line);
}

/*
 * lws's level, as last set below (lws's default until then).
 */
static int lws_level = LLL_ERR | LLL_WARN | LLL_NOTICE;

/*
 * Debian's lws 4.1.6 is a _DEBUG build: every lwsl_info(), lwsl_debug()
 * and lwsl_parser() in it calls _lws_log() (about 195 calls per h2
 * response), which sets up a va_list and calls _lws_logv() through the
 * PLT, and only _lws_logv() drops the line by level: some 28 instructions
 * per call, 5.5k per h2 response (callgrind, issue 14).  The executable
 * defines the function, so the dynamic linker binds lws's calls (all
 * through its PLT, as the plugin's) to this one, which drops a filtered
 * line first, with the test lws makes in _lws_logv().  The
 * plugin in real lwsws does not get this: only lws-uds-proxyd defines it.
 */
void
_lws_log(int filter, const char *format, ...)
{
	va_list ap;

	if (!(filter & lws_level))
		return;
	va_start(ap, format);
	_lws_logv(filter, format, ap);
	va_end(ap);
}

void
udsp_log_init(int level, int force_err)
{
	user_level = force_err ? level | LLL_ERR : level;
	lws_level = user_level | LLL_ERR;
	/*
	 * Errors are always formatted, whatever -d says: accept failures
	 * arrive as error lines, and the gate must see them.  out() applies
	 * the level that was asked for.
	 */
	lws_set_log_level(user_level | LLL_ERR, emit);
}
