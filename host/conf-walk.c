/* SPDX-License-Identifier: MIT
 *
 * The table-driven walk of a config object: each key looked up in its
 * table (unknown ones warned about), its value type-checked and handed to
 * the table's callback, with the key path ("vhosts[0].mounts[1].origin")
 * kept for every message; and the JSON -> pvo list conversions that lwsws's
 * option objects need.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf-private.h"

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

int
udsp_hc_int_in(struct udsp_hc_pc *pc, long long i, long long lo, long long hi)
{
	if (i >= lo && i <= hi)
		return 1;
	perr(pc, "%lld is out of range (%lld..%lld)", i, lo, hi);

	return 0;
}
