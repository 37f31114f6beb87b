/* SPDX-License-Identifier: MIT
 *
 * One send() per TLS connection per service round.
 *
 * lws 4.1.6 hands OpenSSL every frame as its own SSL_write(), and OpenSSL
 * writes each record straight to the socket: an h2 response to a new stream
 * costs four write() calls (two WINDOW_UPDATEs lws sends for every new
 * stream, HEADERS, DATA), an h1 one over TLS two.  This puts a write buffer
 * of our own under each accepted server connection's SSL, in place of the
 * socket BIO that SSL_set_fd() made for writing (reads keep lws's BIO), and
 * sends what it holds once lws's service round is over (serve.c calls
 * udsp_tlsbuf_flush() after each lws_service()).
 *
 * What lws sees stays true:
 * - a write is accepted whole only while everything held fits in
 *   UDSP_TLSBUF_CAP; a larger one is sent at once together with what is
 *   held (one sendmsg), and what the socket does not take is reported as
 *   a short write or "retry", so SSL_write() says WANT_WRITE and lws keeps
 *   the rest in its own buffer and waits for POLLOUT, as without us.
 *   Memory stays bounded: UDSP_TLSBUF_CAP per connection, and only while
 *   something is held.
 * - OpenSSL's BIO_flush() (end of a handshake flight, alerts such as
 *   close_notify) really sends, and fails with "retry" when the socket is
 *   full, so SSL_accept()/SSL_shutdown() ask lws for POLLOUT themselves.
 * - bytes still held after a round's flush (socket full) make us ask lws
 *   for POLLOUT on the connection; when lws will not give it (a connection
 *   it is closing waits for POLLIN only), a timer retries until the held
 *   bytes are out or lws closes the connection.
 *
 * Above the BIO, the same connections' plaintext is gathered too
 * (SSL_write() below): what one round writes becomes one TLS record, not
 * one per frame; and lws's queue of h2 WINDOW_UPDATEs, which it sends one
 * per POLLOUT, is drained in the round that queued it (pps_drain()).  An
 * h2 GET on a new stream: four records in three rounds became two records
 * in two rounds (docs/lws-notes.md N48).
 *
 * lws's own lwsws never calls udsp_tlsbuf_flush(), so none of this exists
 * there: it is the daemon's only (serve.c owns the loop).
 */
#define _GNU_SOURCE	/* MSG_NOSIGNAL */
#include <sys/socket.h>
#include <sys/uio.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <libwebsockets.h>

#include "daemon.h"

/* what one connection may hold unsent: more than a round of small frames,
 * and writes that do not fit go out at once */
#define UDSP_TLSBUF_CAP		16384
/* buffers kept for reuse instead of free()d after each flush */
#define UDSP_TLSBUF_SPARE	16
/* POLLOUTs served to send queued h2 control frames, per round */
#define UDSP_TLSBUF_PPS_MAX	256
/* plaintext one connection may hold: one full TLS record */
#define UDSP_TLSBUF_PT_CAP	16384
/* retry period for held bytes lws would not ask POLLOUT for */
#define UDSP_TLSBUF_RETRY_US	(20 * LWS_US_PER_MS)

struct tb {
	lws_dll2_t	list;	/* in held while len > off or ptlen */
	struct lws	*wsi;	/* the connection's wsi (the network one) */
	SSL		*ssl;
	unsigned char	*buf;	/* UDSP_TLSBUF_CAP, only while holding */
	size_t		off, len;	/* held: buf[off..len) */
	unsigned char	*pt;	/* UDSP_TLSBUF_PT_CAP, only while holding */
	size_t		ptlen;	/* plaintext accepted, not yet SSL_write()n */
	int		fd;
	unsigned int	blocked:1;	/* the socket refused the last flush */
	unsigned int	pt_stuck:1;	/* pt is in a real SSL_write() that
					 * said "retry": retry it unchanged */
	unsigned int	dead:1;		/* a real SSL_write() failed for good */
	unsigned int	wu_last:1;	/* the last write was an h2
					 * WINDOW_UPDATE: more may be queued */
};

static struct {
	BIO_METHOD		*meth;
	int			type;	/* meth's BIO type */
	struct lws_context	*cx;
	lws_dll2_owner_t	held;
	lws_sorted_usec_list_t	sul;
	unsigned char		*spare[UDSP_TLSBUF_SPARE];
	int			nspare;
	unsigned char		*ptspare[UDSP_TLSBUF_SPARE];
	int			nptspare;
	int			(*ssl_write)(SSL *, const void *, int);
	int			(*ssl_shutdown)(SSL *);
} t;

static void
give_back(unsigned char **spare, int *n, unsigned char **p)
{
	if (!*p)
		return;
	if (*n < UDSP_TLSBUF_SPARE)
		spare[(*n)++] = *p;
	else
		free(*p);
	*p = NULL;
}

static void
pt_release(struct tb *b)
{
	b->ptlen = 0;
	b->pt_stuck = 0;
	give_back(t.ptspare, &t.nptspare, &b->pt);
	if (b->len == b->off)
		lws_dll2_remove(&b->list);
}

static void
release(struct tb *b)
{
	if (!b->ptlen)
		lws_dll2_remove(&b->list);
	b->off = b->len = 0;
	b->blocked = 0;
	give_back(t.spare, &t.nspare, &b->buf);
}

/*
 * Send the held bytes, then `extra` (may be NULL).  Returns how many of
 * extra's bytes went, or -1 with errno (EAGAIN: nothing of extra went).
 */
static ssize_t
sendout(struct tb *b, const void *extra, size_t elen)
{
	struct msghdr mh;
	struct iovec iov[2];
	size_t held = b->len - b->off;
	ssize_t r;
	int n = 0;

	if (held) {
		iov[n].iov_base = b->buf + b->off;
		iov[n++].iov_len = held;
	}
	if (elen) {
		iov[n].iov_base = (void *)extra;
		iov[n++].iov_len = elen;
	}
	if (!n)
		return 0;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = (size_t)n;
	do
		r = sendmsg(b->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		if (errno == EWOULDBLOCK)
			errno = EAGAIN;
		b->blocked = errno == EAGAIN;
		return -1;
	}
	if ((size_t)r >= held) {
		release(b);
		r -= (ssize_t)held;
		b->blocked = (size_t)r < elen;
		return r;
	}
	b->off += (size_t)r;
	b->blocked = 1;
	errno = EAGAIN;

	return elen ? -1 : 0;
}

static int
hold(struct tb *b, const void *in, size_t len)
{
	if (!b->buf) {
		b->buf = t.nspare ? t.spare[--t.nspare] :
				    malloc(UDSP_TLSBUF_CAP);
		if (!b->buf)
			return -1;
	}
	if (b->off && b->len + len > UDSP_TLSBUF_CAP) {
		memmove(b->buf, b->buf + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	memcpy(b->buf + b->len, in, len);
	b->len += len;
	if (lws_dll2_is_detached(&b->list))
		lws_dll2_add_tail(&b->list, &t.held);

	return 0;
}

static int
tb_write(BIO *bio, const char *in, int inl)
{
	struct tb *b = BIO_get_data(bio);
	size_t len = (size_t)inl, held;
	ssize_t r;

	BIO_clear_retry_flags(bio);
	if (inl <= 0)
		return 0;
	held = b->len - b->off;

	/* fits with what is held (after any earlier refusal, still no
	 * send: the flush after this round or POLLOUT tries) */
	if (held + len <= UDSP_TLSBUF_CAP && !b->blocked)
		return hold(b, in, len) ? -1 : inl;

	r = sendout(b, in, len);
	if (r < 0) {
		if (errno != EAGAIN)
			return -1;	/* SSL_ERROR_SYSCALL: lws closes */
		BIO_set_retry_write(bio);
		return -1;
	}
	if ((size_t)r == len)
		return inl;
	/* the socket is full: keep a small rest, or report a short write */
	if (b->len == b->off && len - (size_t)r <= UDSP_TLSBUF_CAP &&
	    !hold(b, in + r, len - (size_t)r))
		return inl;
	if (!r) {
		BIO_set_retry_write(bio);
		return -1;
	}

	return (int)r;
}

static long
tb_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
	struct tb *b = BIO_get_data(bio);

	switch (cmd) {
	case BIO_CTRL_FLUSH:
		BIO_clear_retry_flags(bio);
		if (b->len == b->off)
			return 1;
		if (sendout(b, NULL, 0) < 0 && errno != EAGAIN)
			return -1;
		if (b->len == b->off)
			return 1;
		BIO_set_retry_write(bio);
		return -1;
	case BIO_CTRL_WPENDING:
		return (long)(b->len - b->off);
	case BIO_CTRL_PENDING:
		return 0;
	case BIO_CTRL_GET_CLOSE:
		return BIO_NOCLOSE;
	case BIO_CTRL_SET_CLOSE:
		return 1;
	default:
		/* ktls and the rest: not ours */
		return 0;
	}
}

static int
tb_create(BIO *bio)
{
	BIO_set_init(bio, 0);
	BIO_set_data(bio, NULL);

	return 1;
}

static int
tb_destroy(BIO *bio)
{
	struct tb *b = BIO_get_data(bio);

	/* SSL_free(), after lws closed the descriptor: nothing can go now */
	if (b) {
		pt_release(b);
		release(b);
		free(b);
	}
	BIO_set_data(bio, NULL);

	return 1;
}

/* ---------------------------------------------------- plaintext */

/* our buffer under this SSL, if it is one of ours and still usable */
static struct tb *
tb_of(SSL *ssl)
{
	BIO *w = ssl && t.meth ? SSL_get_wbio(ssl) : NULL;

	if (!w || BIO_method_type(w) != t.type)
		return NULL;

	return BIO_get_data(w);
}

/*
 * Encrypt what is held as one record.  > 0: done; <= 0: the real
 * SSL_write()'s answer, for SSL_get_error() to explain (the state it reads
 * is that call's): "retry" keeps pt unchanged, as OpenSSL wants it again.
 */
static int
pt_flush(struct tb *b)
{
	int n;

	n = t.ssl_write(b->ssl, b->pt, (int)b->ptlen);
	if (n > 0) {
		pt_release(b);
		return n;
	}
	b->pt_stuck = 1;
	switch (SSL_get_error(b->ssl, n)) {
	case SSL_ERROR_WANT_WRITE:
	case SSL_ERROR_WANT_READ:
		break;
	default:
		/* lws learns it at its next read or write */
		b->dead = 1;
		break;
	}

	return n;
}

static int
pt_hold(struct tb *b, const void *buf, size_t len)
{
	if (!b->pt) {
		b->pt = t.nptspare ? t.ptspare[--t.nptspare] :
				     malloc(UDSP_TLSBUF_PT_CAP);
		if (!b->pt)
			return -1;
	}
	memcpy(b->pt + b->ptlen, buf, len);
	b->ptlen += len;
	if (lws_dll2_is_detached(&b->list))
		lws_dll2_add_tail(&b->list, &t.held);

	return 0;
}

/*
 * lws calls SSL_write() once per frame.  The daemon defines SSL_write, so
 * the dynamic linker binds lws's calls here (as ERR_clear_error in
 * sslerr.c): on our connections, small writes made during a service round
 * are gathered and encrypted as one record when the round ends (or when
 * the next write would not fit, or at SSL_shutdown()), instead of one
 * record per frame.  A gathered write is reported written whole, like a
 * held record below us; a write that finds earlier plaintext that cannot
 * go yet gets that real SSL_write()'s "retry", and lws keeps its data
 * itself, as without us.  Anything else goes straight to libssl.
 */
int
SSL_write(SSL *ssl, const void *buf, int num)
{
	struct tb *b = tb_of(ssl);
	int n;

	if (!t.ssl_write) {
		t.ssl_write = (int (*)(SSL *, const void *, int))
					dlsym(RTLD_NEXT, "SSL_write");
		if (!t.ssl_write)
			return -1;
	}
	if (!b || b->dead || num <= 0 || !SSL_is_init_finished(ssl))
		return t.ssl_write(ssl, buf, num);

	/* an h2 frame header: 4-byte payload, type 8 (WINDOW_UPDATE) */
	b->wu_last = num == 13 && !memcmp(buf, "\0\0\4\x08", 4);

	if (b->ptlen && (b->pt_stuck || b->blocked ||
			 b->ptlen + (size_t)num > UDSP_TLSBUF_PT_CAP)) {
		n = pt_flush(b);
		if (n <= 0)
			return n;
	}
	if (!b->blocked && b->ptlen + (size_t)num <= UDSP_TLSBUF_PT_CAP &&
	    !pt_hold(b, buf, (size_t)num))
		return num;

	return t.ssl_write(ssl, buf, num);
}

/* what was gathered goes before the close_notify */
int
SSL_shutdown(SSL *ssl)
{
	struct tb *b = tb_of(ssl);

	if (!t.ssl_shutdown) {
		t.ssl_shutdown = (int (*)(SSL *))dlsym(RTLD_NEXT,
						       "SSL_shutdown");
		if (!t.ssl_shutdown)
			return -1;
	}
	if (b && b->ptlen && !b->dead)
		(void)pt_flush(b);
	if (b && b->dead)
		pt_release(b);

	return t.ssl_shutdown(ssl);
}

/* protocols[0] heard of a new accepted connection */
void
udsp_tlsbuf_attach(struct lws *wsi)
{
	SSL *ssl = lws_get_ssl(wsi);
	struct tb *b;
	BIO *bio;

	if (!ssl || !t.meth || SSL_get_wbio(ssl) == NULL ||
	    BIO_method_type(SSL_get_wbio(ssl)) !=
						BIO_TYPE_SOCKET)
		return;	/* not the fresh server SSL we expect: leave it */

	b = calloc(1, sizeof(*b));
	bio = b ? BIO_new(t.meth) : NULL;
	if (!bio) {
		free(b);
		return;	/* it just goes unbuffered */
	}
	b->wsi = wsi;
	b->ssl = ssl;
	b->fd = lws_get_socket_fd(wsi);
	BIO_set_data(bio, b);
	BIO_set_init(bio, 1);
	/* drops the SSL's write reference to the socket BIO; reads keep it */
	SSL_set0_wbio(ssl, bio);
}

static void
retry(lws_sorted_usec_list_t *sul)
{
	udsp_tlsbuf_flush();
}

/*
 * lws 4.1.6 sends one queued h2 control frame per POLLOUT
 * (rops_handle_POLLOUT_h2(), docs/lws-notes.md N48), and queues two
 * WINDOW_UPDATEs for every new stream (N19): each would cost a service
 * round of its own (a poll() and a send), before the response.  While a
 * connection's last write was a WINDOW_UPDATE, serve it another POLLOUT
 * now, through lws's public lws_service_fd(), so that the queue drains
 * into this round's record: what the next round's poll() would have
 * reported, since our buffer takes the bytes.  The held list is walked
 * afresh after each call: lws may close and free any connection in it.
 */
static void
pps_drain(void)
{
	struct lws_pollfd pfd;
	int n = UDSP_TLSBUF_PPS_MAX;
	struct tb *b;

	while (n-- > 0) {
		b = NULL;
		lws_start_foreach_dll(struct lws_dll2 *, d,
				      lws_dll2_get_head(&t.held)) {
			struct tb *c = lws_container_of(d, struct tb, list);

			if (!b && c->wu_last && !c->blocked && !c->dead)
				b = c;
		} lws_end_foreach_dll(d);
		if (!b)
			return;
		b->wu_last = 0;
		pfd.fd = b->fd;
		pfd.events = LWS_POLLIN | LWS_POLLOUT;
		pfd.revents = LWS_POLLOUT;
		lws_service_fd(t.cx, &pfd);
	}
}

/* after each service round: send what every connection holds */
void
udsp_tlsbuf_flush(void)
{
	int again = 0;

	if (t.cx)
		pps_drain();

	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1,
				   lws_dll2_get_head(&t.held)) {
		struct tb *b = lws_container_of(d, struct tb, list);

		/* (no `continue` in here: it would skip the macro's step) */
		if (b->ptlen && pt_flush(b) <= 0 && b->dead)
			pt_release(b);
		if (sendout(b, NULL, 0) < 0 && errno != EAGAIN)
			/* the connection is broken: lws finds out by itself */
			release(b);
		else if ((b->len != b->off || b->ptlen) &&
			 /* the socket is full: wake when it takes more */
			 lws_callback_on_writable(b->wsi) != 1)
			again = 1;
	} lws_end_foreach_dll_safe(d, d1);

	if (again && t.cx && lws_dll2_is_detached(&t.sul.list))
		lws_sul_schedule(t.cx, 0, &t.sul, retry,
				 UDSP_TLSBUF_RETRY_US);
}

int
udsp_tlsbuf_init(struct lws_context *cx)
{
	int idx = BIO_get_new_index();

	t.cx = cx;
	/* the next definitions: libssl's (ours are the executable's) */
	t.ssl_write = (int (*)(SSL *, const void *, int))
					dlsym(RTLD_NEXT, "SSL_write");
	t.ssl_shutdown = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_shutdown");
	if (idx < 0 || !t.ssl_write || !t.ssl_shutdown)
		return -1;
	t.type = idx | BIO_TYPE_SOURCE_SINK;
	t.meth = BIO_meth_new(t.type, "udsp tls write");
	if (!t.meth)
		return -1;
	BIO_meth_set_write(t.meth, tb_write);
	BIO_meth_set_ctrl(t.meth, tb_ctrl);
	BIO_meth_set_create(t.meth, tb_create);
	BIO_meth_set_destroy(t.meth, tb_destroy);

	return 0;
}

/* before lws_context_destroy(): the timer is on the context */
void
udsp_tlsbuf_stop(void)
{
	lws_sul_cancel(&t.sul);
	t.cx = NULL;
}

/* after it: the last SSL (and our BIO under it) is gone */
void
udsp_tlsbuf_destroy(void)
{
	while (t.nspare)
		free(t.spare[--t.nspare]);
	while (t.nptspare)
		free(t.ptspare[--t.nptspare]);
	if (t.meth)
		BIO_meth_free(t.meth);
	t.meth = NULL;
}
