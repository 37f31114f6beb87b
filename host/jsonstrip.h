/* SPDX-License-Identifier: MIT
 *
 * lwsws config files are JSON plus '#' comments to end of line; json-c
 * 0.16 rejects '#'.  Pure: no lws, no json-c.
 */
#ifndef UDSP_JSONSTRIP_H
#define UDSP_JSONSTRIP_H

#include <stddef.h>

/*
 * Replace every '#' comment (from '#' to end of line, outside JSON strings)
 * with spaces, in place, so that line and column numbers in json-c error
 * reports still point at the original text.  Backslash escapes inside
 * strings are honoured.  Returns 0, or -1 if a string is unterminated at
 * the end of the buffer (the caller lets json-c report it).
 */
int
udsp_json_strip_hash_comments(char *buf, size_t len);

#endif
