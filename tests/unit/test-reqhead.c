/* SPDX-License-Identifier: MIT
 *
 * The onward request head (plugin/reqhead.c), built from a fake request:
 * this file defines struct lws and the lws calls reqhead.c asks a request
 * (lws_hdr_copy() and friends, with 4.1.6's semantics: fragments of a
 * repeated field joined with ',', custom names lower-case with their
 * colon); everything else is the real code.  Each table row is a request
 * and the whole head it must give, or the error.
 */
#include <stdlib.h>

#include "reqhead.h"
#include "t.h"

/* ---------------------------------------------------- the fake request */

#define MAXFRAG	4
#define MAXCUST	8

struct lws {
	int		ssl;
	/* fragments per token, NULL-terminated */
	const char	*tok[WSI_TOKEN_COUNT][MAXFRAG + 1];
	/* unknown headers: lower-case name with colon, value */
	const char	*cust[MAXCUST][2];
};

int
lws_hdr_total_length(struct lws *wsi, enum lws_token_indexes h)
{
	int f, len = 0;

	for (f = 0; wsi->tok[h][f]; f++)
		len += (int)strlen(wsi->tok[h][f]) +
		       (f && h != WSI_TOKEN_HTTP_COOKIE);

	return len;
}

int
lws_hdr_copy_fragment(struct lws *wsi, char *dst, int len,
		      enum lws_token_indexes h, int frag_idx)
{
	const char *v;

	if (frag_idx > MAXFRAG || !(v = wsi->tok[h][frag_idx]) ||
	    (int)strlen(v) >= len)
		return -1;
	strcpy(dst, v);

	return (int)strlen(v);
}

int
lws_hdr_copy(struct lws *wsi, char *dst, int len, enum lws_token_indexes h)
{
	int f, n = lws_hdr_total_length(wsi, h);

	*dst = '\0';
	if (n >= len)
		return -1;
	for (f = 0; wsi->tok[h][f]; f++) {
		if (f && h != WSI_TOKEN_HTTP_COOKIE)
			strcat(dst, ",");
		strcat(dst, wsi->tok[h][f]);
	}

	return n;
}

static const char *
cust(struct lws *wsi, const char *name, int nlen)
{
	int n;

	for (n = 0; n < MAXCUST && wsi->cust[n][0]; n++)
		if ((int)strlen(wsi->cust[n][0]) == nlen &&
		    !strncmp(wsi->cust[n][0], name, (size_t)nlen))
			return wsi->cust[n][1];

	return NULL;
}

int
lws_hdr_custom_length(struct lws *wsi, const char *name, int nlen)
{
	const char *v = cust(wsi, name, nlen);

	return v ? (int)strlen(v) : -1;
}

int
lws_hdr_custom_copy(struct lws *wsi, char *dst, int len, const char *name,
		    int nlen)
{
	const char *v = cust(wsi, name, nlen);

	*dst = '\0';
	if (!v || (int)strlen(v) + 1 > len)
		return -1;
	strcpy(dst, v);

	return (int)strlen(v);
}

struct lws *
lws_get_network_wsi(struct lws *wsi)
{
	return wsi;
}

int
lws_is_ssl(struct lws *wsi)
{
	return wsi->ssl;
}

lws_sockfd_type
lws_get_socket_fd(struct lws *wsi)
{
	return -1;
}

int
lws_http_get_uri_and_method(struct lws *wsi, char **puri_ptr, int *puri_len)
{
	return -1;
}

/* accesslog.c is not linked: udsp_reqhead_alog() is not tested here */
void
udsp_alog_begin(struct udsp_relay *r, const char *method, const char *target)
{
}

/* ------------------------------------------------------------ the vhost */

static char fwd0[] = "x-request-id:", fwd1[] = "x-drop:";
static char *fwd[] = { fwd0, fwd1 };
static uint8_t scratch[LWS_PRE + 16384];
static struct udsp_vhd vhd;
static struct udsp_backend be;

/* a mount's pmo list: backend, then forward-headers */
static const struct lws_protocol_vhost_options pmo_fwd = {
	NULL, NULL, "forward-headers",
	"X-Mount-A, x-request-id, Connection, X-Conn-Named,, X-Bad Name, "
	"Keep-Alive, X-Forwarded-Proto"
};
static const struct lws_protocol_vhost_options pmo = {
	&pmo_fwd, NULL, "backend", "unix:/tmp/app.sock"
};
/* another mount, whose list names what the vhost already has */
static const struct lws_protocol_vhost_options pmo2 = {
	NULL, NULL, "forward-headers", "X-Drop, X-Other"
};

static void
setup(void)
{
	vhd.fwd = fwd;
	vhd.nfwd = 2;
	vhd.alog_fd = -1;
	vhd.scratch = scratch;
	vhd.scratch_len = sizeof(scratch);
	vhd.conf.trusted = "10.0.0.0/8";
	be.o.inside[0] = '/';
	be.vhd = &vhd;
}

/* ----------------------------------------------------------- the table */

struct row {
	const char	*what;
	int		h2, ssl;
	const char	*peer, *method, *inside, *remainder;
	const struct lws_protocol_vhost_options *pmo;
	enum udsp_body	body;
	int64_t		cl;
	/* token, fragments */
	struct { int t; const char *f[MAXFRAG + 1]; } hd[8];
	const char	*cust[MAXCUST][2];
	enum udsp_err	err;
	const char	*head;	/* when err is UDSP_E_NONE */
};

static const struct row rows[] = {
{ "h1 GET: the client's Host, XFF from the peer, XFP, XFH",
  0, 0, "192.0.2.7", "GET", "/", "/a/b", NULL, UDSP_BODY_NONE, 0,
  { { WSI_TOKEN_HOST, { "example.com:8080" } },
    { WSI_TOKEN_HTTP_ACCEPT, { "text/html" } },
    { WSI_TOKEN_HTTP_USER_AGENT, { "t/1" } } },
  { { NULL } }, UDSP_E_NONE,
  "GET /a/b HTTP/1.1\r\n"
  "Host: example.com:8080\r\n"
  "accept: text/html\r\n"
  "user-agent: t/1\r\n"
  "X-Forwarded-For: 192.0.2.7\r\n"
  "X-Forwarded-Proto: http\r\n"
  "X-Forwarded-Host: example.com:8080\r\n"
  "\r\n" },

{ "inside path, re-encoded path and query; CL body; TLS",
  0, 1, "192.0.2.7", "POST", "/api", "/x y/%", NULL, UDSP_BODY_CL, 5,
  { { WSI_TOKEN_HOST, { "h" } },
    { WSI_TOKEN_HTTP_URI_ARGS, { "a=1", "b=x y&z" } },
    { WSI_TOKEN_HTTP_CONTENT_LENGTH, { "999" } } },
  { { NULL } }, UDSP_E_NONE,
  "POST /api/x%20y/%25?a=1&b=x%20y%26z HTTP/1.1\r\n"
  "Host: h\r\n"
  "X-Forwarded-For: 192.0.2.7\r\n"
  "X-Forwarded-Proto: https\r\n"
  "X-Forwarded-Host: h\r\n"
  "Content-Length: 5\r\n"
  "\r\n" },

{ "no Host (HTTP/1.0): the backend's host, else localhost; no peer: "
  "no XFF; a chunked body goes chunked",
  0, 0, "", "PUT", "/", "/", NULL, UDSP_BODY_CHUNKED_H1, 0,
  { { WSI_TOKEN_HTTP_TRANSFER_ENCODING, { "chunked" } } },
  { { NULL } }, UDSP_E_NONE,
  "PUT / HTTP/1.1\r\n"
  "Host: localhost\r\n"
  "X-Forwarded-Proto: http\r\n"
  "X-Forwarded-Host: localhost\r\n"
  "Transfer-Encoding: chunked\r\n"
  "\r\n" },

{ "hop-by-hop fields stay here; Connection's own tokens too",
  0, 0, "192.0.2.7", "GET", "/", "/", NULL, UDSP_BODY_NONE, 0,
  { { WSI_TOKEN_HOST, { "h" } },
    { WSI_TOKEN_CONNECTION, { "keep-alive, Accept-Language, X-Drop" } },
    { WSI_TOKEN_UPGRADE, { "h2c" } },
    { WSI_TOKEN_TE, { "trailers" } },
    { WSI_TOKEN_HTTP_PROXY_AUTHORIZATION, { "Basic eA==" } },
    { WSI_TOKEN_HTTP_ACCEPT_LANGUAGE, { "de" } },
    { WSI_TOKEN_HTTP_CACHE_CONTROL, { "no-cache" } } },
  { { "x-drop:", "1" }, { "x-request-id:", "r1" } }, UDSP_E_NONE,
  "GET / HTTP/1.1\r\n"
  "Host: h\r\n"
  "cache-control: no-cache\r\n"
  "x-request-id: r1\r\n"
  "X-Forwarded-For: 192.0.2.7\r\n"
  "X-Forwarded-Proto: http\r\n"
  "X-Forwarded-Host: h\r\n"
  "\r\n" },

{ "a client's XFF only from a trusted peer; repeated fields joined",
  0, 0, "10.1.2.3", "GET", "/", "/", NULL, UDSP_BODY_NONE, 0,
  { { WSI_TOKEN_HOST, { "h" } },
    { WSI_TOKEN_X_FORWARDED_FOR, { "198.51.100.1" } },
    { WSI_TOKEN_HTTP_ACCEPT, { "a/b", "c/d" } },
    { WSI_TOKEN_HTTP_COOKIE, { "a=1", "; b=2" } } },
  { { NULL } }, UDSP_E_NONE,
  "GET / HTTP/1.1\r\n"
  "Host: h\r\n"
  "accept: a/b, c/d\r\n"
  "cookie: a=1; b=2\r\n"
  "X-Forwarded-For: 198.51.100.1, 10.1.2.3\r\n"
  "X-Forwarded-Proto: http\r\n"
  "X-Forwarded-Host: h\r\n"
  "\r\n" },

{ "an untrusted peer's XFF is dropped",
  0, 0, "192.0.2.7", "GET", "/", "/", NULL, UDSP_BODY_NONE, 0,
  { { WSI_TOKEN_HOST, { "h" } },
    { WSI_TOKEN_X_FORWARDED_FOR, { "198.51.100.1" } } },
  { { NULL } }, UDSP_E_NONE,
  "GET / HTTP/1.1\r\n"
  "Host: h\r\n"
  "X-Forwarded-For: 192.0.2.7\r\n"
  "X-Forwarded-Proto: http\r\n"
  "X-Forwarded-Host: h\r\n"
  "\r\n" },

{ "mount forward-headers: its names once, not hop-by-hop ones, not "
  "those Connection names",
  0, 0, "192.0.2.7", "GET", "/", "/", &pmo, UDSP_BODY_NONE, 0,
  { { WSI_TOKEN_HOST, { "h" } },
    { WSI_TOKEN_CONNECTION, { "x-conn-named" } } },
  { { "x-mount-a:", "m" }, { "x-request-id:", "r1" },
    { "x-conn-named:", "no" }, { "x-other:", "no" },
    { "keep-alive:", "no" }, { "x-forwarded-proto:", "no" } }, UDSP_E_NONE,
  "GET / HTTP/1.1\r\n"
  "Host: h\r\n"
  "x-request-id: r1\r\n"
  "x-mount-a: m\r\n"
  "X-Forwarded-For: 192.0.2.7\r\n"
  "X-Forwarded-Proto: http\r\n"
  "X-Forwarded-Host: h\r\n"
  "\r\n" },

{ "the same request through a mount without the list",
  0, 0, "192.0.2.7", "GET", "/", "/", NULL, UDSP_BODY_NONE, 0,
  { { WSI_TOKEN_HOST, { "h" } } },
  { { "x-mount-a:", "m" }, { "x-other:", "no" } }, UDSP_E_NONE,
  "GET / HTTP/1.1\r\n"
  "Host: h\r\n"
  "X-Forwarded-For: 192.0.2.7\r\n"
  "X-Forwarded-Proto: http\r\n"
  "X-Forwarded-Host: h\r\n"
  "\r\n" },

{ "another mount's list: a vhost name not twice, its own name",
  0, 0, "192.0.2.7", "GET", "/", "/", &pmo2, UDSP_BODY_NONE, 0,
  { { WSI_TOKEN_HOST, { "h" } } },
  { { "x-mount-a:", "no" }, { "x-other:", "o" }, { "x-drop:", "d" } },
  UDSP_E_NONE,
  "GET / HTTP/1.1\r\n"
  "Host: h\r\n"
  "x-drop: d\r\n"
  "x-other: o\r\n"
  "X-Forwarded-For: 192.0.2.7\r\n"
  "X-Forwarded-Proto: http\r\n"
  "X-Forwarded-Host: h\r\n"
  "\r\n" },

{ "h2: Host from :authority, no custom headers (lws drops them), an "
  "h2 body without length goes chunked",
  1, 1, "192.0.2.7", "POST", "/", "/u", &pmo, UDSP_BODY_STREAM, 0,
  { { WSI_TOKEN_HTTP_COLON_AUTHORITY, { "a.example" } },
    { WSI_TOKEN_HTTP_COLON_METHOD, { "POST" } },
    { WSI_TOKEN_HTTP_COLON_PATH, { "/u" } },
    { WSI_TOKEN_HTTP_CONTENT_TYPE, { "text/plain" } } },
  { { "x-mount-a:", "no" } }, UDSP_E_NONE,
  "POST /u HTTP/1.1\r\n"
  "Host: a.example\r\n"
  "content-type: text/plain\r\n"
  "X-Forwarded-For: 192.0.2.7\r\n"
  "X-Forwarded-Proto: https\r\n"
  "X-Forwarded-Host: a.example\r\n"
  "Transfer-Encoding: chunked\r\n"
  "\r\n" },

{ "a control character loses the field; the request goes",
  0, 0, "", "GET", "/", "/", NULL, UDSP_BODY_NONE, 0,
  { { WSI_TOKEN_HOST, { "h" } },
    { WSI_TOKEN_HTTP_REFERER, { "x\001y" } } },
  { { NULL } }, UDSP_E_NONE,
  "GET / HTTP/1.1\r\n"
  "Host: h\r\n"
  "X-Forwarded-Proto: http\r\n"
  "X-Forwarded-Host: h\r\n"
  "\r\n" },

{ "two Host fields: 400",
  0, 0, "192.0.2.7", "GET", "/", "/", NULL, UDSP_BODY_NONE, 0,
  { { WSI_TOKEN_HOST, { "a", "b" } } },
  { { NULL } }, UDSP_E_BAD_REQUEST, NULL },

{ "CR or LF in a value lws kept: 400",
  0, 0, "192.0.2.7", "GET", "/", "/", NULL, UDSP_BODY_NONE, 0,
  { { WSI_TOKEN_HOST, { "h" } },
    { WSI_TOKEN_HTTP_ACCEPT, { "a\r\nX-Evil: 1" } } },
  { { NULL } }, UDSP_E_BAD_REQUEST, NULL },

{ "CR in a custom header's value: 400",
  0, 0, "192.0.2.7", "GET", "/", "/", &pmo, UDSP_BODY_NONE, 0,
  { { WSI_TOKEN_HOST, { "h" } } },
  { { "x-mount-a:", "a\rb" } }, UDSP_E_BAD_REQUEST, NULL },

{ "a dot segment in the path: 400",
  0, 0, "192.0.2.7", "GET", "/", "/a/../b", NULL, UDSP_BODY_NONE, 0,
  { { WSI_TOKEN_HOST, { "h" } } },
  { { NULL } }, UDSP_E_BAD_REQUEST, NULL },
};

static void
fill(struct lws *wsi, const struct row *w)
{
	int n, f;

	memset(wsi, 0, sizeof(*wsi));
	wsi->ssl = w->ssl;
	for (n = 0; n < 8 && w->hd[n].f[0]; n++)
		for (f = 0; f < MAXFRAG && w->hd[n].f[f]; f++)
			wsi->tok[w->hd[n].t][f] = w->hd[n].f[f];
	for (n = 0; n < MAXCUST && w->cust[n][0]; n++) {
		wsi->cust[n][0] = w->cust[n][0];
		wsi->cust[n][1] = w->cust[n][1];
	}
}

static void
build_rows(void)
{
	struct udsp_reqctx c;
	struct lws wsi;
	enum udsp_err e;
	size_t i, len;
	char *out;
	int pass;

	/* twice: a mount's list must give the same the second time */
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < LWS_ARRAY_SIZE(rows); i++) {
			const struct row *w = &rows[i];

			fill(&wsi, w);
			lws_snprintf(be.o.inside, sizeof(be.o.inside), "%s",
				     w->inside);
			memset(&c, 0, sizeof(c));
			c.wsi = &wsi;
			c.vhd = &vhd;
			c.be = &be;
			c.pmo = w->pmo;
			c.peer = w->peer;
			c.method = w->method;
			c.body = w->body;
			c.body_remain = w->cl;
			c.h2 = w->h2;
			out = NULL;
			len = 0;
			e = udsp_reqhead_build_ctx(&c, w->remainder, &out,
						   &len);
			if (e != w->err)
				fprintf(stderr, "row '%s': error %d, want %d\n",
					w->what, (int)e, (int)w->err);
			CHECK(e == w->err);
			if (e || e != w->err) {
				CHECK(!out == !!e);
				if (out)
					free(out - LWS_PRE);
				continue;
			}
			CHECK(out && len == strlen(out));
			if (out && strcmp(out, w->head))
				fprintf(stderr, "row '%s':\n", w->what);
			CHECK_STR(out, w->head);
			if (out)
				free(out - LWS_PRE);
		}
}

/* ------------------------------------------------------------- methods */

static void
methods(void)
{
	struct lws wsi;
	char buf[32];

	memset(&wsi, 0, sizeof(wsi));
	/* h1: lws's method index */
	CHECK_STR(udsp_method_name(&wsi, 0, LWSHUMETH_GET, buf, sizeof(buf)),
		  "GET");
	CHECK_STR(udsp_method_name(&wsi, 0, LWSHUMETH_HEAD, buf, sizeof(buf)),
		  "HEAD");
	CHECK_STR(udsp_method_name(&wsi, 0, LWSHUMETH_DELETE, buf,
				   sizeof(buf)), "DELETE");
	CHECK(!udsp_method_name(&wsi, 0, LWSHUMETH_CONNECT, buf, sizeof(buf)));
	CHECK(!udsp_method_name(&wsi, 0, LWSHUMETH_COLON_PATH, buf,
				sizeof(buf)));
	CHECK(!udsp_method_name(&wsi, 0, -1, buf, sizeof(buf)));
	/* h2: any token in :method, but not CONNECT */
	wsi.tok[WSI_TOKEN_HTTP_COLON_METHOD][0] = "PROPFIND";
	CHECK_STR(udsp_method_name(&wsi, 1, -1, buf, sizeof(buf)), "PROPFIND");
	wsi.tok[WSI_TOKEN_HTTP_COLON_METHOD][0] = "CONNECT";
	CHECK(!udsp_method_name(&wsi, 1, -1, buf, sizeof(buf)));
	wsi.tok[WSI_TOKEN_HTTP_COLON_METHOD][0] = "GE T";
	CHECK(!udsp_method_name(&wsi, 1, -1, buf, sizeof(buf)));
	wsi.tok[WSI_TOKEN_HTTP_COLON_METHOD][0] = NULL;
	CHECK(!udsp_method_name(&wsi, 1, LWSHUMETH_GET, buf, sizeof(buf)));
}

/* ----------------------------------------------------------- WebSocket */

static void
websocket(void)
{
	struct lws wsi;
	size_t len = 0;
	char *out = NULL;

	memset(&wsi, 0, sizeof(wsi));
	wsi.tok[WSI_TOKEN_HOST][0] = "h";
	wsi.tok[WSI_TOKEN_CONNECTION][0] = "Upgrade";
	wsi.tok[WSI_TOKEN_UPGRADE][0] = "websocket";
	wsi.tok[WSI_TOKEN_KEY][0] = "client-key";
	wsi.tok[WSI_TOKEN_VERSION][0] = "13";
	wsi.tok[WSI_TOKEN_PROTOCOL][0] = "chat, superchat";
	wsi.tok[WSI_TOKEN_ORIGIN][0] = "http://h";
	lws_snprintf(be.o.inside, sizeof(be.o.inside), "/");
	CHECK(!udsp_reqhead_build_ws(&wsi, &vhd, &be, NULL, "192.0.2.7",
				     "/ws", "b3VyLWtleQ==", "chat", &out,
				     &len));
	CHECK_STR(out,
		  "GET /ws HTTP/1.1\r\n"
		  "Host: h\r\n"
		  "origin: http://h\r\n"
		  "X-Forwarded-For: 192.0.2.7\r\n"
		  "X-Forwarded-Proto: http\r\n"
		  "X-Forwarded-Host: h\r\n"
		  "Connection: Upgrade\r\nUpgrade: websocket\r\n"
		  "Sec-WebSocket-Version: 13\r\n"
		  "Sec-WebSocket-Key: b3VyLWtleQ==\r\n"
		  "Sec-WebSocket-Protocol: chat\r\n"
		  "\r\n");
	if (out)
		free(out - LWS_PRE);
}

int
main(void)
{
	setup();
	build_rows();
	methods();
	websocket();
	udsp_reqhead_vhd_free(&vhd);
	CHECK(!vhd.mfwd);

	return T_END();
}
