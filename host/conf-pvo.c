/* SPDX-License-Identifier: MIT
 *
 * A vhost's protocol options (pvos): "ws-protocols" -> per-vhost pvos, the
 * pvos the lws-uds-proxy plugin gets from other vhost keys (access-log,
 * default), and the check of the plugin's numeric options.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "conf-private.h"
#include "origin.h"

/* the per-vhost pvo that enables a protocol, created if missing */
struct lws_protocol_vhost_options *
udsp_hc_vhost_pvo(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb,
		  const char *name)
{
	const struct lws_protocol_vhost_options **pp = &vb->vh->info.pvo;
	struct lws_protocol_vhost_options *pvo;

	for (; *pp; pp = (const struct lws_protocol_vhost_options **)
							&(*pp)->next)
		if (!strcmp((*pp)->name, name))
			return (struct lws_protocol_vhost_options *)*pp;

	pvo = udsp_hc_pvo_new(pc, name, "");
	if (pvo)
		*pp = pvo;

	return pvo;
}

/*
 * A numeric option of the proxy in list (a pmo or its ws-protocols
 * options), if given; 0 after an error.  The plugin reads a mount's per
 * request and has no place to refuse a bad one, and a bad vhost option
 * only fails the plugin's init, with the vhost served regardless.
 */
int
udsp_hc_proxy_uint(struct udsp_hc_pc *pc,
		   const struct lws_protocol_vhost_options *list,
		   const char *name, const char *where)
{
	const struct lws_protocol_vhost_options *pv;
	unsigned long u;
	char *e;

	pv = lws_pvo_search(list, name);
	if (!pv)
		return 1;
	errno = 0;
	u = strtoul(pv->value, &e, 10);
	if (!*pv->value || *e || errno || u > INT_MAX || pv->value[0] == '-') {
		perr(pc, "%s\"%s\": '%s' is not a number", where, name,
		     pv->value);
		return 0;
	}

	return 1;
}

void
udsp_hc_ws_protocols(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb)
{
	const struct lws_protocol_vhost_options **tail;
	struct lws_protocol_vhost_options *pvo;
	json_object *j = vb->ws_protocols, *e;
	size_t n, count = 1, old, old2;

	if (json_object_is_type(j, json_type_array))
		count = json_object_array_length(j);
	else if (!json_object_is_type(j, json_type_object)) {
		perr(pc, "expected an array of objects, got %s",
		     json_type_to_name(json_object_get_type(j)));
		return;
	}

	for (n = 0; n < count; n++) {
		e = j;
		old = pc->plen;
		if (json_object_is_type(j, json_type_array)) {
			e = json_object_array_get_idx(j, n);
			old = udsp_hc_path_idx(pc, n);
		}
		if (!json_object_is_type(e, json_type_object)) {
			perr(pc, "expected an object, got %s",
			     json_type_to_name(json_object_get_type(e)));
			udsp_hc_path_pop(pc, old);
			continue;
		}
		json_object_object_foreach(e, key, val) {
			old2 = udsp_hc_path_key(pc, key);
			if (!json_object_is_type(val, json_type_object)) {
				perr(pc, "protocol options: expected an "
					 "object, got %s", json_type_to_name(
					 json_object_get_type(val)));
				udsp_hc_path_pop(pc, old2);
				continue;
			}
			pvo = udsp_hc_vhost_pvo(pc, vb,
						udsp_hc_str(pc->hc, key));
			if (pvo) {
				tail = &pvo->options;
				while (*tail)
					tail = (const struct
					     lws_protocol_vhost_options **)
							&(*tail)->next;
				udsp_hc_obj_to_pvos(pc, val, &tail, 1, "");
				udsp_hc_needs_add(pc, vb, pvo->name,
						  "ws-protocols");
				if (!strcmp(pvo->name, UDSP_PROTOCOL_NAME)) {
					udsp_hc_proxy_uint(pc, pvo->options,
						   "hold-ms", "option ");
					udsp_hc_proxy_uint(pc, pvo->options,
						   "hold-max", "option ");
					udsp_hc_proxy_uint(pc, pvo->options,
						   "down-ms", "option ");
				}
			}
			udsp_hc_path_pop(pc, old2);
		}
		udsp_hc_path_pop(pc, old);
	}
}

/*
 * A ws upgrade without a subprotocol binds the vhost's default protocol
 * (lws_process_ws_upgrade()): on a vhost with proxied mounts that is the
 * plugin, unless the config names another default.  Plain HTTP is not
 * affected: lws re-binds protocols[0] for a request no mount takes.
 */
void
udsp_hc_ws_default(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb)
{
	const struct lws_protocol_vhost_options *pvo;
	struct lws_protocol_vhost_options *mine, *d;

	for (pvo = vb->vh->info.pvo; pvo; pvo = pvo->next)
		if (lws_pvo_search(pvo->options, "default"))
			return;
	mine = udsp_hc_vhost_pvo(pc, vb, UDSP_PROTOCOL_NAME);
	d = udsp_hc_pvo_new(pc, "default", "1");
	if (!mine || !d)
		return;
	d->next = mine->options;
	mine->options = d;
}

/*
 * The vhost's access-log path reaches the plugin as the pvo "access-log" of
 * lws-uds-proxy, appended to any options ws-protocols gave it.
 */
void
udsp_hc_access_log_pvo(struct udsp_hc_pc *pc, struct udsp_hc_vb *vb)
{
	const struct lws_protocol_vhost_options **tail;
	struct lws_protocol_vhost_options *pvo, *al;

	pvo = udsp_hc_vhost_pvo(pc, vb, UDSP_PROTOCOL_NAME);
	if (!pvo)
		return;
	for (tail = &pvo->options; *tail;
	     tail = (const struct lws_protocol_vhost_options **)
							&(*tail)->next)
		if (!strcmp((*tail)->name, "access-log")) {
			perr(pc, "access-log is given both as a vhost key and "
				 "as an option of %s in ws-protocols",
				 UDSP_PROTOCOL_NAME);
			return;
		}
	al = udsp_hc_pvo_new(pc, "access-log", vb->vh->access_log);
	if (al)
		*tail = al;
}
