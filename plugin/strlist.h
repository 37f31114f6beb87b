/* SPDX-License-Identifier: MIT
 *
 * The item lists that config values hold ("forward-headers": "x-a, x-b",
 * "trusted-proxies": "127.0.0.1 10.0.0.0/8"): items separated by commas,
 * spaces or tabs in any mix.  Pure, no lws calls: the plugin and the
 * daemon both link it (udsp_core).  HTTP field lists (Connection) keep
 * their own RFC 9110 rules in headers.c.
 */
#ifndef UDSP_STRLIST_H
#define UDSP_STRLIST_H

#include <stddef.h>

/*
 * The next item of the list at *cursor: returns where it starts, with its
 * length in *len, and moves *cursor past it; NULL once no item is left (or
 * *cursor is NULL).  Items point into the list; nothing is copied.
 *
 *	const char *c = list, *item;
 *	size_t n;
 *
 *	while ((item = udsp_list_next(&c, &n)))
 *		use(item, n);
 */
const char *
udsp_list_next(const char **cursor, size_t *len);

#endif
