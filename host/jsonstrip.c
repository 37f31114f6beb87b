/* SPDX-License-Identifier: MIT
 *
 * '#' comment stripping for lwsws-style JSON config files.  Comments are
 * overwritten with spaces rather than removed so that json-c's error offsets
 * map back onto the user's file unchanged.
 */
#include "jsonstrip.h"

int
udsp_json_strip_hash_comments(char *buf, size_t len)
{
	int in_str = 0, esc = 0, in_comment = 0;
	size_t n;

	for (n = 0; n < len; n++) {
		char c = buf[n];

		if (in_comment) {
			if (c == '\n' || c == '\r') {
				in_comment = 0;
				continue;
			}
			buf[n] = ' ';
			continue;
		}

		if (in_str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in_str = 0;
			/*
			 * No end at a raw newline: json-c accepts multi-line
			 * strings, so a '#' on the next line is still data.
			 */
			continue;
		}

		if (c == '"')
			in_str = 1;
		else if (c == '#') {
			buf[n] = ' ';
			in_comment = 1;
		}
	}

	return in_str ? -1 : 0;
}
