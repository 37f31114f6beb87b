/* SPDX-License-Identifier: MIT
 *
 * lwsws config files -> lws creation info, with json-c.  Owns file discovery
 * and parse-error reporting (file:line:col), the top-level keys and the
 * config arena that every string handed to lws lives in.  The key walker
 * is conf-walk.c, "global" conf-global.c, "vhosts" conf-vhost.c.
 */
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
		udsp_hc_global(pc, v->j);
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

/*
 * The text of file f as one JSON object: NULL after an error (logged as
 * f:line:col), or with *empty set if there is only whitespace and
 * comments.  The comments are blanked out of buf.
 */
static json_object *
parse(const char *f, char *buf, size_t len, int *empty)
{
	enum json_tokener_error je;
	struct json_tokener *tok;
	json_object *root;
	size_t end, n;
	int line, col;

	*empty = 0;
	/* an unterminated string is left for json-c to report */
	udsp_json_strip_hash_comments(buf, len);

	for (n = 0; n < len && strchr(" \t\r\n", buf[n]); n++)
		;
	if (n == len) {
		*empty = 1;
		return NULL;
	}

	tok = json_tokener_new();
	if (!tok)
		return NULL;
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
		return NULL;
	}

	for (n = end; n < len && strchr(" \t\r\n", buf[n]); n++)
		;
	if (n < len) {
		line_col(buf, n, &line, &col);
		lwsl_err("%s:%d:%d: JSON parse error: text after the end of "
			 "the top-level object\n", f, line, col);
		json_object_put(root);
		return NULL;
	}

	return root;
}

/* 0: read (maybe with errors counted in hc), -1: unreadable / bad JSON */
static int
load_file(struct udsp_hconf *hc, const char *f, int *errors)
{
	struct udsp_hc_pc pc;
	json_object *root;
	int line, col, empty;
	size_t len;
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
	root = parse(f, buf, len, &empty);
	free(buf);
	if (empty) {
		lwsl_notice("%s: empty (only comments)\n", f);
		return 0;
	}
	if (!root)
		return -1;

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
