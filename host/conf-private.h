/* SPDX-License-Identifier: MIT
 *
 * Shared between conf.c (files, top level, arena), conf-walk.c (key
 * walker, values, key paths in messages, pvo lists), conf-global.c
 * ("global") and the vhost part: conf-vhost.c (vhost keys), conf-mount.c
 * (mounts) and conf-pvo.c (ws-protocols and the plugin's pvos).  Not used
 * outside host/conf*.
 */
#ifndef UDSP_HOST_CONF_PRIVATE_H
#define UDSP_HOST_CONF_PRIVATE_H

#include <json-c/json.h>

#include "conf.h"

/* a day: the ceiling of the timeout keys that take seconds */
#define UDSP_HC_DAY_S	86400

/* parse state for one file */
struct udsp_hc_pc {
	struct udsp_hconf	*hc;
	const char		*file;	/* arena */
	char			path[512];	/* "vhosts[0].port" */
	size_t			plen;
	int			errors;
};

enum udsp_hc_kt {
	KT_STR,
	KT_INT,
	KT_BOOL,
	KT_OBJ,
	KT_ARR,
	KT_ANY,		/* the handler checks */
};

/* one known key of a config object */
struct udsp_hc_kdef {
	const char		*name;
	enum udsp_hc_kt		type;
	int			id;
	uint64_t		flag;	/* flag keys: lws option bit(s) */
	size_t			off;	/* string keys: info field */
};

/* a key's value, already type-checked */
struct udsp_hc_kval {
	const char		*s;	/* arena, with _lws_ddir_ done */
	long long		i;
	int			b;
	json_object		*j;	/* borrowed: file json tree */
};

typedef void (*udsp_hc_key_cb)(struct udsp_hc_pc *pc, void *t,
			       const struct udsp_hc_kdef *k,
			       struct udsp_hc_kval *v);

/* conf.c: the arena */
void *
udsp_hc_zalloc(struct udsp_hconf *hc, size_t len);
const char *
udsp_hc_str(struct udsp_hconf *hc, const char *s);

/* conf-walk.c */
void
udsp_hc_msg(struct udsp_hc_pc *pc, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define perr(pc, ...)	udsp_hc_msg(pc, 1, __VA_ARGS__)
#define pwarn(pc, ...)	udsp_hc_msg(pc, 0, __VA_ARGS__)
size_t
udsp_hc_path_key(struct udsp_hc_pc *pc, const char *key);
size_t
udsp_hc_path_idx(struct udsp_hc_pc *pc, size_t i);
void
udsp_hc_path_pop(struct udsp_hc_pc *pc, size_t o);
const char *
udsp_hc_scalar_str(struct udsp_hc_pc *pc, json_object *j);
int
udsp_hc_int_in(struct udsp_hc_pc *pc, long long i, long long lo,
	       long long hi);
void
udsp_hc_walk(struct udsp_hc_pc *pc, json_object *o,
	     const struct udsp_hc_kdef *tab, size_t count, udsp_hc_key_cb cb,
	     void *t);
struct lws_protocol_vhost_options *
udsp_hc_pvo_new(struct udsp_hc_pc *pc, const char *name, const char *value);
void
udsp_hc_obj_to_pvos(struct udsp_hc_pc *pc, json_object *o,
		    const struct lws_protocol_vhost_options ***tail, int nest,
		    const char *suffix);
void
udsp_hc_list_to_pvos(struct udsp_hc_pc *pc, json_object *j,
		     const struct lws_protocol_vhost_options **head, int nest,
		     const char *suffix);

/* conf-global.c: the "global" object */
void
udsp_hc_global(struct udsp_hc_pc *pc, json_object *o);

/* a vhost while its keys are read (conf-vhost.c, -mount.c, -pvo.c) */
struct udsp_hc_vb {
	struct udsp_hc_vhost	*vh;
	size_t			idx;	/* in this file's vhosts[] */
	json_object		*mounts;	/* borrowed: file's tree */
	size_t			mounts_plen;
	char			mounts_path[512];
	json_object		*ws_protocols;
	char			ws_path[512];
	const char		*cert, *key;
	long long		h2_streams;
	unsigned int		has_port:1;
	unsigned int		proxied:1;	/* a mount on the plugin */
};

/* conf-vhost.c */
void
udsp_hc_vhost(struct udsp_hc_pc *pc, json_object *o, size_t idx);
/* the vhost's name for messages, "?" if it has none (yet) */
const char *
udsp_hc_vname(struct udsp_hc_vb *vb);
/* note a protocol the vhost cannot work without (once per name) */
void
udsp_hc_needs_add(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb,
		  const char *name, const char *why);

/* conf-mount.c: "mounts", read once the vhost's other keys are known */
void
udsp_hc_mounts(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb);

/* conf-pvo.c */
struct lws_protocol_vhost_options *
udsp_hc_vhost_pvo(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb,
		  const char *name);
int
udsp_hc_proxy_uint(struct udsp_hc_pc *pc,
		   const struct lws_protocol_vhost_options *list,
		   const char *name, const char *where);
void
udsp_hc_ws_protocols(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb);
void
udsp_hc_ws_default(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb);
void
udsp_hc_access_log_pvo(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb);

#endif
