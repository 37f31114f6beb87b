/* SPDX-License-Identifier: MIT
 *
 * The client's address, for X-Forwarded-For, the access log and the
 * status page's allow list: asked of the kernel per h1 request, and once
 * per h2 connection.
 */
#include "private.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

/*
 * lws_get_peer_simple() formats the address with a printf per byte, which
 * showed in per-request profiles; inet_ntop() is a tenth of that.
 */
static void
peer_fetch(struct lws *nwsi, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	const struct in6_addr *a6;
	const void *a;
	int fam;

	buf[0] = '\0';
	if (getpeername(lws_get_socket_fd(nwsi), (struct sockaddr *)&ss, &sl))
		return;
	switch (ss.ss_family) {
	case AF_INET:
		fam = AF_INET;
		a = &((const struct sockaddr_in *)&ss)->sin_addr;
		break;
	case AF_INET6:
		a6 = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
		/* dual-stack listeners see IPv4 clients as ::ffff:a.b.c.d */
		fam = IN6_IS_ADDR_V4MAPPED(a6) ? AF_INET : AF_INET6;
		a = fam == AF_INET ? (const void *)&a6->s6_addr[12] :
				     (const void *)a6;
		break;
	default:
		return;		/* a unix-socket listener: no address */
	}
	if (!inet_ntop(fam, a, buf, (socklen_t)len))
		buf[0] = '\0';
}

/*
 * The address of each h2 connection, asked once: every request is a new
 * stream on it, and a getpeername() per request was one of its system
 * calls (issue 14).  A fixed table of slots, four ways per set picked by
 * the connection's wsi, the least recently used one taken; the
 * connection's opaque user data points at its slot, which must still name
 * that wsi.  lws zeroes every new wsi (so its opaque user data starts
 * NULL) and sets that of a server connection for nobody (it moves it only
 * on client h2 connections, docs/lws-notes.md N52), so a connection that
 * reuses a closed one's memory starts without a slot, and one whose slot
 * another took asks again.  h1 asks every time: there the request's wsi is
 * the connection, whose opaque user data carries the pmo between
 * callbacks (protocol_lws_uds_proxy.c).
 */
#define UDSP_PEER_SETS	64
#define UDSP_PEER_WAYS	4

struct peer_slot {
	const struct lws	*nwsi;
	uint64_t		used;
	char			addr[48];
};

static struct peer_slot peer_slots[UDSP_PEER_SETS * UDSP_PEER_WAYS];
static uint64_t peer_tick;

static int
own_slot(const void *p)
{
	return p >= (const void *)peer_slots &&
	       p < (const void *)(peer_slots + LWS_ARRAY_SIZE(peer_slots));
}

static struct peer_slot *
peer_victim(const struct lws *nwsi)
{
	/* Fibonacci hashing: wsi addresses share their low bits */
	uint64_t h = ((uint64_t)(uintptr_t)nwsi >> 4) * 0x9e3779b97f4a7c15ull;
	struct peer_slot *set, *v;
	int k;

	set = &peer_slots[(h >> 58) % UDSP_PEER_SETS * UDSP_PEER_WAYS];
	v = set;

	for (k = 1; k < UDSP_PEER_WAYS; k++)
		if (set[k].used < v->used)
			v = &set[k];

	return v;
}

void
udsp_client_addr(struct lws *wsi, char *buf, size_t len)
{
	struct lws *nwsi = lws_get_network_wsi(wsi);
	struct peer_slot *s;
	void *o;

	if (nwsi == wsi) {
		peer_fetch(nwsi, buf, len);
		return;
	}
	o = lws_get_opaque_user_data(nwsi);
	if (o && !own_slot(o)) {
		peer_fetch(nwsi, buf, len);	/* not ours: leave it */
		return;
	}
	s = (struct peer_slot *)o;
	if (!s || s->nwsi != nwsi) {
		s = peer_victim(nwsi);
		peer_fetch(nwsi, s->addr, sizeof(s->addr));
		s->nwsi = nwsi;
		lws_set_opaque_user_data(nwsi, s);
	}
	s->used = ++peer_tick;
	lws_strncpy(buf, s->addr, len);
}
