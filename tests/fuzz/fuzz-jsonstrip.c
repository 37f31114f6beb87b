/* SPDX-License-Identifier: MIT
 *
 * libFuzzer driver for udsp_json_strip_hash_comments(): no out-of-bounds
 * access, length unchanged, only '#'-comment bytes turned into spaces,
 * newlines and everything outside comments untouched.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonstrip.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n;
	char *b;

	/* exact-size copy so ASan sees any read past len */
	b = malloc(size ? size : 1);
	if (!b)
		return 0;
	if (size)
		memcpy(b, data, size);

	(void)udsp_json_strip_hash_comments(b, size);

	for (n = 0; n < size; n++) {
		if (b[n] == (char)data[n])
			continue;
		/* the only change allowed: a non-newline byte became ' ' */
		if (b[n] != ' ' || data[n] == '\n' || data[n] == '\r')
			abort();
	}

	/* idempotent: a second pass finds nothing more to strip */
	if (size) {
		char *c = malloc(size);

		if (!c)
			abort();
		memcpy(c, b, size);
		(void)udsp_json_strip_hash_comments(c, size);
		if (memcmp(b, c, size))
			abort();
		free(c);
	}

	free(b);

	return 0;
}
