/* SPDX-License-Identifier: MIT
 *
 * The status mount's counters and renderings (plugin/stats.c): response
 * classes, latency buckets, the exact JSON and Prometheus text for a known
 * state, label escaping, truncation and sizing, and status-allow lists.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "t.h"

#define MAIN \
	"vhost=\"main\",port=\"80\",backend=\"http://+/run/a.sock:/\""

static int
has(const char *hay, const char *needle)
{
	if (strstr(hay, needle))
		return 1;
	fprintf(stderr, "missing: %s\n", needle);
	return 0;
}

int
main(void)
{
	static const char *lists_ok[] = {
		"127.0.0.1", "127.0.0.1, ::1", "10.0.0.0/8", "::/0",
		"0.0.0.0/0 ::ffff:127.0.0.1", "fe80::/10,192.168.1.1/32",
		"unix", "127.0.0.1 unix",
	};
	static const char *lists_bad[] = {
		"", " , ", "localhost", "10.0.0.0/33", "::1/129", "10.0.0.0/",
		"10.0.0.0/x", "1.2.3", "127.0.0.1, nope", "10.0.0.0/0008",
	};
	struct udsp_stats s;
	struct udsp_stats_proc p = { 4242, 12.5, 1, 3 };
	struct udsp_stats_view v[2] = {
		{ "main", 80, "http://+/run/a.sock:/", &s, 3, 2, 1 },
		{ "o\"t\\h\ner", 0, "http://+/run/b.sock:/", &s, 0, 0, 0 },
	};
	char *buf, small[64];
	const char *bad;
	size_t n, m, blen;
	unsigned int i;

	memset(&s, 0, sizeof(s));
	s.requests = 7;
	udsp_stats_count_response(&s, 200, 0);
	udsp_stats_count_response(&s, 204, 0);
	udsp_stats_count_response(&s, 404, 0);
	udsp_stats_count_response(&s, 101, 0);
	udsp_stats_count_response(&s, 700, 0);
	udsp_stats_count_response(&s, 503, 1);
	udsp_stats_count_response(&s, 502, 1);
	udsp_stats_count_response(&s, 504, 1);
	udsp_stats_count_response(&s, 413, 1);
	CHECK(s.resp[1] == 1 && s.resp[2] == 2 && s.resp[4] == 1 &&
	      s.resp[5] == 0 && s.resp[0] == 1);
	CHECK(s.proxy[UDSP_PX_502] == 1 && s.proxy[UDSP_PX_503] == 1 &&
	      s.proxy[UDSP_PX_504] == 1 && s.proxy[UDSP_PX_OTHER] == 1);

	udsp_stats_count_latency(&s, 0);		/* <= 1ms */
	udsp_stats_count_latency(&s, 1000);		/* <= 1ms, edge */
	udsp_stats_count_latency(&s, 1001);		/* <= 2.5ms */
	udsp_stats_count_latency(&s, 20000000);		/* +Inf */
	CHECK(s.lat[0] == 2 && s.lat[1] == 1 && s.lat[UDSP_LAT_NBUCKETS] == 1);
	CHECK(s.lat_count == 4 && s.lat_sum_us == 20002001);

	/* sizing pass, then the real one; a short buffer is cut, terminated */
	n = udsp_stats_render_json(NULL, 0, &p, v, 2);
	buf = malloc(n + 1);
	CHECK(buf && udsp_stats_render_json(buf, n + 1, &p, v, 2) == n);
	CHECK(strlen(buf) == n);
	CHECK(udsp_stats_render_json(small, sizeof(small), &p, v, 2) == n);
	CHECK(strlen(small) == sizeof(small) - 1);
	CHECK(has(buf, "{\"process\":{\"pid\":4242,\"uptime_seconds\":12.500,"
		  "\"worker\":1,\"workers\":3,\"covers\":\"this worker "
		  "process only\"},\"latency_buckets_seconds\":[0.001,0.0025,"));
	CHECK(has(buf, ",5,10],\"backends\":[{\"vhost\":\"main\",\"port\":80,"
		  "\"backend\":\"http://+/run/a.sock:/\",\"up\":true,"
		  "\"requests\":7,\"responses\":{\"1xx\":1,\"2xx\":2,"
		  "\"3xx\":0,\"4xx\":1,\"5xx\":0,\"other\":1},"
		  "\"proxy_responses\":{\"502\":1,\"503\":1,\"504\":1,"
		  "\"other\":1},\"connect_failures\":0,"));
	CHECK(has(buf, "\"connections_open\":3,\"connections_idle\":2,"
		  "\"head_latency\":{\"count\":4,\"sum_seconds\":20.002001,"
		  "\"cumulative\":[2,3,3,3,3,3,3,3,3,3,3,3,3]}}"));
	CHECK(has(buf, "{\"vhost\":\"o\\\"t\\\\h\\ner\""));
	CHECK(has(buf, "\"up\":false"));
	free(buf);

	n = udsp_stats_render_prom(NULL, 0, &p, v, 2);
	buf = malloc(n + 1);
	CHECK(buf && udsp_stats_render_prom(buf, n + 1, &p, v, 2) == n);
	CHECK(has(buf, "# HELP lws_uds_proxy_uptime_seconds "));
	CHECK(has(buf, "# TYPE lws_uds_proxy_uptime_seconds gauge\n"
		  "lws_uds_proxy_uptime_seconds 12.500\n"));
	CHECK(has(buf, "\nlws_uds_proxy_workers 3\n"));
	CHECK(has(buf, "lws_uds_proxy_process_info{pid=\"4242\","
		  "worker=\"1\"} 1\n"));
	CHECK(has(buf, "# TYPE lws_uds_proxy_backend_requests_total counter\n"
		  "lws_uds_proxy_backend_requests_total{" MAIN "} 7\n"));
	CHECK(has(buf, "lws_uds_proxy_backend_responses_total{" MAIN
		  ",class=\"2xx\"} 2\n"));
	CHECK(has(buf, "lws_uds_proxy_proxy_responses_total{" MAIN
		  ",code=\"503\"} 1\n"));
	CHECK(has(buf, "# TYPE lws_uds_proxy_backend_head_latency_seconds "
		  "histogram\n"));
	CHECK(has(buf, "_bucket{" MAIN ",le=\"0.001\"} 2\n"));
	CHECK(has(buf, "_bucket{" MAIN ",le=\"10\"} 3\n"));
	CHECK(has(buf, "_bucket{" MAIN ",le=\"+Inf\"} 4\n"));
	CHECK(has(buf, "lws_uds_proxy_backend_head_latency_seconds_sum{" MAIN
		  "} 20.002001\n"));
	CHECK(has(buf, "lws_uds_proxy_backend_head_latency_seconds_count{"
		  MAIN "} 4\n"));
	CHECK(has(buf, "lws_uds_proxy_backend_up{vhost=\"o\\\"t\\\\h\\ner\","
		  "port=\"0\",backend=\"http://+/run/b.sock:/\"} 0\n"));
	CHECK(buf[n - 1] == '\n');
	free(buf);

	/* no backends yet: still well formed */
	m = udsp_stats_render_json(small, sizeof(small), &p, v, 0);
	CHECK(m >= sizeof(small));
	p.workers = 1;
	buf = malloc(m + 64);
	udsp_stats_render_json(buf, m + 64, &p, v, 0);
	CHECK(has(buf, "\"covers\":\"this process\""));
	CHECK(has(buf, "],\"backends\":[]}\n"));
	free(buf);

	for (i = 0; i < sizeof(lists_ok) / sizeof(lists_ok[0]); i++)
		CHECK(!udsp_addr_list_check(lists_ok[i], NULL, NULL));
	for (i = 0; i < sizeof(lists_bad) / sizeof(lists_bad[0]); i++)
		CHECK(udsp_addr_list_check(lists_bad[i], NULL, NULL) == -1);
	CHECK(udsp_list_has_unix("::1, unix") && !udsp_list_has_unix("::1") &&
	      !udsp_list_has_unix("unixx") && !udsp_list_has_unix(NULL));
	CHECK(udsp_addr_list_check("::1, nope 10.0.0.1", &bad, &blen) == -1 &&
	      blen == 4 && !strncmp(bad, "nope", 4));

	return T_END();
}
