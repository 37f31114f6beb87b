/* SPDX-License-Identifier: MIT
 *
 * Table test for udsp_json_strip_hash_comments(): comments become spaces,
 * string contents (escapes included) are untouched, lengths never change.
 */
#include <stdlib.h>

#include "t.h"
#include "jsonstrip.h"

struct tcase {
	const char	*in;
	const char	*out;
	int		ret;
};

static const struct tcase cases[] = {
	{ "", "", 0 },
	{ "{}", "{}", 0 },
	{ "# all comment", "             ", 0 },
	{ "{ # c\n}", "{    \n}", 0 },
	{ "{\"a\": 1} # t", "{\"a\": 1}    ", 0 },
	{ "#a\n#b\n{}", "  \n  \n{}", 0 },
	{ "#a\r\n{}", "  \r\n{}", 0 },
	/* '#' inside strings is data */
	{ "{\"a#b\": \"#x\"}", "{\"a#b\": \"#x\"}", 0 },
	/* escaped quote does not end the string */
	{ "{\"a\\\"#\": 1} #c", "{\"a\\\"#\": 1}   ", 0 },
	/* escaped backslash then the closing quote */
	{ "\"a\\\\\" # c", "\"a\\\\\"    ", 0 },
	/* a quote inside a comment does not open a string */
	{ "# \"\n{\"x\": \"#\"}", "   \n{\"x\": \"#\"}", 0 },
	/* multi-line string: '#' on the next line is still data */
	{ "\"a\n#b\" #c", "\"a\n#b\"   ", 0 },
	/* unterminated string */
	{ "{\"a", "{\"a", -1 },
	{ "\"a\\\"", "\"a\\\"", -1 },
	{ "\"\\", "\"\\", -1 },
};

int
main(void)
{
	size_t n, len;
	char *b;
	int r;

	for (n = 0; n < sizeof(cases) / sizeof(cases[0]); n++) {
		len = strlen(cases[n].in);
		b = malloc(len + 1);
		CHECK(b != NULL);
		if (!b)
			break;
		memcpy(b, cases[n].in, len + 1);
		r = udsp_json_strip_hash_comments(b, len);
		CHECK(r == cases[n].ret);
		CHECK_STR(b, cases[n].out);
		CHECK(strlen(b) == len);
		free(b);
	}

	/* length bound respected: bytes after len are never touched */
	{
		char buf[] = "{}#xyz";

		r = udsp_json_strip_hash_comments(buf, 3);
		CHECK(r == 0);
		CHECK_STR(buf, "{} xyz");
	}

	/* embedded NUL is just another byte */
	{
		char buf[] = { '#', 'a', '\0', 'b', '\n', '#', 0 };

		r = udsp_json_strip_hash_comments(buf, 6);
		CHECK(r == 0);
		CHECK(!memcmp(buf, "    \n ", 6));
	}

	return T_END();
}
