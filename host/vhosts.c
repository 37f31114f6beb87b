/* SPDX-License-Identifier: MIT
 *
 * A serving process's vhosts, and so its listeners: each vhost's protocol
 * list, the client TLS context they share, lws_create_vhost(), and the
 * unix-socket paths a draining process must leave to its successor.
 */
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <libwebsockets.h>

#include "serve.h"
#include "origin.h"

/*
 * The vhost's protocols: everyone's, plus one of each name its proxied
 * mounts list in ws-subprotocols, on the plugin's callback (lws binds a
 * ws upgrade that offers subprotocols to the vhost protocol of that name,
 * and names it in the 101).  One block, owned by v: pointers, then the
 * protocol structs.
 */
static const struct lws_protocols **
vhost_protocols(struct udsp_hc_vhost *v, const struct lws_protocols **pp)
{
	const struct lws_protocols *proxy = NULL, **out;
	struct lws_protocols *al;
	int n, k, count = 0, na = 0;

	if (!v->n_ws_subprotocols)
		return pp;
	for (n = 0; pp[n]; n++)
		if (!strcmp(pp[n]->name, UDSP_PROTOCOL_NAME))
			proxy = pp[n];
	count = n;
	if (!proxy)
		return pp;	/* udsp_srv_prepare() reported it */
	v->ws_pp = calloc(1, sizeof(*out) * (size_t)(count +
			  v->n_ws_subprotocols + 1) + sizeof(*al) *
			  (size_t)v->n_ws_subprotocols);
	if (!v->ws_pp)
		return NULL;
	out = v->ws_pp;
	al = (struct lws_protocols *)(out + count + v->n_ws_subprotocols + 1);
	memcpy(out, pp, sizeof(*out) * (size_t)count);
	for (k = 0; k < v->n_ws_subprotocols; k++) {
		for (n = 0; n < count; n++)
			if (!strcmp(out[n]->name, v->ws_subprotocols[k]))
				break;
		if (n < count) {
			lwsl_warn("%s: vhost '%s': subprotocol '%s' is the "
				  "name of a protocol; not proxied\n", v->file,
				  v->info.vhost_name, v->ws_subprotocols[k]);
			continue;
		}
		al[na] = *proxy;
		al[na].name = v->ws_subprotocols[k];
		out[count++] = &al[na++];
	}

	return out;
}

/*
 * lws builds a TLS client context for every vhost (DO_SSL_GLOBAL_INIT),
 * loading the system CA store: ~60 ms that would sit between the old
 * process closing its listeners and this one binding them.  Build the same
 * thing once, before that, and hand it to the vhosts that have no client
 * TLS settings of their own.  (The plugin runs its own TLS to backends.)
 * docs/lws-notes.md N32
 */
SSL_CTX *
udsp_srv_client_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		return NULL;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		ERR_clear_error();	/* as lws: verification then fails */

	return ctx;
}

static int
own_client_tls(const struct udsp_hc_vhost *v)
{
	const struct lws_context_creation_info *i = &v->info;

	return v->enable_client_ssl || i->client_ssl_cert_filepath ||
	       i->client_ssl_private_key_filepath ||
	       i->client_ssl_ca_filepath || i->client_ssl_cipher_list ||
	       i->client_tls_1_3_plus_cipher_list;
}

int
udsp_srv_create_vhosts(struct udsp_srv *s, struct lws_context *cx,
		       uint64_t ctx_opts)
{
	struct lws_context_creation_info ci;
	struct udsp_hc_vhost *v;
	struct lws_vhost *vh;
	struct stat st;

	for (v = s->hc.vhosts; v; v = v->next) {
		v->info.pprotocols = vhost_protocols(v, s->pp);
		if (!v->info.pprotocols) {
			lwsl_err("out of memory\n");
			return -1;
		}
		v->info.options |= ctx_opts;
		if (s->hc.server_string)
			v->info.server_string = s->hc.server_string;
		v->info.timeout_secs = (unsigned int)s->hc.timeout_secs;
		if (s->client_ctx && !own_client_tls(v))
			v->info.provided_client_ssl_ctx = s->client_ctx;

		vh = lws_create_vhost(cx, &v->info);
		if (!vh) {
			lwsl_err("%s: vhost '%s': lws could not create it "
				 "(port in use? see lws's message above)\n",
				 v->file, v->info.vhost_name);
			return -1;
		}
		v->vh = vh;

		if (v->enable_client_ssl) {
			/* as lwsws: only the client-side TLS fields */
			memset(&ci, 0, sizeof(ci));
			ci.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
			ci.client_ssl_cert_filepath =
					v->info.client_ssl_cert_filepath;
			ci.client_ssl_private_key_filepath =
					v->info.client_ssl_private_key_filepath;
			ci.client_ssl_ca_filepath =
					v->info.client_ssl_ca_filepath;
			ci.client_ssl_cipher_list =
					v->info.client_ssl_cipher_list;
			if (lws_init_vhost_client_ssl(&ci, vh)) {
				lwsl_err("%s: vhost '%s': client TLS init "
					 "failed\n", v->file,
					 v->info.vhost_name);
				return -1;
			}
		}

		if (v->info.options & LWS_SERVER_OPTION_UNIX_SOCK) {
			/* see udsp_srv_keep_foreign_sockets() */
			if (v->info.iface[0] != '@' &&
			    !stat(v->info.iface, &st)) {
				v->sock_dev = st.st_dev;
				v->sock_ino = st.st_ino;
				v->sock_ctime = st.st_ctim;
			}
			lwsl_notice("vhost '%s': %sunix socket %s\n",
				    v->info.vhost_name,
				    v->info.ssl_cert_filepath ? "TLS, " : "",
				    v->info.iface);
		} else
			lwsl_notice("vhost '%s': %s%s:%d\n",
				    v->info.vhost_name,
				    v->info.ssl_cert_filepath ? "TLS, " : "",
				    v->info.iface ? v->info.iface : "*",
				    v->info.port);
	}

	return 0;
}

/*
 * lws unlinks a unix-socket vhost's path when the vhost is destroyed
 * (docs/lws-notes.md N33).  After a reload the path belongs to
 * the new process's listener, so a draining old process must not remove
 * it.  lws keeps our info.iface pointer (vh->iface = info->iface), which
 * points into our config arena: emptying it makes that unlink a no-op.
 *
 * The file is still ours if it is the same inode with the same ctime: the
 * new process unlinks our file before it binds, and ext4 often hands the
 * freed inode number straight to its new file (test-ops-workers caught the
 * old process removing the new listener's path that way).
 */
void
udsp_srv_keep_foreign_sockets(struct udsp_srv *s)
{
	struct udsp_hc_vhost *v;
	struct stat st;

	for (v = s->hc.vhosts; v; v = v->next) {
		if (!(v->info.options & LWS_SERVER_OPTION_UNIX_SOCK) ||
		    !v->info.iface || v->info.iface[0] == '@' ||
		    !v->sock_ino)
			continue;
		/*
		 * A worker never removes the path: its manager and the other
		 * workers may still listen on it.  The manager ends last.
		 */
		if (!s->worker && !stat(v->info.iface, &st) &&
		    st.st_dev == v->sock_dev && st.st_ino == v->sock_ino &&
		    st.st_ctim.tv_sec == v->sock_ctime.tv_sec &&
		    st.st_ctim.tv_nsec == v->sock_ctime.tv_nsec)
			continue;	/* still ours: lws may remove it */
		((char *)v->info.iface)[0] = '\0';
	}
}

