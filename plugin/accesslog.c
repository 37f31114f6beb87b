/* SPDX-License-Identifier: MIT
 *
 * Apache "combined" access log lines for proxied requests, written by the
 * plugin because Debian's lws is built without LWS_WITH_ACCESS_LOG.  The
 * request part is captured when the relay starts (h2 streams drop their
 * header table soon after); status and body bytes are added at the end.
 */
#include "private.h"

#include <stdlib.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>

/*
 * Sizes of a line's parts.  Each escaped header value (Referer,
 * User-Agent) is cut to fit ALOG_FIELD, the escaped request line to fit
 * ALOG_RLINE; the rest of each part (peer address, time, quotes, status,
 * byte count) fits in the slack, so a line is never cut.
 */
#define ALOG_FIELD	1100
#define ALOG_RLINE	(2 * ALOG_FIELD)
#define ALOG_PRE	(ALOG_RLINE + 400)	/* peer, time, request line */
#define ALOG_POST	(2 * ALOG_FIELD + 100)	/* referer, user agent */
#define ALOG_LINE	(ALOG_PRE + ALOG_POST + 100)

int
udsp_alog_open(struct udsp_vhd *vhd, const char *path)
{
	vhd->alog_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
			    0640);
	if (vhd->alog_fd < 0) {
		lwsl_err("%s: access-log '%s': %s\n", UDSP_PROTOCOL_NAME, path,
			 strerror(errno));
		return -1;
	}

	return 0;
}

/* Quote a header value as Apache does: \" \\ and \xHH for control bytes. */
static size_t
esc(char *d, size_t dl, const char *s, int n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	int i;

	for (i = 0; i < n && o + 5 < dl; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			d[o++] = '\\';
			d[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			d[o++] = '\\';
			d[o++] = 'x';
			d[o++] = hex[c >> 4];
			d[o++] = hex[c & 15];
		} else
			d[o++] = (char)c;
	}
	d[o] = '\0';

	return o;
}

static size_t
hdr_esc(struct lws *wsi, enum lws_token_indexes t, char *d, size_t dl)
{
	char v[512];
	int n = lws_hdr_copy(wsi, v, sizeof(v), t);

	if (n <= 0) {
		if (dl > 1) {
			d[0] = '-';
			d[1] = '\0';
		}
		return 1;
	}

	return esc(d, dl, v, n);
}

void
udsp_alog_begin(struct udsp_relay *r, const char *method, const char *target)
{
	struct lws *wsi = r->cwsi;
	char when[40], ref[ALOG_FIELD], ua[ALOG_FIELD], rl[ALOG_RLINE];
	time_t now = time(NULL);
	struct tm tm;
	int n;

	if (r->vhd->alog_fd < 0)
		return;

	localtime_r(&now, &tm);
	strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S %z", &tm);
	hdr_esc(wsi, WSI_TOKEN_HTTP_REFERER, ref, sizeof(ref));
	hdr_esc(wsi, WSI_TOKEN_HTTP_USER_AGENT, ua, sizeof(ua));
	n = lws_snprintf(rl, sizeof(rl), "%s %s %s", method, target,
			 r->h2 ? "HTTP/2.0" : r->http10 ? "HTTP/1.0" :
							  "HTTP/1.1");
	esc(rl + n + 1, sizeof(rl) - (size_t)n - 1, rl, n);

	r->alog_pre = malloc(ALOG_PRE);
	r->alog_post = malloc(ALOG_POST);
	if (!r->alog_pre || !r->alog_post) {
		free(r->alog_pre);
		free(r->alog_post);
		r->alog_pre = r->alog_post = NULL;
		return;
	}
	lws_snprintf(r->alog_pre, ALOG_PRE, "%s - - [%s] \"%s\" ",
		     r->peer[0] ? r->peer : "-", when, rl + n + 1);
	lws_snprintf(r->alog_post, ALOG_POST, " \"%s\" \"%s\"\n", ref, ua);
}

void
udsp_alog_end(struct udsp_relay *r, int status)
{
	char line[ALOG_LINE];
	int n;

	if (!r->alog_pre || r->vhd->alog_fd < 0)
		goto done;

	if (r->bytes_out)
		n = lws_snprintf(line, sizeof(line), "%s%d %llu%s",
				 r->alog_pre, status,
				 (unsigned long long)r->bytes_out,
				 r->alog_post);
	else
		n = lws_snprintf(line, sizeof(line), "%s%d -%s", r->alog_pre,
				 status, r->alog_post);
	/* one write per line: O_APPEND keeps lines whole */
	if (write(r->vhd->alog_fd, line, (size_t)n) < 0)
		lwsl_info("%s: access log write: %s\n", __func__,
			  strerror(errno));

done:
	free(r->alog_pre);
	free(r->alog_post);
	r->alog_pre = r->alog_post = NULL;
}
