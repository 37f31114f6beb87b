/* SPDX-License-Identifier: MIT
 *
 * libFuzzer driver for udsp_origin_parse() / _format(): whatever parses must
 * satisfy the struct's documented invariants, and its canonical form must
 * parse back to the same origin.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "origin.h"
#include "urlenc.h"

#define ASSERT(x) do { if (!(x)) abort(); } while (0)

static int
is_err(const char *e)
{
	return e == udsp_origin_err_empty || e == udsp_origin_err_scheme ||
	       e == udsp_origin_err_sock_empty ||
	       e == udsp_origin_err_sock_long ||
	       e == udsp_origin_err_sock_rel || e == udsp_origin_err_host ||
	       e == udsp_origin_err_port || e == udsp_origin_err_inside;
}

static void
check_inside(const char *in)
{
	size_t len = strlen(in), i, seg = 1;

	ASSERT(in[0] == '/');
	ASSERT(len < UDSP_INSIDE_MAX);
	if (len == 1)
		return;
	ASSERT(in[len - 1] != '/');
	for (i = 1; i <= len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (i < len) {
			ASSERT(c > 0x20 && c != 0x7f && c != '?' &&
			       c != '#' && c != '%');
			if (c != '/')
				continue;
		}
		ASSERT(i > seg);
		ASSERT(!(i - seg == 1 && in[seg] == '.'));
		ASSERT(!(i - seg == 2 && in[seg] == '.' && in[seg + 1] == '.'));
		seg = i + 1;
	}
}

static void
check_origin(const struct udsp_origin *o)
{
	size_t alen = strlen(o->address);

	ASSERT(alen < sizeof(o->address));
	ASSERT(o->tls == 0 || o->tls == 1);
	if (o->kind == UDSP_ORIGIN_UNIX) {
		/* what lws copies into sun_path must fit with its NUL */
		ASSERT(o->address[0] == '+');
		ASSERT(alen - 1 < UDSP_SUN_PATH_MAX);
		ASSERT(o->address[1] == '/' || o->address[1] == '@');
		ASSERT(o->address[1] == '/' || alen > 2);
		ASSERT(!strchr(o->address, ':'));
		ASSERT(o->port == 0);
		ASSERT(!o->host[0]);
	} else {
		ASSERT(o->kind == UDSP_ORIGIN_TCP);
		ASSERT(alen > 0);
		ASSERT(!strpbrk(o->address, "[]/ "));
		ASSERT(o->port != 0);
		ASSERT(!strcmp(o->host, o->address));
	}
	check_inside(o->inside);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct udsp_origin o, o2;
	/* every inside byte may become "%XX" */
	static char target[3 * UDSP_INSIDE_MAX + 1];
	char *s, buf[2048], small[64];
	const char *e;
	size_t n, m, i;

	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	e = udsp_origin_parse(&o, s);
	if (e) {
		ASSERT(is_err(e));
		goto out;
	}
	check_origin(&o);

	n = udsp_origin_format(&o, buf, sizeof(buf));
	ASSERT(n == strlen(buf));
	ASSERT(n < sizeof(buf));

	e = udsp_origin_parse(&o2, buf);
	ASSERT(!e);
	ASSERT(o2.kind == o.kind && o2.tls == o.tls && o2.port == o.port);
	ASSERT(!strcmp(o2.address, o.address));
	ASSERT(!strcmp(o2.host, o.host));
	ASSERT(!strcmp(o2.inside, o.inside));

	/* any inside path we accept is one udsp_target_build() accepts */
	ASSERT(udsp_target_build(target, sizeof(target), o.inside, "", NULL,
				 0) >= 0);

	/* truncation is a prefix, NUL-terminated, and says what it wrote */
	for (i = 1; i <= sizeof(small); i += 7) {
		memset(small, 'Z', sizeof(small));
		m = udsp_origin_format(&o, small, i);
		ASSERT(m < i);
		ASSERT(m == strlen(small));
		ASSERT(!memcmp(small, buf, m));
		ASSERT(m == (n < i ? n : i - 1));
	}

out:
	free(s);

	return 0;
}
