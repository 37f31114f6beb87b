/* SPDX-License-Identifier: MIT
 *
 * Holding requests while a backend restarts.  An app on a unix socket is
 * restarted by removing and re-creating its socket, or refuses connections
 * for a moment; with hold-ms (pmo, default from the vhost's pvo) a request
 * whose connect fails that way waits up to hold-ms for the backend to come
 * back, trying again with a short backoff, before its 503.
 *
 * Only a request none of whose bytes left us is held: this is called when
 * the connect itself failed, so no byte of this attempt reached a backend,
 * and a request that had sent anything before (head or body) is not held.
 * A held request keeps what it already holds (its relay, its request
 * buffer and, for h2, its spill file, which bound a body still arriving)
 * and nothing more: it sits on its backend's held list by its relay's
 * wait link, with a timer in the relay.  hold-max bounds their number per
 * backend; past it the 503 comes at once.
 *
 * Interface: the relay calls udsp_hold_try() when bconn.c reports a
 * connect that failed at once (udsp_relay_connect_failed(): lws reports
 * that synchronously for unix sockets; only ENOENT and ECONNREFUSED are
 * held), pool.c calls udsp_hold_cancel() from udsp_pool_unqueue(),
 * which the relay runs whenever it fails or is freed.  A due retry goes
 * back to the relay through udsp_relay_reconnect(), which connects as at
 * the start; a TCP backend's refusal, reported later, is not held, except
 * in a backend list with every member down (group.c), whose retries go
 * round the members (udsp_group_rehold() in hold_cb()).
 * hold-max 0 holds nothing.
 */
#include "private.h"

#include <stddef.h>
#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#define UDSP_HOLD_FIRST_MS	10
#define UDSP_HOLD_MAX_STEP_MS	250

static unsigned int
hold_ms(const struct udsp_relay *r)
{
	const struct lws_protocol_vhost_options *pmo;
	unsigned long u;
	char *e;

	for (pmo = r->pmo; pmo; pmo = pmo->next)
		if (!strcmp(pmo->name, "hold-ms")) {
			/* the daemon refuses a bad value at load; lwsws not */
			u = strtoul(pmo->value, &e, 10);
			if (!*pmo->value || *e || u > INT_MAX)
				break;
			return (unsigned int)u;
		}

	return r->vhd->conf.hold_ms;
}

static void
hold_cb(lws_sorted_usec_list_t *sul)
{
	struct udsp_relay *r = lws_container_of(sul, struct udsp_relay,
						sul_hold);

	/* off the held list: hold-max counts waiting requests only */
	if (!lws_dll2_is_detached(&r->wait))
		lws_dll2_remove(&r->wait);
	udsp_group_rehold(r);
	udsp_relay_reconnect(r, "hold retry");
}

/*
 * What a non-blocking connect to a unix backend says now: 0 (connected,
 * or queued), or its errno; EINVAL for a backend that is not a unix
 * socket.  A connect that works is closed unused: the app sees an empty
 * connection.
 */
int
udsp_unix_connect_errno(const struct udsp_backend *be)
{
	struct sockaddr_un sa;
	const char *p = be->o.address + 1;	/* past lws's '+' */
	socklen_t sl;
	size_t n = strlen(p);
	int fd, e = 0;

	if (be->o.kind != UDSP_ORIGIN_UNIX || be->o.address[0] != '+' ||
	    n >= sizeof(sa.sun_path))
		return EINVAL;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, p, n);
	if (p[0] == '@')
		sa.sun_path[0] = '\0';		/* abstract */
	sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
			 (p[0] == '@' ? 0 : 1));

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	if (connect(fd, (struct sockaddr *)&sa, sl))
		e = errno;
	close(fd);

	return e;
}

/*
 * lws 4.3 fails a unix-socket connect synchronously too, but with errno
 * clobbered by its own cleanup (EBADF): ask the socket ourselves.  Only on
 * the failure path, and only for unix backends (a non-blocking connect
 * there answers at once).  One that works now means the backend is back;
 * the connection is closed unused, and the retry follows.
 */
static int
unix_errno(const struct udsp_backend *be)
{
	int e = udsp_unix_connect_errno(be);

	return e ? e : ECONNREFUSED;
}

/*
 * The connect for r failed with err.  Returns 1 if r is now held (and will
 * try again), 0 if it is to be answered 503 now.
 */
int
udsp_hold_try(struct udsp_relay *r, int err)
{
	struct udsp_backend *be = r->be;
	lws_usec_t now = lws_now_usecs(), wait;
	unsigned int ms, secs;

	if (r->reqhead_sent || r->body_sent || udsp_res_started(r) ||
	    udsp_relay_ended(r) || !r->cwsi || !(r->hold_until ||
						 hold_ms(r)))
		return 0;
	if (err != ENOENT && err != ECONNREFUSED &&
	    be->o.kind == UDSP_ORIGIN_UNIX)
		err = unix_errno(be);
	if (err != ENOENT && err != ECONNREFUSED)
		return 0;

	if (!r->hold_until) {
		ms = hold_ms(r);
		if (!ms)
			return 0;
		if (be->held.count >= r->vhd->conf.hold_max) {
			udsp_info(r, "hold-max (%u) requests already held",
				  r->vhd->conf.hold_max);
			return 0;
		}
		r->hold_until = now + (lws_usec_t)ms * LWS_US_PER_MS;
		be->st.held_total++;
		r->hold_step = UDSP_HOLD_FIRST_MS;
		udsp_info(r, "backend %s: %s, holding up to %u ms", be->spec,
			  strerror(err), ms);
		if (!be->hold_said) {
			/* once per outage, as the health lines */
			lwsl_notice("%s: backend %s: holding requests up to "
				    "%u ms for it to come back\n",
				    UDSP_PROTOCOL_NAME, be->spec, ms);
			be->hold_said = 1;
		}
		/*
		 * lws's own timeout on an h1 client was set for the usual
		 * connect; keep it behind the hold (the relay's connect timer
		 * starts again at each try).
		 */
		secs = ms / 1000 + 2 * (r->vhd->conf.connect_ms / 1000) + 4;
		if (!r->h2 && r->udsp_to_until <
			      now + (lws_usec_t)secs * LWS_US_PER_SEC) {
			lws_set_timeout(r->cwsi, PENDING_TIMEOUT_HTTP_CONTENT,
					(int)secs);
			r->udsp_to_until = now + (lws_usec_t)secs *
							LWS_US_PER_SEC;
		}
	} else if (now >= r->hold_until) {
		udsp_info(r, "backend %s still down after the hold", be->spec);
		return 0;
	}

	wait = (lws_usec_t)r->hold_step * LWS_US_PER_MS;
	if (wait > r->hold_until - now)
		wait = r->hold_until - now;
	r->hold_step *= 2;
	if (r->hold_step > UDSP_HOLD_MAX_STEP_MS)
		r->hold_step = UDSP_HOLD_MAX_STEP_MS;

	udsp_req_set(r, UDSP_REQ_HELD, strerror(err));
	lws_dll2_add_tail(&r->wait, &be->held);
	lws_sul_schedule(r->vhd->cx, 0, &r->sul_hold, hold_cb, wait);

	return 1;
}

void
udsp_hold_cancel(struct udsp_relay *r)
{
	lws_sul_cancel(&r->sul_hold);
}
