/* SPDX-License-Identifier: MIT
 *
 * libFuzzer driver for udsp_target_build().  Input: NUL-separated fields
 * inside, remainder, then query fragments.  A target that is produced must
 * decode back to exactly what went in, contain no "."/".." segment, CTL,
 * space or stray delimiter, and must be refused only for the documented
 * reasons (dot segment, control byte, no room).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "urlenc.h"

#define ASSERT(x) do { if (!(x)) abort(); } while (0)
#define MAX_ARGS 16
#define BIG 65536

static int
unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;	/* lower-case hex is not what we emit */
}

static int
is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("-._~", c);
}

/*
 * Percent-decode [s, e) into d, insisting every byte is either allowed
 * literally (per `path`) or a well-formed upper-case escape of a byte that
 * needed escaping.  Returns the decoded length.
 */
static size_t
decode(char *d, const char *s, const char *e, int path)
{
	size_t n = 0;
	int hi, lo;

	while (s < e) {
		unsigned char c = (unsigned char)*s;

		if (c == '%') {
			ASSERT(e - s >= 3);
			hi = unhex(s[1]);
			lo = unhex(s[2]);
			ASSERT(hi >= 0 && lo >= 0);
			c = (unsigned char)(hi << 4 | lo);
			/* only what must be escaped is escaped */
			ASSERT(!is_unreserved(c));
			d[n++] = (char)c;
			s += 3;
			continue;
		}
		ASSERT(c > 0x20 && c < 0x7f && c != '?' && c != '#');
		ASSERT(is_unreserved(c) ||
		       (path && strchr("!$&'()*+,;=:@/", c)));
		d[n++] = (char)c;
		s++;
	}

	return n;
}

/* 1 if decoded path p has a "." or ".." segment or a control byte */
static int
path_bad(const char *p, size_t len)
{
	size_t i, seg = 0;

	for (i = 0; i <= len; i++) {
		if (i < len && ((unsigned char)p[i] < 0x20 ||
				(unsigned char)p[i] == 0x7f))
			return 1;
		if (i < len && p[i] != '/')
			continue;
		if ((i - seg == 1 && p[seg] == '.') ||
		    (i - seg == 2 && p[seg] == '.' && p[seg + 1] == '.'))
			return 1;
		seg = i + 1;
	}

	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *field[2 + MAX_ARGS], *q, *amp, *eq;
	char *s, *out, *want, *dec;
	size_t nf = 0, i, wl, dl, plen;
	int n, k, nargs;

	s = malloc(size + 1);
	out = malloc(BIG);
	want = malloc(size + 4);
	dec = malloc(BIG);
	if (!s || !out || !want || !dec)
		goto out;
	memcpy(s, data, size);
	s[size] = '\0';

	/* split on NUL into inside, remainder, args... */
	field[nf++] = s;
	for (i = 0; i < size && nf < 2 + MAX_ARGS; i++)
		if (!s[i])
			field[nf++] = s + i + 1;
	while (nf < 2)
		field[nf++] = "";
	nargs = (int)nf - 2;

	n = udsp_target_build(out, BIG, field[0], field[1], field + 2, nargs);

	/* the decoded path we expect: inside + remainder joined by one '/' */
	wl = 0;
	q = field[0][0] ? field[0] : "/";
	memcpy(want, q, strlen(q));
	wl = strlen(q);
	q = field[1];
	if (*q) {
		if (want[wl - 1] == '/')
			q += *q == '/';
		else if (*q != '/')
			want[wl++] = '/';
		memcpy(want + wl, q, strlen(q));
		wl += strlen(q);
	}

	if (field[0][0] != '/' && field[0][0]) {
		ASSERT(n == -1);
		goto out;
	}
	if (path_bad(want, wl)) {
		ASSERT(n == -1);
		ASSERT(!out[0]);
		goto out;
	}
	/* every byte at most triples; BIG is ample for 4 KiB inputs */
	if (size < BIG / 4)
		ASSERT(n >= 0);
	if (n < 0)
		goto out;

	ASSERT((size_t)n == strlen(out));
	ASSERT(out[0] == '/');

	/* path: decodes back to exactly the joined input */
	q = strchr(out, '?');
	plen = q ? (size_t)(q - out) : (size_t)n;
	dl = decode(dec, out, out + plen, 1);
	ASSERT(dl == wl && !memcmp(dec, want, wl));
	ASSERT(!path_bad(out, plen));

	/* query: one '&'-joined fragment per non-empty arg, each round-trips */
	for (k = 0; k < nargs; k++) {
		const char *a = field[2 + k];
		const char *ae = strchr(a, '=');

		if (!*a)
			continue;
		ASSERT(q && (*q == '?' || *q == '&'));
		q++;
		amp = strchr(q, '&');
		if (!amp)
			amp = out + n;
		eq = memchr(q, '=', (size_t)(amp - q));
		ASSERT(!eq == !ae);
		dl = decode(dec, q, eq ? eq : amp, 0);
		ASSERT(dl == (ae ? (size_t)(ae - a) : strlen(a)));
		ASSERT(!memcmp(dec, a, dl));
		if (eq) {
			dl = decode(dec, eq + 1, amp, 0);
			ASSERT(dl == strlen(ae + 1));
			ASSERT(!memcmp(dec, ae + 1, dl));
		}
		q = amp;
	}
	ASSERT(!q || !*q);

	/* exact fit works, one byte less is refused */
	ASSERT(udsp_target_build(dec, (size_t)n + 1, field[0], field[1],
				 field + 2, nargs) == n);
	ASSERT(!strcmp(dec, out));
	ASSERT(udsp_target_build(dec, (size_t)n, field[0], field[1],
				 field + 2, nargs) == -1);

out:
	free(s);
	free(out);
	free(want);
	free(dec);

	return 0;
}
