/* SPDX-License-Identifier: MIT
 *
 * A serving process before it listens: the config, the protocol plugins
 * (Debian's lws has the plugin API but not automatic plugin dirs), and
 * every start-up check (also `-t`): the protocols each vhost needs, its
 * TLS files.
 */
#include <sys/stat.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <libwebsockets.h>

#include "serve.h"
#include "origin.h"

#if !defined(UDSP_DEFAULT_PLUGIN_DIR)
#define UDSP_DEFAULT_PLUGIN_DIR "/usr/local/lib/lws-uds-proxy/plugins"
#endif

/*
 * The largest frame payload every h2 peer takes (RFC 9113 4.2: the
 * initial SETTINGS_MAX_FRAME_SIZE).  lws 4.1.6 never splits a DATA frame
 * nor reads the peer's setting: each lws_write on an h2 stream is one
 * frame, so every writer must stay within this.
 */
#define UDSP_H2_FRAME_MAX 16384

/*
 * protocols[0] of every vhost: plain HTTP (mounts, files, redirects) for
 * connections that no plugin protocol claims, as with lwsws.  lws also
 * tells it of every accepted connection: the accept gate (limits.c)
 * counts them there.  It is also the protocol of every h2 stream that
 * serves a file:// mount, and lws sizes each file piece (one DATA frame
 * on h2) as pt_serv_buf_size capped by tx_packet_size: the cap keeps a
 * file's frames within UDSP_H2_FRAME_MAX while pt_serv_buf_size stays
 * large for reads.  It costs no send(): the h2 network connection (bound
 * here too) sends up to tx_packet_size + LWS_PRE + 4 per call, a whole
 * 16 KiB frame with its 9-byte header.
 */
static const struct lws_protocols proto_http = {
	"http-only", udsp_gate_callback, 0, 0, 0, NULL, UDSP_H2_FRAME_MAX
};

static int
add_dir(struct udsp_srv *s, const char *d, int quiet)
{
	struct stat st;
	int n;

	for (n = 0; n < s->ndirs; n++)
		if (!strcmp(s->dirs[n], d))
			return 0;
	/* lws_plugins_init logs a scandir error per missing dir */
	if (stat(d, &st) || !S_ISDIR(st.st_mode)) {
		if (!quiet)
			lwsl_warn("plugin dir '%s': %s\n", d,
				  errno ? strerror(errno) : "not a directory");
		return 0;
	}
	if (s->ndirs == MAX_DIRS) {
		lwsl_err("too many plugin dirs\n");
		return -1;
	}
	s->dirs[s->ndirs++] = d;
	s->dirs[s->ndirs] = NULL;

	return 0;
}

/*
 * protocols[] for every vhost: http first, then each plugin's protocols.
 * Returns a NULL-terminated malloc'd array, or NULL.
 */
static const struct lws_protocols **
collect_protocols(struct lws_plugin *plugins)
{
	const struct lws_protocols **pp;
	const lws_plugin_protocol_t *plpr;
	struct lws_plugin *p;
	int n, m, count = 1;

	for (p = plugins; p; p = p->list)
		count += ((const lws_plugin_protocol_t *)p->hdr)->
							count_protocols;

	pp = calloc((size_t)count + 1, sizeof(*pp));
	if (!pp) {
		lwsl_err("out of memory\n");
		return NULL;
	}

	count = 0;
	pp[count++] = &proto_http;
	for (p = plugins; p; p = p->list) {
		plpr = (const lws_plugin_protocol_t *)p->hdr;
		for (n = 0; n < plpr->count_protocols; n++) {
			for (m = 0; m < count; m++)
				if (!strcmp(pp[m]->name,
					    plpr->protocols[n].name))
					break;
			if (m < count) {
				lwsl_warn("plugin '%s': protocol '%s' already "
					  "loaded; ignoring this one\n",
					  plpr->hdr.name,
					  plpr->protocols[n].name);
				continue;
			}
			lwsl_notice("plugin '%s': protocol '%s'\n",
				    plpr->hdr.name, plpr->protocols[n].name);
			pp[count++] = &plpr->protocols[n];
		}
	}

	return pp;
}

static int
have_protocol(const struct lws_protocols **pp, const char *name)
{
	for (; *pp; pp++)
		if (!strcmp((*pp)->name, name))
			return 1;

	return 0;
}

/*
 * A name one of the vhost's mounts lists in ws-subprotocols: vhosts.c
 * registers it, so lwsws's ws-protocols entry enabling it (the plugin's
 * export there, docs/lws-notes.md N53) is met here too and the same config
 * serves both.
 */
static int
is_ws_subprotocol(const struct udsp_hc_vhost *v, const char *name)
{
	int k;

	for (k = 0; k < v->n_ws_subprotocols; k++)
		if (!strcmp(v->ws_subprotocols[k], name))
			return 1;

	return 0;
}

static int
pw_none(char *buf, int size, int rwflag, void *u)
{
	/* never prompt on a tty for a key passphrase */
	return 0;
}

static void
tls_problem(const struct udsp_hc_vhost *v, const char *key, const char *file,
	    const char *what)
{
	char e[256] = "";
	unsigned long err = ERR_get_error();

	if (err)
		ERR_error_string_n(err, e, sizeof(e));
	ERR_clear_error();
	lwsl_err("%s: vhost '%s': %s '%s': %s%s%s\n", v->file,
		 v->info.vhost_name, key, file, what, *e ? ": " : "", e);
}

/*
 * Load the vhost's certificate, key and CA the way lws will, so that a bad
 * file fails `-t` and a reload before any listener is touched.
 */
static int
check_tls(const struct udsp_hc_vhost *v)
{
	const struct lws_context_creation_info *i = &v->info;
	SSL_CTX *ctx;
	int bad = 0;

	if (!i->ssl_cert_filepath || !i->ssl_private_key_filepath ||
	    (i->options & LWS_SERVER_OPTION_IGNORE_MISSING_CERT) ||
	    /* the config reader has already reported these */
	    access(i->ssl_cert_filepath, R_OK) ||
	    access(i->ssl_private_key_filepath, R_OK))
		return 0;

	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		lwsl_err("OpenSSL: cannot create a TLS context\n");
		return 1;
	}
	SSL_CTX_set_default_passwd_cb(ctx, pw_none);

	if (SSL_CTX_use_certificate_chain_file(ctx,
					i->ssl_cert_filepath) != 1) {
		tls_problem(v, "host-ssl-cert", i->ssl_cert_filepath,
			    "not a usable PEM certificate");
		bad = 1;
	} else if (SSL_CTX_use_PrivateKey_file(ctx,
			i->ssl_private_key_filepath, SSL_FILETYPE_PEM) != 1) {
		tls_problem(v, "host-ssl-key", i->ssl_private_key_filepath,
			    "not a usable PEM private key (or encrypted)");
		bad = 1;
	} else if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_problem(v, "host-ssl-key", i->ssl_private_key_filepath,
			    "does not match host-ssl-cert");
		bad = 1;
	}
	if (i->ssl_ca_filepath &&
	    SSL_CTX_load_verify_locations(ctx, i->ssl_ca_filepath,
					  NULL) != 1) {
		tls_problem(v, "host-ssl-ca", i->ssl_ca_filepath,
			    "cannot load CA certificates");
		bad = 1;
	}
	SSL_CTX_free(ctx);

	return bad;
}

/*
 * Everything that can be checked without listening: the config files, the
 * plugins, the protocols each vhost needs, TLS files.  Every problem is
 * logged (one lwsl_err line each); returns how many there were.
 */
int
udsp_srv_prepare(struct udsp_srv *s, const struct udsp_opts *o)
{
	const struct udsp_hc_vhost *v;
	const struct udsp_hc_need *nd;
	int n, problems = 0, e0;

	s->st_fd = -1;
	s->dirs[0] = NULL;

	/* a failed config may still hold vhosts worth checking further */
	if (udsp_hconf_load(&s->hc, o->confdir))
		problems++;
	if (s->hc.oom)
		return problems;

	/* default dir (quietly: absent in build trees), config, command line */
	if (o->defdir && add_dir(s, UDSP_DEFAULT_PLUGIN_DIR, 1))
		return problems + 1;
	for (n = 0; n < s->hc.count_plugin_dirs; n++)
		if (add_dir(s, s->hc.plugin_dirs[n], 0))
			return problems + 1;
	for (n = 0; n < o->ncli; n++)
		if (add_dir(s, o->cli_dirs[n], 0))
			return problems + 1;

	/*
	 * The plugin exports a protocol per name in this variable when it is
	 * loaded (lwsws's way to a mount's ws-subprotocols, docs/lws-notes.md
	 * N53).  Here each vhost gets the names its mounts list
	 * (vhosts.c): the plugin's would be on every vhost and shadow those,
	 * so it is not to see them.
	 */
	if (getenv("LWS_UDS_PROXY_WS_SUBPROTOCOLS")) {
		lwsl_notice("LWS_UDS_PROXY_WS_SUBPROTOCOLS is for lwsws and "
			    "ignored here: a mount's ws-subprotocols registers "
			    "its names\n");
		unsetenv("LWS_UDS_PROXY_WS_SUBPROTOCOLS");
	}

	/* lws logs a plugin that fails to load, but does not return it */
	e0 = udsp_log_errors;
	if (lws_plugins_init(&s->plugins, s->dirs, "lws_protocol_plugin",
			     NULL, NULL, NULL)) {
		lwsl_err("plugin loading failed\n");
		problems++;
	}
	problems += udsp_log_errors - e0;

	s->pp = collect_protocols(s->plugins);
	if (!s->pp)
		return problems + 1;

	for (v = s->hc.vhosts; v; v = v->next) {
		for (nd = v->needs; nd; nd = nd->next)
			if (!have_protocol(s->pp, nd->name) &&
			    !is_ws_subprotocol(v, nd->name)) {
				lwsl_err("%s: vhost '%s': %s: protocol '%s' "
					 "is not available (plugin missing "
					 "from the plugin dirs?)\n", v->file,
					 v->info.vhost_name, nd->why,
					 nd->name);
				problems++;
			}
		problems += check_tls(v);
	}

	return problems;
}

void
udsp_srv_unprepare(struct udsp_srv *s)
{
	struct udsp_hc_vhost *v;

	for (v = s->hc.vhosts; v; v = v->next) {
		free(v->ws_pp);
		v->ws_pp = NULL;
	}
	free(s->pp);
	s->pp = NULL;
	/* after the context: its vhosts used the plugins' protocols */
	lws_plugins_destroy(&s->plugins, NULL, NULL);
	udsp_hconf_destroy(&s->hc);
}

int
udsp_serve_check(const struct udsp_opts *o)
{
	struct udsp_srv s;
	int problems;

	memset(&s, 0, sizeof(s));
	problems = udsp_srv_prepare(&s, o);
	udsp_srv_unprepare(&s);

	/* the verdict, whatever the log level */
	if (problems) {
		fprintf(stderr, "lws-uds-proxyd: %s: configuration has "
			"problems (listed above)\n", o->confdir);
		return 1;
	}
	fprintf(stderr, "lws-uds-proxyd: %s: configuration ok\n",
		o->confdir);

	return 0;
}

