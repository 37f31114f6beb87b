/* SPDX-License-Identifier: MIT
 *
 * Counting and rendering of the live counters (stats.h).  Both renderings
 * go through one appender that counts what it could not store, so the
 * caller sizes its buffer with a first pass of length 0.
 */
#include "stats.h"
#include "strlist.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const uint64_t udsp_lat_bounds_us[UDSP_LAT_NBUCKETS] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000,
};

static const char * const px_name[UDSP_PX_N] = { "502", "503", "504",
						  "other" };

void
udsp_stats_count_response(struct udsp_stats *s, int status, int proxy_made)
{
	if (proxy_made) {
		s->proxy[status == 502 ? UDSP_PX_502 :
			 status == 503 ? UDSP_PX_503 :
			 status == 504 ? UDSP_PX_504 : UDSP_PX_OTHER]++;
		return;
	}
	s->resp[status >= 100 && status <= 599 ? status / 100 : 0]++;
}

void
udsp_stats_count_latency(struct udsp_stats *s, uint64_t usec)
{
	int i;

	for (i = 0; i < UDSP_LAT_NBUCKETS; i++)
		if (usec <= udsp_lat_bounds_us[i])
			break;
	s->lat[i]++;
	s->lat_count++;
	s->lat_sum_us += usec;
}

struct out {
	char	*b;
	size_t	cap, len;	/* len may pass cap: what it would need */
};

static void
put(struct out *o, const char *fmt, ...)
{
	size_t room = o->len < o->cap ? o->cap - o->len : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(room ? o->b + o->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n;
}

/*
 * A string as a JSON string body or a Prometheus label value: both escape
 * '\\', '"' and newlines that way; JSON also needs the other controls.
 */
static void
put_esc(struct out *o, const char *s, int json)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\\' || c == '"')
			put(o, "\\%c", c);
		else if (c == '\n')
			put(o, "\\n");
		else if (json && c < 0x20)
			put(o, "\\u%04x", c);
		else
			put(o, "%c", c);
	}
}

static size_t
finish(struct out *o)
{
	if (o->cap)
		o->b[o->len < o->cap ? o->len : o->cap - 1] = '\0';

	return o->len;
}

size_t
udsp_stats_render_json(char *buf, size_t len, const struct udsp_stats_proc *p,
		       const struct udsp_stats_view *v, int n)
{
	struct out o = { buf, len, 0 };
	const struct udsp_stats *s;
	uint64_t cum;
	int i, k;

	put(&o, "{\"process\":{\"pid\":%ld,\"uptime_seconds\":%.3f,"
		"\"worker\":%d,\"workers\":%d,\"covers\":\"%s\"},"
		"\"latency_buckets_seconds\":[", p->pid, p->uptime_s,
		p->worker, p->workers,
		p->workers > 1 ? "this worker process only" :
				   "this process");
	for (k = 0; k < UDSP_LAT_NBUCKETS; k++)
		put(&o, "%s%g", k ? "," : "",
		    (double)udsp_lat_bounds_us[k] / 1e6);
	put(&o, "],\"backends\":[");

	for (i = 0; i < n; i++) {
		s = v[i].st;
		put(&o, "%s{\"vhost\":\"", i ? "," : "");
		put_esc(&o, v[i].vhost, 1);
		put(&o, "\",\"port\":%d,\"backend\":\"", v[i].port);
		put_esc(&o, v[i].backend, 1);
		put(&o, "\",\"up\":%s,\"requests\":%llu,\"responses\":{",
		    v[i].up ? "true" : "false",
		    (unsigned long long)s->requests);
		for (k = 1; k <= 5; k++)
			put(&o, "\"%dxx\":%llu,", k,
			    (unsigned long long)s->resp[k]);
		put(&o, "\"other\":%llu},\"proxy_responses\":{",
		    (unsigned long long)s->resp[0]);
		for (k = 0; k < UDSP_PX_N; k++)
			put(&o, "%s\"%s\":%llu", k ? "," : "", px_name[k],
			    (unsigned long long)s->proxy[k]);
		put(&o, "},\"connect_failures\":%llu,\"held_now\":%lld,"
			"\"held_total\":%llu,\"bytes_to_backend\":%llu,"
			"\"bytes_from_backend\":%llu,\"connections_open\":%u,"
			"\"connections_idle\":%u,\"head_latency\":{"
			"\"count\":%llu,\"sum_seconds\":%.6f,\"cumulative\":[",
		    (unsigned long long)s->connect_fail,
		    (long long)s->held_now, (unsigned long long)s->held_total,
		    (unsigned long long)s->bytes_to,
		    (unsigned long long)s->bytes_from, v[i].conns_open,
		    v[i].conns_idle, (unsigned long long)s->lat_count,
		    (double)s->lat_sum_us / 1e6);
		for (cum = 0, k = 0; k < UDSP_LAT_NBUCKETS; k++) {
			cum += s->lat[k];
			put(&o, "%s%llu", k ? "," : "", (unsigned long long)cum);
		}
		put(&o, "]}}");
	}
	put(&o, "]}\n");

	return finish(&o);
}

#define PFX "lws_uds_proxy_"

static void
meta(struct out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP " PFX "%s %s\n# TYPE " PFX "%s %s\n", name, help,
	    name, type);
}

static void
labels(struct out *o, const struct udsp_stats_view *v)
{
	/* vhost names need not be unique: the port tells them apart */
	put(o, "vhost=\"");
	put_esc(o, v->vhost, 0);
	put(o, "\",port=\"%d\",backend=\"", v->port);
	put_esc(o, v->backend, 0);
	put(o, "\"");
}

/* one sample line per backend of a plain counter or gauge */
#define PER_BE(name, fmt, expr) do { \
		for (i = 0; i < n; i++) { \
			s = v[i].st; \
			put(&o, PFX name "{"); \
			labels(&o, &v[i]); \
			put(&o, "} " fmt "\n", expr); \
		} \
	} while (0)

size_t
udsp_stats_render_prom(char *buf, size_t len, const struct udsp_stats_proc *p,
		       const struct udsp_stats_view *v, int n)
{
	struct out o = { buf, len, 0 };
	const struct udsp_stats *s;
	uint64_t cum;
	int i, k;

	meta(&o, "uptime_seconds", "gauge",
	     "Seconds since this process started.");
	put(&o, PFX "uptime_seconds %.3f\n", p->uptime_s);
	meta(&o, "workers", "gauge", "Worker processes (count-processes); "
	     "each answers for itself, so sum over them.");
	put(&o, PFX "workers %d\n", p->workers);
	meta(&o, "process_info", "gauge",
	     "The process that gave this answer.");
	put(&o, PFX "process_info{pid=\"%ld\",worker=\"%d\"} 1\n", p->pid,
	    p->worker);

	meta(&o, "backend_up", "gauge",
	     "1 unless the latest connect to the backend failed.");
	PER_BE("backend_up", "%d", v[i].up ? 1 : 0);
	meta(&o, "backend_requests_total", "counter",
	     "Requests proxied to the backend.");
	PER_BE("backend_requests_total", "%llu",
	       (unsigned long long)s->requests);

	meta(&o, "backend_responses_total", "counter",
	     "Responses from the backend, by status class.");
	for (i = 0; i < n; i++)
		for (k = 0; k <= 5; k++) {
			s = v[i].st;
			put(&o, PFX "backend_responses_total{");
			labels(&o, &v[i]);
			if (k)
				put(&o, ",class=\"%dxx\"} ", k);
			else
				put(&o, ",class=\"other\"} ");
			put(&o, "%llu\n", (unsigned long long)s->resp[k]);
		}

	meta(&o, "proxy_responses_total", "counter",
	     "Error responses the proxy made itself, by status code.");
	for (i = 0; i < n; i++)
		for (k = 0; k < UDSP_PX_N; k++) {
			s = v[i].st;
			put(&o, PFX "proxy_responses_total{");
			labels(&o, &v[i]);
			put(&o, ",code=\"%s\"} %llu\n", px_name[k],
			    (unsigned long long)s->proxy[k]);
		}

	meta(&o, "backend_connect_failures_total", "counter",
	     "Failed connects (and TLS handshakes) to the backend.");
	PER_BE("backend_connect_failures_total", "%llu",
	       (unsigned long long)s->connect_fail);
	meta(&o, "backend_held_requests", "gauge",
	     "Requests held now, waiting for the backend.");
	PER_BE("backend_held_requests", "%lld", (long long)s->held_now);
	meta(&o, "backend_held_requests_total", "counter",
	     "Requests that were held, waiting for the backend.");
	PER_BE("backend_held_requests_total", "%llu",
	       (unsigned long long)s->held_total);
	meta(&o, "backend_sent_bytes_total", "counter",
	     "Bytes sent to the backend (request heads and bodies).");
	PER_BE("backend_sent_bytes_total", "%llu",
	       (unsigned long long)s->bytes_to);
	meta(&o, "backend_received_bytes_total", "counter",
	     "Bytes received from the backend (response heads and bodies).");
	PER_BE("backend_received_bytes_total", "%llu",
	       (unsigned long long)s->bytes_from);
	meta(&o, "backend_connections", "gauge",
	     "Open connections to the backend, busy and idle.");
	PER_BE("backend_connections", "%u", v[i].conns_open);
	meta(&o, "backend_idle_connections", "gauge",
	     "Idle pooled connections to the backend.");
	PER_BE("backend_idle_connections", "%u", v[i].conns_idle);

	meta(&o, "backend_head_latency_seconds", "histogram",
	     "Time from the request to the backend's response head.");
	for (i = 0; i < n; i++) {
		s = v[i].st;
		for (cum = 0, k = 0; k <= UDSP_LAT_NBUCKETS; k++) {
			cum += s->lat[k];
			put(&o, PFX "backend_head_latency_seconds_bucket{");
			labels(&o, &v[i]);
			if (k < UDSP_LAT_NBUCKETS)
				put(&o, ",le=\"%g\"} %llu\n",
				    (double)udsp_lat_bounds_us[k] / 1e6,
				    (unsigned long long)cum);
			else
				put(&o, ",le=\"+Inf\"} %llu\n",
				    (unsigned long long)cum);
		}
		put(&o, PFX "backend_head_latency_seconds_sum{");
		labels(&o, &v[i]);
		put(&o, "} %.6f\n", (double)s->lat_sum_us / 1e6);
		put(&o, PFX "backend_head_latency_seconds_count{");
		labels(&o, &v[i]);
		put(&o, "} %llu\n", (unsigned long long)s->lat_count);
	}

	return finish(&o);
}

static int
item_ok(const char *it, size_t len)
{
	char tmp[64], *slash;
	unsigned char a[16];
	int bits = 0, max, v6;
	size_t i;

	if (len >= sizeof(tmp))
		return 0;
	memcpy(tmp, it, len);
	tmp[len] = '\0';
	if (!strcmp(tmp, "unix"))
		return 1;
	slash = strchr(tmp, '/');
	if (slash)
		*slash++ = '\0';
	v6 = inet_pton(AF_INET6, tmp, a) == 1;
	if (!v6 && inet_pton(AF_INET, tmp, a) != 1)
		return 0;
	if (!slash)
		return 1;
	max = v6 ? 128 : 32;
	if (!*slash || strlen(slash) > 3)
		return 0;
	for (i = 0; slash[i]; i++) {
		if (slash[i] < '0' || slash[i] > '9')
			return 0;
		bits = bits * 10 + (slash[i] - '0');
	}

	return bits <= max;
}

int
udsp_list_has_unix(const char *list)
{
	const char *it, *c = list;
	size_t n;

	while ((it = udsp_list_next(&c, &n)))
		if (n == 4 && !strncmp(it, "unix", 4))
			return 1;

	return 0;
}

int
udsp_addr_list_check(const char *list, const char **bad, size_t *badlen)
{
	const char *it, *c = list;
	size_t n;
	int any = 0;

	if (bad)
		*bad = list ? list : "";
	if (badlen)
		*badlen = 0;
	while ((it = udsp_list_next(&c, &n))) {
		any = 1;
		if (!item_ok(it, n)) {
			if (bad)
				*bad = it;
			if (badlen)
				*badlen = n;
			return -1;
		}
	}

	return any ? 0 : -1;
}
