/* SPDX-License-Identifier: MIT
 *
 * libFuzzer driver for the header predicates.  Input: NUL-separated fields
 * list, token/name, value, peer.  Checks the predicates against properties
 * rather than a second implementation: a token placed in a list is found,
 * a Connection-listed name is never forwarded, an address matches itself.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "headers.h"

#define ASSERT(x) do { if (!(x)) abort(); } while (0)

static int
is_tchar(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void
check_list(const char *list, const char *tok)
{
	size_t ll = strlen(list), tl = strlen(tok), i;
	char *l2, *t2;

	/* the found/not-found answer must not read past list_len */
	(void)udsp_hdr_list_has(list, ll / 2, tok, tl);

	if (!tl || strchr(tok, ',') || tok[0] == ' ' || tok[0] == '\t' ||
	    tok[tl - 1] == ' ' || tok[tl - 1] == '\t')
		return;

	l2 = malloc(ll + tl + 8);
	t2 = malloc(tl + 1);
	ASSERT(l2 && t2);
	memcpy(l2, list, ll);
	memcpy(l2 + ll, ", \t", 3);
	memcpy(l2 + ll + 3, tok, tl);
	memcpy(l2 + ll + 3 + tl, " ,x", 4);
	for (i = 0; i < tl; i++)
		t2[i] = (char)(isupper((unsigned char)tok[i]) ?
			       tolower((unsigned char)tok[i]) :
			       toupper((unsigned char)tok[i]));
	t2[tl] = '\0';

	ASSERT(udsp_hdr_list_has(l2, strlen(l2), tok, tl));
	ASSERT(udsp_hdr_list_has(l2, strlen(l2), t2, tl));
	/* named in Connection: hop-by-hop whatever the table says */
	ASSERT(!udsp_hdr_req_forward(tok, tl, l2, strlen(l2)));
	ASSERT(!udsp_hdr_res_forward(t2, tl, l2, strlen(l2)));

	free(l2);
	free(t2);
}

static void
check_name_value(const char *name, const char *v, size_t vlen)
{
	size_t nl = strlen(name), i;
	unsigned int f = udsp_hdr_flags(name, nl);
	int ok;

	if (f & (UDSP_HF_HOP | UDSP_HF_SPECIAL | UDSP_HF_PROXY_OWNS)) {
		ASSERT(!udsp_hdr_req_forward(name, nl, NULL, 0));
		ASSERT(!udsp_hdr_res_forward(name, nl, NULL, 0));
	}
	if (f & UDSP_HF_H2_BAD)
		ASSERT(!udsp_hdr_res_forward(name, nl, NULL, 0));

	ok = udsp_hdr_name_ok(name, nl);
	for (i = 0; i < nl && is_tchar((unsigned char)name[i]); i++)
		;
	ASSERT(ok == (nl && i == nl));

	ok = udsp_hdr_value_ok(v, vlen);
	for (i = 0; i < vlen; i++) {
		unsigned char c = (unsigned char)v[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			break;
	}
	ASSERT(ok == (i == vlen));
}

static void
check_xff(const char *prior, const char *peer)
{
	char buf[256];
	size_t pl = strlen(peer);
	int n, t;

	for (t = 0; t < 2; t++) {
		n = udsp_xff_build(buf, sizeof(buf), prior, strlen(prior),
				   peer, t);
		if (n < 0)
			continue;
		ASSERT((size_t)n == strlen(buf));
		ASSERT((size_t)n >= pl && !strcmp(buf + n - pl, peer));
		if (!t)
			ASSERT((size_t)n == pl);
		/* nothing unsafe is carried over from the client's value */
		if (udsp_hdr_value_ok(peer, pl))
			ASSERT(udsp_hdr_value_ok(buf, (size_t)n));
	}
}

static void
check_addr(const char *list, const char *peer)
{
	unsigned char a[16];
	int v4, v6;

	(void)udsp_addr_in_list(list, peer);

	v4 = inet_pton(AF_INET, peer, a) == 1;
	v6 = inet_pton(AF_INET6, peer, a) == 1;
	if (!v4 && !v6)
		return;
	ASSERT(udsp_addr_in_list(peer, peer));
	/* v4-mapped addresses count as IPv4 */
	if (v4 || (v6 && !memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12)))
		ASSERT(udsp_addr_in_list("::/0 0.0.0.0/0", peer) &&
		       !udsp_addr_in_list("::/0", peer));
	else
		ASSERT(udsp_addr_in_list("0.0.0.0/0,::/0", peer) &&
		       !udsp_addr_in_list("0.0.0.0/0", peer));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *f[4] = { "", "", "", "" };
	char *s;
	size_t i, nf = 1, vlen;

	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	f[0] = s;
	for (i = 0; i < size && nf < 4; i++)
		if (!s[i])
			f[nf++] = s + i + 1;
	/* the value field runs to the end, NULs and all */
	vlen = nf > 2 ? size - (size_t)(f[2] - s) : 0;

	check_list(f[0], f[1]);
	check_name_value(f[1], f[2], vlen);
	check_xff(f[2], f[3]);
	check_addr(f[0], f[3]);

	free(s);

	return 0;
}
