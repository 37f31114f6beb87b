/* SPDX-License-Identifier: MIT
 *
 * Live counters of the proxy, per backend, and their two renderings for a
 * status mount: JSON and the Prometheus text exposition format.  Pure: no
 * lws, so the counting and the rendering are unit-tested (test-stats.c).
 * The hooks that the relay calls where events happen (udsp_stats_*() on a
 * struct udsp_backend) are in status.c, with the answer itself.
 */
#ifndef UDSP_STATS_H
#define UDSP_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Fixed latency buckets (upper bounds, microseconds), +Inf implied */
#define UDSP_LAT_NBUCKETS 13
extern const uint64_t udsp_lat_bounds_us[UDSP_LAT_NBUCKETS];

/* proxy-made responses are counted by these codes, others as "other" */
enum { UDSP_PX_502, UDSP_PX_503, UDSP_PX_504, UDSP_PX_OTHER, UDSP_PX_N };

struct udsp_stats {
	uint64_t	requests;	/* relays started for this backend */
	uint64_t	resp[6];	/* backend's own, by class: [1]..[5];
					 * [0]: outside 100..599 */
	uint64_t	proxy[UDSP_PX_N]; /* made by the proxy */
	uint64_t	connect_fail;
	int64_t		held_now;	/* gauge */
	uint64_t	held_total;
	uint64_t	bytes_to;	/* to the backend (request) */
	uint64_t	bytes_from;	/* from the backend (response) */
	uint64_t	lat[UDSP_LAT_NBUCKETS + 1]; /* not cumulative; last:
						     * above every bound */
	uint64_t	lat_count;
	uint64_t	lat_sum_us;
};

void
udsp_stats_count_response(struct udsp_stats *s, int status, int proxy_made);
void
udsp_stats_count_latency(struct udsp_stats *s, uint64_t usec);

/* One backend as the renderers see it */
struct udsp_stats_view {
	const char		*vhost;
	int			port;		/* the vhost's listen port */
	const char		*backend;	/* its origin string */
	const struct udsp_stats	*st;
	unsigned int		conns_open;	/* busy + idle */
	unsigned int		conns_idle;
	int			up;
};

struct udsp_stats_proc {
	long		pid;
	double		uptime_s;
	int		worker;		/* 0-based; 0 without workers */
	int		workers;	/* count-processes, 1: no workers */
};

/*
 * Render into buf (at most len bytes, always NUL-terminated if len > 0).
 * Returns the length the whole text needs, without the NUL, like
 * snprintf(): call with len 0 to size a buffer.
 */
size_t
udsp_stats_render_json(char *buf, size_t len, const struct udsp_stats_proc *p,
		       const struct udsp_stats_view *v, int n);
size_t
udsp_stats_render_prom(char *buf, size_t len, const struct udsp_stats_proc *p,
		       const struct udsp_stats_view *v, int n);

/* Does the list have the item "unix": clients of a unix-socket listener */
int
udsp_list_has_unix(const char *list);

/*
 * Check a status-allow list (addresses and CIDR prefixes, as
 * udsp_addr_in_list() in headers.h matches them, and "unix").  0: every
 * item is one; -1: not, or no item at all; *bad (when given) is the
 * offending item, *badlen its length.
 */
int
udsp_addr_list_check(const char *list, const char **bad, size_t *badlen);

#endif
