/* SPDX-License-Identifier: MIT
 *
 * One backend connection: an lws RAW client wsi to a unix or TCP backend,
 * TLS run here with OpenSSL on memory BIOs (4.1.6's RAW client cannot do
 * TLS, docs/lws-notes.md N3).  What goes over it is its owner's business:
 * it reports connected, readable (bytes), writeable and closed to the
 * relay (udsp_relay_backend_*) or to a WebSocket relay, and fails a
 * connect at once through udsp_relay_connect_failed(); the owner asks
 * it through udsp_bconn_*() and never reads its fields.  The pool of
 * idle connections and a backend's health are pool.c's.
 */
#include "private.h"

#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#define UDSP_TLS_CHUNK 16384

static void
bind_relay(struct udsp_relay *r, struct udsp_bconn *bc)
{
	r->bc = bc;
	bc->r = r;
}

static void
unbind_relay(struct udsp_bconn *bc)
{
	if (bc->r)
		bc->r->bc = NULL;
	bc->r = NULL;
}

/* Backend bytes go to whoever owns the connection: a relay or a ws. */
static int
owner_rx(struct udsp_bconn *bc, const uint8_t *in, size_t len)
{
	if (bc->ws)
		return udsp_ws_backend_rx(bc->ws, in, len);

	return udsp_relay_backend_rx(bc->r, in, len);
}

/*
 * The backend's connection is gone (bc may live on a while to hand the
 * relay what it left unread): its max-conns slot is free.
 */
static void
bconn_uncount(struct udsp_bconn *bc)
{
	if (bc->uncounted)
		return;
	bc->uncounted = 1;
	bc->be->nconns--;
	udsp_pool_kick(bc->be);
}

static void
bconn_free(struct udsp_bconn *bc)
{
	if (bc->tailfd >= 0) {
		lws_sul_cancel(&bc->sul_tail);
		close(bc->tailfd);
	}
	if (bc->ssl)
		SSL_free(bc->ssl);	/* frees both BIOs */
	bconn_uncount(bc);
	free(bc);
}

static int
plain_write(struct udsp_bconn *bc, const uint8_t *p, size_t len)
{
	if (!bc->wsi)
		/* TLS's own records after the peer hung up: none can go */
		return 0;
	/*
	 * RAW writes carry no framing, so lws does not touch the LWS_PRE
	 * area; what the socket does not take lws keeps and sends before
	 * the next WRITEABLE, so a short count is no error
	 * (docs/lws-notes.md N6).
	 */
	if (lws_write(bc->wsi, (unsigned char *)p, len, LWS_WRITE_RAW) < 0)
		return -1;

	return 0;
}

/* Send whatever ciphertext OpenSSL has produced. */
static int
tls_flush(struct udsp_bconn *bc)
{
	uint8_t buf[LWS_PRE + UDSP_TLS_CHUNK];
	int n;

	while (BIO_ctrl_pending(bc->wbio)) {
		n = BIO_read(bc->wbio, buf + LWS_PRE, UDSP_TLS_CHUNK);
		if (n <= 0)
			break;
		if (plain_write(bc, buf + LWS_PRE, (size_t)n))
			return -1;
	}

	return 0;
}

int
udsp_bconn_write(struct udsp_bconn *bc, const uint8_t *p, size_t len)
{
	int n;

	if (!bc->wsi)
		return -1;
	udsp_stats_bytes(bc->be, 0, len);
	if (!bc->ssl)
		return plain_write(bc, p, len);

	while (len) {
		n = SSL_write(bc->ssl, p, (int)(len > UDSP_TLS_CHUNK ?
						UDSP_TLS_CHUNK : len));
		if (n <= 0)
			return -1;	/* memory BIO: only OOM fails here */
		p += n;
		len -= (size_t)n;
		if (tls_flush(bc))
			return -1;
	}

	return 0;
}

int
udsp_bconn_paused(const struct udsp_bconn *bc)
{
	return bc->paused;
}

/* the socket connected (TLS may still be on its way) */
int
udsp_bconn_connected(const struct udsp_bconn *bc)
{
	return bc->connected;
}

int
udsp_bconn_dead(const struct udsp_bconn *bc)
{
	return bc->dead;
}

int
udsp_bconn_partial(const struct udsp_bconn *bc)
{
	return bc->wsi && lws_partial_buffered(bc->wsi);
}

void
udsp_bconn_wake(struct udsp_bconn *bc)
{
	if (bc->wsi && bc->connected && (!bc->ssl || bc->tls_up))
		lws_callback_on_writable(bc->wsi);
}

static void
tail_cb(lws_sorted_usec_list_t *sul);

void
udsp_bconn_rx_flow(struct udsp_bconn *bc, int on)
{
	if (bc->paused == !on)
		return;
	bc->paused = !on;
	if (bc->tailfd >= 0) {
		/*
		 * The relay made room: read on from the event loop, not from
		 * inside the relay's own callback that asked for it.
		 */
		if (on)
			lws_sul_schedule(bc->vhd->cx, 0, &bc->sul_tail, tail_cb,
					 1);
		return;
	}
	if (bc->wsi)
		lws_rx_flow_control(bc->wsi, on);
}

static SSL_CTX *
vhd_ssl_ctx(struct udsp_vhd *vhd)
{
	SSL_CTX *ctx;

	if (vhd->ssl_ctx)
		return vhd->ssl_ctx;

	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (vhd->conf.tls_verify) {
		if ((vhd->conf.tls_ca &&
		     SSL_CTX_load_verify_locations(ctx, vhd->conf.tls_ca,
						   NULL) != 1) ||
		    (!vhd->conf.tls_ca &&
		     SSL_CTX_set_default_verify_paths(ctx) != 1)) {
			lwsl_err("%s: cannot load CA '%s'\n", UDSP_PROTOCOL_NAME,
				 vhd->conf.tls_ca ? vhd->conf.tls_ca :
						    "(system)");
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else
		/* like nginx's proxy_ssl_verify off: a unix socket names no
		 * host a certificate could match */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);

	vhd->ssl_ctx = ctx;

	return ctx;
}

static int
tls_start(struct udsp_bconn *bc)
{
	static const unsigned char alpn[] = "\x08http/1.1";
	const struct udsp_origin *o = &bc->be->o;
	struct in6_addr a6;
	SSL_CTX *ctx = vhd_ssl_ctx(bc->vhd);

	if (!ctx)
		return -1;
	bc->ssl = SSL_new(ctx);
	if (!bc->ssl)
		return -1;
	bc->rbio = BIO_new(BIO_s_mem());
	bc->wbio = BIO_new(BIO_s_mem());
	if (!bc->rbio || !bc->wbio) {
		BIO_free(bc->rbio);
		BIO_free(bc->wbio);
		bc->rbio = bc->wbio = NULL;
		return -1;
	}
	SSL_set_bio(bc->ssl, bc->rbio, bc->wbio);
	SSL_set_connect_state(bc->ssl);
	SSL_set_alpn_protos(bc->ssl, alpn, sizeof(alpn) - 1);

	if (o->host[0]) {
		/* SNI only for names, never for address literals (RFC 6066) */
		if (inet_pton(AF_INET, o->host, &a6) != 1 &&
		    inet_pton(AF_INET6, o->host, &a6) != 1)
			SSL_set_tlsext_host_name(bc->ssl, o->host);
		if (bc->vhd->conf.tls_verify)
			SSL_set1_host(bc->ssl, o->host);
	}

	if (SSL_do_handshake(bc->ssl) == 1)
		bc->tls_up = 1;

	return tls_flush(bc);
}

/*
 * A RAW client connection to be (TLS, if any, is ours on memory BIOs:
 * docs/lws-notes.md N3), whose events reach bc through the opaque pointer.
 */
static void
connect_info(struct lws_client_connect_info *i, struct udsp_vhd *vhd,
	     struct udsp_backend *be, struct udsp_bconn *bc)
{
	memset(i, 0, sizeof(*i));
	i->context = vhd->cx;
	i->vhost = vhd->vh;
	i->address = be->o.address;
	i->port = be->o.port;
	i->host = be->o.host[0] ? be->o.host : "localhost";
	i->origin = i->host;
	i->path = "/";
	i->method = "RAW";
	i->local_protocol_name = UDSP_PROTOCOL_NAME;
	i->opaque_user_data = bc;
	i->pwsi = &bc->wsi;
}

static struct udsp_bconn *
bconn_new(struct udsp_vhd *vhd, struct udsp_backend *be)
{
	struct udsp_bconn *bc = calloc(1, sizeof(*bc));

	if (!bc)
		return NULL;
	bc->vhd = vhd;
	bc->be = be;
	bc->tailfd = -1;
	be->nconns++;

	return bc;
}

/*
 * Start bc's connect: 0, or -1 with *err and why set when it failed at
 * once (ENOENT, ECONNREFUSED on a unix socket, EMFILE from socket()).
 * lws then suppressed CLIENT_CONNECTION_ERROR and left *pwsi dangling
 * (docs/lws-notes.md N1), so nothing else will free bc: the caller does.
 */
static int
bconn_connect(struct udsp_bconn *bc, int *err, char *why, size_t whylen)
{
	struct lws_client_connect_info i;

	connect_info(&i, bc->vhd, bc->be, bc);
	errno = 0;
	if (lws_client_connect_via_info(&i)) {
		udsp_pool_fds_ok();
		return 0;
	}
	*err = errno;
	lws_snprintf(why, whylen, "%s", *err ? strerror(*err) :
					       "connect failed");
	bc->wsi = NULL;

	return -1;
}

/* A connect that failed at once: whose fault it was */
static int
failed_at_once(struct udsp_backend *be, int err, const char *why)
{
	int local = udsp_pool_local_err(err);

	if (local)
		udsp_pool_fds_short(why);
	else
		udsp_pool_health(be, 0, why);

	return local;
}

/*
 * Give the relay a connection: an idle pooled one if there is one (and
 * this is not the retry after a pooled one failed), else a new one.
 * Returns 0, or -1 after failing the relay (503).
 */
int
udsp_bconn_get(struct udsp_relay *r)
{
	struct udsp_backend *be = r->be;
	struct udsp_bconn *bc;
	char why[64];
	int err, local;

	if ((bc = udsp_pool_take(r))) {
		bind_relay(r, bc);
		bc->reused = 1;
		udsp_relay_backend_connected(r);
		/*
		 * Open and idle: the request head goes now, not from the next
		 * WRITEABLE a poll() round later.  A failed write is handled
		 * as it would be there: the connection is closed, and its
		 * close retries the request on a fresh one.
		 */
		if (udsp_relay_backend_writeable(r))
			lws_set_timeout(bc->wsi,
					PENDING_TIMEOUT_KILLED_BY_PARENT,
					LWS_TO_KILL_ASYNC);
		return 0;
	}

	if (udsp_pool_wait(r))
		return 0;

	bc = bconn_new(r->vhd, be);
	if (!bc) {
		udsp_relay_fail(r, UDSP_E_INTERNAL, "OOM");
		return -1;
	}
	bind_relay(r, bc);
	if (!bconn_connect(bc, &err, why, sizeof(why)))
		return 0;

	unbind_relay(bc);
	bconn_free(bc);
	local = failed_at_once(be, err, why);

	return udsp_relay_connect_failed(r, err, local, why);
}

/*
 * A connection of its own for a WebSocket relay: never pooled and never
 * queued under max-conns (a ws holds its connection for its lifetime, so
 * at the limit it is refused).  Returns NULL with why filled when it
 * cannot be had; a synchronous connect failure (ENOENT, ECONNREFUSED on a
 * unix socket) is one of those.
 */
struct udsp_bconn *
udsp_bconn_open_ws(struct udsp_ws *ws, struct udsp_vhd *vhd,
		   struct udsp_backend *be, char *why, size_t whylen)
{
	struct udsp_bconn *bc;
	int err;

	if (vhd->conf.max_conns && be->nconns >= vhd->conf.max_conns) {
		lws_snprintf(why, whylen, "max-conns reached");
		return NULL;
	}
	bc = bconn_new(vhd, be);
	if (!bc) {
		lws_snprintf(why, whylen, "OOM");
		return NULL;
	}
	bc->ws = ws;	/* released with reusable 0: never pooled */

	if (!bconn_connect(bc, &err, why, whylen))
		return bc;

	bc->ws = NULL;
	if (!udsp_pool_local_err(err))
		udsp_pool_health(be, 0, why);
	bconn_free(bc);

	return NULL;
}

/*
 * The relay is finished with bc.  reusable: the exchange ended cleanly
 * and the backend will keep the connection open.
 */
void
udsp_bconn_release(struct udsp_bconn *bc, int reusable)
{
	unbind_relay(bc);

	if (reusable && udsp_pool_put(bc))
		return;

	bc->dead = 1;
	if (bc->wsi)
		/* RAW_CLOSE follows and frees bc */
		lws_set_timeout(bc->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT,
				LWS_TO_KILL_ASYNC);
	else if (!bc->busy)
		/* a tail, unless we are reading it (then we free it) */
		bconn_free(bc);
}

/*
 * issue 15: a unix connect that found the listener's backlog full (EAGAIN)
 * is taken by lws as under way, and then as done when the socket polls
 * writable with SO_ERROR 0; under libuv (lwsws) that comes though the
 * socket never connected (docs/lws-notes.md N44).  Ask the socket.
 */
static int
unix_not_connected(struct lws *wsi, const struct udsp_bconn *bc)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	return bc->be->o.kind == UDSP_ORIGIN_UNIX &&
	       getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&ss,
			   &sl) && errno == ENOTCONN;
}

static int
on_connected(struct lws *wsi, struct udsp_bconn *bc)
{
	/* a failed connect: its close marks the backend down (N44) */
	if (unix_not_connected(wsi, bc))
		return -1;

	bc->wsi = wsi;
	bc->connected = 1;

	if (!bc->be->o.tls)
		udsp_pool_health(bc->be, 1, NULL);

	if (!bc->r && !bc->ws)
		return -1;
	if (bc->r && !bc->be->o.tls)
		udsp_relay_backend_connected(bc->r);

	if (bc->be->o.tls && tls_start(bc)) {
		lwsl_info("%s: TLS setup failed\n", __func__);
		return -1;
	}
	if (!bc->be->o.tls || bc->tls_up)
		lws_callback_on_writable(wsi);

	return 0;
}

/* Plaintext (or ciphertext, for TLS backends) arrived from the backend. */
static int
on_rx(struct udsp_bconn *bc, const uint8_t *in, size_t len)
{
	uint8_t buf[UDSP_TLS_CHUNK];
	int n, e;

	if (!bc->r && !bc->ws)
		/* an idle pooled conn has nothing to say; drop it */
		return -1;

	if (!bc->ssl)
		return owner_rx(bc, in, len);

	if (len && BIO_write(bc->rbio, in, (int)len) != (int)len)
		return -1;

	if (!bc->tls_up) {
		n = SSL_do_handshake(bc->ssl);
		if (tls_flush(bc))
			return -1;
		if (n != 1) {
			e = SSL_get_error(bc->ssl, n);
			if (e == SSL_ERROR_WANT_READ)
				return 0;
			lwsl_info("%s: TLS handshake with %s failed: %s\n",
				  __func__, bc->be->spec,
				  ERR_reason_error_string(ERR_peek_error()));
			udsp_pool_health(bc->be, 0, "TLS handshake failed");
			ERR_clear_error();
			return -1;
		}
		bc->tls_up = 1;
		udsp_pool_health(bc->be, 1, NULL);
		if (bc->r)
			udsp_relay_backend_connected(bc->r);
		if (bc->wsi)
			lws_callback_on_writable(bc->wsi);
	}

	while (bc->r || bc->ws) {
		n = SSL_read(bc->ssl, buf, sizeof(buf));
		if (n <= 0) {
			e = SSL_get_error(bc->ssl, n);
			if (tls_flush(bc))
				return -1;
			if (e == SSL_ERROR_WANT_READ)
				return 0;
			ERR_clear_error();
			/* close_notify or a TLS error: treat as EOF */
			return -1;
		}
		if (owner_rx(bc, buf, (size_t)n))
			return -1;
	}

	return 0;
}

/*
 * lws closes a wsi whose peer hung up while rx was paused without reading
 * what is still queued in the socket (docs/lws-notes.md N5), and may do
 * so in the same poll round in which we resumed rx.  On a unix socket that
 * hang-up comes as soon as the backend closes, usually right after the last
 * bytes of a response it could send whole into the socket buffer: those
 * bytes are all there, and must reach the client.
 *
 * So the rest is read here, as the relay makes room (never more than it
 * could take while reading normally): first from lws's socket inside
 * RAW_CLOSE, then, if the relay pauses with bytes left, from our own
 * duplicate of the socket, which outlives the wsi.  The peer is gone, so
 * what is queued is all there will be: EAGAIN is the end, as EOF.
 *
 * Returns 1 when the rest is used up or the relay let go, 0 when paused
 * with bytes left.
 */
static int
tail_read(struct udsp_bconn *bc, int fd)
{
	uint8_t buf[UDSP_TLS_CHUNK];
	ssize_t n;

	while ((bc->r || bc->ws) && !bc->paused) {
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 1;
		if (on_rx(bc, buf, (size_t)n))
			return 1;
	}
	if (!bc->r && !bc->ws)
		return 1;

	do
		n = recv(fd, buf, 1, MSG_DONTWAIT | MSG_PEEK);
	while (n < 0 && errno == EINTR);

	return n <= 0;
}

/*
 * The backend's side has ended: tell its owner (a relay or a ws), if one
 * is still bound, once everything the backend sent has been handed over.
 */
static void
bconn_ended(struct udsp_bconn *bc)
{
	struct udsp_relay *r = bc->r;
	struct udsp_ws *ws = bc->ws;
	int connected = bc->connected && (!bc->ssl || bc->tls_up),
	    reused = bc->reused;

	unbind_relay(bc);
	bc->ws = NULL;	/* udsp_ws_backend_closed() forgets bc */
	bconn_free(bc);
	if (r)
		udsp_relay_backend_closed(r, connected, reused);
	if (ws)
		udsp_ws_backend_closed(ws, connected);
}

static void
tail_cb(lws_sorted_usec_list_t *sul)
{
	struct udsp_bconn *bc = lws_container_of(sul, struct udsp_bconn,
						 sul_tail);
	int done;

	bc->busy = 1;
	done = tail_read(bc, bc->tailfd);
	bc->busy = 0;
	if (done)
		bconn_ended(bc);
}

int
udsp_bconn_callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *in, size_t len)
{
	struct udsp_bconn *bc = (struct udsp_bconn *)
					lws_get_opaque_user_data(wsi);
	lws_sockfd_type fd;

	if (!bc)
		return reason == LWS_CALLBACK_RAW_CLOSE ? 0 : -1;

	switch (reason) {
	case LWS_CALLBACK_RAW_CONNECTED:
		return on_connected(wsi, bc);

	case LWS_CALLBACK_RAW_RX:
		if (bc->dead)
			return -1;
		return on_rx(bc, (const uint8_t *)in, len);

	case LWS_CALLBACK_RAW_WRITEABLE:
		if (bc->dead || (!bc->r && !bc->ws))
			return 0;
		if (bc->ssl && !bc->tls_up)
			return 0;
		if (bc->ws)
			return udsp_ws_backend_writeable(bc->ws);
		return udsp_relay_backend_writeable(bc->r);

	case LWS_CALLBACK_RAW_CLOSE:
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		/* exactly one of the two per wsi (docs/lws-notes.md N2) */
		lws_set_opaque_user_data(wsi, NULL);
		fd = lws_get_socket_fd(wsi);
		/* from here on nothing may touch the dying wsi */
		bc->wsi = NULL;
		bc->dead = 1;
		if (lws_dll2_is_detached(&bc->list) == 0)
			lws_dll2_remove(&bc->list);
		if (!bc->connected)
			udsp_pool_health(bc->be, 0, reason ==
			       LWS_CALLBACK_CLIENT_CONNECTION_ERROR && in &&
			       *(const char *)in ?
			       (const char *)in : "connect failed");

		if (reason == LWS_CALLBACK_RAW_CLOSE && (bc->r || bc->ws) &&
		    fd >= 0) {
			bc->busy = 1;
			if (!tail_read(bc, fd)) {
				/* lws closes fd after this callback */
				bc->tailfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
				if (bc->tailfd >= 0) {
					if (bc->r)
						udsp_info(bc->r, "backend closed, "
							  "its rest still to "
							  "read");
					bc->busy = 0;
					bconn_uncount(bc);
					return 0;
				}
				lwsl_warn("%s: cannot keep a closed backend "
					  "socket to read its rest: %s\n",
					  UDSP_PROTOCOL_NAME, strerror(errno));
			}
			bc->busy = 0;
		}
		bconn_ended(bc);
		return 0;

	default:
		break;
	}

	return 0;
}

