/* SPDX-License-Identifier: MIT
 *
 * The daemon's config reader (host/conf*.c), through
 * udsp_hconf_load() on files written to a temporary CONFDIR: no lws
 * context, no listener.  Each bad config must be refused (-1) with an
 * error line naming the file, the key path and the problem; each good one
 * must come back with the values lws will be handed.  Messages are caught
 * through lws's log emitter.
 */
#include <sys/stat.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "t.h"

/* JSON without escaping: J({"a": 1}) is the string "{\"a\": 1}" */
#define J(...)	#__VA_ARGS__

/* @D@ in a config stands for CONFDIR */
static char confdir[64];

/* ------------------------------------------------------ log capture */

static char logbuf[16384];
static size_t loglen;

static void
emit(int level, const char *line)
{
	size_t n = strlen(line);

	if (loglen + n + 1 < sizeof(logbuf)) {
		memcpy(logbuf + loglen, line, n);
		loglen += n;
		logbuf[loglen] = '\0';
	}
}

/* 1 if one logged line holds both a and b */
static int
logged(const char *a, const char *b)
{
	const char *l = logbuf, *e;
	char line[1024];
	size_t n;

	while (*l) {
		e = strchr(l, '\n');
		n = e ? (size_t)(e - l) : strlen(l);
		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		memcpy(line, l, n);
		line[n] = '\0';
		if (strstr(line, a) && strstr(line, b))
			return 1;
		l += n + (e ? 1 : 0);
	}

	return 0;
}

/* ------------------------------------------------------------ files */

static void
put(const char *name, const char *text)
{
	char path[256], *s, *p;
	const char *q;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", confdir, name);
	if (!text) {
		unlink(path);
		return;
	}
	/* text with every @D@ replaced by confdir */
	s = malloc(strlen(text) * 4 + 64);
	if (!s)
		abort();
	for (p = s, q = text; *q; )
		if (!strncmp(q, "@D@", 3)) {
			p += sprintf(p, "%s", confdir);
			q += 3;
		} else
			*p++ = *q++;
	*p = '\0';
	f = fopen(path, "w");
	if (!f || fputs(s, f) < 0 || fclose(f)) {
		perror(path);
		abort();
	}
	free(s);
}

/* write CONFDIR/conf and CONFDIR/conf.d/v (NULL: none), then load */
static int
load(struct udsp_hconf *hc, const char *conf, const char *vhosts)
{
	put("conf", conf);
	put("conf.d/v", vhosts);
	loglen = 0;
	logbuf[0] = '\0';

	return udsp_hconf_load(hc, confdir);
}

/* --------------------------------------------------------- helpers */

#define MIN_GLOBAL	J({"global": {}})
#define MIN_VHOST	J({"vhosts": [{"name": "a", "port": 8080}]})
/* 64 characters */
#define C64 "0123456789012345678901234567890123456789012345678901234567890123"

static const struct lws_http_mount *
mount(const struct udsp_hc_vhost *v, const char *mp)
{
	const struct lws_http_mount *m;

	for (m = v->info.mounts; m; m = m->mount_next)
		if (!strcmp(m->mountpoint, mp))
			return m;

	return NULL;
}

static const char *
pvo(const struct lws_protocol_vhost_options *list, const char *name)
{
	const struct lws_protocol_vhost_options *p;

	p = lws_pvo_search(list, name);

	return p ? p->value : NULL;
}

/* the plugin's per-vhost options, as ws-protocols / the reader made them */
static const struct lws_protocol_vhost_options *
proxy_pvo(const struct udsp_hc_vhost *v)
{
	const struct lws_protocol_vhost_options *p;

	p = lws_pvo_search(v->info.pvo, "lws-uds-proxy");

	return p ? p->options : NULL;
}

static int
needs(const struct udsp_hc_vhost *v, const char *name)
{
	const struct udsp_hc_need *n;

	for (n = v->needs; n; n = n->next)
		if (!strcmp(n->name, name))
			return 1;

	return 0;
}

/* ------------------------------------------------------- bad configs */

static const struct bad {
	const char	*conf, *vhosts;
	const char	*file;	/* the file the message names */
	const char	*msg;	/* key path and problem, as logged */
	int		errors;	/* the count logged, 0: none */
} bad[] = {
	/* files */
	{ NULL, MIN_VHOST, "conf", "cannot read: No such file", 1 },
	{ "{ \"global\": { ", MIN_VHOST, "conf",
	  "JSON parse error: unexpected end of file", 1 },
	{ "{ \"global\": {} } x", MIN_VHOST, "conf",
	  "conf:1:18: JSON parse error", 1 },
	{ "{ \"global\": { \"a\": 1, } }", MIN_VHOST, "conf",
	  "conf:1:", 1 },
	{ J([1, 2]), MIN_VHOST, "conf", "top level must be an object, got "
	  "array", 1 },
	{ MIN_GLOBAL, J({"vhosts": {}}), "conf.d/v",
	  "vhosts: expected an array, got object", 1 },
	{ MIN_GLOBAL, J({"vhosts": [7]}), "conf.d/v",
	  "vhosts[0]: expected an object, got int", 1 },
	{ MIN_GLOBAL, NULL, "", "no vhosts configured", 0 },

	/* global keys */
	{ J({"global": {"count-processes": 0}}), MIN_VHOST, "conf",
	  "global.count-processes: 0 is out of range (1..64)", 1 },
	{ J({"global": {"count-processes": "65"}}), MIN_VHOST, "conf",
	  "global.count-processes: 65 is out of range (1..64)", 1 },
	{ J({"global": {"count-processes": "two"}}), MIN_VHOST, "conf",
	  "global.count-processes: expected an integer, got 'two'", 1 },
	{ J({"global": {"count-processes": true}}), MIN_VHOST, "conf",
	  "global.count-processes: expected an integer, got boolean", 1 },
	{ J({"global": {"max-connections": -1}}), MIN_VHOST, "conf",
	  "global.max-connections: -1 is out of range (0..1048576)", 1 },
	{ J({"global": {"max-connections": 1048577}}), MIN_VHOST, "conf",
	  "global.max-connections: 1048577 is out of range (0..1048576)",
	  1 },
	{ J({"global": {"max-connections": "1e3"}}), MIN_VHOST, "conf",
	  "global.max-connections: expected an integer, got '1e3'", 1 },
	{ J({"global": {"max-http-header-data": 255}}), MIN_VHOST, "conf",
	  "global.max-http-header-data: 255 is out of range (256..65535)",
	  1 },
	{ J({"global": {"timeout-secs": 86401}}), MIN_VHOST, "conf",
	  "global.timeout-secs: 86401 is out of range (0..86400)", 1 },
	{ J({"global": {"uid": -2}}), MIN_VHOST, "conf",
	  "global.uid: -2 is out of range (0..2147483647)", 1 },
	{ J({"global": {"reload-drain-secs": 2147483648}}), MIN_VHOST,
	  "conf", "global.reload-drain-secs: 2147483648 is out of range", 1 },
	{ J({"global": {"plugin-dir": 3}}), MIN_VHOST, "conf",
	  "global.plugin-dir: expected a string, got int", 1 },
	{ J({"global": {"plugin-dir": ["/a", 3]}}), MIN_VHOST, "conf",
	  "global.plugin-dir[1]: expected a string, got int", 1 },
	{ J({"global": {"init-ssl": "maybe"}}), MIN_VHOST, "conf",
	  "global.init-ssl: expected a boolean", 1 },
	{ J({"global": {"server-string": 5}}), MIN_VHOST, "conf",
	  "global.server-string: expected a string, got int", 1 },
	{ J({"global": []}), MIN_VHOST, "conf",
	  "global: expected an object, got array", 1 },
	{ J({"global": {"reject-service-keywords": "x"}}), MIN_VHOST, "conf",
	  "global.reject-service-keywords: expected an array of objects", 1 },

	/* vhost keys */
	{ MIN_GLOBAL, J({"vhosts": [{"port": 80}]}), "conf.d/v",
	  "vhosts[0]: missing required key 'name'", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a"}]}), "conf.d/v",
	  "vhosts[0]: missing required key 'port'", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 65536}]}),
	  "conf.d/v", "vhosts[0].port: 65536 is out of range (0..65535)", 2 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "unix-socket": 1}]}),
	  "conf.d/v", "vhosts[0]: unix-socket needs 'interface'", 1 },
	{ MIN_GLOBAL, "{\"vhosts\": [{\"name\": \"a\", \"unix-socket\": 1, "
	  "\"interface\": \"/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aa.sock\"}]}",
	  "conf.d/v", "unix socket path too long (max 107)", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1,
	  "host-ssl-cert": "@D@/conf"}]}), "conf.d/v",
	  "vhosts[0]: TLS needs both 'host-ssl-cert' and 'host-ssl-key'", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1,
	  "host-ssl-cert": "@D@/nope.pem", "host-ssl-key": "@D@/conf"}]}),
	  "conf.d/v", "host-ssl-cert '", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1,
	  "keepalive-timeout": 0}]}), "conf.d/v",
	  "vhosts[0].keepalive-timeout: 0 is out of range (1..86400)", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1,
	  "h2-max-concurrent-streams": 251}]}), "conf.d/v",
	  "vhosts[0].h2-max-concurrent-streams: 251 is out of range "
	  "(1..250)", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1,
	  "sts": "sometimes"}]}), "conf.d/v",
	  "vhosts[0].sts: expected a boolean", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1,
	  "access-log": "@D@/no/such/dir/log"}]}), "conf.d/v",
	  "vhosts[0].access-log: cannot open '", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1,
	  "access-log": "@D@/access.log",
	  "ws-protocols": [{"lws-uds-proxy": {"access-log": "/x"}}]}]}),
	  "conf.d/v", "access-log is given both as a vhost key and as an "
	  "option of lws-uds-proxy", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1,
	  "ws-protocols": [{"lws-uds-proxy": "on"}]}]}), "conf.d/v",
	  "vhosts[0].ws-protocols[0].lws-uds-proxy: protocol options: "
	  "expected an object, got string", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1,
	  "mounts": {}}]}), "conf.d/v",
	  "vhosts[0].mounts: expected an array, got object", 1 },

	/* mount keys */
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x"}]}]}), "conf.d/v",
	  "vhosts[0].mounts[0]: missing required key 'origin'", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"origin": "file:///srv"}]}]}), "conf.d/v",
	  "vhosts[0].mounts[0]: missing required key 'mountpoint'", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "x", "origin": "file:///srv"}]}]}), "conf.d/v",
	  "mountpoint 'x': must start with '/'", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "ftp://h/"}]}]}), "conf.d/v",
	  "vhosts[0].mounts[0]: origin 'ftp://h/': unsupported scheme", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "callback://"}]}]}), "conf.d/v",
	  "origin 'callback://': no protocol name", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "callback://lws-uds-proxy"}]}]}),
	  "conf.d/v", "vhosts[0].mounts[0]: mount '/x' on lws-uds-proxy "
	  "needs a pmo \"backend\"", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "http://127.0.0.1:9/",
	   "pmo": [{"backend": "http://127.0.0.1:8/"}]}]}]}), "conf.d/v",
	  "mount '/x': proxy origin and pmo \"backend\" both given", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "http://127.0.0.1:9/",
	   "cgi-env": {"A": "b"}}]}]}), "conf.d/v",
	  "mount '/x': cgi-env on a proxy mount", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "file:///srv",
	   "pmo": {"a": "b"}, "cgi-env": {"A": "b"}}]}]}), "conf.d/v",
	  "vhosts[0].mounts[0]: both 'pmo' and 'cgi-env' given", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "http://127.0.0.1:0/"}]}]}),
	  "conf.d/v", "vhost 'a' mount '/x': backend 'http://127.0.0.1:0/': "
	  "bad port", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "http://127.0.0.1:9/",
	   "protocol": "other"}]}]}), "conf.d/v",
	  "mount '/x': \"protocol\" 'other' contradicts origin", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "file:///srv",
	   "cgi-timeout": 86401}]}]}), "conf.d/v",
	  "vhosts[0].mounts[0].cgi-timeout: 86401 is out of range", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "file:///srv",
	   "cache-reuse": "often"}]}]}), "conf.d/v",
	  "vhosts[0].mounts[0].cache-reuse: expected a boolean", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "file:///srv",
	   "pmo": [{"a": "b"}, 3]}]}]}), "conf.d/v",
	  "vhosts[0].mounts[0].pmo[1]: expected an object, got int", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "file:///srv",
	   "pmo": {"a": ["b"]}}]}]}), "conf.d/v",
	  "vhosts[0].mounts[0].pmo.a: expected a string, got array", 1 },
	/* the same mountpoint twice: which one wins would depend on kinds */
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/app", "origin": "file:///srv"},
	  {"mountpoint": "/other", "origin": "file:///srv"},
	  {"mountpoint": "/app", "origin": "http://127.0.0.1:9/"}]}]}),
	  "conf.d/v", "vhosts[0].mounts: mountpoint '/app' is given twice",
	  1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/", "origin": "file:///srv"},
	  {"mountpoint": "/", "origin": "file:///srv2"}]}]}), "conf.d/v",
	  "mountpoint '/' is given twice", 1 },
	/* a mount's own checks, as conf-mount.c splits them */
	{ MIN_GLOBAL, "{\"vhosts\": [{\"name\": \"a\", \"port\": 1, "
	  "\"mounts\": "
	  "[{\"mountpoint\": \"/" C64 C64 C64 C64 "\", \"origin\": "
	  "\"file:///srv\"}]}]}", "conf.d/v",
	  "vhosts[0].mounts[0]: mountpoint '/" C64 C64, 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "http://127.0.0.1:9/",
	   "pmo": {"ws-max-message-kb": "4194305"}}]}]}), "conf.d/v",
	  "mount '/x': ws-max-message-kb '4194305': expected a size in KiB, "
	  "1 to 4194304", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "http://127.0.0.1:9/",
	   "pmo": {"ws-max-message-kb": "0"}}]}]}), "conf.d/v",
	  "ws-max-message-kb '0': expected a size in KiB", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "http://127.0.0.1:9/",
	   "pmo": {"ws-idle-timeout-ms": "2147483648"}}]}]}), "conf.d/v",
	  "mount '/x': ws-idle-timeout-ms '2147483648': expected "
	  "milliseconds (0: no limit)", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "http://127.0.0.1:9/",
	   "pmo": {"ws-idle-timeout-ms": "+5"}}]}]}), "conf.d/v",
	  "ws-idle-timeout-ms '+5': expected milliseconds", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "http://127.0.0.1:9/",
	   "pmo": {"ws-subprotocols": "a;b"}}]}]}), "conf.d/v",
	  "mount '/x': ws-subprotocols 'a;b': expected a comma list of names",
	  1 },
	{ MIN_GLOBAL, "{\"vhosts\": [{\"name\": \"a\", \"port\": 1, "
	  "\"mounts\": "
	  "[{\"mountpoint\": \"/x\", \"origin\": \"http://127.0.0.1:9/\", "
	  "\"pmo\": {\"ws-subprotocols\": \"ok, " C64 "\"}}]}]}", "conf.d/v",
	  "mount '/x': subprotocol '" C64 "' is too long", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "http://127.0.0.1:9/",
	   "pmo": {"hold-ms": "soon"}}]}]}), "conf.d/v",
	  "mount '/x': pmo \"hold-ms\": 'soon' is not a number", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "callback://lws-uds-proxy",
	   "pmo": {"backend": " , "}}]}]}), "conf.d/v",
	  "vhost 'a' mount '/x': backend ' , ': no origin", 1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/x", "origin": "http://127.0.0.1:9/",
	   "pmo": {"status": "json"}}]}]}), "conf.d/v",
	  "mount '/x': \"status\" needs origin \"callback://lws-uds-proxy\"",
	  1 },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "a", "port": 1, "mounts": [
	  {"mountpoint": "/s", "origin": "callback://lws-uds-proxy",
	   "pmo": {"status": "xml"}}]}]}), "conf.d/v",
	  "mount '/s': \"status\" 'xml': use \"json\" or \"prometheus\"",
	  1 },
};

static void
check_bad(void)
{
	struct udsp_hconf hc;
	char file[256], summary[128];
	size_t i;
	int r;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct bad *b = &bad[i];

		r = load(&hc, b->conf, b->vhosts);
		if (b->file[0])
			snprintf(file, sizeof(file), "%s/%s", confdir,
				 b->file);
		else
			snprintf(file, sizeof(file), "%s", confdir);
		snprintf(summary, sizeof(summary), "%s: %d configuration "
			 "error%s", confdir, b->errors,
			 b->errors == 1 ? "" : "s");
		if (r != -1 || !logged(file, b->msg) ||
		    (b->errors && !logged(summary, summary)))
			fprintf(stderr, "bad[%zu]: load %d, want a line with "
				"'%s' and '%s'%s%s; log:\n%s\n", i, r, file,
				b->msg, b->errors ? " and " : "",
				b->errors ? summary : "", logbuf);
		CHECK(r == -1);
		CHECK(logged(file, b->msg));
		if (b->errors)
			CHECK(logged(summary, summary));
		udsp_hconf_destroy(&hc);
	}
}

/* ------------------------------------------------------ good configs */

static void
g_defaults(const struct udsp_hconf *hc)
{
	const struct udsp_hc_vhost *v = hc->vhosts;

	CHECK(hc->count_processes == 1);
	CHECK(hc->max_connections == 0);
	CHECK(hc->max_http_header_data == UDSP_HC_DEF_HEADER_DATA);
	CHECK(hc->count_threads == 1);
	CHECK(hc->reload_drain_secs == 0);
	CHECK(hc->uid == 0 && hc->gid == 0);
	CHECK(!hc->server_string && !hc->username && !hc->alpn);
	CHECK(hc->count_plugin_dirs == 0 && !hc->plugin_dirs[0]);
	CHECK(hc->count_vhosts == 1);
	CHECK_STR(v->info.vhost_name, "a");
	CHECK(v->info.port == 8080);
	CHECK(!v->info.iface);
	CHECK(!v->info.mounts && !v->info.pvo && !v->needs);
	CHECK(v->info.keepalive_timeout == 60);
	CHECK(v->info.http2_settings[H2SET_MAX_CONCURRENT_STREAMS] ==
	      UDSP_HC_DEF_H2_STREAMS);
	CHECK(v->info.http2_settings[H2SET_MAX_FRAME_SIZE] == 16384);
	CHECK(!v->next);
}

static void
g_globals(const struct udsp_hconf *hc)
{
	CHECK(hc->count_processes == 4);
	CHECK(hc->max_connections == 5000);
	CHECK(hc->max_http_header_data == 8192);
	CHECK(hc->reload_drain_secs == 30);
	CHECK(hc->timeout_secs == 20);
	CHECK(hc->rlimit_nofile == 65536);
	CHECK(hc->uid == 33 && hc->gid == 34);
	CHECK_STR(hc->username, "www-data");
	CHECK_STR(hc->groupname, "www");
	CHECK_STR(hc->server_string, "srv");
	CHECK_STR(hc->alpn, "http/1.1");
	CHECK(hc->count_plugin_dirs == 2);
	CHECK_STR(hc->plugin_dirs[0], "/p1");
	CHECK_STR(hc->plugin_dirs[1], "/p2");
	CHECK(!hc->plugin_dirs[2]);
	CHECK_STR(pvo(hc->reject_service_keywords, "scumbot"), "404");
	CHECK_STR(pvo(hc->reject_service_keywords, "badbot"), "403");
}

/* the upper limits are in range; numbers may come as strings */
static void
g_global_limits(const struct udsp_hconf *hc)
{
	CHECK(hc->count_processes == UDSP_HC_MAX_PROCESSES);
	CHECK(hc->max_connections == UDSP_HC_MAX_CONNECTIONS);
	CHECK(hc->max_http_header_data == 65535);
	CHECK(hc->count_plugin_dirs == 1);
	CHECK_STR(hc->plugin_dirs[0], "/one");
}

/* '#' comments, a second vhost file, dot and '~' files skipped */
static void
g_comments(const struct udsp_hconf *hc)
{
	CHECK(hc->count_processes == 2);
	CHECK(hc->count_vhosts == 1);
	CHECK_STR(hc->vhosts->info.vhost_name, "a");
	CHECK_STR(hc->server_string, "a # b");
}

static void
g_vhost(const struct udsp_hconf *hc)
{
	const struct udsp_hc_vhost *v = hc->vhosts, *u;
	const struct lws_context_creation_info *i = &v->info;

	CHECK(hc->count_vhosts == 2);
	CHECK_STR(i->vhost_name, "tls");
	CHECK(i->port == 443);
	CHECK_STR(i->iface, "127.0.0.1");
	CHECK(strstr(i->ssl_cert_filepath, "/conf") != NULL);
	CHECK(i->options & LWS_SERVER_OPTION_STS);
	CHECK(i->options & LWS_SERVER_OPTION_REDIRECT_HTTP_TO_HTTPS);
	CHECK(!(i->options & LWS_SERVER_OPTION_UNIX_SOCK));
	CHECK(i->keepalive_timeout == 5);
	CHECK(i->http2_settings[H2SET_MAX_CONCURRENT_STREAMS] == 250);
	CHECK_STR(i->ssl_cipher_list, "HIGH");
	/* headers get lws's ':' */
	CHECK_STR(pvo(i->headers, "X-Frame-Options:"), "DENY");
	CHECK_STR(pvo(i->headers, "x-already:"), "1");
	/* ws-protocols: per-protocol options, and what the vhost needs */
	CHECK_STR(pvo(proxy_pvo(v), "head-timeout-ms"), "1000");
	CHECK_STR(pvo(proxy_pvo(v), "tls-verify"), "1");
	CHECK(needs(v, "lws-uds-proxy"));
	/* the vhost key access-log becomes the plugin's option */
	CHECK(v->access_log && strstr(v->access_log, "/access.log"));
	CHECK_STR(pvo(proxy_pvo(v), "access-log"), v->access_log);

	u = v->next;
	CHECK(u != NULL);
	if (!u)
		return;
	CHECK_STR(u->info.vhost_name, "uds");
	CHECK(u->info.options & LWS_SERVER_OPTION_UNIX_SOCK);
	CHECK_STR(u->info.iface, "/run/x.sock");
	CHECK_STR(u->info.unix_socket_perms, "www-data:www-data");
}

static void
g_mounts(const struct udsp_hconf *hc)
{
	const struct udsp_hc_vhost *v = hc->vhosts;
	const struct lws_http_mount *m, *prev;

	/* shortest mountpoint first, whatever the file's order */
	for (prev = NULL, m = v->info.mounts; m; prev = m, m = m->mount_next)
		if (prev)
			CHECK(prev->mountpoint_len <= m->mountpoint_len);

	m = mount(v, "/");
	CHECK(m != NULL);
	if (m) {
		CHECK(m->origin_protocol == LWSMPRO_FILE);
		CHECK_STR(m->origin, "/srv/www");
		CHECK_STR(m->def, "index.html");
		CHECK(m->mountpoint_len == 1);
		CHECK(m->cache_max_age == 60);
		CHECK(m->cache_reusable && !m->cache_revalidate &&
		      m->cache_intermediaries);
		CHECK(m->auth_mask == 3);
		CHECK_STR(m->basic_auth_login_file, "/etc/pw");
		CHECK_STR(pvo(m->extra_mimetypes, ".zip"),
			  "application/zip");
		CHECK_STR(pvo(m->interpret, ".php"), "php");
		CHECK(!m->protocol);
	}

	/* lwsws's proxy form becomes a mount on the plugin */
	m = mount(v, "/api");
	CHECK(m != NULL);
	if (m) {
		CHECK(m->origin_protocol == LWSMPRO_CALLBACK);
		CHECK_STR(m->origin, "lws-uds-proxy");
		CHECK_STR(m->protocol, "lws-uds-proxy");
		CHECK_STR(pvo(m->cgienv, "backend"),
			  "http://+/run/app.sock:/v1");
		CHECK_STR(pvo(m->cgienv, "forward-headers"), "x-a");
		CHECK(m->mountpoint_len == 4);
	}

	m = mount(v, "/cb");
	CHECK(m != NULL);
	if (m) {
		CHECK(m->origin_protocol == LWSMPRO_CALLBACK);
		CHECK_STR(m->protocol, "lws-uds-proxy");
		CHECK_STR(pvo(m->cgienv, "backend"), "https://127.0.0.1:8443/");
	}

	/*
	 * no pmo: the vhost-wide backend serves it; the mountpoint is added
	 * for the ws relay, which lws never tells a mount's path
	 */
	m = mount(v, "/dflt");
	CHECK(m != NULL);
	if (m) {
		CHECK(!lws_pvo_search(m->cgienv, "backend"));
		CHECK_STR(pvo(m->cgienv, "mountpoint"), "/dflt");
		CHECK(m->cgienv && !m->cgienv->next);
	}

	m = mount(v, "/old");
	CHECK(m != NULL);
	if (m) {
		CHECK(m->origin_protocol == LWSMPRO_REDIR_HTTPS);
		CHECK_STR(m->origin, "example.com/new");
	}

	/* an enabled plugin and the needs -t checks */
	CHECK(lws_pvo_search(v->info.pvo, "lws-uds-proxy") != NULL);
	CHECK(needs(v, "lws-uds-proxy"));
}

/* the same mountpoint on two vhosts is fine */
static void
g_mount_two_vhosts(const struct udsp_hconf *hc)
{
	CHECK(hc->count_vhosts == 2);
	CHECK(mount(hc->vhosts, "/app") != NULL);
	CHECK(hc->vhosts->next && mount(hc->vhosts->next, "/app") != NULL);
}

static void
g_mount_ws(const struct udsp_hconf *hc)
{
	const struct udsp_hc_vhost *v = hc->vhosts;
	const struct lws_http_mount *m;

	/* each subprotocol once, in the order first seen */
	CHECK(v->n_ws_subprotocols == 3);
	if (v->n_ws_subprotocols == 3) {
		CHECK_STR(v->ws_subprotocols[0], "chat");
		CHECK_STR(v->ws_subprotocols[1], "v2");
		CHECK_STR(v->ws_subprotocols[2], "mqtt");
	}
	/* a ws upgrade needs the mount's path: it goes along as a pmo */
	m = mount(v, "/a");
	CHECK(m && pvo(m->cgienv, "mountpoint") &&
	      !strcmp(pvo(m->cgienv, "mountpoint"), "/a"));
	CHECK(m && pvo(m->cgienv, "backend") != NULL);
	/* the status mount: on the plugin, with no backend */
	m = mount(v, "/s");
	CHECK(m && !strcmp(m->protocol, "lws-uds-proxy") &&
	      !pvo(m->cgienv, "backend"));
	CHECK(needs(v, "lws-uds-proxy"));
	/* proxied mounts: a ws upgrade without subprotocol is the plugin's */
	CHECK(pvo(proxy_pvo(v), "default") != NULL);
}

static const struct good {
	const char	*conf, *vhosts;
	void		(*check)(const struct udsp_hconf *hc);
} good[] = {
	{ MIN_GLOBAL, MIN_VHOST, g_defaults },
	{ J({"global": {"count-processes": 4, "max-connections": "5000",
	  "max-http-header-data": 8192, "reload-drain-secs": 30,
	  "timeout-secs": 20, "rlimit-nofile": 65536, "uid": 33, "gid": "34",
	  "username": "www-data", "groupname": "www", "server-string": "srv",
	  "default-alpn": "http/1.1", "plugin-dir": ["/p1", "/p2"],
	  "init-ssl": "yes", "count-threads": 1, "ws-pingpong-secs": 5,
	  "reject-service-keywords": [{"scumbot": "404"},
				      {"badbot": "403"}]}}),
	  MIN_VHOST, g_globals },
	{ J({"global": {"count-processes": "64", "max-connections": 1048576,
	  "max-http-header-data": "65535", "plugin-dir": "/one"}}),
	  MIN_VHOST, g_global_limits },
	{ "# lwsws style\n{ \"global\": {\n"
	  "  \"count-processes\": 2, # two\n"
	  "  \"server-string\": \"a # b\"\n} }\n# end\n",
	  "{ \"vhosts\": [ # one\n{ \"name\": \"a\", \"port\": 1 } ] }\n",
	  g_comments },
	{ MIN_GLOBAL, J({"vhosts": [
	  {"name": "tls", "port": "443", "interface": "127.0.0.1",
	   "host-ssl-cert": "@D@/conf", "host-ssl-key": "@D@/conf",
	   "sts": "on", "redirect-http": true, "keepalive_timeout": 5,
	   "h2-max-concurrent-streams": 250, "ciphers": "HIGH",
	   "access-log": "@D@/access.log",
	   "headers": [{"X-Frame-Options": "DENY"}, {"x-already:": "1"}],
	   "ws-protocols": [{"lws-uds-proxy": {"head-timeout-ms": 1000,
					       "tls-verify": true}}]},
	  {"name": "uds", "unix-socket": 1, "interface": "/run/x.sock",
	   "unix-socket-perms": "www-data:www-data"}]}), g_vhost },
	{ MIN_GLOBAL, J({"vhosts": [{"name": "m", "port": 1,
	  "ws-protocols": [{"lws-uds-proxy": {
		"backend": "http://127.0.0.1:9/"}}],
	  "mounts": [
	  {"mountpoint": "/cb", "origin": "callback://lws-uds-proxy",
	   "pmo": [{"backend": "https://127.0.0.1:8443/"}]},
	  {"mountpoint": "/api", "origin": "http://+/run/app.sock:/v1",
	   "pmo": {"forward-headers": "x-a"}},
	  {"mountpoint": "/", "origin": "file:///srv/www",
	   "default": "index.html", "cache-max-age": "60",
	   "cache-reuse": 1, "cache-revalidate": "off",
	   "cache-intermediaries": "true", "auth-mask": 3,
	   "basic-auth": "/etc/pw",
	   "extra-mimetypes": {".zip": "application/zip"},
	   "interpret": {".php": "php"}},
	  {"mountpoint": "/dflt", "origin": "callback://lws-uds-proxy"},
	  {"mountpoint": "/old", "origin": ">https://example.com/new"}]}]}),
	  g_mounts },
	{ MIN_GLOBAL, J({"vhosts": [
	  {"name": "a", "port": 1, "mounts": [
	   {"mountpoint": "/app", "origin": "file:///srv"}]},
	  {"name": "b", "port": 2, "mounts": [
	   {"mountpoint": "/app", "origin": "file:///srv"}]}]}),
	  g_mount_two_vhosts },
	/* a mount's ws options, as conf-mount.c splits them */
	{ MIN_GLOBAL, J({"vhosts": [{"name": "w", "port": 1, "mounts": [
	  {"mountpoint": "/a", "origin": "http://127.0.0.1:9/",
	   "pmo": {"ws-subprotocols": "chat, v2,chat",
		   "ws-max-message-kb": "4194304",
		   "ws-idle-timeout-ms": "0"}},
	  {"mountpoint": "/b", "origin": "http://127.0.0.1:9/",
	   "pmo": {"ws-subprotocols": "v2, mqtt"}},
	  {"mountpoint": "/s", "origin": "callback://lws-uds-proxy",
	   "pmo": {"status": "json", "status-allow": "127.0.0.1"}}]}]}),
	  g_mount_ws },
};

static void
check_good(void)
{
	struct udsp_hconf hc;
	size_t i;
	int r;

	/* skipped: an editor's backup and a dot file (a broken one each) */
	put("conf.d/v~", "{");
	put("conf.d/.hidden", "{");

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		r = load(&hc, good[i].conf, good[i].vhosts);
		if (r)
			fprintf(stderr, "good[%zu]: load %d; log:\n%s\n", i,
				r, logbuf);
		CHECK(r == 0);
		if (!r) {
			/* every vhost says where it came from */
			CHECK(hc.vhosts && strstr(hc.vhosts->file, confdir));
			good[i].check(&hc);
		}
		udsp_hconf_destroy(&hc);
	}

	put("conf.d/v~", NULL);
	put("conf.d/.hidden", NULL);
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	char path[128];
	int ret;

	lws_set_log_level(LLL_ERR | LLL_WARN | LLL_NOTICE, emit);

	snprintf(confdir, sizeof(confdir), "%s/udsp-test-conf.XXXXXX",
		 tmp && strlen(tmp) < 32 ? tmp : "/tmp");
	if (!mkdtemp(confdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/conf.d", confdir);
	if (mkdir(path, 0700)) {
		perror(path);
		return 1;
	}

	check_bad();
	check_good();

	ret = T_END();

	put("conf", NULL);
	put("conf.d/v", NULL);
	put("access.log", NULL);
	rmdir(path);
	rmdir(confdir);

	return ret;
}
