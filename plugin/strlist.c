/* SPDX-License-Identifier: MIT
 *
 * Config item lists (strlist.h): one tokenizer for every list option.
 */
#include "strlist.h"

static int
is_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t';
}

const char *
udsp_list_next(const char **cursor, size_t *len)
{
	const char *s = *cursor, *e;

	if (!s)
		return NULL;
	while (is_sep(*s))
		s++;
	for (e = s; *e && !is_sep(*e); e++)
		;
	*cursor = e;
	*len = (size_t)(e - s);

	return e > s ? s : NULL;
}
