/* SPDX-License-Identifier: MIT
 *
 * Several backends behind one mount: "backend" (pmo or pvo) may list
 * origins separated by commas.  Each member is an ordinary backend of the
 * vhost (udsp_backend_lookup(): its own pool, max-conns, held list and
 * status entry); a member listed by two mounts is the same backend.  The
 * group only chooses among them:
 *
 *  - a request goes to the member with the fewest outstanding requests
 *    (busy connections, connects under way, requests queued for max-conns
 *    or held), ties going round-robin;
 *  - a member that failed to connect (pool.c's udsp_pool_health(), which
 *    also sets down_until) or answered garbage is skipped until down-ms
 *    has passed; the first request after that tries it again, and its
 *    connect or its answer decides;
 *  - a request whose connect failed moves to another member that is not
 *    down, when nothing of it reached a backend (hold.c's rule);
 *  - when every member is down, requests still go to one of them, so that
 *    hold-ms holds them and the 503 comes only after the hold.  A held
 *    request's retries go round the members, and a later connect failure
 *    (a TCP member's refusal) is held too, which a single TCP backend's
 *    is not;
 *  - a connect that times out (connect-timeout-ms: a blackholed address,
 *    a TLS handshake that never ends) is a failure of the member as a
 *    refusal is: marked down, and the request moves on or is held;
 *  - a WebSocket moves on the same way while nothing of it was sent (its
 *    upgrade head goes only once the connection is up).
 *
 * Interface: udsp_group_lookup() at config and request start,
 * udsp_group_pick() for a new request, udsp_group_bad_answer() and
 * udsp_group_good_answer() on a response head (relay_res.c),
 * udsp_group_failover() where a connect failed at once (relay.c's
 * udsp_relay_connect_failed()) and udsp_group_connect_failed() where it
 * failed later (relay_res.c's udsp_relay_backend_closed()),
 * udsp_group_connect_timeout() where it timed out (relay.c's timer),
 * udsp_group_rehold() before a held request's next try (hold.c),
 * udsp_group_ws_open() for a WebSocket's connection and each retry of it
 * (ws_relay.c), udsp_group_size() and udsp_group_member() to look at the
 * members before a ws 101 (ws_early.c).  A request moves on through
 * udsp_relay_reconnect().  A single origin is a group of one, which picks
 * its member whatever its state, as before groups existed.
 *
 * A request that moves keeps the head built for its first member: the
 * members of a list are expected to serve the same paths.
 */
#include "private.h"
#include "strlist.h"

#include <errno.h>
#include <stdlib.h>

struct udsp_group {
	struct udsp_group	*next;		/* vhd->groups */
	char			*spec;		/* owned: as configured */
	unsigned int		n;
	unsigned int		rr;		/* next member for a tie */
	struct udsp_backend	*m[];		/* borrowed: vhd->backends */
};

struct udsp_group *
udsp_group_lookup(struct udsp_vhd *vhd, const char *spec)
{
	const char *cur = spec, *it;
	struct udsp_group *g;
	unsigned int n = 0;
	char one[1024];
	size_t len;

	for (g = vhd->groups; g; g = g->next)
		if (!strcmp(g->spec, spec))
			return g;

	while (udsp_list_next(&cur, &len))
		n++;
	if (!n)
		n = 1;	/* "": one member, which is bad (logged once) */
	g = calloc(1, sizeof(*g) + n * sizeof(g->m[0]));
	if (!g)
		return NULL;
	g->spec = strdup(spec);
	if (!g->spec) {
		free(g);
		return NULL;
	}

	cur = spec;
	while ((it = udsp_list_next(&cur, &len)) && g->n < n) {
		lws_snprintf(one, sizeof(one), "%.*s", (int)len, it);
		g->m[g->n] = udsp_backend_lookup(vhd, one);
		if (!g->m[g->n])
			goto oom;
		g->n++;
	}
	if (!g->n) {
		g->m[0] = udsp_backend_lookup(vhd, spec);
		if (!g->m[0])
			goto oom;
		g->n = 1;
	}

	g->next = vhd->groups;
	vhd->groups = g;

	return g;

oom:
	free(g->spec);
	free(g);
	return NULL;
}

void
udsp_group_destroy(struct udsp_vhd *vhd)
{
	struct udsp_group *g, *next;

	for (g = vhd->groups; g; g = next) {
		next = g->next;
		free(g->spec);
		free(g);
	}
	vhd->groups = NULL;
}

/* The members, for ws_early.c's look before a ws 101 */
unsigned int
udsp_group_size(const struct udsp_group *g)
{
	return g ? g->n : 0;
}

struct udsp_backend *
udsp_group_member(const struct udsp_group *g, unsigned int i)
{
	return g->m[i];
}

static unsigned int
load(const struct udsp_backend *be)
{
	return be->nconns - be->idle.count + be->waiting.count +
	       be->held.count;
}

static int
usable(const struct udsp_backend *be, lws_usec_t now)
{
	return !be->bad && (!be->down || now >= be->down_until);
}

/*
 * The usable member with the least load other than not, ties from g->rr
 * on; NULL if there is none.
 */
static struct udsp_backend *
choose(struct udsp_group *g, const struct udsp_backend *not)
{
	lws_usec_t now = lws_now_usecs();
	struct udsp_backend *best = NULL, *be;
	unsigned int i, k, bi = 0, bl = 0, l;

	for (k = 0; k < g->n; k++) {
		i = (g->rr + k) % g->n;
		be = g->m[i];
		if (be == not || !usable(be, now))
			continue;
		l = load(be);
		if (!best || l < bl) {
			best = be;
			bl = l;
			bi = i;
		}
	}
	if (best)
		g->rr = (bi + 1) % g->n;

	return best;
}

/* The next member after cur that is not bad, round the list */
static struct udsp_backend *
next_after(struct udsp_group *g, const struct udsp_backend *cur)
{
	unsigned int i, k;

	for (i = 0; i < g->n && g->m[i] != cur; i++)
		;
	for (k = 1; k <= g->n; k++)
		if (!g->m[(i + k) % g->n]->bad)
			return g->m[(i + k) % g->n];

	return g->m[0];
}

struct udsp_backend *
udsp_group_pick(struct udsp_group *g)
{
	struct udsp_backend *be;

	if (!g)
		return NULL;
	if (g->n == 1)
		return g->m[0];
	be = choose(g, NULL);
	if (be)
		return be;
	/* all down: one of them all the same, in turn (see the top) */
	be = g->m[g->rr % g->n];
	g->rr = (g->rr + 1) % g->n;
	if (be->bad)
		be = next_after(g, be);

	return be;
}

/* The request is counted on the member that gets it (status.c) */
static void
move(struct udsp_relay *r, struct udsp_backend *be)
{
	if (be == r->be)
		return;
	if (r->be->st.requests)
		r->be->st.requests--;
	udsp_stats_request(be);
	r->be = be;
}

/* Nothing of r reached a backend: hold.c's rule */
static int
movable(const struct udsp_relay *r)
{
	return r->grp && r->grp->n > 1 && !r->reqhead_sent && !r->body_sent &&
	       !udsp_res_started(r) && !udsp_relay_ended(r) && r->cwsi;
}

int
udsp_group_failover(struct udsp_relay *r)
{
	struct udsp_backend *be;

	/*
	 * Each member once at most: with down-ms 0 a member that just
	 * failed is usable again at once, and the connect that fails at
	 * once calls this again from within udsp_bconn_get().
	 */
	if (!movable(r) || r->moves >= r->grp->n - 1)
		return 0;
	be = choose(r->grp, r->be);
	if (!be)
		return 0;
	udsp_info(r, "backend %s failed, trying %s", r->be->spec, be->spec);
	move(r, be);
	r->moves++;

	return 1;
}

/*
 * A connect of r failed after the fact (TCP refusal, connect error, TLS):
 * another member that is up, else, with every member down, a hold as for
 * a unix socket's refusal (nothing of r was sent, so waiting is safe
 * whatever the reason).  1: r is taken care of.
 */
int
udsp_group_connect_failed(struct udsp_relay *r)
{
	if (udsp_group_failover(r)) {
		/* the next member has its own connect-timeout-ms */
		udsp_relay_reconnect(r, "failover");
		return 1;
	}

	return movable(r) && udsp_hold_try(r, ECONNREFUSED);
}

/*
 * be did not connect in time: skipped for down-ms, as after a refusal.
 * The connection given up on is counted in connect_failures when its
 * close comes (udsp_pool_health() from bconn.c, for one never
 * established); one that was up but never finished its TLS handshake is
 * counted here.
 */
static void
timed_out(struct udsp_vhd *vhd, struct udsp_backend *be, int counted)
{
	if (!counted)
		udsp_stats_connect_fail(be);
	if (!be->down)
		lwsl_warn("%s: backend %s unreachable: connect timed out "
			  "(%u ms)\n", UDSP_PROTOCOL_NAME, be->spec,
			  vhd->conf.connect_ms);
	be->down = 1;
	be->down_until = lws_now_usecs() +
			 (lws_usec_t)vhd->conf.down_ms * LWS_US_PER_MS;
}

/*
 * relay.c's connect timer ran out on r: in a group, its member is down
 * and r goes on as after a refusal (another member that is up, else the
 * hold, if any).  A request queued for max-conns has no connection of
 * its own yet and is not its member's failure: its 503 as before; so is
 * a single backend's.  1: r is taken care of.
 */
int
udsp_group_connect_timeout(struct udsp_relay *r)
{
	struct udsp_bconn *bc = r->bc;

	if (!bc || !movable(r))
		return 0;
	timed_out(r->vhd, r->be, !udsp_bconn_connected(bc));
	udsp_bconn_release(bc, 0);	/* unbinds r; closes it */
	udsp_info(r, "backend %s: connect timed out", r->be->spec);

	return udsp_group_connect_failed(r);
}

/*
 * A WebSocket's backend connection: to *be, or, when that cannot be had,
 * to the next member that is up, each at most once (*moves counts them
 * for the ws).  failed: the connection to *be already failed (1), or
 * timed out (2), so the next member comes first.  Returns NULL with why
 * filled when no member is left.  Nothing of the ws went anywhere yet:
 * its head is written once the connection is up (ws_relay.c).
 */
struct udsp_bconn *
udsp_group_ws_open(struct udsp_ws *ws, struct udsp_vhd *vhd,
		   struct udsp_group *g, struct udsp_backend **be,
		   unsigned int *moves, int failed, char *why, size_t whylen)
{
	struct udsp_backend *next;
	struct udsp_bconn *bc;

	if (failed == 2)
		timed_out(vhd, *be, 1);
	if (!failed) {
		bc = udsp_bconn_open_ws(ws, vhd, *be, why, whylen);
		if (bc)
			return bc;
	} else
		lws_snprintf(why, whylen, "%s", failed == 2 ?
			     "connect timed out" : "connect failed");

	while (g && g->n > 1 && *moves < g->n - 1) {
		next = choose(g, *be);
		if (!next)
			break;
		lwsl_info("%s: ws: backend %s: %s, trying %s\n", __func__,
			  (*be)->spec, why, next->spec);
		*be = next;
		(*moves)++;
		bc = udsp_bconn_open_ws(ws, vhd, *be, why, whylen);
		if (bc)
			return bc;
	}

	return NULL;
}

/*
 * r's member answered what is not HTTP: in a group it is passed over for
 * down-ms as after a failed connect (a single backend has nowhere else to
 * send requests, so nothing changes for it).  Not counted as a connect
 * failure in the metrics.
 */
void
udsp_group_bad_answer(struct udsp_relay *r)
{
	struct udsp_backend *be = r->be;

	if (!r->grp || r->grp->n < 2)
		return;
	if (!be->down)
		lwsl_warn("%s: backend %s answered garbage: skipped for %u ms\n",
			  UDSP_PROTOCOL_NAME, be->spec, r->vhd->conf.down_ms);
	be->down = 1;
	be->down_until = lws_now_usecs() +
			 (lws_usec_t)r->vhd->conf.down_ms * LWS_US_PER_MS;
}

/* ...and a good head from it (maybe on a pooled connection) ends that */
void
udsp_group_good_answer(struct udsp_relay *r)
{
	struct udsp_backend *be = r->be;

	if (!be->down || !r->grp || r->grp->n < 2)
		return;
	lwsl_notice("%s: backend %s is reachable again\n", UDSP_PROTOCOL_NAME,
		    be->spec);
	be->down = 0;
	be->hold_said = 0;
}

void
udsp_group_rehold(struct udsp_relay *r)
{
	struct udsp_backend *be;

	if (!movable(r))
		return;
	be = choose(r->grp, NULL);
	move(r, be ? be : next_after(r->grp, r->be));
}
