/* SPDX-License-Identifier: MIT
 *
 * udsp_target_build(): one line per (inside, remainder, query) case with the
 * exact target expected, or NULL when it must be refused; then the dst size
 * boundary.
 */
#include <stdio.h>
#include <string.h>

#include "urlenc.h"
#include "t.h"

#define A(...) ((const char * const []){ __VA_ARGS__ })
#define NA(...) (int)(sizeof(A(__VA_ARGS__)) / sizeof(const char *))
/* args + nargs from one list */
#define Q(...) A(__VA_ARGS__), NA(__VA_ARGS__)

static const struct tcase {
	const char		*inside, *rem;
	const char * const	*args;
	int			nargs;
	const char		*want;	/* NULL: must be refused */
} cases[] = {
	/* joining inside and remainder */
	{ "/",    "",        NULL, 0,  "/" },
	{ "/",    NULL,      NULL, 0,  "/" },
	{ NULL,   "/x",      NULL, 0,  "/x" },
	{ "",     "/x",      NULL, 0,  "/x" },
	{ "/",    "/x",      NULL, 0,  "/x" },
	{ "/",    "/",       NULL, 0,  "/" },
	{ "/",    "x",       NULL, 0,  "/x" },
	{ "/in",  "",        NULL, 0,  "/in" },
	{ "/in",  "/",       NULL, 0,  "/in/" },
	{ "/in",  "/x",      NULL, 0,  "/in/x" },
	{ "/in",  "x",       NULL, 0,  "/in/x" },
	{ "/in",  "/x/",     NULL, 0,  "/in/x/" },
	{ "/in/", "/x",      NULL, 0,  "/in/x" },
	{ "/a/b", "/c/d.e",  NULL, 0,  "/a/b/c/d.e" },
	{ "in",   "/x",      NULL, 0,  NULL },

	/* path bytes: pchar and '/' kept, the rest encoded in upper-case hex */
	{ "/", "/AZaz09-._~",          NULL, 0, "/AZaz09-._~" },
	{ "/", "/!$&'()*+,;=:@",       NULL, 0, "/!$&'()*+,;=:@" },
	{ "/", "/a b",                 NULL, 0, "/a%20b" },
	{ "/", "/100%",                NULL, 0, "/100%25" },
	{ "/", "/%2e%2E",              NULL, 0, "/%252e%252E" },
	{ "/", "/a?b#c",               NULL, 0, "/a%3Fb%23c" },
	{ "/", "/\"<>\\^`{|}[]",       NULL, 0, "/%22%3C%3E%5C%5E%60%7B%7C%7D%5B%5D" },
	{ "/", "/caf\xc3\xa9",         NULL, 0, "/caf%C3%A9" },
	{ "/", "/\xff",                NULL, 0, "/%FF" },
	{ "/in", "/a b",               NULL, 0, "/in/a%20b" },
	{ "/\xc3\xa9", "/x",           NULL, 0, "/%C3%A9/x" },

	/* dot segments refused wherever they appear, even across the join */
	{ "/", "/..",                  NULL, 0, NULL },
	{ "/", "/../etc/passwd",       NULL, 0, NULL },
	{ "/", "/a/../b",              NULL, 0, NULL },
	{ "/", "/a/..",                NULL, 0, NULL },
	{ "/", "/a/../",               NULL, 0, NULL },
	{ "/", "/.",                   NULL, 0, NULL },
	{ "/", "/./a",                 NULL, 0, NULL },
	{ "/", "/a/.",                 NULL, 0, NULL },
	{ "/", "..",                   NULL, 0, NULL },
	{ "/in", "..",                 NULL, 0, NULL },
	{ "/in", "/..",                NULL, 0, NULL },
	{ "/in", ".",                  NULL, 0, NULL },
	{ "/in/.", "x",                NULL, 0, NULL },
	{ "/in/..", "x",               NULL, 0, NULL },
	{ "/.", "",                    NULL, 0, NULL },
	{ "/..", "",                   NULL, 0, NULL },
	{ "/a/./b", "/x",              NULL, 0, NULL },
	{ "/", "/...",                 NULL, 0, "/..." },
	{ "/", "/..a",                 NULL, 0, "/..a" },
	{ "/", "/a..",                 NULL, 0, "/a.." },
	{ "/", "/.well-known/x",       NULL, 0, "/.well-known/x" },
	{ "/in.", "/x",                NULL, 0, "/in./x" },

	/* control bytes refused in the path */
	{ "/", "/a\x01",               NULL, 0, NULL },
	{ "/", "/a\r\nHost: evil",     NULL, 0, NULL },
	{ "/", "/a\t",                 NULL, 0, NULL },
	{ "/", "/a\x7f",               NULL, 0, NULL },
	{ "/\n", "/x",                 NULL, 0, NULL },

	/* query: decoded '&', '=', '+', ' ', '%' in a value stay data */
	{ "/", "/q", Q("x=a&b"),            "/q?x=a%26b" },
	{ "/", "/q", Q("x=a=b"),            "/q?x=a%3Db" },
	{ "/", "/q", Q("x=+"),              "/q?x=%2B" },
	{ "/", "/q", Q("x= "),              "/q?x=%20" },
	{ "/", "/q", Q("x=%"),              "/q?x=%25" },
	{ "/", "/q", Q("x=&=+ %"),          "/q?x=%26%3D%2B%20%25" },
	{ "/", "/q", Q("x=+  "),            "/q?x=%2B%20%20" },
	{ "/", "/q", Q("a=1", "b=2"),       "/q?a=1&b=2" },
	{ "/", "/q", Q("a", "b="),          "/q?a&b=" },
	{ "/", "/q", Q("=v"),               "/q?=v" },
	{ "/", "/q", Q("="),                "/q?=" },
	{ "/", "/q", Q("", "a=1", ""),      "/q?a=1" },
	{ "/", "/q", Q(""),                 "/q" },
	{ "/", "/q", Q("n m=v w"),          "/q?n%20m=v%20w" },
	{ "/", "/q", Q("a&b=c"),            "/q?a%26b=c" },
	{ "/", "/q", Q("k=AZaz09-._~"),     "/q?k=AZaz09-._~" },
	{ "/", "/q", Q("k=/?:@!$'()*,;#"),  "/q?k=%2F%3F%3A%40%21%24%27%28%29%2A%2C%3B%23" },
	{ "/", "/q", Q("k=\xc3\xa9\r\n"),   "/q?k=%C3%A9%0D%0A" },
	{ "/", "",   Q("a=1"),              "/?a=1" },
	{ "/in", "", Q("a=1"),              "/in?a=1" },
	{ "/", "/..", Q("a=1"),             NULL },
};

static void
check_sizes(void)
{
	const char *args[] = { "a=b c" };
	char buf[64];
	int n;

	/* "/in/x?a=b%20c" is 13 bytes: needs 14 with the NUL */
	n = udsp_target_build(buf, 14, "/in", "/x", args, 1);
	CHECK(n == 13);
	CHECK_STR(buf, "/in/x?a=b%20c");
	n = udsp_target_build(buf, 13, "/in", "/x", args, 1);
	CHECK(n == -1);
	n = udsp_target_build(buf, 11, "/in", "/x", args, 1);
	CHECK(n == -1);
	/* an encoding that does not fit is refused, not cut mid-escape */
	n = udsp_target_build(buf, 4, "/", "/a b", NULL, 0);
	CHECK(n == -1);
	n = udsp_target_build(buf, 2, "/", "", NULL, 0);
	CHECK(n == 1);
	CHECK_STR(buf, "/");
	n = udsp_target_build(buf, 1, "/", "", NULL, 0);
	CHECK(n == -1);
	CHECK(udsp_target_build(buf, 0, "/", "", NULL, 0) == -1);
	/* refusal leaves a harmless empty string */
	memset(buf, 'z', sizeof(buf));
	CHECK(udsp_target_build(buf, sizeof(buf), "/", "/..", NULL, 0) == -1);
	CHECK(!buf[0]);
}

int
main(void)
{
	char buf[512];
	size_t i;
	int n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tcase *c = &cases[i];

		n = udsp_target_build(buf, sizeof(buf), c->inside, c->rem,
				      c->args, c->nargs);
		if (!c->want) {
			if (n != -1)
				fprintf(stderr, "case %d: want refusal, got "
					"'%s'\n", (int)i, buf);
			CHECK(n == -1);
			continue;
		}
		if (n < 0) {
			fprintf(stderr, "case %d: refused, want '%s'\n",
				(int)i, c->want);
			CHECK(n >= 0);
			continue;
		}
		CHECK((size_t)n == strlen(buf));
		CHECK_STR(buf, c->want);
	}

	check_sizes();

	return T_END();
}
