/* SPDX-License-Identifier: MIT
 *
 * Config item lists (plugin/strlist.c): every separator mix, empty items,
 * and where each item points.  Each case lists the items joined by '|'.
 */
#include <stdio.h>
#include <string.h>

#include "strlist.h"
#include "t.h"

static const struct {
	const char	*list;
	const char	*items;
} cases[] = {
	{ "",				"" },
	{ ",, \t ,",			"" },
	{ "a",				"a" },
	{ "x-a,x-b",			"x-a|x-b" },
	{ "x-a, x-b",			"x-a|x-b" },
	{ " x-a x-b\t",			"x-a|x-b" },
	{ ",x-a,,\tx-b ,",		"x-a|x-b" },
	{ "127.0.0.1 10.0.0.0/8,::1",	"127.0.0.1|10.0.0.0/8|::1" },
	/* only these three separate: ';' and '\n' are item bytes */
	{ "a;b c\nd",			"a;b|c\nd" },
};

static void
join(const char *list, char *out, size_t outlen)
{
	const char *c = list, *item;
	size_t n, o = 0;

	out[0] = '\0';
	while ((item = udsp_list_next(&c, &n))) {
		/* items point into the list, within it */
		CHECK(item >= list && item + n <= list + strlen(list));
		CHECK(n > 0);
		o += (size_t)snprintf(out + o, outlen - o, "%s%.*s",
				      o ? "|" : "", (int)n, item);
	}
	/* the end stays the end */
	CHECK(!udsp_list_next(&c, &n));
}

int
main(void)
{
	const char *c = NULL;
	char out[256];
	size_t i, n = 99;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		join(cases[i].list, out, sizeof(out));
		CHECK_STR(out, cases[i].items);
	}
	/* an absent option: no items */
	CHECK(!udsp_list_next(&c, &n));

	return T_END();
}
