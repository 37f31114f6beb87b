/* SPDX-License-Identifier: MIT
 *
 * A backend's connections taken together: the pool of idle keep-alive
 * connections (oldest first, expired by one timer per backend), the queue
 * of requests waiting under max-conns, and the backend's health as the
 * connects to it tell it.  One connection is bconn.c's.
 */
#include "private.h"

#include <errno.h>
#include <stdlib.h>

/*
 * r waits no more, whatever for: off its backend's max-conns queue or
 * held list (one wait link serves both), and no hold retry comes.  Every
 * failure and free of a relay runs this, so neither list keeps a relay
 * that is gone.
 */
void
udsp_pool_unqueue(struct udsp_relay *r)
{
	if (!lws_dll2_is_detached(&r->wait))
		lws_dll2_remove(&r->wait);
	udsp_hold_cancel(r);
}

/*
 * A connection slot (or an idle connection) became free: hand it to the
 * oldest request waiting under max-conns.
 */
void
udsp_pool_kick(struct udsp_backend *be)
{
	struct udsp_relay *r;

	if (!be->waiting.head)
		return;
	r = lws_container_of(be->waiting.head, struct udsp_relay, wait);
	lws_dll2_remove(&r->wait);
	udsp_bconn_get(r);
}

void
udsp_pool_health(struct udsp_backend *be, int ok, const char *why)
{
	if (!ok)
		udsp_stats_connect_fail(be);
	/* one line per transition: an outage must not flood the log */
	if (ok && be->down) {
		lwsl_notice("%s: backend %s is reachable again\n",
			    UDSP_PROTOCOL_NAME, be->spec);
		be->down = 0;
		be->hold_said = 0;
	} else if (!ok && !be->down) {
		lwsl_warn("%s: backend %s unreachable: %s\n",
			  UDSP_PROTOCOL_NAME, be->spec, why);
		be->down = 1;
	}
	if (!ok)
		/* group.c passes it over until then (each failure) */
		be->down_until = lws_now_usecs() +
			(lws_usec_t)be->vhd->conf.down_ms * LWS_US_PER_MS;
}

/*
 * Out of file descriptors (or socket memory) is this process's trouble,
 * not the backend's: it does not mark the backend down, and it is logged
 * when it starts and when a connect works again, not per request (lwsws
 * has no rate limit on its log).  Descriptors are per process, so this
 * is too.
 */
static int fds_short;
static unsigned long fds_short_503s;
static lws_usec_t fds_short_last;	/* the latest such failure */

/* A connect that failed at once with err: this process's own shortage? */
int
udsp_pool_local_err(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS ||
	       err == ENOMEM;
}

/* ...then it is counted, and logged when it starts */
void
udsp_pool_fds_short(const char *why)
{
	if (!fds_short) {
		lwsl_warn("%s: cannot connect to backends: %s; answering 503 "
			  "until descriptors free up\n", UDSP_PROTOCOL_NAME,
			  why);
		fds_short = 1;
		fds_short_503s = 0;
	}
	fds_short_503s++;
	fds_short_last = lws_now_usecs();
}

/* A connect got going: the shortage, if any, may be over */
void
udsp_pool_fds_ok(void)
{
	/* a connect that slips in between failures does not end it */
	if (!fds_short || lws_now_usecs() - fds_short_last < LWS_US_PER_SEC)
		return;
	lwsl_notice("%s: backend connections possible again (%lu request%s "
		    "answered 503 meanwhile)\n", UDSP_PROTOCOL_NAME,
		    fds_short_503s, fds_short_503s == 1 ? "" : "s");
	fds_short = 0;
}

/*
 * Idle pooled connections expire after pool-idle-timeout-ms.  The pool is
 * oldest first, so one timer per backend, armed for the oldest, does it:
 * a per-connection lws timeout cost a sorted insert in lws on every
 * release, which showed in per-request profiles.
 */
static void
pool_sweep(lws_sorted_usec_list_t *sul);

static void
pool_sweep_at(struct udsp_backend *be, lws_usec_t since)
{
	lws_usec_t at = since +
		(lws_usec_t)be->vhd->conf.pool_idle_ms * LWS_US_PER_MS,
		   now = lws_now_usecs();

	lws_sul_schedule(be->vhd->cx, 0, &be->sul_idle, pool_sweep,
			 at > now ? at - now : 1);
}

/* An idle pooled connection out of the pool, closed as any unwanted one */
static void
pool_close(struct udsp_bconn *bc)
{
	lws_dll2_remove(&bc->list);
	udsp_bconn_release(bc, 0);
}

static void
pool_sweep(lws_sorted_usec_list_t *sul)
{
	struct udsp_backend *be = lws_container_of(sul, struct udsp_backend,
						   sul_idle);
	lws_usec_t now = lws_now_usecs(),
		   idle = (lws_usec_t)be->vhd->conf.pool_idle_ms * LWS_US_PER_MS;
	struct udsp_bconn *bc;

	while (be->idle.head) {
		bc = lws_container_of(be->idle.head, struct udsp_bconn, list);
		if (bc->idle_since + idle > now) {
			pool_sweep_at(be, bc->idle_since);
			return;
		}
		pool_close(bc);
	}
}

/*
 * An idle pooled connection for r, out of the pool, or NULL.  Not for the
 * retry after a pooled one failed: that one gets a fresh connection.
 */
struct udsp_bconn *
udsp_pool_take(struct udsp_relay *r)
{
	struct udsp_bconn *bc;

	if (r->retried || !r->be->idle.head)
		return NULL;
	bc = lws_container_of(r->be->idle.head, struct udsp_bconn, list);
	lws_dll2_remove(&bc->list);

	return bc;
}

/*
 * At max-conns r waits for a slot (the connect timer turns a long wait
 * into a 503): 1 if it was queued.
 */
int
udsp_pool_wait(struct udsp_relay *r)
{
	struct udsp_backend *be = r->be;

	if (!r->vhd->conf.max_conns || be->nconns < r->vhd->conf.max_conns)
		return 0;
	lws_dll2_add_tail(&r->wait, &be->waiting);

	return 1;
}

/* Keep bc, which the relay is done with, for the next request: 1 if kept */
int
udsp_pool_put(struct udsp_bconn *bc)
{
	struct udsp_backend *be = bc->be;

	if (!bc->wsi || bc->dead || bc->vhd->draining ||
	    be->idle.count >= bc->vhd->conf.pool_max_idle)
		return 0;
	/* an idle conn must read, to notice the backend closing */
	udsp_bconn_rx_flow(bc, 1);
	bc->idle_since = lws_now_usecs();
	lws_dll2_add_tail(&bc->list, &be->idle);
	if (lws_dll2_is_detached(&be->sul_idle.list))
		pool_sweep_at(be, bc->idle_since);
	udsp_pool_kick(be);

	return 1;
}

static int
free_idle(struct lws_dll2 *d, void *user)
{
	struct udsp_bconn *bc = lws_container_of(d, struct udsp_bconn, list);

	lws_dll2_remove(d);
	if (bc->wsi)
		/* lws closes the wsi itself; make its RAW_CLOSE a no-op */
		lws_set_opaque_user_data(bc->wsi, NULL);
	if (bc->ssl)
		SSL_free(bc->ssl);
	bc->be->nconns--;
	free(bc);

	return 0;
}

/*
 * The process is draining (a reload): idle connections would keep it
 * alive until pool-idle-timeout-ms, so close them now, and pool no more.
 */
void
udsp_pool_drain(struct udsp_vhd *vhd)
{
	struct udsp_backend *be;
	struct udsp_bconn *bc;

	vhd->draining = 1;
	for (be = vhd->backends; be; be = be->next) {
		lws_sul_cancel(&be->sul_idle);
		while (be->idle.head) {
			bc = lws_container_of(be->idle.head, struct udsp_bconn,
					      list);
			pool_close(bc);
		}
	}
}

void
udsp_pool_destroy(struct udsp_vhd *vhd)
{
	struct udsp_backend *be;

	for (be = vhd->backends; be; be = be->next) {
		lws_sul_cancel(&be->sul_idle);
		lws_dll2_foreach_safe(&be->idle, NULL, free_idle);
	}
}
