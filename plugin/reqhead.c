/* SPDX-License-Identifier: MIT
 *
 * The onward HTTP/1.1 request head, built once per request from what lws
 * kept of the client's request (h1 or h2): method, re-encoded target, every
 * end-to-end header lws tokenises, configured custom headers (h1 only: lws
 * 4.1.6 drops unknown headers on h2), Host and X-Forwarded-*.
 */
#include "reqhead.h"
#include "headers.h"
#include "strlist.h"
#include "urlenc.h"

#include <stdlib.h>
#include <stdarg.h>
#include <strings.h>

#if LWS_LIBRARY_VERSION_MAJOR > 4 || \
    (LWS_LIBRARY_VERSION_MAJOR == 4 && LWS_LIBRARY_VERSION_MINOR >= 3)
#define UDSP_HAVE_CUSTOM_FOREACH
#endif

struct sbuf {
	char	*p;	/* owned; LWS_PRE headroom in front of p */
	size_t	len, cap;
	int	err;
};

static void
sb_put(struct sbuf *b, const char *s, size_t n)
{
	char *np;
	size_t ncap;

	if (b->err)
		return;
	if (b->len + n + 1 > b->cap) {
		/* one allocation fits a typical head */
		ncap = (b->cap + n + 1) * 2;
		if (ncap < 1024)
			ncap = 1024;
		np = realloc(b->p ? b->p - LWS_PRE : NULL, LWS_PRE + ncap);
		if (!np) {
			b->err = 1;
			return;
		}
		b->p = np + LWS_PRE;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static void
sb_hdr(struct sbuf *b, const char *name, size_t nl, const char *v, size_t vl)
{
	sb_put(b, name, nl);
	sb_put(b, ": ", 2);
	sb_put(b, v, vl);
	sb_put(b, "\r\n", 2);
}

static const char * const methods[] = {
	[LWSHUMETH_GET]		= "GET",
	[LWSHUMETH_POST]	= "POST",
	[LWSHUMETH_OPTIONS]	= "OPTIONS",
	[LWSHUMETH_PUT]		= "PUT",
	[LWSHUMETH_PATCH]	= "PATCH",
	[LWSHUMETH_DELETE]	= "DELETE",
	[LWSHUMETH_CONNECT]	= NULL,	/* a tunnel, not a proxied request */
	[LWSHUMETH_HEAD]	= "HEAD",
};

/* Tokens the generic loop must not copy: pseudo/method/URI slots and the
 * headers written specially below. */
static int
skip_token(int t)
{
	switch (t) {
	case WSI_TOKEN_HOST:
	case WSI_TOKEN_HTTP_COLON_AUTHORITY:
	case WSI_TOKEN_HTTP_CONTENT_LENGTH:
	case WSI_TOKEN_X_FORWARDED_FOR:
	case WSI_TOKEN_HTTP_URI_ARGS:
	case WSI_TOKEN_HTTP2_SETTINGS:
		return 1;
	}

	return 0;
}

/*
 * The tokens the generic loop may copy, with their names: what of
 * lws_token_to_string() is a header (not a pseudo-header, method or URI
 * slot), not written specially and not hop-by-hop or ours by the header
 * policy.  Only the request's Connection list and the WebSocket fields are
 * left to check per request.  Built at the first request: the loop used to
 * ask lws_hdr_total_length() about all WSI_TOKEN_COUNT tokens (about 90)
 * and work the rest out per request, some 3k instructions of each one
 * (callgrind, issue 14).
 */
struct fwd_tok {
	const char	*name;
	uint8_t		t, nl;
};

static struct fwd_tok fwd_toks[WSI_TOKEN_COUNT];
static int nfwd_toks = -1;

static void
fwd_toks_init(void)
{
	const char *name;
	size_t nl;
	int t;

	nfwd_toks = 0;
	for (t = 0; t < WSI_TOKEN_COUNT && t < 256; t++) {
		if (skip_token(t))
			continue;
		name = (const char *)lws_token_to_string(
						(enum lws_token_indexes)t);
		if (!name || name[0] == ':')
			continue;
		nl = strlen(name);
		if (nl < 2 || nl > 255 || name[nl - 1] != ':')
			continue;	/* "get ", "http/1.1 ": not headers */
		nl--;
		if (!udsp_hdr_req_forward(name, nl, NULL, 0))
			continue;
		fwd_toks[nfwd_toks].name = name;
		fwd_toks[nfwd_toks].t = (uint8_t)t;
		fwd_toks[nfwd_toks].nl = (uint8_t)nl;
		nfwd_toks++;
	}
}

/*
 * CR, LF or NUL in a value lws kept means its parser was fooled (lws 4.1.6
 * keeps a NUL in a value, and a custom header's value is cut at the LF of
 * a line that lws ended early): RFC 9110 5.5 says reject, so the caller
 * answers 400.  Other control characters only lose the field.
 */
static int
value_damaged(const char *v, size_t len)
{
	return memchr(v, '\0', len) || memchr(v, '\r', len) ||
	       memchr(v, '\n', len);
}

/*
 * Append all fragments of token t, joined as the field's syntax needs;
 * -1 for a damaged value.
 */
static int
copy_token(struct lws *wsi, int t, char *tmp, int tmplen, struct sbuf *b,
	   const char *name, size_t nl)
{
	const char *sep = t == WSI_TOKEN_HTTP_COOKIE ? "; " : ", ";
	int f, n, first = 1;

	for (f = 0; ; f++) {
		n = lws_hdr_copy_fragment(wsi, tmp, tmplen,
					  (enum lws_token_indexes)t, f);
		if (n < 0)
			break;
		if (value_damaged(tmp, (size_t)n))
			return -1;
		if (!udsp_hdr_value_ok(tmp, (size_t)n))
			return 0;
		if (!first) {
			/*
			 * lws keeps the separator it saw in front of later
			 * pieces (';' between h2 cookie fields, a space on
			 * h1); ours replaces it (docs/lws-notes.md N14).
			 */
			int k = 0;

			while (k < n && (tmp[k] == ';' || tmp[k] == ',' ||
					 tmp[k] == ' ' || tmp[k] == '\t'))
				k++;
			memmove(tmp, tmp + k, (size_t)(n - k));
			n -= k;
			if (!n)
				continue;
		}
		if (first) {
			sb_put(b, name, nl);
			sb_put(b, ": ", 2);
		} else
			sb_str(b, sep);
		sb_put(b, tmp, (size_t)n);
		first = 0;
	}
	if (!first)
		sb_put(b, "\r\n", 2);

	return 0;
}

const char *
udsp_method_name(struct lws *wsi, int h2, int method, char *buf, size_t len)
{
	const char *m = NULL;

	if (h2) {
		if (lws_hdr_copy(wsi, buf, (int)len,
				 WSI_TOKEN_HTTP_COLON_METHOD) > 0)
			m = buf;
	} else if (method >= 0 && method < (int)LWS_ARRAY_SIZE(methods))
		m = methods[method];
	if (!m || !udsp_hdr_name_ok(m, strlen(m)) || !strcmp(m, "CONNECT"))
		return NULL;

	return m;
}

/* The request's method name into buf, or NULL for CONNECT / unknown. */
const char *
udsp_req_method(struct udsp_relay *r, char *buf, size_t len)
{
	return udsp_method_name(r->cwsi, r->h2, r->method, buf, len);
}

/* Query fragments as lws decoded them, into argbuf / args, count in *nargs */
static enum udsp_err
get_args(struct lws *wsi, char **argbuf, const char **args, int max,
	 int *nargs)
{
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS), f, cap;
	size_t used = 0;

	*argbuf = NULL;
	*nargs = 0;
	if (n <= 0)
		return UDSP_E_NONE;
	cap = n + max * 2;
	*argbuf = malloc((size_t)cap);
	if (!*argbuf)
		return UDSP_E_INTERNAL;
	for (f = 0; f < max; f++) {
		n = lws_hdr_copy_fragment(wsi, *argbuf + used,
					  (int)((size_t)cap - used),
					  WSI_TOKEN_HTTP_URI_ARGS, f);
		if (n < 0)
			break;
		/*
		 * lws 4.3 keeps a decoded %00 after a query's '=' (4.3.5's
		 * lws_parse_urldecode; 4.1.6 closes the connection); the args
		 * go on as C strings, which would cut the value short: 400.
		 */
		if (memchr(*argbuf + used, '\0', (size_t)n)) {
			free(*argbuf);
			*argbuf = NULL;
			return UDSP_E_BAD_REQUEST;
		}
		args[(*nargs)++] = *argbuf + used;
		used += (size_t)n + 1;
	}

	return UDSP_E_NONE;
}

/*
 * Start the access log line (if logging) from the client's own view of
 * the request: full path and query, re-encoded.
 */
void
udsp_reqhead_alog(struct udsp_relay *r)
{
	char mbuf[32], *argbuf, *uri, target[2048];
	const char *method, *args[64];
	int nargs, ulen;

	/* no log: not even the method (an lws_hdr_copy() on h2) */
	if (r->vhd->alog_fd < 0)
		return;
	method = udsp_req_method(r, mbuf, sizeof(mbuf));
	if (lws_http_get_uri_and_method(r->cwsi, &uri, &ulen) < 0)
		uri = NULL;
	if (get_args(r->cwsi, &argbuf, args, (int)LWS_ARRAY_SIZE(args),
		     &nargs) || !uri ||
	    udsp_target_build(target, sizeof(target), "/", uri, args,
			      nargs) < 0)
		lws_snprintf(target, sizeof(target), "-");
	free(argbuf);
	udsp_alog_begin(r, method ? method : "-", target);
}

/*
 * Copy one custom header (name: lower-case, colon after nl bytes); -1 for
 * a damaged value.
 */
static int
copy_custom(struct lws *wsi, struct sbuf *b, const char *name, size_t nl,
	    char *tmp, size_t tmplen)
{
	int l = lws_hdr_custom_length(wsi, name, (int)nl + 1);

	if (l <= 0 || l >= (int)tmplen)
		return 0;
	l = lws_hdr_custom_copy(wsi, tmp, (int)tmplen, name, (int)nl + 1);
	if (l < 0)
		return 0;
	if (value_damaged(tmp, (size_t)l))
		return -1;
	if (udsp_hdr_value_ok(tmp, (size_t)l))
		sb_hdr(b, name, nl, tmp, (size_t)l);

	return 0;
}

/*
 * A mount's "forward-headers" (pmo), parsed once, at the first request
 * through the mount, and kept on the vhost for the vhost's life (the pmo
 * list is lws's, as long-lived): its names not already in the vhost's list,
 * lower-case with their colon, in the list's order, each one's own policy
 * checked; only the request's Connection tokens are left to check.
 */
struct udsp_mfwd {
	struct udsp_mfwd			*next;
	const struct lws_protocol_vhost_options	*pmo;	/* the key */
	char					**name;	/* owned */
	int					n;
};

static void
mfwd_free(struct udsp_mfwd *m)
{
	int n;

	for (n = 0; n < m->n; n++)
		free(m->name[n]);
	free(m->name);
	free(m);
}

void
udsp_reqhead_vhd_free(struct udsp_vhd *vhd)
{
	struct udsp_mfwd *m;

	while ((m = vhd->mfwd)) {
		vhd->mfwd = m->next;
		mfwd_free(m);
	}
}

#if !defined(UDSP_HAVE_CUSTOM_FOREACH)
static int
mfwd_add(struct udsp_mfwd *m, const struct udsp_vhd *vhd, const char *s,
	 size_t nl)
{
	char name[66], **nn;
	int n;

	if (!udsp_hdr_name_ok(s, nl) || !udsp_hdr_req_forward(s, nl, NULL, 0) ||
	    !udsp_hdr_custom_name(name, sizeof(name), s, nl))
		return 0;
	for (n = 0; n < vhd->nfwd; n++)
		if (!strcmp(vhd->fwd[n], name))
			return 0;
	nn = realloc(m->name, sizeof(*nn) * (size_t)(m->n + 1));
	if (!nn)
		return -1;
	m->name = nn;
	m->name[m->n] = strdup(name);

	return m->name[m->n] ? (m->n++, 0) : -1;
}

/* The mount's names, parsed at its first request; NULL: out of memory */
static const struct udsp_mfwd *
mount_fwd(struct udsp_vhd *vhd, const struct lws_protocol_vhost_options *pmo)
{
	const struct lws_protocol_vhost_options *p;
	struct udsp_mfwd *m;
	const char *list, *s;
	size_t nl;

	for (m = vhd->mfwd; m; m = m->next)
		if (m->pmo == pmo)
			return m;
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->pmo = pmo;
	for (p = pmo; p; p = p->next) {
		if (strcmp(p->name, "forward-headers"))
			continue;
		list = p->value;
		while ((s = udsp_list_next(&list, &nl)))
			if (mfwd_add(m, vhd, s, nl)) {
				mfwd_free(m);
				return NULL;
			}
	}
	m->next = vhd->mfwd;
	vhd->mfwd = m;

	return m;
}

/*
 * Custom headers by name (lower-case, colon after the name), but those the
 * request's Connection names; -1 for a damaged value.
 */
static int
copy_named(struct lws *wsi, struct sbuf *b, char * const *names, int n,
	   const char *conn, size_t conn_len, char *tmp, size_t tmplen)
{
	size_t nl;
	int i;

	for (i = 0; i < n; i++) {
		nl = strlen(names[i]) - 1;
		if (conn_len && udsp_hdr_list_has(conn, conn_len, names[i], nl))
			continue;
		if (copy_custom(wsi, b, names[i], nl, tmp, tmplen))
			return -1;
	}

	return 0;
}
#endif

#if defined(UDSP_HAVE_CUSTOM_FOREACH)
struct custom_ctx {
	struct lws	*wsi;
	struct sbuf	*b;
	const char	*conn;
	size_t		conn_len;
	int		damaged;
};

/* lws hands names lower-cased with their colon (nlen counts it) */
static void
custom_cb(const char *name, int nlen, void *opaque)
{
	struct custom_ctx *cc = (struct custom_ctx *)opaque;
	char tmp[4096];
	size_t nl;

	if (nlen < 2 || name[nlen - 1] != ':')
		return;
	nl = (size_t)nlen - 1;
	if (!udsp_hdr_name_ok(name, nl) ||
	    !udsp_hdr_req_forward(name, nl, cc->conn, cc->conn_len))
		return;
	if (copy_custom(cc->wsi, cc->b, name, nl, tmp, sizeof(tmp)))
		cc->damaged = 1;
}
#endif

/* The client's own Sec-WebSocket-* fields are for lws, not the backend. */
static int
ws_own(const char *name, size_t nl)
{
	return nl >= 14 && !strncasecmp(name, "sec-websocket-", 14);
}

enum udsp_err
udsp_reqhead_build(struct udsp_relay *r, const char *remainder)
{
	struct udsp_reqctx c;
	char mbuf[32];

	memset(&c, 0, sizeof(c));
	c.wsi = r->cwsi;
	c.vhd = r->vhd;
	c.be = r->be;
	c.pmo = r->pmo;
	c.peer = r->peer;
	c.h2 = r->h2;
	c.body = r->body;
	c.body_remain = r->body_remain;
	c.method = udsp_req_method(r, mbuf, sizeof(mbuf));
	if (!c.method)
		return UDSP_E_BAD_REQUEST;

	return udsp_reqhead_build_ctx(&c, remainder, &r->reqhead,
				      &r->reqhead_len);
}

enum udsp_err
udsp_reqhead_build_ws(struct lws *wsi, struct udsp_vhd *vhd,
		      struct udsp_backend *be,
		      const struct lws_protocol_vhost_options *pmo,
		      const char *peer, const char *remainder,
		      const char *key, const char *proto, char **out,
		      size_t *outlen)
{
	struct udsp_reqctx c;

	memset(&c, 0, sizeof(c));
	c.wsi = wsi;
	c.vhd = vhd;
	c.be = be;
	c.pmo = pmo;
	c.peer = peer;
	c.h2 = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COLON_METHOD) > 0;
	c.method = "GET";
	c.ws_key = key;
	c.ws_proto = proto;

	return udsp_reqhead_build_ctx(&c, remainder, out, outlen);
}

enum udsp_err
udsp_reqhead_build_ctx(const struct udsp_reqctx *c, const char *remainder,
		       char **out, size_t *outlen)
{
	struct lws *wsi = c->wsi, *nwsi = lws_get_network_wsi(wsi);
	struct udsp_vhd *vhd = c->vhd;
	char conn[256], tmp[4096], host[256], xff[512];
	const char *method = c->method, *name, *args[64];
	char *argbuf = NULL, *target = NULL;
	size_t conn_len = 0, nl;
	enum udsp_err ret;
	int n, t, i, nargs = 0, hl;
	struct sbuf b = { 0 };

	/* query fragments, decoded by lws; re-encoded by udsp_target_build */
	ret = get_args(wsi, &argbuf, args, (int)LWS_ARRAY_SIZE(args), &nargs);
	if (ret)
		return ret;
	ret = UDSP_E_BAD_REQUEST;	/* what the bails below mean */

	target = (char *)vhd->scratch;
	if (udsp_target_build(target, vhd->scratch_len,
			      c->be->o.inside, remainder, args, nargs) < 0)
		goto bail;

	sb_str(&b, method);
	sb_put(&b, " ", 1);
	sb_str(&b, target);
	sb_str(&b, " HTTP/1.1\r\n");

	/* Host: the client's, so name-based backends and redirects work */
	hl = lws_hdr_copy(wsi, host, sizeof(host), c->h2 ?
			  WSI_TOKEN_HTTP_COLON_AUTHORITY : WSI_TOKEN_HOST);
	/*
	 * lws joins repeated fields with ',': two Host fields, which RFC 9112
	 * 3.2 answers with 400, as nothing else decides which one counts.
	 */
	if (hl > 0 && (memchr(host, ',', (size_t)hl) ||
		       value_damaged(host, (size_t)hl)))
		goto bail;
	if (hl <= 0 || !udsp_hdr_value_ok(host, (size_t)hl)) {
		hl = lws_snprintf(host, sizeof(host), "%s",
				  c->be->o.host[0] ? c->be->o.host :
						     "localhost");
	}
	sb_hdr(&b, "Host", 4, host, (size_t)hl);

	if (!c->h2) {
		n = lws_hdr_copy(wsi, conn, sizeof(conn), WSI_TOKEN_CONNECTION);
		if (n > 0)
			conn_len = (size_t)n;
	}

	if (nfwd_toks < 0)
		fwd_toks_init();
	for (i = 0; i < nfwd_toks; i++) {
		t = fwd_toks[i].t;
		if (!lws_hdr_total_length(wsi, (enum lws_token_indexes)t))
			continue;
		name = fwd_toks[i].name;
		nl = fwd_toks[i].nl;
		/* RFC 9110 7.6.1: fields named in Connection are hop-by-hop */
		if ((conn_len && udsp_hdr_list_has(conn, conn_len, name, nl)) ||
		    (c->ws_key && ws_own(name, nl)))
			continue;
		if (copy_token(wsi, t, tmp, sizeof(tmp), &b, name, nl))
			goto bail;
	}

	/*
	 * Headers lws has no token for.  From lws 4.3 it can list them (h1
	 * only: it drops them on h2), so all end-to-end ones go; 4.1 can only
	 * look up names we already know: the built-in list + forward-headers.
	 * docs/lws-notes.md N13
	 */
	if (!c->h2) {
#if defined(UDSP_HAVE_CUSTOM_FOREACH)
		struct custom_ctx cc = { wsi, &b, conn, conn_len, 0 };

		lws_hdr_custom_name_foreach(wsi, custom_cb, &cc);
		if (cc.damaged)
			goto bail;
#else
		const struct udsp_mfwd *m = NULL;

		/* the names' own policy was checked at init / first sight */
		if (copy_named(wsi, &b, vhd->fwd, vhd->nfwd, conn, conn_len,
			       tmp, sizeof(tmp)))
			goto bail;
		/* and the mount's own list (pmo "forward-headers") */
		if (c->pmo && !(m = mount_fwd(vhd, c->pmo))) {
			ret = UDSP_E_INTERNAL;
			goto bail;
		}
		if (m && copy_named(wsi, &b, m->name, m->n, conn, conn_len,
				    tmp, sizeof(tmp)))
			goto bail;
#endif
	}

	/* X-Forwarded-*: a client's XFF is trusted only from listed peers */
	if (c->peer[0]) {
		const char *prior = NULL;
		int pl = 0;

		if (vhd->conf.trusted &&
		    udsp_addr_in_list(vhd->conf.trusted, c->peer)) {
			pl = lws_hdr_copy(wsi, tmp, sizeof(tmp),
					  WSI_TOKEN_X_FORWARDED_FOR);
			if (pl > 0 && udsp_hdr_value_ok(tmp, (size_t)pl))
				prior = tmp;
			else
				pl = 0;
		}
		n = udsp_xff_build(xff, sizeof(xff), prior, (size_t)pl, c->peer,
				   prior != NULL);
		if (n > 0)
			sb_hdr(&b, "X-Forwarded-For", 15, xff, (size_t)n);
	}
	sb_str(&b, lws_is_ssl(nwsi) ? "X-Forwarded-Proto: https\r\n" :
				      "X-Forwarded-Proto: http\r\n");
	sb_hdr(&b, "X-Forwarded-Host", 16, host, (size_t)hl);

	if (c->ws_key) {
		sb_str(&b, "Connection: Upgrade\r\nUpgrade: websocket\r\n"
			   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ");
		sb_str(&b, c->ws_key);
		sb_str(&b, "\r\n");
		if (c->ws_proto)
			sb_hdr(&b, "Sec-WebSocket-Protocol", 22, c->ws_proto,
			       strlen(c->ws_proto));
	}

	switch (c->body) {
	case UDSP_BODY_CL:
		n = lws_snprintf(tmp, sizeof(tmp), "%lld",
				 (long long)c->body_remain);
		sb_hdr(&b, "Content-Length", 14, tmp, (size_t)n);
		break;
	case UDSP_BODY_CHUNKED_H1:
	case UDSP_BODY_STREAM:
		sb_str(&b, "Transfer-Encoding: chunked\r\n");
		break;
	default:
		break;
	}
	sb_str(&b, "\r\n");

	if (b.err) {
		ret = UDSP_E_INTERNAL;
		goto bail;
	}
	*out = b.p;	/* LWS_PRE headroom in front */
	*outlen = b.len;
	b.p = NULL;
	ret = UDSP_E_NONE;

bail:
	if (b.p)
		free(b.p - LWS_PRE);
	free(argbuf);

	return ret;
}
