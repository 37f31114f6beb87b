/* SPDX-License-Identifier: MIT
 *
 * lwsws config files -> lws creation info, with json-c.  Owns file discovery
 * and parse-error reporting (file:line:col), the table-driven key walker
 * (unknown keys, types, key paths in messages), the "global" keys and the
 * config arena that every string handed to lws lives in.
 */
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf-private.h"
#include "jsonstrip.h"

#if defined(LWS_INSTALL_DATADIR)
#define DATADIR LWS_INSTALL_DATADIR
#else
#define DATADIR "/usr/share"
#endif
#define DDIR_TOKEN	"_lws_ddir_"
#define MAX_FILE_SIZE	(1024 * 1024)

/*
 * Every allocation is its own chunk on one list: configs are small, and a
 * single free at the end is all that matters.
 */
struct udsp_hc_chunk {
	struct udsp_hc_chunk	*next;
	union {
		long double	ld;
		long long	ll;
		void		*p;
	} data[];
};

void *
udsp_hc_zalloc(struct udsp_hconf *hc, size_t len)
{
	struct udsp_hc_chunk *c = calloc(1, sizeof(*c) + len);

	if (!c) {
		lwsl_err("config: out of memory\n");
		hc->oom = 1;
		return NULL;
	}
	c->next = hc->arena;
	hc->arena = c;

	return c->data;
}

/* Arena copy of s with every "_lws_ddir_" replaced by the data dir. */
const char *
udsp_hc_str(struct udsp_hconf *hc, const char *s)
{
	size_t tl = strlen(DDIR_TOKEN), dl = strlen(DATADIR), len = 0;
	const char *p = s, *q;
	char *out, *o;

	while ((q = strstr(p, DDIR_TOKEN))) {
		len += (size_t)(q - p) + dl;
		p = q + tl;
	}
	len += strlen(p);

	out = udsp_hc_zalloc(hc, len + 1);
	if (!out)
		return NULL;

	o = out;
	p = s;
	while ((q = strstr(p, DDIR_TOKEN))) {
		memcpy(o, p, (size_t)(q - p));
		o += q - p;
		memcpy(o, DATADIR, dl);
		o += dl;
		p = q + tl;
	}
	strcpy(o, p);

	return out;
}

void
udsp_hc_msg(struct udsp_hc_pc *pc, int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if (err) {
		pc->errors++;
		lwsl_err("%s: %s%s%s\n", pc->file, pc->path,
			 pc->plen ? ": " : "", msg);
	} else
		lwsl_warn("%s: %s%s%s\n", pc->file, pc->path,
			  pc->plen ? ": " : "", msg);
}

size_t
udsp_hc_path_key(struct udsp_hc_pc *pc, const char *key)
{
	size_t o = pc->plen;
	int n;

	n = snprintf(pc->path + o, sizeof(pc->path) - o, "%s%s",
		     o ? "." : "", key);
	if (n > 0)
		pc->plen += (size_t)n;
	if (pc->plen >= sizeof(pc->path))
		pc->plen = sizeof(pc->path) - 1;

	return o;
}

size_t
udsp_hc_path_idx(struct udsp_hc_pc *pc, size_t i)
{
	size_t o = pc->plen;
	int n;

	n = snprintf(pc->path + o, sizeof(pc->path) - o, "[%zu]", i);
	if (n > 0)
		pc->plen += (size_t)n;
	if (pc->plen >= sizeof(pc->path))
		pc->plen = sizeof(pc->path) - 1;

	return o;
}

void
udsp_hc_path_pop(struct udsp_hc_pc *pc, size_t o)
{
	pc->plen = o;
	pc->path[o] = '\0';
}

static int
str_to_bool(const char *s, int *b)
{
	static const char * const on[] = { "1", "on", "yes", "true" };
	static const char * const off[] = { "0", "off", "no", "false" };
	size_t n;

	for (n = 0; n < LWS_ARRAY_SIZE(on); n++) {
		if (!strcasecmp(s, on[n])) {
			*b = 1;
			return 0;
		}
		if (!strcasecmp(s, off[n])) {
			*b = 0;
			return 0;
		}
	}

	return -1;
}

/*
 * A scalar as the string lws wants (pvo values, etc).  Strings carrying a
 * NUL would be silently cut short by every C consumer: refuse them.
 */
const char *
udsp_hc_scalar_str(struct udsp_hc_pc *pc, json_object *j)
{
	char num[32];

	switch (json_object_get_type(j)) {
	case json_type_string:
		if (strlen(json_object_get_string(j)) !=
		    (size_t)json_object_get_string_len(j)) {
			perr(pc, "string contains a NUL byte");
			return NULL;
		}
		return udsp_hc_str(pc->hc, json_object_get_string(j));
	case json_type_int:
		snprintf(num, sizeof(num), "%lld",
			 (long long)json_object_get_int64(j));
		return udsp_hc_str(pc->hc, num);
	case json_type_boolean:
		return udsp_hc_str(pc->hc,
				   json_object_get_boolean(j) ? "1" : "0");
	default:
		perr(pc, "expected a string, got %s",
		     json_type_to_name(json_object_get_type(j)));
		return NULL;
	}
}

static int
get_val(struct udsp_hc_pc *pc, enum udsp_hc_kt t, json_object *j,
	struct udsp_hc_kval *v)
{
	enum json_type jt = json_object_get_type(j);
	const char *s;
	char *end;

	memset(v, 0, sizeof(*v));
	v->j = j;

	switch (t) {
	case KT_STR:
		if (jt != json_type_string)
			break;
		v->s = udsp_hc_scalar_str(pc, j);
		return v->s ? 0 : -1;

	case KT_INT:
		if (jt == json_type_int) {
			v->i = (long long)json_object_get_int64(j);
			return 0;
		}
		if (jt != json_type_string)
			break;
		s = json_object_get_string(j);
		errno = 0;
		v->i = strtoll(s, &end, 10);
		if (!*s || *end || errno) {
			perr(pc, "expected an integer, got '%s'", s);
			return -1;
		}
		return 0;

	case KT_BOOL:
		if (jt == json_type_boolean) {
			v->b = json_object_get_boolean(j);
			return 0;
		}
		if (jt == json_type_int) {
			v->b = !!json_object_get_int64(j);
			return 0;
		}
		if (jt != json_type_string)
			break;
		if (str_to_bool(json_object_get_string(j), &v->b)) {
			perr(pc, "expected a boolean (1/0, on/off, yes/no, "
				 "true/false), got '%s'",
				 json_object_get_string(j));
			return -1;
		}
		return 0;

	case KT_OBJ:
		if (jt == json_type_object)
			return 0;
		break;
	case KT_ARR:
		if (jt == json_type_array)
			return 0;
		break;
	case KT_ANY:
		return 0;
	}

	perr(pc, "expected %s, got %s",
	     t == KT_STR ? "a string" : t == KT_INT ? "an integer" :
	     t == KT_BOOL ? "a boolean" : t == KT_OBJ ? "an object" :
	     "an array", json_type_to_name(jt));

	return -1;
}

/* Dispatch each key of o through tab; unknown keys are warned about. */
void
udsp_hc_walk(struct udsp_hc_pc *pc, json_object *o,
	     const struct udsp_hc_kdef *tab, size_t count, udsp_hc_key_cb cb,
	     void *t)
{
	struct udsp_hc_kval v;
	size_t n, old;

	json_object_object_foreach(o, key, val) {
		old = udsp_hc_path_key(pc, key);
		for (n = 0; n < count; n++)
			if (!strcmp(tab[n].name, key))
				break;
		if (n == count)
			pwarn(pc, "unknown key (ignored)");
		else if (!get_val(pc, tab[n].type, val, &v))
			cb(pc, t, &tab[n], &v);
		udsp_hc_path_pop(pc, old);
	}
}

struct lws_protocol_vhost_options *
udsp_hc_pvo_new(struct udsp_hc_pc *pc, const char *name, const char *value)
{
	struct lws_protocol_vhost_options *pvo;

	if (!name || !value)
		return NULL;
	pvo = udsp_hc_zalloc(pc->hc, sizeof(*pvo));
	if (!pvo)
		return NULL;
	pvo->name = name;
	pvo->value = value;

	return pvo;
}

/*
 * {"k": "v", ...} appended to *tail as name/value pvos.  With nest, an
 * object value becomes a pvo with value "" whose options are its members,
 * the way lwsws hands per-protocol options to plugins.
 */
void
udsp_hc_obj_to_pvos(struct udsp_hc_pc *pc, json_object *o,
	    const struct lws_protocol_vhost_options ***tail, int nest,
	    const char *suffix)
{
	const struct lws_protocol_vhost_options **sub;
	struct lws_protocol_vhost_options *pvo;
	char name[256];
	size_t old, kl, sl = strlen(suffix);

	json_object_object_foreach(o, key, val) {
		old = udsp_hc_path_key(pc, key);
		kl = strlen(key);
		snprintf(name, sizeof(name), "%s%s", key,
			 kl >= sl && !strcmp(key + kl - sl, suffix) ? "" :
								      suffix);
		if (nest && json_object_is_type(val, json_type_object)) {
			pvo = udsp_hc_pvo_new(pc, udsp_hc_str(pc->hc, name),
					      "");
			if (pvo) {
				sub = &pvo->options;
				udsp_hc_obj_to_pvos(pc, val, &sub, nest, "");
			}
		} else
			pvo = udsp_hc_pvo_new(pc, udsp_hc_str(pc->hc, name),
				      udsp_hc_scalar_str(pc, val));
		if (pvo) {
			**tail = pvo;
			*tail = &pvo->next;
		}
		udsp_hc_path_pop(pc, old);
	}
}

/* [{"k": "v"}, {"k2": "v2"}] (lwsws's form), or a bare object, to pvos */
void
udsp_hc_list_to_pvos(struct udsp_hc_pc *pc, json_object *j,
	     const struct lws_protocol_vhost_options **head, int nest,
	     const char *suffix)
{
	const struct lws_protocol_vhost_options **tail = head;
	size_t n, old;

	while (*tail)
		tail = (const struct lws_protocol_vhost_options **)
							&(*tail)->next;

	if (json_object_is_type(j, json_type_object)) {
		udsp_hc_obj_to_pvos(pc, j, &tail, nest, suffix);
		return;
	}
	if (!json_object_is_type(j, json_type_array)) {
		perr(pc, "expected an array of objects, got %s",
		     json_type_to_name(json_object_get_type(j)));
		return;
	}

	for (n = 0; n < json_object_array_length(j); n++) {
		json_object *e = json_object_array_get_idx(j, n);

		old = udsp_hc_path_idx(pc, n);
		if (json_object_is_type(e, json_type_object))
			udsp_hc_obj_to_pvos(pc, e, &tail, nest, suffix);
		else
			perr(pc, "expected an object, got %s",
			     json_type_to_name(json_object_get_type(e)));
		udsp_hc_path_pop(pc, old);
	}
}

/* ---------------------------------------------------------------- global */

enum {
	G_UID, G_GID, G_USERNAME, G_GROUPNAME, G_COUNT_THREADS, G_INIT_SSL,
	G_SERVER_STRING, G_PLUGIN_DIR, G_PINGPONG, G_TIMEOUT, G_REJECT,
	G_ALPN, G_IGNORED, G_RLIMIT_NOFILE, G_MAX_HDR, G_DRAIN, G_PROCESSES,
	G_MAX_CONNS,
};

static const struct udsp_hc_kdef keys_global[] = {
	{ "uid",			KT_INT,  G_UID, 0 },
	{ "gid",			KT_INT,  G_GID, 0 },
	{ "username",			KT_STR,  G_USERNAME, 0 },
	{ "groupname",			KT_STR,  G_GROUPNAME, 0 },
	{ "count-threads",		KT_INT,  G_COUNT_THREADS, 0 },
	{ "init-ssl",			KT_BOOL, G_INIT_SSL, 0 },
	{ "server-string",		KT_STR,  G_SERVER_STRING, 0 },
	{ "plugin-dir",			KT_ANY,  G_PLUGIN_DIR, 0 },
	{ "ws-pingpong-secs",		KT_INT,  G_PINGPONG, 0 },
	{ "timeout-secs",		KT_INT,  G_TIMEOUT, 0 },
	{ "reject-service-keywords",	KT_ANY,  G_REJECT, 0 },
	{ "default-alpn",		KT_STR,  G_ALPN, 0 },
	{ "ip-limit-ah",		KT_INT,  G_IGNORED, 0 },
	{ "ip-limit-wsi",		KT_INT,  G_IGNORED, 0 },
	{ "rlimit-nofile",		KT_INT,  G_RLIMIT_NOFILE, 0 },
	{ "max-http-header-data",	KT_INT,  G_MAX_HDR, 0 },
	/* ours (lwsws has no equivalent): see docs/operations.md */
	{ "reload-drain-secs",		KT_INT,  G_DRAIN, 0 },
	{ "count-processes",		KT_INT,  G_PROCESSES, 0 },
	{ "max-connections",		KT_INT,  G_MAX_CONNS, 0 },
};

static void
add_plugin_dir(struct udsp_hc_pc *pc, json_object *j)
{
	struct udsp_hconf *hc = pc->hc;
	const char *s;

	if (!json_object_is_type(j, json_type_string)) {
		perr(pc, "expected a string, got %s",
		     json_type_to_name(json_object_get_type(j)));
		return;
	}
	if (hc->count_plugin_dirs == UDSP_HC_MAX_PLUGIN_DIRS) {
		perr(pc, "more than %d plugin dirs", UDSP_HC_MAX_PLUGIN_DIRS);
		return;
	}
	s = udsp_hc_scalar_str(pc, j);
	if (s)
		hc->plugin_dirs[hc->count_plugin_dirs++] = s;
}

int
udsp_hc_int_in(struct udsp_hc_pc *pc, long long i, long long lo, long long hi)
{
	if (i >= lo && i <= hi)
		return 1;
	perr(pc, "%lld is out of range (%lld..%lld)", i, lo, hi);

	return 0;
}

static void
on_global(struct udsp_hc_pc *pc, void *t, const struct udsp_hc_kdef *k,
	 struct udsp_hc_kval *v)
{
	struct udsp_hconf *hc = pc->hc;
	size_t n, old;

	switch (k->id) {
	case G_UID:
		if (udsp_hc_int_in(pc, v->i, 0, INT_MAX))
			hc->uid = (int)v->i;
		break;
	case G_GID:
		if (udsp_hc_int_in(pc, v->i, 0, INT_MAX))
			hc->gid = (int)v->i;
		break;
	case G_USERNAME:
		hc->username = v->s;
		break;
	case G_GROUPNAME:
		hc->groupname = v->s;
		break;
	case G_COUNT_THREADS:
		if (v->i != 1)
			pwarn(pc, "only 1 service thread is supported; "
				  "using 1 (see count-processes)");
		break;
	case G_INIT_SSL:
		/* TLS is always initialised: the plugin needs OpenSSL */
		break;
	case G_SERVER_STRING:
		hc->server_string = v->s;
		break;
	case G_PLUGIN_DIR:
		if (!json_object_is_type(v->j, json_type_array)) {
			add_plugin_dir(pc, v->j);
			break;
		}
		for (n = 0; n < json_object_array_length(v->j); n++) {
			old = udsp_hc_path_idx(pc, n);
			add_plugin_dir(pc, json_object_array_get_idx(v->j, n));
			udsp_hc_path_pop(pc, old);
		}
		break;
	case G_PINGPONG:
		/* deprecated in lwsws too: accepted, no effect */
		break;
	case G_TIMEOUT:
		if (udsp_hc_int_in(pc, v->i, 0, 86400))
			hc->timeout_secs = (int)v->i;
		break;
	case G_REJECT:
		udsp_hc_list_to_pvos(pc, v->j, &hc->reject_service_keywords,
				     0, "");
		break;
	case G_ALPN:
		hc->alpn = v->s;
		break;
	case G_IGNORED:
		pwarn(pc, "not supported by this lws build (ignored)");
		break;
	case G_RLIMIT_NOFILE:
		if (udsp_hc_int_in(pc, v->i, 0, INT_MAX))
			hc->rlimit_nofile = (int)v->i;
		break;
	case G_MAX_HDR:
		if (udsp_hc_int_in(pc, v->i, 256, 65535))
			hc->max_http_header_data = (unsigned short)v->i;
		break;
	case G_DRAIN:
		if (udsp_hc_int_in(pc, v->i, 0, INT_MAX))
			hc->reload_drain_secs = (int)v->i;
		break;
	case G_PROCESSES:
		if (udsp_hc_int_in(pc, v->i, 1, UDSP_HC_MAX_PROCESSES))
			hc->count_processes = (int)v->i;
		break;
	case G_MAX_CONNS:
		/* 0: derived from the descriptor limit at start (limits.c) */
		if (udsp_hc_int_in(pc, v->i, 0, UDSP_HC_MAX_CONNECTIONS))
			hc->max_connections = (int)v->i;
		break;
	}
}

/* ------------------------------------------------------------------ files */

enum { T_GLOBAL, T_VHOSTS };

static const struct udsp_hc_kdef keys_top[] = {
	{ "global",	KT_OBJ, T_GLOBAL, 0 },
	{ "vhosts",	KT_ARR, T_VHOSTS, 0 },
};

static void
on_top(struct udsp_hc_pc *pc, void *t, const struct udsp_hc_kdef *k,
	 struct udsp_hc_kval *v)
{
	size_t n, old;
	json_object *e;

	if (k->id == T_GLOBAL) {
		udsp_hc_walk(pc, v->j, keys_global, LWS_ARRAY_SIZE(keys_global),
		     on_global, NULL);
		return;
	}

	for (n = 0; n < json_object_array_length(v->j); n++) {
		e = json_object_array_get_idx(v->j, n);
		old = udsp_hc_path_idx(pc, n);
		if (json_object_is_type(e, json_type_object))
			udsp_hc_vhost(pc, e, n);
		else
			perr(pc, "expected an object, got %s",
			     json_type_to_name(json_object_get_type(e)));
		udsp_hc_path_pop(pc, old);
	}
}

static char *
slurp(const char *f, size_t *len)
{
	struct stat st;
	char *buf;
	ssize_t r;
	size_t got = 0;
	int fd;

	fd = open(f, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st)) {
		close(fd);
		return NULL;
	}
	if (st.st_size > MAX_FILE_SIZE) {
		close(fd);
		errno = EFBIG;
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	while (got < (size_t)st.st_size) {
		r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	*len = got;

	return buf;
}

static void
line_col(const char *buf, size_t off, int *line, int *col)
{
	size_t n;

	*line = 1;
	*col = 1;
	for (n = 0; n < off; n++) {
		if (buf[n] == '\n') {
			(*line)++;
			*col = 1;
		} else
			(*col)++;
	}
}

/* 0: read (maybe with errors counted in hc), -1: unreadable / bad JSON */
static int
load_file(struct udsp_hconf *hc, const char *f, int *errors)
{
	enum json_tokener_error je;
	struct json_tokener *tok;
	json_object *root;
	struct udsp_hc_pc pc;
	size_t len, end, n;
	int line, col;
	char *buf;

	memset(&pc, 0, sizeof(pc));
	pc.hc = hc;
	pc.file = udsp_hc_str(hc, f);
	if (!pc.file)
		return -1;

	buf = slurp(f, &len);
	if (!buf) {
		lwsl_err("%s: cannot read: %s\n", f, strerror(errno));
		return -1;
	}
	if (strlen(buf) != len) {
		line_col(buf, strlen(buf), &line, &col);
		lwsl_err("%s:%d:%d: NUL byte in config file\n", f, line, col);
		free(buf);
		return -1;
	}

	/* an unterminated string is left for json-c to report */
	udsp_json_strip_hash_comments(buf, len);

	for (n = 0; n < len && strchr(" \t\r\n", buf[n]); n++)
		;
	if (n == len) {
		lwsl_notice("%s: empty (only comments)\n", f);
		free(buf);
		return 0;
	}

	tok = json_tokener_new();
	if (!tok) {
		free(buf);
		return -1;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, buf, (int)len);
	je = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);

	if (!root || je != json_tokener_success) {
		if (je == json_tokener_continue) {
			/* ran out of text: point at the end */
			line_col(buf, len, &line, &col);
			lwsl_err("%s:%d:%d: JSON parse error: unexpected end "
				 "of file (unclosed object, array or "
				 "string)\n", f, line, col);
		} else {
			line_col(buf, end, &line, &col);
			lwsl_err("%s:%d:%d: JSON parse error: %s\n", f, line,
				 col, json_tokener_error_desc(je));
		}
		json_object_put(root);
		free(buf);
		return -1;
	}

	for (n = end; n < len && strchr(" \t\r\n", buf[n]); n++)
		;
	if (n < len) {
		line_col(buf, n, &line, &col);
		lwsl_err("%s:%d:%d: JSON parse error: text after the end of "
			 "the top-level object\n", f, line, col);
		json_object_put(root);
		free(buf);
		return -1;
	}
	free(buf);

	if (!json_object_is_type(root, json_type_object)) {
		lwsl_err("%s: top level must be an object, got %s\n", f,
			 json_type_to_name(json_object_get_type(root)));
		json_object_put(root);
		return -1;
	}

	lwsl_info("%s: read\n", f);
	udsp_hc_walk(&pc, root, keys_top, LWS_ARRAY_SIZE(keys_top), on_top,
		     NULL);
	json_object_put(root);
	*errors += pc.errors;

	return 0;
}

static int
confd_filter(const struct dirent *de)
{
	/* as lws_dir, skip "conf~"; also dot files (docs/lws-notes.md N39) */
	return de->d_name[0] != '.' && !strchr(de->d_name, '~');
}

int
udsp_hconf_load(struct udsp_hconf *hc, const char *confdir)
{
	struct dirent **names = NULL;
	int n, count, errors = 0;
	char path[4096];
	struct stat st;

	memset(hc, 0, sizeof(*hc));
	hc->max_http_header_data = UDSP_HC_DEF_HEADER_DATA;
	hc->count_threads = 1;
	hc->count_processes = 1;

	/*
	 * A file that cannot be read or parsed counts as one error and the
	 * others are still read, so that one run (or `-t`) reports every
	 * problem of every file, not just the first.
	 */
	snprintf(path, sizeof(path), "%s/conf", confdir);
	if (load_file(hc, path, &errors))
		errors++;

	snprintf(path, sizeof(path), "%s/conf.d", confdir);
	count = scandir(path, &names, confd_filter, alphasort);
	if (count < 0) {
		if (errno != ENOENT) {
			lwsl_err("%s: %s\n", path, strerror(errno));
			errors++;
		}
		count = 0;
	}

	for (n = 0; n < count; n++) {
		snprintf(path, sizeof(path), "%s/conf.d/%s", confdir,
			 names[n]->d_name);
		if (!stat(path, &st) && S_ISREG(st.st_mode) &&
		    load_file(hc, path, &errors))
			errors++;
		free(names[n]);
	}
	free(names);

	if (hc->oom)
		return -1;
	if (errors) {
		lwsl_err("%s: %d configuration error%s\n", confdir, errors,
			 errors == 1 ? "" : "s");
		return -1;
	}
	if (!hc->count_vhosts) {
		lwsl_err("%s: no vhosts configured\n", confdir);
		return -1;
	}

	return 0;
}

void
udsp_hconf_destroy(struct udsp_hconf *hc)
{
	struct udsp_hc_chunk *c, *next;

	for (c = hc->arena; c; c = next) {
		next = c->next;
		free(c);
	}
	hc->arena = NULL;
	hc->vhosts = NULL;
}
