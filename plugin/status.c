/* SPDX-License-Identifier: MIT
 *
 * The status mount: a callback mount whose pmo has "status": "json" or
 * "prometheus" answers with the live counters (stats.h) of every backend of
 * every vhost in this process, to the addresses in its "status-allow"
 * (default loopback) and 403 to the rest.  Also the one-line hooks the
 * relay calls where the counted events happen.
 *
 * The counters live in each process's plugin state: with count-processes
 * above 1 every worker counts and answers for itself (the answer says which
 * worker it is), and a scraper sums over the workers' answers.
 */
#include "private.h"
#include "headers.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define STATUS_ALLOW_DEFAULT "127.0.0.1, ::1"

/* A status mount's answer, on the client's pss */
struct udsp_status_ans {
	char		*body;		/* owned */
	size_t		len, off;
	const char	*ctype;
	int		status;
	unsigned int	head_sent:1;
	unsigned int	head_req:1;	/* HEAD: no body */
	unsigned int	h2:1;
};

/* every vhost's plugin state in this process, for the answer */
static struct udsp_vhd *vhds[64];
static int nvhds;

void
udsp_status_vhd_add(struct udsp_vhd *vhd)
{
	if (nvhds < (int)LWS_ARRAY_SIZE(vhds))
		vhds[nvhds++] = vhd;
	else
		lwsl_warn("%s: vhost '%s' is left out of status answers "
			  "(more than %d vhosts)\n", UDSP_PROTOCOL_NAME,
			  lws_get_vhost_name(vhd->vh),
			  (int)LWS_ARRAY_SIZE(vhds));
}

void
udsp_status_vhd_remove(struct udsp_vhd *vhd)
{
	int n;

	for (n = 0; n < nvhds; n++)
		if (vhds[n] == vhd) {
			vhds[n] = vhds[--nvhds];
			return;
		}
}

/* ---- hooks ---- */

void
udsp_stats_request(struct udsp_backend *be)
{
	if (be)
		be->st.requests++;
}

void
udsp_stats_response(struct udsp_backend *be, int status, int proxy_made)
{
	if (be)
		udsp_stats_count_response(&be->st, status, proxy_made);
}

void
udsp_stats_connect_fail(struct udsp_backend *be)
{
	if (be)
		be->st.connect_fail++;
}

void
udsp_stats_bytes(struct udsp_backend *be, size_t from_be, size_t to_be)
{
	if (!be)
		return;
	be->st.bytes_from += from_be;
	be->st.bytes_to += to_be;
}

void
udsp_stats_head_latency(struct udsp_backend *be, lws_usec_t usec)
{
	if (be)
		udsp_stats_count_latency(&be->st, usec < 0 ? 0 :
					 (uint64_t)usec);
}

/* ---- the answer ---- */

/* This process's age, from its start time in /proc (a worker's own). */
static double
proc_uptime(void)
{
	char b[1024], *p;
	unsigned long long start = 0;
	struct timespec ts;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f;
	int n;

	f = fopen("/proc/self/stat", "r");
	if (!f)
		return 0;
	n = (int)fread(b, 1, sizeof(b) - 1, f);
	fclose(f);
	if (n <= 0)
		return 0;
	b[n] = '\0';
	/* field 22, counted after the ")" that ends field 2 */
	p = strrchr(b, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
			 "%*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
			 &start) != 1 || hz <= 0 ||
	    clock_gettime(CLOCK_BOOTTIME, &ts))
		return 0;

	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 -
	       (double)start / (double)hz;
}

/* lws-uds-proxyd tells its workers which one they are; lwsws has none */
static void
proc_info(struct udsp_stats_proc *p)
{
	const char *e = getenv("LWS_UDS_PROXY_WORKER");
	int w, c;

	p->pid = (long)getpid();
	p->uptime_s = proc_uptime();
	p->worker = 0;
	p->workers = 1;
	if (e && sscanf(e, "%d/%d", &w, &c) == 2 && w >= 0 && c > w) {
		p->worker = w;
		p->workers = c;
	}
}

static size_t
render(int prom, char *buf, size_t len)
{
	struct udsp_stats_view *v;
	struct udsp_stats_proc p;
	struct udsp_backend *be;
	int n = 0, i;
	size_t r;

	for (i = 0; i < nvhds; i++)
		for (be = vhds[i]->backends; be; be = be->next)
			n++;
	v = calloc((size_t)n + 1, sizeof(*v));
	if (!v)
		return 0;
	n = 0;
	for (i = 0; i < nvhds; i++)
		for (be = vhds[i]->backends; be; be = be->next) {
			v[n].vhost = lws_get_vhost_name(vhds[i]->vh);
			v[n].port = lws_get_vhost_port(vhds[i]->vh);
			v[n].backend = be->spec;
			/* waiting between connect tries now (hold.c) */
			be->st.held_now = (int64_t)be->held.count;
			v[n].st = &be->st;
			v[n].conns_open = be->nconns;
			v[n].conns_idle = (unsigned int)be->idle.count;
			v[n].up = !be->down && !be->bad;
			n++;
		}
	proc_info(&p);
	r = prom ? udsp_stats_render_prom(buf, len, &p, v, n) :
		   udsp_stats_render_json(buf, len, &p, v, n);
	free(v);

	return r;
}

const char *
udsp_status_kind(const struct lws_protocol_vhost_options *pmo)
{
	const struct lws_protocol_vhost_options *s =
					lws_pvo_search(pmo, "status");

	return s ? s->value : NULL;
}

int
udsp_status_start(struct udsp_vhd *vhd, struct lws *wsi, struct udsp_pss *pss)
{
	const struct lws_protocol_vhost_options *allow;
	const char *kind = udsp_status_kind(pss->pmo), *al;
	struct udsp_status_ans *a;
	char peer[48];
	int prom = !strcmp(kind, "prometheus");
	size_t need;

	udsp_status_free(pss);
	allow = lws_pvo_search(pss->pmo, "status-allow");
	udsp_client_addr(wsi, peer, sizeof(peer));
	a = calloc(1, sizeof(*a));
	if (!a)
		return -1;
	pss->st = a;
	al = allow ? allow->value : STATUS_ALLOW_DEFAULT;
	/* a unix-socket listener's clients have no address */
	if (peer[0] ? !udsp_addr_in_list(al, peer) : !udsp_list_has_unix(al)) {
		lwsl_notice("%s: status: %s not in status-allow: 403\n",
			    UDSP_PROTOCOL_NAME, peer[0] ? peer : "(unix)");
		a->status = 403;
		a->ctype = "text/plain";
		a->body = strdup("403 Forbidden\n");
		a->len = a->body ? strlen(a->body) : 0;
	} else {
		a->status = 200;
		a->ctype = prom ? "text/plain; version=0.0.4; charset=utf-8" :
				  "application/json";
		need = render(prom, NULL, 0);
		a->body = malloc(need + 1);
		if (a->body)
			a->len = render(prom, a->body, need + 1);
	}
	if (!a->body)
		return -1;
	{
		char *uri;
		int ulen;

		a->head_req = lws_http_get_uri_and_method(wsi, &uri, &ulen) ==
			      LWSHUMETH_HEAD;
	}
	a->h2 = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COLON_METHOD) > 0;
	lws_callback_on_writable(wsi);

	return 0;
}

int
udsp_status_writeable(struct lws *wsi, struct udsp_pss *pss)
{
	struct udsp_status_ans *a = pss->st;
	uint8_t buf[LWS_PRE + 4096], *start = buf + LWS_PRE, *p = start,
		*end = buf + sizeof(buf) - 1;
	uint8_t chunk[LWS_PRE + 8192];
	size_t n;

	if (!a->head_sent) {
		if (lws_add_http_common_headers(wsi, (unsigned int)a->status,
						a->ctype, (lws_filepos_t)a->len,
						&p, end) ||
		    lws_add_http_header_by_name(wsi,
				(const unsigned char *)"cache-control:",
				(const unsigned char *)"no-store", 8, &p, end) ||
		    lws_finalize_write_http_header(wsi, start, &p, end))
			return -1;
		a->head_sent = 1;
		if (a->head_req) {
			/* h2 ends the stream with an empty DATA frame */
			if (a->h2 && lws_write(wsi, start, 0,
					       LWS_WRITE_HTTP_FINAL) < 0)
				return -1;
			a->off = a->len;
			goto done;
		}
		lws_callback_on_writable(wsi);
		return 0;
	}

	/* one frame per write on h2: pieces no bigger than its default */
	n = a->len - a->off;
	if (n > sizeof(chunk) - LWS_PRE)
		n = sizeof(chunk) - LWS_PRE;
	memcpy(chunk + LWS_PRE, a->body + a->off, n);
	if (lws_write(wsi, chunk + LWS_PRE, n, a->off + n == a->len ?
		      LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < 0)
		return -1;
	a->off += n;
	if (a->off < a->len) {
		lws_callback_on_writable(wsi);
		return 0;
	}
done:
	/* an h1 keep-alive connection keeps the pss for its next request */
	udsp_status_free(pss);
	if (lws_http_transaction_completed(wsi))
		return -1;

	return 0;
}

void
udsp_status_free(struct udsp_pss *pss)
{
	if (!pss->st)
		return;
	free(pss->st->body);
	free(pss->st);
	pss->st = NULL;
}
